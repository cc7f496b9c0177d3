"""Names that become paths: run id, host, model, config id, instance (and the file names under them).

Each is checked against its pattern where it enters the collector (CLI arguments, `import`
datasets, `pull` listings, `nightly`, a run id read back from the store before `report` joins it),
before any path is joined: a valid name is one path component, never '..', never absolute, never
with a '/' or a newline in it.
"""

from __future__ import annotations

import argparse
import re

from bench import facts
from collect.errors import NameRefused, clip

# bench.facts' patterns, matched whole (with re.match a '$' also matches before a newline).
RUN_ID = re.compile(facts.RUN_ID_PATTERN.removeprefix("^").removesuffix("$"))
RUN_ID_MAX = facts.NAME_MAX
# Model, config id, instance, and a file name in a results tree.
NAME = re.compile(facts.NAME_PATTERN.removeprefix("^").removesuffix("$"))
NAME_MAX = facts.NAME_MAX
# An inventory host name is a path component too (results/<run>/<host>/): a DNS name's length.
HOST = re.compile(facts.HOST_PATTERN.removeprefix("^").removesuffix("$"))
HOST_MAX = facts.HOST_MAX
RULE = "letters, digits, '.', '_' or '-', starting with a letter or digit"

PATTERNS = {
    "run id": (RUN_ID, RUN_ID_MAX),
    "host": (HOST, HOST_MAX),
    "model": (NAME, NAME_MAX),
    "config id": (NAME, NAME_MAX),
    "instance": (NAME, NAME_MAX),
    "file name": (NAME, NAME_MAX),
}
# The key columns of the store, in order, and the kind of name each holds.
KEY_KINDS = {"run_id": "run id", "host": "host", "model": "model", "config_id": "config id", "instance": "instance"}


def is_valid(kind: str, value: object) -> bool:
    pattern, longest = PATTERNS[kind]
    return isinstance(value, str) and len(value) <= longest and pattern.fullmatch(value) is not None


def refusal(kind: str, value: object) -> str:
    _, longest = PATTERNS[kind]
    return clip(f"{kind} {str(value)[:80]!r} is not a valid name (1 to {longest} {RULE})")


def check(kind: str, value: object, where: str = "") -> str:
    """VALUE if it is a valid name of KIND; else NameRefused (WHERE, if given, says where it came from)."""
    if not is_valid(kind, value):
        raise NameRefused(clip(f"{where}: {refusal(kind, value)}" if where else refusal(kind, value)))
    return value  # type: ignore[return-value]


def run_id_argument(text: str) -> str:
    """argparse type of --run: a valid run id, else a usage error naming it."""
    if not is_valid("run id", text):
        raise argparse.ArgumentTypeError(refusal("run id", text))
    return text
