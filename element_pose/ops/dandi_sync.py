"""Incremental ``dandi-sync``: export, validate and upload only what changed.

The entry point is :func:`sync` (``element-pose dandi-sync``). It reads the pipeline's
tables (:mod:`element_pose.schemas.publish`: the plan, the session metadata, the records
in ``DandiUpload``) and uses :mod:`element_pose.export.dandi` for the files and the
archive. Every run:

1. takes the dandiset folder's lock (a second copy exits at once) and checks the
   API key with the archive (a wrong key is an error even when nothing is new);
2. cancels unfinished uploads a killed client left on the archive;
3. re-exports an NWB file when the content that goes into it changed: a hash of
   its estimations (key, time, output checksum, frame count, scorer, engine
   version) and of the subject/session metadata, stored in ``DandiUpload``;
4. checksums a local file only when its size or mtime differs from the record, and
   validates only new or changed files;
5. compares every recorded asset with the draft's listing (path + asset id; the
   dandi-etag when the id differs) and uploads what is missing or different;
6. runs export -> validate -> upload per file as a pipeline with at most ``jobs``
   files in flight, recording each file's state as it goes, so one invalid file
   fails alone and an unreachable archive does not cost the next run its work;
7. removes the videos it uploaded earlier beside a file that no longer refers to
   them (after a re-export): only assets recorded in ``DandiUpload`` as its own, and
   only while the draft still holds the recorded asset (never another client's);
8. records the archive's validation status of each asset (Pending, Valid,
   Invalid and its messages) and asks again on later runs until it is final.

Files are exported into a staging folder the run creates itself (``mkdtemp``,
unique) and removes at the end; no folder the user made is touched. Replacing a
changed file happens in place on the archive (the client's ``OVERWRITE``). Video names
are stable across exports (:func:`element_pose.export.dandi.video_name`), so a
re-exported file replaces its videos in place too; step 7 deletes only what a change
of the file's videos (a camera or recording gone, a renamed series) left behind.

Size: over 600 lines because one run's stages (plan, export, validation, upload,
leftovers, the archive's verdict) share one run state (``_Run``: the connection, the
listing, the records); the DB-free parts already live in :mod:`element_pose.export.dandi`.
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import contextlib
import dataclasses
import datetime
import fcntl
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from element_pose.core.redact import redact_url
from element_pose.export import dandi
from element_pose.schemas import model, publish

__all__ = ["EXPORT_FORMAT", "LOCK_NAME", "SyncBusyError", "SyncReport", "content_hashes",
           "invalid_assets", "report_json", "sync", "sync_lock"]

log = logging.getLogger(__name__)

#: Bumped when the NWB layout changes, so that every file is exported again.
EXPORT_FORMAT = 1
_DONE = ("uploaded", "replaced", "unchanged")
_FINAL = ("Valid", "Invalid")
#: The lock file in a dandiset folder that keeps a second sync out.
LOCK_NAME = ".element-pose-sync.lock"


class SyncBusyError(RuntimeError):
    """Another dandi-sync holds the lock of this dandiset folder."""


@dataclasses.dataclass
class SyncReport:
    """What a sync did, by asset path.

    Attributes:
        exported: NWB files (re-)exported.
        uploaded: Files uploaded (new, changed, or missing on the archive).
        unchanged: Files the archive already holds.
        failed: Path -> reason, for files not uploaded (invalid locally, upload error).
        invalid: Path -> the archive's validation messages, for assets it found Invalid.
        pending: Assets whose validation on the archive is not finished yet.
        checksummed: Files whose checksum was computed in this run.
        validated: Files validated in this run.
        removed: Assets this sync had uploaded that no current file refers to any more
            (videos left by a re-export), removed from the draft and the folder.
        cleared_uploads: Unfinished uploads of a killed run of this sync, cancelled.
        left_uploads: Unfinished uploads left alone because another client's upload
            (not one this sync recorded) is among them.
    """

    exported: list[str] = dataclasses.field(default_factory=list)
    uploaded: list[str] = dataclasses.field(default_factory=list)
    unchanged: list[str] = dataclasses.field(default_factory=list)
    failed: dict[str, str] = dataclasses.field(default_factory=dict)
    invalid: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    pending: list[str] = dataclasses.field(default_factory=list)
    checksummed: list[str] = dataclasses.field(default_factory=list)
    validated: list[str] = dataclasses.field(default_factory=list)
    removed: list[str] = dataclasses.field(default_factory=list)
    cleared_uploads: int = 0
    left_uploads: int = 0

    @property
    def ok(self) -> bool:
        """No failed and no Invalid asset."""
        return not self.failed and not self.invalid


# ------------------------------------------------------------ content hashes
def content_hashes(plan: dict[str, list[dict]], query, filter_paramset_idx: int | None,
                   *, metadata: dict | None = None, include_training: bool = False,
                   ) -> dict[str, str]:
    """DANDI path -> sha256 of what goes into the file (estimations and metadata, and
    whether the models' labelled frames go along).

    ``metadata``: the session metadata cache of :func:`element_pose.schemas.publish.plan_export`
    (sessions missing from it are fetched and added).
    """
    fields = ["pose_estimation_time", "output_checksum", "nframes", "scorer",
              "engine_version"]
    pk = model.PoseEstimation.primary_key
    rows = {tuple(str(r[k]) for k in pk): {f: str(r[f]) for f in fields}
            for r in (model.PoseEstimation & query).proj(*fields).to_dicts()}
    metadata = publish.session_metadata([keys[0] for keys in plan.values()], metadata)
    hashes = {}
    for relpath, keys in plan.items():
        subject, session = metadata[publish.session_id(keys[0])]
        payload = {"format": EXPORT_FORMAT, "filter": filter_paramset_idx, "path": relpath,
                   "metadata": [dataclasses.asdict(subject), dataclasses.asdict(session)],
                   "estimations": [{**key, **rows.get(tuple(str(key[k]) for k in pk), {})}
                                   for key in keys]}
        if include_training:  # only then: the hashes of earlier syncs stay valid
            payload["training"] = True
        hashes[relpath] = hashlib.sha256(
            json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()
    return hashes


# -------------------------------------------------------------------- state
_STATE = ("local_path", "sha256", "dandi_etag", "asset_id", "size", "mtime_ns",
          "content_hash", "status", "message")


def _records(dandiset_id: str) -> dict[str, dict]:
    return {r["asset_path"]: r for r in
            (publish.DandiUpload & {"dandiset_id": dandiset_id}).proj(*_STATE).to_dicts()}


def _record(dandiset_id: str, asset_path: str, **values: Any) -> None:
    """Insert or update one file's row (its own transaction: state is kept as it goes)."""
    table = publish.DandiUpload
    key = {"dandiset_id": dandiset_id, "asset_path": asset_path}
    if "message" in values:
        values["message"] = redact_url(values["message"])[:2000]
    # not insert1(row, replace=True): DataJoint 2.3 writes "REPLACE INTO", which PostgreSQL
    # rejects (MySQL's REPLACE is a delete + insert too); the old row is needed anyway,
    # as ``values`` changes only some attributes
    with table.connection.transaction:
        old = (table & key).to_dicts()
        row = {**(old[0] if old else {}), **key, **values}
        (table & key).delete_quick()
        table.insert1(row)


def _checksum_row(cs: dandi.FileChecksum, dandiset_dir: Path) -> dict[str, Any]:
    return {"local_path": cs.path.relative_to(dandiset_dir).as_posix(), "sha256": cs.sha256,
            "dandi_etag": cs.dandi_etag, "size": cs.size,
            "mtime_ns": cs.path.stat().st_mtime_ns}


def _same_stat(path: Path, rec: dict | None) -> bool:
    if rec is None:
        return False
    st = path.stat()
    return st.st_size == rec["size"] and st.st_mtime_ns == rec["mtime_ns"]


# ------------------------------------------------------------------- export
def _export(keys: list[dict], wanted: set[str], staging: Path, dandiset_dir: Path,
            filter_paramset_idx: int | None, metadata: dict | None = None,
            include_training: bool = False) -> list[str]:
    """Export files into ``staging``, organize them there, move them into the dandiset.

    Returns the DANDI paths placed (those in ``wanted``); a changed file replaces
    the old one with ``os.replace`` (its videos land in its ``<stem>/`` folder).
    ``metadata`` is the run's session metadata cache (see ``publish.plan_export``).
    """
    work = Path(tempfile.mkdtemp(prefix="export-", dir=staging))
    try:
        files = publish.export_nwb(keys, work / "raw", filter_paramset_idx=filter_paramset_idx,
                                   only=wanted,  # one file, not every individual's
                                   metadata=metadata, include_training=include_training)
        organized = work / "organized"
        dandi.write_dandiset_yaml(organized, dandi.read_dandiset_id(dandiset_dir), "staging")
        # the raw export's videos are this run's own links or copies: move, never copy again
        mapping = dandi.organize([f.path for f in files], organized, files_mode="move",
                                 media_files_mode="move")
        placed = []
        for dest in mapping.values():
            rel = dest.relative_to(organized).as_posix()
            videos = dest.with_suffix("")
            if videos.is_dir():
                for video in sorted(p for p in videos.rglob("*") if p.is_file()):
                    target = dandiset_dir / video.relative_to(organized)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(video, target)
            target = dandiset_dir / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(dest, target)
            placed.append(rel)
    finally:
        shutil.rmtree(work, ignore_errors=True)  # this run's own folder in its staging
    return placed


# --------------------------------------------------------------------- sync
@dataclasses.dataclass
class _Item:
    """One NWB file (or a lone video) and the assets that go with it."""

    nwb: str
    export_keys: list[dict] | None = None   # set when it must be (re-)exported
    assets: list[str] = dataclasses.field(default_factory=list)  # to upload
    validate: bool = False


@dataclasses.dataclass
class _Run:
    """What one sync run knows and shares: one archive connection, one listing of the
    draft, one read of the records, each session's metadata once."""

    dandiset_id: str
    dandiset_dir: Path
    archive: Any                      # the run's export.dandi.Archive
    report: SyncReport
    filter_paramset_idx: int | None
    records: dict[str, dict]          # asset path -> DandiUpload row
    plan: dict[str, list[dict]]       # asset path -> PoseEstimation keys exported into it
    hashes: dict[str, str]            # asset path -> content hash
    remote: dict[str, Any]            # asset path -> the draft's asset, listed once
    metadata: dict                    # publish's session metadata cache
    checksums: dict[str, dandi.FileChecksum] = dataclasses.field(default_factory=dict)
    staging: Path | None = None
    include_training: bool = False    # the models' labelled frames go into the files


def sync(dandiset_id: str, dandiset_dir: str | Path, *, instance: str = "dandi",
         api_key: str | None = None, query=None, filter_paramset_idx: int | None = None,
         jobs: int = 2, include_training: bool = False) -> SyncReport:
    """Export, validate and upload what is new or changed; incremental (see the module).

    Checks the API key with the archive on every run; cancels unfinished uploads a
    killed client left; re-exports a file when its estimations or metadata changed
    (content hash) and replaces it in place on the archive; checksums and validates
    only new or changed files (size/mtime/sha256 recorded in ``publish.DandiUpload``);
    uploads what the draft lacks or holds differently; one invalid file fails alone;
    removes from the draft only its own assets that no current file refers to.

    Args:
        dandiset_id: e.g. ``"000123"``.
        dandiset_dir: Local dandiset folder (holds ``dandiset.yaml``; created if needed).
        instance: ``dandi``, ``dandi-sandbox``, ... or an API URL.
        api_key: Key; default from ``<INSTANCE>_API_KEY`` / ``DANDI_API_KEY``.
        query: Restrict which PoseEstimations are published.
        filter_paramset_idx: Publish filtered poses of this pipeline.
        jobs: Files in flight at once (exported, validated, not yet uploaded).
        include_training: Add each file's first model's labelled frames as ndx-pose
            PoseTraining (see :func:`element_pose.schemas.publish.export_nwb`).

    Returns:
        A :class:`SyncReport` (``failed`` and ``invalid`` list the files that did not
        make it, with reasons).

    Raises:
        SyncBusyError: another sync holds this folder's lock.
        element_pose.export.dandi.DandiAuthError: no or wrong API key.
        element_pose.export.dandi.DandiError: the archive or the dandiset is unreachable.
    """
    dandiset_dir = Path(dandiset_dir).resolve()
    with sync_lock(dandiset_dir):
        return _sync(str(dandiset_id), dandiset_dir, instance=instance, api_key=api_key,
                     query=query, filter_paramset_idx=filter_paramset_idx, jobs=jobs,
                     include_training=include_training)


@contextlib.contextmanager
def sync_lock(dandiset_dir: Path) -> Iterator[None]:
    """Hold the dandiset folder's lock (:data:`LOCK_NAME`) or raise :class:`SyncBusyError`."""
    dandiset_dir.mkdir(parents=True, exist_ok=True)
    with open(dandiset_dir / LOCK_NAME, "a") as handle:  # never truncates a file
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise SyncBusyError(f"another dandi-sync is running on {dandiset_dir}") from exc
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def report_json(report: SyncReport) -> str:
    """The report as JSON (for the CLI)."""
    return json.dumps(dataclasses.asdict(report), indent=2)


def _require_table() -> None:
    missing = [a for a in ("mtime_ns", "content_hash", "archive_status", "archive_errors")
               if a not in publish.DandiUpload.heading.names]
    if missing:
        raise dandi.DandiError(
            f"table publish.DandiUpload lacks {missing} (made by an older element-pose): "
            "run publish.DandiUpload.alter() once to add them, then sync again")


def _sync(dandiset_id: str, dandiset_dir: Path, *, instance: str, api_key: str | None,
          query, filter_paramset_idx: int | None, jobs: int,
          include_training: bool = False) -> SyncReport:
    """:func:`sync` while holding the folder's lock."""
    report = SyncReport()
    _require_table()
    if not (dandiset_dir / dandi.DANDISET_YAML).is_file():
        dandi.write_dandiset_yaml(dandiset_dir, dandiset_id,
                                  f"element-pose dandiset {dandiset_id}")
    query = query if query is not None else {}
    with dandi.Archive(instance, dandiset_id, api_key) as archive:
        records = _records(dandiset_id)
        known = {r["dandi_etag"] for r in records.values()}  # recorded before each upload
        report.cleared_uploads, report.left_uploads = archive.clear_own_uploads(
            lambda upload: upload.get("etag") in known)
        metadata: dict = {}  # each session's metadata, fetched once for the whole run
        plan = publish.plan_export(query, filter_paramset_idx, metadata=metadata)
        run = _Run(dandiset_id, dandiset_dir, archive, report, filter_paramset_idx,
                   records=records, plan=plan,
                   hashes=content_hashes(plan, query, filter_paramset_idx, metadata=metadata,
                                         include_training=include_training),
                   remote=archive.assets(),  # the run's one listing (uploads go by it too)
                   metadata=metadata, include_training=include_training)
        items = _plan_items(run)
        run.staging = _make_staging(dandiset_dir)
        try:
            _pipeline(list(items.values()), run, max(1, jobs))
        finally:
            shutil.rmtree(run.staging, ignore_errors=True)  # made by mkdtemp above: ours
        _remove_leftovers(run)
        _refresh_validation(dandiset_id, archive, report)
    for name in ("exported", "uploaded", "unchanged", "pending", "checksummed", "validated",
                 "removed"):
        setattr(report, name, sorted(set(getattr(report, name))))
    log.info("dandi-sync %s: exported %d, uploaded %d, unchanged %d, removed %d, failed %d, "
             "invalid on the archive %d, checksummed %d, validated %d", dandiset_id,
             len(report.exported), len(report.uploaded), len(report.unchanged),
             len(report.removed), len(report.failed), len(report.invalid),
             len(report.checksummed), len(report.validated))
    return report


def _plan_items(run: _Run) -> dict[str, _Item]:
    """The files to export (content changed or missing) and the assets to upload."""
    items: dict[str, _Item] = {}
    for rel, keys in run.plan.items():
        rec = run.records.get(rel)
        if (not (run.dandiset_dir / rel).is_file() or rec is None
                or rec["content_hash"] != run.hashes[rel]):
            items[rel] = _Item(rel, export_keys=keys, validate=True)
    for rel, path in dandi.local_assets(run.dandiset_dir).items():
        owner = _owner(rel)
        if owner in items and items[owner].export_keys is not None:
            continue  # exported again below; its videos are checked after export
        need, cs = _needs_upload(rel, path, run)
        if need:
            item = items.setdefault(owner, _Item(owner))
            item.assets.append(rel)
            item.validate |= cs is not None and rel.endswith(".nwb")
        elif rel not in run.report.failed:
            run.report.unchanged.append(rel)
    return items


_STAGING_PREFIX = ".element-pose-staging-"
_MARKER = ".element-pose-staging"


def _marker_text(folder: Path) -> str:
    return f"element-pose dandi-sync staging folder {folder.name}\n"


def _make_staging(dandiset_dir: Path) -> Path:
    """A new staging folder (``mkdtemp``: unique, never an existing folder), marked as ours.

    Folders left by a killed run are removed only when they carry the marker that
    names the folder itself; nothing else in the dandiset folder is touched.
    """
    for old in dandiset_dir.glob(f"{_STAGING_PREFIX}*"):
        marker = old / _MARKER
        if (old.is_dir() and not old.is_symlink() and marker.is_file()
                and marker.read_text() == _marker_text(old)):
            log.info("removing staging folder %s left by an interrupted sync", old.name)
            shutil.rmtree(old, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=_STAGING_PREFIX, dir=dandiset_dir))
    (staging / _MARKER).write_text(_marker_text(staging))
    return staging


def _owner(rel: str) -> str:
    """The NWB file a video was organized beside (``<stem>/...``), else the path itself."""
    if rel.endswith(".nwb") or "/" not in rel:
        return rel
    return rel.rsplit("/", 1)[0] + ".nwb"


def _needs_upload(rel: str, path: Path, run: _Run) -> tuple[bool, dandi.FileChecksum | None]:
    """(must it be uploaded?, its checksum when computed now; kept in ``run.checksums``)."""
    rec, report = run.records.get(rel), run.report
    cs = None
    if not _same_stat(path, rec):
        cs = run.checksums[rel] = dandi.file_checksum(path)
        report.checksummed.append(rel)
        if rec is None or cs.sha256 != rec["sha256"]:
            return True, cs
    if rec["status"] == "invalid" and cs is None:
        report.failed[rel] = rec["message"] or "invalid"
        return False, None
    there = run.remote.get(rel)
    if there is None:
        log.warning("%s is missing on the archive: uploading it again", rel)
        return True, cs
    if rec["status"] in _DONE and there.asset_id == rec["asset_id"]:
        return False, cs
    if run.archive.etag(there.asset_id) == (cs.dandi_etag if cs else rec["dandi_etag"]):
        return False, cs  # same content under another asset id (uploaded elsewhere)
    log.warning("%s differs on the archive: uploading it again", rel)
    return True, cs


def _pipeline(items: list[_Item], run: _Run, jobs: int) -> None:
    """Export (here) -> validate (threads) -> upload (here), at most ``jobs`` in flight."""
    in_flight: collections.deque = collections.deque()
    with cf.ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="dandi-validate") as pool:
        for item in items:
            try:
                if item.export_keys is not None:
                    _export_item(item, run)
            except Exception as exc:
                log.error("export of %s failed: %s", item.nwb, redact_url(str(exc)))
                run.report.failed[item.nwb] = f"export failed: {exc}"
                continue
            future = None
            if item.validate and (run.dandiset_dir / item.nwb).is_file():
                run.report.validated.append(item.nwb)
                future = pool.submit(dandi.validate, run.dandiset_dir / item.nwb)
            in_flight.append((item, future))
            while len(in_flight) >= jobs:
                _upload_item(*in_flight.popleft(), run)
        while in_flight:
            _upload_item(*in_flight.popleft(), run)


def _export_item(item: _Item, run: _Run) -> None:
    placed = _export(item.export_keys, {item.nwb}, run.staging, run.dandiset_dir,
                     run.filter_paramset_idx, run.metadata, run.include_training)
    run.report.exported.extend(placed)
    nwb = run.dandiset_dir / item.nwb  # the file and the videos beside it, nothing else
    for rel, path in dandi.local_assets(run.dandiset_dir,
                                        within=[nwb, nwb.with_suffix("")]).items():
        if _owner(rel) != item.nwb:
            continue
        need, cs = _needs_upload(rel, path, run)
        if need:
            item.assets.append(rel)
        elif rel != item.nwb:
            run.report.unchanged.append(rel)
        else:  # exported again to the same bytes: keep the record, store the new hash
            _record(run.dandiset_id, rel, content_hash=run.hashes.get(rel, ""),
                    **({"mtime_ns": path.stat().st_mtime_ns} if cs else {}))
            run.report.unchanged.append(rel)


def _upload_item(item: _Item, future, run: _Run) -> None:
    """Wait for the file's validation, then upload it and its videos, recording each."""
    if future is not None and not _valid(item, future, run):
        return
    if not item.assets:
        return
    _record_pending(item, run)
    results = _upload_assets(item, run)
    now = datetime.datetime.now().replace(microsecond=0)
    for result in results or []:
        _record_result(result, run, now)


def _valid(item: _Item, future, run: _Run) -> bool:
    """The validation's verdict; an invalid file is recorded as such and fails alone."""
    try:
        errors = future.result()
    except Exception as exc:  # validation itself crashed: the file fails alone
        errors = [exc]
    if not errors:
        return True
    message = "dandi validate: " + "; ".join(dandi.describe(e) for e in errors[:10])
    for rel in item.assets:
        if rel == item.nwb:
            cs = run.checksums.get(rel)
            _record(run.dandiset_id, rel,
                    **(_checksum_row(cs, run.dandiset_dir) if cs else {}),
                    content_hash=run.hashes.get(rel, ""), status="invalid",
                    message=message, source_keys=run.plan.get(rel))
        run.report.failed[rel] = message
    log.error("%s is invalid and was not uploaded: %s", item.nwb, message)
    return False


def _record_pending(item: _Item, run: _Run) -> None:
    """Valid and about to be uploaded: recorded first, so that a killed or failed upload
    is resumed next run without exporting or validating again, and its unfinished
    uploads on the archive are known as this sync's own."""
    for rel in item.assets:
        if rel not in run.checksums:
            continue
        values = {**_checksum_row(run.checksums[rel], run.dandiset_dir), "status": "pending",
                  "message": ""}
        if rel in run.hashes:
            values.update(content_hash=run.hashes[rel], source_keys=run.plan.get(rel))
        _record(run.dandiset_id, rel, **values)


def _upload_assets(item: _Item, run: _Run) -> list | None:
    """:func:`element_pose.export.dandi.upload` of the item's assets over the run's
    connection; None (and the assets failed) when the upload could not start."""
    from dandi.upload import UploadExisting, UploadValidation

    paths = [run.dandiset_dir / rel for rel in item.assets]
    try:
        return dandi.upload(paths, run.dandiset_id, existing=UploadExisting.OVERWRITE,
                            validation=UploadValidation.SKIP, checksums=run.checksums,
                            archive=run.archive)  # the run's connection and listing
    except dandi.DandiUploadError as exc:
        return exc.results
    except dandi.DandiError as exc:
        for rel in item.assets:
            run.report.failed[rel] = redact_url(exc)
        log.error("upload of %s failed: %s", item.nwb, redact_url(exc))
        return None


def _record_result(result: Any, run: _Run, now: datetime.datetime) -> None:
    rel = result.asset_path
    values = {"local_path": rel, "sha256": result.sha256, "dandi_etag": result.dandi_etag,
              "size": result.size, "mtime_ns": result.path.stat().st_mtime_ns,
              "asset_id": result.asset_id or "", "status": result.status,
              "message": result.message, "uploaded_at": now,
              "archive_status": "", "archive_errors": None}
    if rel in run.hashes:
        values.update(content_hash=run.hashes[rel], source_keys=run.plan.get(rel))
    _record(run.dandiset_id, rel, **values)
    if result.status == "failed":
        run.report.failed[rel] = result.message
    else:
        (run.report.unchanged if result.status == "unchanged" else run.report.uploaded
         ).append(rel)


# ---------------------------------------------------------------- leftovers
def _remove_leftovers(run: _Run) -> None:
    """Remove the videos this sync uploaded beside a file that it exported or uploaded in
    this run and that no longer refers to them (see :meth:`dandi.Archive.delete_own`)."""
    touched = {rel for rel in (*run.report.exported, *run.report.uploaded)
               if rel.endswith(".nwb") and rel not in run.report.failed}
    for nwb_rel in sorted(touched):
        ours = [rel for rel in run.records if _owner(rel) == nwb_rel and rel != nwb_rel]
        nwb = run.dandiset_dir / nwb_rel
        if not ours or not nwb.is_file():
            continue
        refs = {p.relative_to(run.dandiset_dir).as_posix()
                for p in dandi.referenced_files(nwb) if p.is_relative_to(run.dandiset_dir)}
        for rel in ours:
            if rel not in refs:
                _remove_leftover(rel, run)


def _remove_leftover(rel: str, run: _Run) -> None:
    """Delete one of this sync's own assets from the draft, its file and its record."""
    rec = run.records[rel]
    if rec["asset_id"] and rel in run.remote:
        try:
            run.archive.delete_own(rel, rec["asset_id"])
        except Exception as exc:
            log.warning("could not remove %s from the draft: %s", rel, redact_url(exc))
            return
    local = run.dandiset_dir / (rec["local_path"] or rel)
    if local.is_file() and local.resolve().is_relative_to(run.dandiset_dir):
        local.unlink()
    (publish.DandiUpload & {"dandiset_id": run.dandiset_id, "asset_path": rel}).delete_quick()
    run.report.removed.append(rel)
    if rel in run.report.unchanged:
        run.report.unchanged.remove(rel)
    log.info("removed %s: no file of this dandiset refers to it any more", rel)


def _refresh_validation(dandiset_id: str, archive, report: SyncReport) -> None:
    """Ask the archive for the status of every asset whose validation is not final."""
    table = publish.DandiUpload
    open_rows = (table & {"dandiset_id": dandiset_id} & "asset_id != ''"
                 & [{"status": s} for s in _DONE]).proj(
                     "asset_id", "archive_status", "archive_errors").to_dicts()
    for row in open_rows:
        if row["archive_status"] in _FINAL:
            if row["archive_status"] == "Invalid":
                report.invalid[row["asset_path"]] = list(row["archive_errors"] or [])
            continue
        try:
            status, messages = archive.validation(row["asset_id"])
        except Exception as exc:
            log.warning("validation status of %s unavailable: %s", row["asset_path"],
                        redact_url(exc))
            continue
        _record(dandiset_id, row["asset_path"], archive_status=status[:16],
                archive_errors=messages)
        if status == "Invalid":
            report.invalid[row["asset_path"]] = messages
            log.error("the archive found %s Invalid: %s", row["asset_path"],
                      "; ".join(messages))
        elif status not in _FINAL:
            report.pending.append(row["asset_path"])


def invalid_assets() -> list[dict]:
    """Assets the archive found Invalid, or files not uploaded, across dandisets.

    Each: ``dandiset_id``, ``asset_path``, ``status``, ``archive_status`` and the
    messages (the archive's, or the local reason).
    """
    if not publish.schema.is_activated():  # a pipeline without the publish schema
        return []
    table = publish.DandiUpload
    rows = (table & ["archive_status = 'Invalid'", "status = 'invalid'",
                     "status = 'failed'"]).to_dicts()
    return [{"dandiset_id": r["dandiset_id"], "asset_path": r["asset_path"],
             "status": r["status"], "archive_status": r["archive_status"],
             "messages": list(r["archive_errors"] or []) or [r["message"]]} for r in rows]
