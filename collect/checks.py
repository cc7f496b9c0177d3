"""Checks of what users give the collector: YAML files of settings and numbers on the command line.

A number is a number: NaN, infinities, booleans and text are refused where a budget or a threshold
belongs, and so are zero and negatives where they make no sense; only ASCII digits parse on the command
line (Python's float() and int() also read other scripts' digits). Unknown keys are named, a list where
a mapping belongs is one line, and no message grows with its input (collect.errors.clip): a value is
never quoted whole, so YAML aliases are never expanded into one.
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from collect.errors import InputError, clip

# A decimal number in ASCII digits: 300, 0.5, .5, 1e-3. No sign: what the options take is positive.
ASCII_NUMBER = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
ASCII_INTEGER = re.compile(r"[0-9]+")


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "text"
    if value is None:
        return "empty"
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, float) and math.isinf(value):
        return "infinite"
    return clip(repr(value), 40)


def load_yaml(path: Path, error: type[InputError]) -> Any:
    """The YAML document in PATH; ERROR (one line, bounded) when it cannot be read or parsed."""
    try:
        text = Path(path).read_text()
    except OSError as err:
        raise error(clip(f"{path}: {err.strerror or err}")) from None
    except UnicodeDecodeError:
        raise error(f"{path}: not UTF-8 text") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or type(err).__name__
        raise error(clip(f"{path}: not valid YAML{where}: {problem}")) from None
    except RecursionError:
        raise error(f"{path}: not valid YAML: nested too deeply") from None


def mapping(value: object, where: str, error: type[InputError], allowed: Iterable[str] | None = None) -> dict:
    """VALUE as a mapping with string keys (None: empty); unknown keys (not in ALLOWED) are named."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise error(clip(f"{where}: must be a mapping, not {_kind(value)}"))
    odd = [key for key in value if not isinstance(key, str)]
    if odd:
        raise error(clip(f"{where}: keys must be names, not {_kind(odd[0])}"))
    if allowed is not None:
        known = set(allowed)
        unknown = sorted(key for key in value if key not in known)
        if unknown:
            shown = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
            raise error(clip(f"{where}: unknown key(s) {shown} (known: {', '.join(sorted(known))})"))
    return value


def positive(value: object, where: str, error: type[InputError], *, at_most: float | None = None) -> float:
    """VALUE as a finite number above zero (and at most AT_MOST); booleans, text, NaN and infinities refused."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise error(clip(f"{where}: must be a number, not {_kind(value)}"))
    number = float(value)
    if not math.isfinite(number) or number <= 0:
        raise error(clip(f"{where}: must be a finite number above 0, not {_kind(value)}"))
    if at_most is not None and number > at_most:
        raise error(clip(f"{where}: must be at most {at_most:g}, not {number:g}"))
    return number


def positive_integer(value: object, where: str, error: type[InputError]) -> int:
    """VALUE as a whole number of at least 1 (a YAML integer; 3.0 and booleans refused)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise error(clip(f"{where}: must be a whole number, not {_kind(value)}"))
    if value < 1:
        raise error(clip(f"{where}: must be at least 1, not {value}"))
    return value


def positive_number_argument(text: str) -> float:
    """argparse type: a finite number above 0 in ASCII digits (no NaN, no infinity, no sign)."""
    if len(text) > 40 or not ASCII_NUMBER.fullmatch(text) or not math.isfinite(float(text)) or float(text) <= 0:
        raise argparse.ArgumentTypeError(clip(f"{text!r} is not a number above 0 in ASCII digits", 120))
    return float(text)


def positive_integer_argument(text: str) -> int:
    """argparse type: a whole number of at least 1 in ASCII digits."""
    if len(text) > 18 or not ASCII_INTEGER.fullmatch(text) or int(text) < 1:
        raise argparse.ArgumentTypeError(clip(f"{text!r} is not a whole number of at least 1 in ASCII digits", 120))
    return int(text)
