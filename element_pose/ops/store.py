"""The object store of pose arrays: garbage collection and deletes that free it.

Pose arrays are ``<npy@pose>`` objects: files in the ``pose`` store (see
:mod:`element_pose.db.config`), one per array, at a path of their row.  DataJoint
never removes these files itself: a row's files stay behind when the row is
deleted, and a worker killed between its first store write and its commit
leaves the files it had written (the rows were rolled back).  Two tools keep
the store to what the tables reference:

* :func:`delete` deletes rows through DataJoint's cascade, without prompting,
  and then removes the files of exactly the deleted rows (no walk of the store).
* :func:`collect_garbage` (``element-pose store gc``) walks the store with
  DataJoint's own garbage collector (:class:`datajoint.gc.GarbageCollector`) and
  removes the files no row references.  It only removes files older than
  ``min_age_s`` and older than every job reserved by a live worker, so that the
  files of an insert in progress (written before its commit) are never taken.
  ``element-pose jobs release-stale`` runs it after releasing dead workers' jobs;
  run ``element-pose store gc`` from cron (e.g. nightly) to catch the rest.

This module imports DataJoint only inside its functions.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterable
from typing import Any

__all__ = ["DEFAULT_MIN_AGE_S", "GcReport", "collect_garbage", "delete", "store_schemas"]

log = logging.getLogger(__name__)

DEFAULT_MIN_AGE_S = 3600.0


@dataclasses.dataclass
class GcReport:
    """What one :func:`collect_garbage` run found and removed."""

    stored: int = 0
    referenced: int = 0
    orphaned: int = 0
    kept_recent: int = 0
    deleted: int = 0  # in a dry run: files that would be removed
    bytes_freed: int = 0  # in a dry run: what removing ``deleted`` files would free
    errors: int = 0
    dry_run: bool = False
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """The report as a plain dict (for ``--json``)."""
        return dataclasses.asdict(self)


def store_schemas() -> list:
    """The activated element-pose schemas (the ones that may hold store objects)."""
    from element_pose.schemas import analysis, model, multicam, publish, train

    return [m.schema for m in (model, train, analysis, multicam, publish)
            if m.schema.is_activated()]


def _collector(schemas: Iterable | None = None):
    import datajoint as dj

    from element_pose.db.config import POSE_STORE

    schemas = list(schemas) if schemas is not None else store_schemas()
    if not schemas:
        raise ValueError("no activated element-pose schema: activate the pipeline first")
    return dj.gc.GarbageCollector(*schemas, store=POSE_STORE)


def collect_garbage(
    min_age_s: float = DEFAULT_MIN_AGE_S,
    *,
    dry_run: bool = False,
    protect_live_jobs: bool = True,
    schemas: Iterable | None = None,
) -> GcReport:
    """Remove the files of the pose store that no row references.

    Args:
        min_age_s: Only remove files last modified at least this many seconds ago.
        dry_run: Only report; remove nothing.
        protect_live_jobs: Also keep every file newer than the oldest job reserved
            by a live database session (its worker may be about to commit rows that
            reference it).  When the sessions cannot be listed, every reservation
            counts as live.
        schemas: The schemas to collect (default: :func:`store_schemas`).

    Returns:
        Counts of stored, referenced, orphaned, kept (too recent) and deleted files.

    Raises:
        ValueError: ``min_age_s`` is negative or no schema is activated.
        datajoint.errors.DataJointError: the store could not be listed completely
            (nothing is deleted then).
    """
    from datajoint.errors import DataJointError

    if min_age_s < 0:
        raise ValueError(f"min_age_s must be >= 0, not {min_age_s}")
    started = time.monotonic()
    schemas = list(schemas) if schemas is not None else store_schemas()
    collector = _collector(schemas)
    # the age of the oldest live reservation, taken before the scan: a job that
    # starts during the scan writes files newer than the cutoff below
    live_age = _oldest_live_reservation_age(schemas[0].connection) if protect_live_jobs else None
    now = time.time()
    stats = collector.collect(dry_run=True)
    if stats["scan_errors"]:
        raise DataJointError(f"store gc: the store could not be listed completely, nothing "
                             f"removed: {stats['scan_errors']}")
    cutoff = now - min_age_s
    if live_age is not None:
        cutoff = min(cutoff, now - live_age)
    report = GcReport(
        stored=stats["schema_paths_stored"] + stats["hash_paths_stored"],
        referenced=stats["schema_paths_referenced"] + stats["hash_paths_referenced"],
        orphaned=stats["schema_paths_orphaned"] + stats["hash_paths_orphaned"],
        dry_run=dry_run)
    for kind, paths in (("schema", stats["orphaned_schema_paths"]),
                        ("hash", stats["orphaned_hash_paths"])):
        for path in paths:
            _collect_orphan(collector, kind, path, cutoff, report)
    report.seconds = time.monotonic() - started
    log.info("store gc: %d files stored, %d orphaned, %d removed (%d bytes), %d kept as too "
             "recent, in %.1f s", report.stored, report.orphaned, report.deleted,
             report.bytes_freed, report.kept_recent, report.seconds)
    return report


def _collect_orphan(collector: Any, kind: str, path: str, cutoff: float,
                    report: GcReport) -> None:
    """Remove one orphaned file older than ``cutoff`` (count it only, in a dry run).

    In a dry run ``bytes_freed`` counts what removing the files would free.
    """
    from datajoint.hash_registry import delete_path

    try:
        info = collector.backend.fs.info(collector.backend._full_path(path))
    except FileNotFoundError:
        return
    mtime = _mtime(info)
    if mtime is None or mtime > cutoff:
        report.kept_recent += 1
        return
    if not report.dry_run:
        try:
            removed = (collector.delete_schema_path(path) if kind == "schema"
                       else delete_path(path, collector.store, config=collector.config))
        except Exception as exc:  # one unremovable file does not stop the rest
            log.warning("store gc: cannot remove %s: %s", path, exc)
            report.errors += 1
            return
        if not removed:
            return
    report.deleted += 1
    report.bytes_freed += int(info.get("size") or 0)


def _mtime(info: dict) -> float | None:
    value = info.get("mtime", info.get("LastModified", info.get("last_modified")))
    if value is None:
        return None
    if hasattr(value, "timestamp"):
        return float(value.timestamp())
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _oldest_live_reservation_age(connection) -> float | None:
    """Seconds since the oldest job reserved by a live session reserved it (None: none)."""
    from element_pose.ops.jobs import populated_tables
    from element_pose.ops.worker import live_connection_ids

    live = live_connection_ids(connection)
    oldest: float | None = None
    for table in populated_tables().values():
        jobs = table.jobs
        rows = jobs.reserved.proj("connection_id", "reserved_time").to_dicts()
        if not rows:
            continue
        server_now = connection.query("SELECT CURRENT_TIMESTAMP(3)").fetchone()[0]
        if getattr(server_now, "tzinfo", None) is not None:  # PostgreSQL: the session's
            server_now = server_now.replace(tzinfo=None)     # wall time, as reserved_time
        for row in rows:
            if live is not None and int(row["connection_id"]) not in live:
                continue  # a dead worker: its files are garbage
            seconds = (server_now - row["reserved_time"]).total_seconds()
            oldest = seconds if oldest is None else max(oldest, seconds)
    return None if oldest is None else max(oldest, 0.0) + 1.0


def _remove(paths: set[str]) -> int:
    """Remove store objects (files or folders) by path; prune the folders left empty."""
    collector = _collector()
    backend, fs = collector.backend, collector.backend.fs
    full = [backend._full_path(p) for p in sorted(paths)]
    try:
        fs.rm(full, recursive=True)  # one call: a batch on object stores
        removed = len(full)
    except FileNotFoundError:  # some already gone: one at a time
        removed = 0
        for path in full:
            try:
                fs.rm(path, recursive=True)
                removed += 1
            except FileNotFoundError:
                continue
    root = backend._full_path("").rstrip("/")
    parents = {f.rsplit("/", 1)[0] for f in full}
    while parents:  # deepest first; a folder that is not empty stays
        parent = max(parents, key=lambda p: p.count("/"))
        parents.discard(parent)
        if parent == root or not parent.startswith(root):
            continue
        try:
            fs.rmdir(parent)
        except Exception:
            continue
        parents.add(parent.rsplit("/", 1)[0])
    return removed


def delete(expression, *, part_integrity: str = "enforce") -> dict[str, int]:
    """Delete rows (and everything that depends on them) and free their store files.

    Never prompts.  The rows go in one transaction (DataJoint's cascade); the files
    referenced by the deleted rows are removed after the commit.  Should the process
    die in between, the files are orphans that :func:`collect_garbage` removes.

    Args:
        expression: A table or restricted table, e.g. ``model.PoseEstimation & key``
            or ``session.Session & {"subject": "m1"}``.
        part_integrity: As for DataJoint's ``delete`` (``"enforce"``, ``"ignore"`` or
            ``"cascade"``).

    Returns:
        ``{"rows": rows deleted from the table itself, "files": files removed}``.
    """
    import datajoint as dj

    from element_pose.db.config import POSE_STORE

    t0 = time.perf_counter()
    diagram = dj.Diagram.cascade(expression, part_integrity=part_integrity)
    paths: set[str] = set()
    hashed = 0
    for table in diagram:
        heading = table.heading
        names = list(getattr(heading, "schema_objects", []) or [])
        hashed += len(list(getattr(heading, "hash_objects", []) or []))
        if not names:
            continue
        codecs = {name: heading.attributes[name].codec for name in names}
        for row in table.proj(*names).cursor(as_dict=True):  # one query per table
            for name, codec in codecs.items():
                for path, store in codec.referenced_paths(row[name]):
                    if store == POSE_STORE:
                        paths.add(path)
    t1 = time.perf_counter()
    rows = expression.delete(prompt=False, part_integrity=part_integrity)
    t2 = time.perf_counter()
    files = _remove(paths) if paths else 0
    t3 = time.perf_counter()
    if hashed:
        log.info("delete: hash-addressed objects may be shared; `element-pose store gc` "
                 "removes those no longer referenced")
    log.info("deleted %d row(s) of %s and %d store file(s) in %.2f s (finding the files "
             "%.2f s, deleting the rows %.2f s, removing the files %.2f s)", rows,
             getattr(expression, "table_name", expression), files, t3 - t0, t1 - t0,
             t2 - t1, t3 - t2)
    return {"rows": rows, "files": files}
