"""Values and texts in error messages, bounded: a message never grows with its input (a 10 MB field,
an alias-laden YAML file that expands to millions of items). Standard library only: hosts use it."""

from __future__ import annotations

import reprlib

# A container is quoted through reprlib, which looks at a few items and levels, never at all of them.
_CONTAINERS = reprlib.Repr()
_CONTAINERS.maxlevel, _CONTAINERS.maxlist, _CONTAINERS.maxdict = 2, 6, 4


def clipped(text: str, limit: int = 200) -> str:
    """TEXT, cut to LIMIT characters (the cut marked with ...)."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def shown(value: object, limit: int = 60) -> str:
    """VALUE as a message quotes it (its repr: a newline shows as \\n), at most LIMIT characters."""
    text = _CONTAINERS.repr(value) if isinstance(value, dict | list | tuple | set) else repr(value)
    return clipped(text, limit)
