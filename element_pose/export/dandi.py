"""DANDI publishing: layout, ``dandiset.yaml``, validation, upload and sync bookkeeping.

Uses the real ``dandi`` client library (imported inside the functions):

* :func:`dandi_relpath` - where a subject/session file lives in a dandiset.
* :func:`organize` - ``dandi organize --update-external-file-paths`` (videos are copied
  or moved next to the NWB file, into ``<file stem>/``, and the file's paths updated).
* :func:`write_dandiset_yaml`, :func:`validate`, :func:`require_valid`.
* :func:`upload` - ``dandi.upload.upload`` with enum options, the API key from the
  environment (or an argument, never logged), per-file results.
* :func:`file_checksum`, :func:`plan_sync` - what a ``dandi-sync`` must upload, given a
  record of what was uploaded before (pure).

Nothing here deletes anything on the archive (``sync`` mode of the client is never
used).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import logging
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from element_pose.redact import redact_url, split_credentials

__all__ = [
    "ASSET_SUFFIXES",
    "DANDISET_ID_RE",
    "DANDISET_YAML",
    "DEFAULT_SUFFIX",
    "DandiAuthError",
    "DandiError",
    "DandiUploadError",
    "DandiValidationError",
    "FileChecksum",
    "SyncPlan",
    "UploadResult",
    "api_key_env_var",
    "dandi_relpath",
    "file_checksum",
    "find_dandiset_dir",
    "instance_and_key",
    "local_assets",
    "organize",
    "plan_sync",
    "read_dandiset_id",
    "require_valid",
    "resolve_instance",
    "sanitize_label",
    "upload",
    "validate",
    "write_dandiset_yaml",
]

log = logging.getLogger(__name__)

DEFAULT_SUFFIX = "behavior+image"
DANDISET_YAML = "dandiset.yaml"
DANDISET_ID_RE = re.compile(r"^\d{6}$")
#: Files a dandiset upload considers (NWB and the videos organize puts beside them).
ASSET_SUFFIXES = (".nwb", ".mp4", ".avi", ".wmv", ".mov", ".flv", ".mkv")
# The same replacement as dandi.organize._sanitize_value (kept here so computing a
# path needs no dandi import).
_UNSAFE = re.compile(r"[_*\\/<>:|\"'?%@;,\s]")


class DandiError(RuntimeError):
    """Base class for DANDI publishing errors."""


class DandiValidationError(DandiError):
    """``dandi validate`` found errors; :attr:`errors` holds the results."""

    def __init__(self, errors: Sequence[Any]) -> None:
        self.errors = list(errors)
        lines = "\n".join(f"  - {_describe(e)}" for e in self.errors[:50])
        more = f"\n  ... and {len(self.errors) - 50} more" if len(self.errors) > 50 else ""
        super().__init__(f"dandi validate: {len(self.errors)} error(s):\n{lines}{more}")


class DandiAuthError(DandiError):
    """No API key, or the archive rejected it."""


class DandiUploadError(DandiError):
    """The upload failed for some files; :attr:`results` has the per-file outcome."""

    def __init__(self, message: str, results: Sequence[UploadResult] = ()) -> None:
        self.results = list(results)
        super().__init__(message)


def _describe(result: Any) -> str:
    path = getattr(result, "path", None)
    severity = getattr(getattr(result, "severity", None), "name", "?")
    return f"[{severity}] {getattr(result, 'id', '?')}: {getattr(result, 'message', result)}" \
        + (f" ({path})" if path else "")


# ---------------------------------------------------------------------- layout
def sanitize_label(value: str) -> str:
    """Make a subject/session id safe for a DANDI file name, as ``dandi organize`` does."""
    return _UNSAFE.sub("-", str(value)).replace(".", "-")


def dandi_relpath(subject_id: str, session_id: str, suffix: str = DEFAULT_SUFFIX) -> str:
    """``sub-<id>/sub-<id>_ses-<id>_<suffix>.nwb`` (ids sanitized like ``dandi organize``).

    ``suffix`` is the modality list dandi derives from the file's content:
    ``behavior+image`` for pose data with an external video, ``behavior`` without.
    """
    sub, ses = sanitize_label(subject_id), sanitize_label(session_id)
    if not sub or not ses:
        raise ValueError("subject_id and session_id must not be empty")
    name = f"sub-{sub}_ses-{ses}" + (f"_{suffix}" if suffix else "") + ".nwb"
    return f"sub-{sub}/{name}"


def write_dandiset_yaml(
    dandiset_dir: str | Path,
    identifier: str,
    name: str,
    description: str | None = None,
    *,
    license: str = "spdx:CC-BY-4.0",
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``dandiset.yaml`` (what ``dandi download`` of an empty dandiset gives).

    Args:
        dandiset_dir: The dandiset folder (created if missing).
        identifier: Six-digit dandiset id, e.g. ``"000123"``.
        name: Dandiset title.
        description: Description.
        license: SPDX license id with the ``spdx:`` prefix.
        extra: More top-level metadata fields.

    Returns:
        The yaml path.
    """
    import yaml

    identifier = str(identifier)
    if not DANDISET_ID_RE.match(identifier):
        raise ValueError(f"a dandiset identifier has six digits, got {identifier!r}")
    meta: dict[str, Any] = {"identifier": identifier, "name": name,
                            "description": description or name, "license": [license]}
    meta.update(extra or {})
    path = Path(dandiset_dir) / DANDISET_YAML
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".yaml.tmp")
    tmp.write_text(yaml.safe_dump(meta, sort_keys=False))
    os.replace(tmp, path)
    return path


def read_dandiset_id(dandiset_dir: str | Path) -> str:
    """The identifier in a dandiset folder's ``dandiset.yaml``."""
    import yaml

    path = Path(dandiset_dir) / DANDISET_YAML
    if not path.is_file():
        raise DandiError(f"no {DANDISET_YAML} in {dandiset_dir}; use write_dandiset_yaml")
    meta = yaml.safe_load(path.read_text()) or {}
    return str(meta.get("identifier", ""))


def find_dandiset_dir(path: str | Path) -> Path:
    """The nearest folder at or above ``path`` holding ``dandiset.yaml``."""
    path = Path(path).absolute()
    for folder in [path, *path.parents] if path.is_dir() else list(path.parents):
        if (folder / DANDISET_YAML).is_file():
            return folder
    raise DandiError(f"no {DANDISET_YAML} at or above {path}")


def organize(
    nwb_paths: Sequence[str | Path],
    dandiset_dir: str | Path,
    *,
    files_mode: str = "copy",
    media_files_mode: str = "copy",
    modalities: Sequence[str] = ("behavior",),
) -> dict[Path, Path]:
    """Put NWB files into the DANDI layout, as ``dandi organize`` does.

    Equivalent to ``dandi organize --files-mode copy --update-external-file-paths
    --media-files-mode copy --required-field session_id``: each file goes to
    ``sub-<id>/sub-<id>_ses-<id>_<modalities>.nwb`` (= :func:`dandi_relpath`), and its
    external videos to ``sub-<id>/<file stem>/<ImageSeries id>_external_file_<n>.mp4``
    with the paths inside the file updated.

    It runs dandi's own steps (``get_metadata``, ``create_unique_filenames_from_metadata``,
    ``rename_nwb_external_files``, ``organize_external_files``) rather than
    ``dandi.organize.organize`` itself, for two reasons: dandi derives the name's
    modalities from pynwb's modules and does not know ndx-pose types, so pose files
    would be named ``..._image.nwb`` (or have no modality without a video); the
    ``modalities`` given here are added to what dandi derives (``behavior+image``).
    And ``session_id`` is always part of the name (dandi drops it when a batch holds
    one session), so names stay stable as sessions are added one sync at a time.

    Args:
        nwb_paths: Files to organize (written with subject and session metadata).
        dandiset_dir: Folder with ``dandiset.yaml``.
        files_mode: ``"copy"`` or ``"move"`` for the NWB files.
        media_files_mode: ``"copy"``, ``"move"``, ``"hardlink"`` or ``"symlink"``
            for the videos.
        modalities: Added to the modalities dandi derives from the file's types.

    Returns:
        Source path -> organized path. Files already at their place are left alone.

    Raises:
        DandiError: missing subject/session ids, unreadable files, a different file
            already at the target path, missing videos.
    """
    import shutil

    from dandi.metadata.nwb import get_metadata
    from dandi.organize import (
        CopyMode,
        _create_external_file_names,
        create_unique_filenames_from_metadata,
        organize_external_files,
    )
    from dandi.pynwb_utils import ignore_benign_pynwb_warnings, rename_nwb_external_files

    if files_mode not in ("copy", "move"):
        raise ValueError("files_mode must be 'copy' or 'move' to update external file paths")
    copy_media = CopyMode(media_files_mode)
    dandiset_dir = Path(dandiset_dir).absolute()
    if not (dandiset_dir / DANDISET_YAML).is_file():
        raise DandiError(f"no {DANDISET_YAML} in {dandiset_dir}; use write_dandiset_yaml")
    ignore_benign_pynwb_warnings()
    metadata, problems = [], []
    for src in (Path(p).absolute() for p in nwb_paths):
        try:
            meta = get_metadata(src)
        except Exception as exc:
            problems.append(f"{src}: cannot read metadata: {exc}")
            continue
        meta["path"] = str(src)
        for field in ("subject_id", "session_id"):
            if not meta.get(field):
                problems.append(f"{src}: {field} is missing")
        meta["modalities"] = tuple(modalities)
        metadata.append(meta)
    if problems:
        raise DandiError("cannot organize:\n" + "\n".join(f"  - {p}" for p in problems))
    try:
        metadata = create_unique_filenames_from_metadata(metadata, required_fields=["session_id"])
    except Exception as exc:  # OrganizeImpossibleError: duplicate names
        raise DandiError(f"dandi organize: {exc}") from exc
    metadata = _create_external_file_names(metadata)

    result: dict[Path, Path] = {}
    clashes = []
    for meta in metadata:
        src, dest = Path(meta["path"]), dandiset_dir / meta["dandi_path"]
        if dest.exists() and dest.resolve() != src.resolve():
            clashes.append(str(dest))
        result[src] = dest
    if clashes:
        raise DandiError(f"{len(clashes)} target path(s) already exist: {clashes[:5]}; "
                         "remove them first or write the new data under another session")
    moved = []
    for meta in metadata:
        src, dest = Path(meta["path"]), result[Path(meta["path"])]
        if dest.resolve() == src.resolve():
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.tmp")
        if files_mode == "copy":
            shutil.copy2(src, tmp)
            os.replace(tmp, dest)
        else:
            shutil.move(src, dest)
        moved.append(meta)
        log.info("organized %s -> %s", src, dest.relative_to(dandiset_dir))
    with_media = [m for m in moved if m.get("external_file_objects")]
    try:
        if with_media:
            rename_nwb_external_files(with_media, str(dandiset_dir))
            organize_external_files(with_media, str(dandiset_dir), copy_media)
        for meta in moved:
            _organize_nested_videos(Path(meta["path"]), result[Path(meta["path"])], copy_media)
    except FileNotFoundError as exc:
        raise DandiError(f"dandi organize: external video missing: {exc}") from exc
    return result


def _organize_nested_videos(src: Path, dest: Path, copy_mode: Any) -> None:
    """Place external videos that dandi does not handle next to ``dest`` too.

    dandi only renames ImageSeries at the top level of ``acquisition`` and
    ``processing``; the training videos of ndx-pose ``PoseTraining`` sit deeper
    (``SourceVideos``). They get the same treatment and naming:
    ``<file stem>/<ImageSeries object id>_external_file_<n><ext>``.
    """
    from pynwb import NWBHDF5IO
    from pynwb.image import ImageSeries

    with NWBHDF5IO(str(dest), mode="r+") as io:
        nwbfile = io.read()
        for obj in list(nwbfile.objects.values()):
            if not isinstance(obj, ImageSeries) or obj.external_file is None:
                continue
            for no, old in enumerate(list(obj.external_file[:])):
                old = old.decode() if isinstance(old, bytes) else str(old)
                if "://" in old or Path(old).parts[:1] == (dest.stem,):
                    continue  # a URL, or already placed by dandi
                old_path = Path(old) if Path(old).is_absolute() else src.parent / old
                if not old_path.exists():
                    raise FileNotFoundError(f"{old_path} does not exist")
                new = f"{dest.stem}/{obj.object_id}_external_file_{no}{old_path.suffix.lower()}"
                (dest.parent / new).parent.mkdir(parents=True, exist_ok=True)
                copy_mode.copy(str(old_path), str(dest.parent / new))
                obj.external_file[no] = new


# ------------------------------------------------------------------ validation
def validate(
    paths: str | Path | Sequence[str | Path],
    *,
    min_severity: str = "ERROR",
) -> list[Any]:
    """Run ``dandi validate`` (the Python API) on a dandiset folder or files.

    Args:
        paths: A dandiset folder or files inside one.
        min_severity: Lowest severity returned (``HINT``, ``WARNING``, ``ERROR``).

    Returns:
        ``dandi.validate.ValidationResult`` objects at or above ``min_severity``.
    """
    from dandi.validate import Severity
    from dandi.validate._core import validate as dandi_validate

    if isinstance(paths, (str, Path)):
        paths = [paths]
    threshold = Severity[min_severity]
    results = [r for r in dandi_validate(*[str(p) for p in paths])
               if r.severity is not None and r.severity >= threshold]
    for r in results:
        log.warning("dandi validate: %s", _describe(r))
    return results


def require_valid(paths: str | Path | Sequence[str | Path]) -> None:
    """Raise :class:`DandiValidationError` when ``dandi validate`` reports errors."""
    errors = validate(paths)
    if errors:
        raise DandiValidationError(errors)


# --------------------------------------------------------------- checksums/sync
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


def local_assets(dandiset_dir: str | Path) -> dict[str, Path]:
    """Asset path (posix, relative to the dandiset) -> file, for NWB files and videos."""
    root = Path(dandiset_dir).absolute()
    return {
        p.relative_to(root).as_posix(): p
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.suffix.lower() in ASSET_SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    }


# ---------------------------------------------------------------------- upload
@dataclasses.dataclass(frozen=True)
class UploadResult:
    """Outcome of one file of an upload.

    Attributes:
        path: Local file.
        asset_path: Path in the dandiset.
        size: Bytes.
        sha256: Hex SHA-256 of the local file.
        dandi_etag: dandi-etag of the local file.
        asset_id: The archive's asset id (``None`` when the upload failed).
        blob_id: The archive's blob id, when known.
        status: ``"uploaded"`` (new), ``"replaced"`` (content changed),
            ``"unchanged"`` (already there with the same content) or ``"failed"``.
        message: Error text for failed files.
    """

    path: Path
    asset_path: str
    size: int
    sha256: str
    dandi_etag: str
    asset_id: str | None
    blob_id: str | None
    status: str
    message: str = ""


def api_key_env_var(instance_name: str) -> str:
    """The variable the dandi client reads the key from: ``<NAME>_API_KEY``."""
    return f"{instance_name.upper().replace('-', '_')}_API_KEY"


def resolve_instance(instance: str):
    """A ``dandi.consts.DandiInstance`` for a known name or an API URL.

    Credentials inside the URL (``https://user:key@host/api``) are taken out before
    the dandi client sees it (use :func:`instance_and_key` to get the key too).
    """
    from dandi.utils import get_instance

    os.environ.setdefault("DANDI_NO_ET", "1")  # no version telemetry over the network
    instance, _ = split_credentials(str(instance))
    try:
        return get_instance(instance)
    except KeyError as exc:
        from dandi.consts import known_instances

        raise DandiError(
            f"unknown DANDI instance {instance!r}: use one of {sorted(known_instances)} "
            "or an API URL such as https://api.sandbox.dandiarchive.org/api"
        ) from exc
    except ValueError as exc:  # e.g. the removed "dandi-staging"
        raise DandiError(redact_url(exc)) from exc
    except Exception as exc:
        raise DandiError(f"cannot reach DANDI instance {instance!r}: {redact_url(exc)}") from exc


def instance_and_key(instance: str, api_key: str | None = None):
    """``(DandiInstance, variable, key, where the key came from)``; never log the key.

    A key inside the instance URL (``https://user:key@host/api``) is used when no
    ``api_key`` is given; the URL without it is what the client gets and what is logged.
    """
    _, url_key = split_credentials(str(instance))
    dandi_instance = resolve_instance(instance)
    if api_key is None and url_key:
        var = api_key_env_var(dandi_instance.name)
        return dandi_instance, var, url_key, "in the instance URL"
    return (dandi_instance, *_find_api_key(dandi_instance.name, api_key))


def _find_api_key(instance_name: str, api_key: str | None) -> tuple[str, str, str]:
    """(variable the client reads, key, where the key came from) - never log the key."""
    var = api_key_env_var(instance_name)
    for source, key in (("as api_key=", api_key), (f"in ${var}", os.environ.get(var)),
                        ("in $DANDI_API_KEY", os.environ.get("DANDI_API_KEY"))):
        if key:
            return var, key, source
    raise DandiAuthError(
        f"no DANDI API key for instance {instance_name!r}: set the environment variable "
        f"{var}" + (" (or DANDI_API_KEY)" if var != "DANDI_API_KEY" else "")
        + " to the key from your account page on the archive, or pass api_key="
    )


class _LogWriter(io.TextIOBase):
    """A stdout stand-in that sends the dandi client's progress table to our log."""

    def write(self, text: str) -> int:
        for line in text.splitlines():
            if line.strip():
                log.debug("dandi: %s", line.rstrip())
        return len(text)


@contextlib.contextmanager
def _env(var: str, value: str) -> Iterator[None]:
    old = os.environ.get(var)
    os.environ[var] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(var, None)
        else:
            os.environ[var] = old


def _status_code(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def _remote_assets(dandiset, asset_paths: Sequence[str]) -> dict[str, Any]:
    from dandi.exceptions import NotFoundError

    found = {}
    for asset_path in asset_paths:
        with contextlib.suppress(NotFoundError):
            found[asset_path] = dandiset.get_asset_by_path(asset_path)
    return found


def _remote_etag(asset: Any) -> str | None:
    try:
        return asset.get_raw_metadata().get("digest", {}).get("dandi:dandi-etag")
    except Exception:
        return None


def upload(
    paths: str | Path | Sequence[str | Path],
    dandiset_id: str,
    instance: str = "dandi",
    api_key: str | None = None,
    *,
    existing: Any = None,
    validation: Any = None,
    jobs: int | None = None,
    jobs_per_file: int | None = None,
    checksums: Mapping[str, FileChecksum] | None = None,
) -> list[UploadResult]:
    """Upload organized files to a dandiset's draft with the dandi client.

    Args:
        paths: A dandiset folder (everything NWB/video in it) or files inside one; an
            NWB file brings the videos organized next to it (``<file stem>/``).
        dandiset_id: The six-digit id; must match ``dandiset.yaml``.
        instance: ``"dandi"``, ``"dandi-sandbox"``, another known name, or an API URL.
        api_key: The key; by default from ``<INSTANCE>_API_KEY`` (``DANDI_API_KEY``,
            ``DANDI_SANDBOX_API_KEY``, ...) or ``DANDI_API_KEY``. Never logged.
        existing: ``dandi.upload.UploadExisting`` member; default ``OVERWRITE``
            (re-upload only files whose content differs from the archive's).
        validation: ``dandi.upload.UploadValidation`` member; default ``REQUIRE``
            (invalid files are not uploaded).
        jobs: Files uploaded in parallel.
        jobs_per_file: Parts of one file uploaded in parallel.
        checksums: Asset path -> :class:`FileChecksum` already known (not recomputed).

    Returns:
        One :class:`UploadResult` per file, in path order.

    Raises:
        DandiAuthError: no key, or the archive rejects it.
        DandiUploadError: some file failed (``.results`` holds every file's outcome).
        DandiError: dandiset missing, id mismatch, unreachable instance.
    """
    import requests
    from dandi.consts import DRAFT
    from dandi.dandiapi import DandiAPIClient
    from dandi.exceptions import NotFoundError
    from dandi.upload import UploadExisting, UploadValidation
    from dandi.upload import upload as dandi_upload

    existing = UploadExisting.OVERWRITE if existing is None else existing
    validation = UploadValidation.REQUIRE if validation is None else validation
    if not isinstance(existing, UploadExisting) or not isinstance(validation, UploadValidation):
        raise TypeError("existing/validation must be UploadExisting/UploadValidation members, "
                        "not strings (the dandi client compares them by identity)")
    dandiset_id = str(dandiset_id)
    if isinstance(paths, (str, Path)):
        paths = [paths]
    paths = [Path(p).absolute() for p in paths]
    dandiset_dir = find_dandiset_dir(paths[0])
    yaml_id = read_dandiset_id(dandiset_dir)
    if yaml_id != dandiset_id:
        raise DandiError(f"{dandiset_dir / DANDISET_YAML} says dandiset {yaml_id!r}, "
                         f"but the upload targets {dandiset_id!r}")
    assets = local_assets(dandiset_dir)
    # a file's organized videos live in "<file stem>/" next to it: they go along
    roots = [*paths, *(p.with_suffix("") for p in paths if p.suffix == ".nwb")]
    selected = {
        rel: p for rel, p in assets.items()
        if any(p == q or q in p.parents for q in roots)
    }
    if not selected:
        raise DandiError(f"no NWB or video files to upload under {[str(p) for p in paths]}")

    dandi_instance, var, key, source = instance_and_key(instance, api_key)
    log.info("dandi upload of %d file(s) to %s, dandiset %s", len(selected),
             redact_url(dandi_instance.api), dandiset_id)
    known = dict(checksums or {})
    checksums = {rel: known.get(rel) or file_checksum(p) for rel, p in selected.items()}

    with DandiAPIClient(dandi_instance=dandi_instance) as client:
        try:
            client.authenticate(key)
        except requests.HTTPError as exc:
            raise DandiAuthError(
                f"{dandi_instance.api} rejected the API key given {source} "
                f"(HTTP {_status_code(exc)}): check it on your account page of the archive"
            ) from None
        try:
            remote = client.get_dandiset(dandiset_id, DRAFT, lazy=False)
        except NotFoundError as exc:
            raise DandiError(f"dandiset {dandiset_id} not found on {dandi_instance.api} "
                             "(create it on the archive first)") from exc
        before = {rel: _remote_etag(a) for rel, a in _remote_assets(remote, list(selected)).items()}

    error: Exception | None = None
    with _env(var, key), contextlib.redirect_stdout(_LogWriter()):
        try:
            dandi_upload(
                [str(p) for p in selected.values()],
                existing=existing,
                validation=validation,
                dandi_instance=dandi_instance,
                jobs=jobs,
                jobs_per_file=jobs_per_file,
                sync=False,
            )
        except requests.HTTPError as exc:
            if _status_code(exc) in (401, 403):
                raise DandiAuthError(
                    f"{dandi_instance.api} rejected the API key given {source} "
                    f"(HTTP {_status_code(exc)})") from None
            error = exc
        except Exception as exc:
            error = exc

    with DandiAPIClient(dandi_instance=dandi_instance, token=key) as client:
        after = _remote_assets(client.get_dandiset(dandiset_id, DRAFT), list(selected))
    results = []
    for rel in sorted(selected):
        cs = checksums[rel]
        asset = after.get(rel)
        remote_etag = _remote_etag(asset) if asset is not None else None
        if asset is None or remote_etag != cs.dandi_etag:
            status, message = "failed", (redact_url(error) if error else
                                         "asset missing after upload")
        elif rel not in before:
            status, message = "uploaded", ""
        elif before[rel] == cs.dandi_etag:
            status, message = "unchanged", ""
        else:
            status, message = "replaced", ""
        results.append(UploadResult(
            path=cs.path, asset_path=rel, size=cs.size, sha256=cs.sha256,
            dandi_etag=cs.dandi_etag,
            asset_id=asset.identifier if asset is not None and status != "failed" else None,
            blob_id=getattr(asset, "blob", None) if status != "failed" else None,
            status=status, message=message,
        ))
        log.info("dandi upload %s: %s", rel, status)
    failed = [r for r in results if r.status == "failed"]
    if failed:
        raise DandiUploadError(
            f"{len(failed)} of {len(results)} file(s) failed to upload to dandiset "
            f"{dandiset_id}: " + "; ".join(f"{r.asset_path}: {r.message}" for r in failed),
            results,
        )
    return results
