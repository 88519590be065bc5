"""What every command module shares: exit codes, the user-facing error, argument types.

Standard library only, so ``element-pose --help`` stays fast.
"""

from __future__ import annotations

import argparse
import datetime
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "CommandError", "key_restriction",
           "non_negative", "out", "positive_int"]

#: 0 success, 1 the work failed (errors are reported), 2 bad usage or configuration
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class CommandError(Exception):
    """A command failed in a way the user can act on; exits with ``code``."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


def out(text: str) -> None:
    """Print one line of a command's result on standard output."""
    sys.stdout.write(text + "\n")


def non_negative(text: str) -> float:
    """An argument type: a number >= 0."""
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, not {text}")
    return value


def positive_int(text: str) -> int:
    """An argument type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, not {text}")
    return value


def key_restriction(items: Sequence[str] | None, table: Any, what: str) -> dict[str, Any]:
    """``--key NAME=VALUE`` options as a restriction of ``table``, checked against it.

    A restriction by an attribute the table does not have would be ignored by the
    database (everything would match), and a value of the wrong type would fail deep in
    SQL: both are refused here, before anything is done.

    Args:
        items: The ``NAME=VALUE`` texts.
        table: The DataJoint table the keys select (its heading names the attributes).
        what: What the table's rows are, for messages (``"pose estimation"``).

    Raises:
        CommandError: (exit 2) a malformed item, an unknown attribute or a value that
            does not fit the attribute's type, named.
    """
    heading = table.heading
    restriction: dict[str, Any] = {}
    for item in items or []:
        name, sep, text = item.partition("=")
        if not sep or not name:
            raise CommandError(f"--key takes NAME=VALUE, not {item!r}", EXIT_USAGE)
        if name not in heading.names:
            raise CommandError(
                f"--key {item}: a {what} has no attribute {name!r}; its attributes are "
                f"{', '.join(heading.names)}", EXIT_USAGE)
        restriction[name] = _typed(heading.attributes[name], name, text)
    return restriction


def _typed(attribute: Any, name: str, text: str) -> Any:
    """``text`` converted to the attribute's type (numbers, dates), else the text."""
    kind = str(attribute.type).lower()
    try:
        if attribute.numeric:
            return int(text) if "int" in kind else float(text)
        if kind.startswith("datetime") or kind.startswith("timestamp"):
            return datetime.datetime.fromisoformat(text)
        if kind.startswith("date"):
            return datetime.date.fromisoformat(text)
    except ValueError:
        raise CommandError(f"--key {name}={text}: {name} is a {attribute.type} value, not "
                           f"{text!r}", EXIT_USAGE) from None
    return text
