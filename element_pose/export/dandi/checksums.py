"""Content identity of local files and the pure plan of what a sync must upload.

* :func:`file_checksum` - SHA-256 and the archive's dandi-etag in one read (the dandi
  client computes one digest per read, and a sync records both).
* :func:`plan_sync` - which files differ from a record of earlier uploads (pure).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Mapping
from pathlib import Path

__all__ = ["FileChecksum", "SyncPlan", "file_checksum", "plan_sync"]

log = logging.getLogger("element_pose.export.dandi")


@dataclasses.dataclass(frozen=True)
class FileChecksum:
    """Content identity of a local file.

    Attributes:
        path: The file.
        size: Bytes.
        sha256: Hex SHA-256.
        dandi_etag: The archive's ``dandi:dandi-etag`` (S3 multipart ETag of 64 MiB parts).
    """

    path: Path
    size: int
    sha256: str
    dandi_etag: str


def file_checksum(path: str | Path, chunk_size: int = 8 << 20) -> FileChecksum:
    """SHA-256 and dandi-etag of a file in one read.

    ``DandiETag.update`` takes one whole part (64 MiB, as the archive uploads them)
    per call; blocks of any size go through ``partial_update``, which splits them
    at the part boundaries.
    """
    from dandischema.digests.dandietag import DandiETag

    path = Path(path)
    size = path.stat().st_size
    etag = DandiETag(size)
    sha = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(chunk_size):
            sha.update(block)
            etag.partial_update(block)
    log.debug("checksummed %s (%d bytes)", path, size)
    return FileChecksum(path=path, size=size, sha256=sha.hexdigest(), dandi_etag=etag.as_str())


@dataclasses.dataclass(frozen=True)
class SyncPlan:
    """What a sync must do, by asset path.

    Attributes:
        new: Paths never uploaded.
        changed: Paths uploaded before with another checksum.
        unchanged: Paths uploaded before with the same checksum.
    """

    new: tuple[str, ...]
    changed: tuple[str, ...]
    unchanged: tuple[str, ...]

    @property
    def to_upload(self) -> tuple[str, ...]:
        """New and changed paths, sorted."""
        return tuple(sorted(self.new + self.changed))


def plan_sync(current: Mapping[str, str], previous: Mapping[str, str]) -> SyncPlan:
    """Compare checksums now against a record of earlier uploads (pure).

    Args:
        current: Asset path -> checksum of the local files (sha256 or dandi-etag; use
            the same kind as ``previous``).
        previous: Asset path -> checksum recorded at the last successful upload.

    Returns:
        A :class:`SyncPlan`. Paths only in ``previous`` are ignored: nothing is ever
        deleted on the archive.
    """
    new, changed, unchanged = [], [], []
    for path in sorted(current):
        if path not in previous:
            new.append(path)
        elif previous[path] != current[path]:
            changed.append(path)
        else:
            unchanged.append(path)
    return SyncPlan(tuple(new), tuple(changed), tuple(unchanged))
