"""Errors of DANDI publishing, and how a ``dandi validate`` result reads in a message."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["DandiAuthError", "DandiError", "DandiUploadError", "DandiValidationError",
           "describe"]


class DandiError(RuntimeError):
    """Base class for DANDI publishing errors."""


class DandiValidationError(DandiError):
    """``dandi validate`` found errors; :attr:`errors` holds the results."""

    def __init__(self, errors: Sequence[Any]) -> None:
        self.errors = list(errors)
        lines = "\n".join(f"  - {describe(e)}" for e in self.errors[:50])
        more = f"\n  ... and {len(self.errors) - 50} more" if len(self.errors) > 50 else ""
        super().__init__(f"dandi validate: {len(self.errors)} error(s):\n{lines}{more}")


class DandiAuthError(DandiError):
    """No API key, or the archive rejected it."""


class DandiUploadError(DandiError):
    """The upload failed for some files; :attr:`results` has the per-file outcome
    (:class:`element_pose.export.dandi.uploads.UploadResult`)."""

    def __init__(self, message: str, results: Sequence[Any] = ()) -> None:
        self.results = list(results)
        super().__init__(message)


def describe(result: Any) -> str:
    """One line for a ``dandi.validate.ValidationResult`` (or any exception)."""
    path = getattr(result, "path", None)
    severity = getattr(getattr(result, "severity", None), "name", "?")
    return f"[{severity}] {getattr(result, 'id', '?')}: {getattr(result, 'message', result)}" \
        + (f" ({path})" if path else "")
