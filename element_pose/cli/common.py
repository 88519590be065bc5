"""What every command module shares: exit codes, the user-facing error, argument types.

Standard library only, so ``element-pose --help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "CommandError", "non_negative", "out",
           "positive_int"]

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
