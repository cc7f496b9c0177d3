"""The collector's errors and exit codes: one base type, and one exit code per kind of failure.

Every failure of `python -m collect` is one line on standard error, `collect: <what>`, and an exit
code that says which kind it was. 1 is never a failure: it is the alarm of `regressions` and
`nightly` (a regression was found), so a cron job or a CI system can tell "the fleet got slower"
from "the collector could not answer".
"""

from __future__ import annotations

import re

EXIT_OK = 0
EXIT_ALARM = 1
EXIT_USAGE = 2
EXIT_SKIPPED = 3
EXIT_HOSTS = 4
EXIT_STORE = 5
EXIT_FILESYSTEM = 6
EXIT_INTERNAL = 70  # sysexits.h EX_SOFTWARE
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it

EXIT_CODES = {
    EXIT_OK: "success",
    EXIT_ALARM: "alarm: a regression was found (regressions, nightly); never used for a failure",
    EXIT_USAGE: "usage or bad input: an argument, a file given (budgets, thresholds, baseline, inventory, "
    "dataset), a name that fails its pattern, a run the store does not hold, no store at --db; "
    "nightly could not start",
    EXIT_SKIPPED: "some results skipped (ingest, nightly): each named on standard error, the rest stored",
    EXIT_HOSTS: "some host failed (pull, nightly): unreachable, refused, or no result came home; the "
    "others' results are kept",
    EXIT_STORE: "the store cannot be used: damaged or truncated, locked by another writer, of a newer "
    "schema, or opened read-only for a write",
    EXIT_FILESYSTEM: "the filesystem refused: a directory that cannot be written, a file where a "
    "directory belongs, a full disk",
    EXIT_INTERNAL: "internal error (a bug): one line; RECBENCH_DEBUG=1 shows the traceback",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C)",
}

# No message grows with its input: a value quoted in one is cut to this many characters.
MESSAGE_LIMIT = 300


def clip(text: object, limit: int = MESSAGE_LIMIT) -> str:
    """TEXT on one line (whitespace runs made one space) and at most LIMIT characters."""
    line = re.sub(r"\s+", " ", str(text)).strip()
    return line if len(line) <= limit else line[: limit - 1] + "…"


def exit_codes_text() -> str:
    """The table of exit codes, as `--help` prints it."""
    return "exit codes:\n" + "\n".join(f"  {code:>3}  {meaning}" for code, meaning in EXIT_CODES.items())


class CollectError(Exception):
    """A failure the collector explains in one line; `exit_code` says which kind it is."""

    exit_code = EXIT_USAGE


class InputError(CollectError, ValueError):
    """An argument or an input file is wrong; the message names it and what is wrong."""

    exit_code = EXIT_USAGE


class NameRefused(InputError):
    """A name that becomes a path (run id, host, model, config id, instance) fails its pattern."""


class StoreError(CollectError):
    """The store cannot be used (damaged, newer schema, locked, read-only); the message says which."""

    exit_code = EXIT_STORE


class NoStore(StoreError):
    """--db names no store (a command that only reads never creates one): a bad argument."""

    exit_code = EXIT_USAGE


class FilesystemError(CollectError):
    """A path cannot be written or is of the wrong kind (a file where a directory belongs)."""

    exit_code = EXIT_FILESYSTEM


def filesystem_error(err: OSError) -> FilesystemError:
    """ERR (from the operating system) as a one-line FilesystemError naming its path."""
    where = err.filename if err.filename is not None else ""
    what = err.strerror or type(err).__name__
    return FilesystemError(f"{where}: {what}" if where else what)
