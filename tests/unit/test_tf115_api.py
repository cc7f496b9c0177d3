"""Model code stays within what TensorFlow 1.15 has: the legacy baseline runs it there."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.unit

MODELZOO = REPO / "modelzoo"
ALLOWED = {
    line.strip()
    for line in (MODELZOO / "tf115_api.txt").read_text().splitlines()
    if line.strip() and not line.startswith("#")
}


def tf_symbols(source: str) -> set[str]:
    """Every dotted name rooted at `tf` (tf.nn.relu, tf.train.Saver, ...) that SOURCE uses."""
    used: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute):
            parts, inner = [], node
            while isinstance(inner, ast.Attribute):
                parts.append(inner.attr)
                inner = inner.value
            if isinstance(inner, ast.Name) and inner.id == "tf":
                used.add(".".join(["tf", *reversed(parts)]))
    return {u for u in used if not any(o != u and o.startswith(u + ".") for o in used)}


def offending(source: str) -> set[str]:
    return tf_symbols(source) - ALLOWED


def sources() -> list[Path]:
    return sorted(MODELZOO.rglob("*.py"))


def test_the_checker_catches_tf2_only_apis() -> None:
    snippet = "x = tf.keras.layers.Dense(3)\ny = tf.nn.relu(x)\n@tf.function\ndef f(): return tf.math.bincount(x)\n"
    assert offending(snippet) == {"tf.keras.layers.Dense", "tf.function", "tf.math.bincount"}


@pytest.mark.parametrize("path", sources(), ids=lambda p: str(p.relative_to(REPO)))
def test_model_code_uses_only_tf115_symbols(path: Path) -> None:
    assert offending(path.read_text()) == set()


@pytest.mark.parametrize("path", sources(), ids=lambda p: str(p.relative_to(REPO)))
def test_tensorflow_comes_only_through_the_compat_module(path: Path) -> None:
    if path.name == "tfcompat.py":
        return
    tree = ast.parse(path.read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not {m for m in imported if m.split(".")[0] in {"tensorflow", "keras", "tf_keras"}}


def test_every_allowed_symbol_exists_in_this_tensorflow() -> None:
    """The list names real compat.v1 symbols, not typos (the 2.x side of the promise)."""
    from modelzoo.tfcompat import tf

    missing = []
    for symbol in ALLOWED:
        obj = tf
        for part in symbol.split(".")[1:]:
            if not hasattr(obj, part):
                missing.append(symbol)
                break
            obj = getattr(obj, part)
    assert missing == []
