"""DANDI publishing: layout, ``dandiset.yaml``, validation, upload and sync bookkeeping.

Uses the real ``dandi`` client library (imported inside the functions):

* :func:`dandi_relpath` - where a subject/session file lives in a dandiset.
* :func:`organize` - ``dandi organize --update-external-file-paths`` (videos are copied
  or moved next to the NWB file, into ``<file stem>/``, and the file's paths updated).
* :func:`write_dandiset_yaml`, :func:`validate`, :func:`require_valid`.
* :func:`upload` - what ``dandi upload`` does per file, with enum options, the API key
  from the environment (or an argument, never logged), per-file results, over one
  connection (the upload half lives in :mod:`element_pose.export.dandi_upload`; its
  names are importable from here).
* :func:`file_checksum` - the archive's dandi-etag of a file, part by part;
  :func:`plan_sync` - which of a set of files differ from a record (pure; the
  incremental ``dandi-sync`` itself lives in :mod:`element_pose.ops.dandi_sync`).

Nothing here deletes anything on the archive (``sync`` mode of the client is never
used).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from element_pose.export.dandi_upload import UploadResult

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
    "api_key_env_var",  # noqa: F822 (from dandi_upload, see __getattr__)
    "dandi_relpath",
    "file_checksum",
    "find_dandiset_dir",
    "instance_and_key",  # noqa: F822 (from dandi_upload, see __getattr__)
    "local_assets",
    "organize",
    "plan_sync",
    "read_dandiset_id",
    "require_valid",
    "resolve_instance",  # noqa: F822 (from dandi_upload, see __getattr__)
    "sanitize_label",
    "upload",  # noqa: F822 (from dandi_upload, see __getattr__)
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


def local_assets(dandiset_dir: str | Path,
                 within: Sequence[str | Path] | None = None) -> dict[str, Path]:
    """Asset path (posix, relative to the dandiset) -> file, for NWB files and videos.

    Args:
        dandiset_dir: The dandiset folder.
        within: Look only at these files and folders of the dandiset (a folder with
            everything under it) instead of the whole folder; paths outside the
            dandiset, and ones that do not exist, give nothing.
    """
    root = Path(dandiset_dir).absolute()
    if within is None:
        candidates = root.rglob("*")
    else:
        tops = [Path(p).absolute() for p in within]
        candidates = (p for top in tops if top.is_relative_to(root)
                      for p in ([top] if top.is_file() else top.rglob("*")))
    found = {}
    for p in candidates:
        rel = p.relative_to(root)
        if (p.suffix.lower() in ASSET_SUFFIXES and p.is_file()
                and not any(part.startswith(".") for part in rel.parts)):
            found[rel.as_posix()] = p
    return dict(sorted(found.items(), key=lambda item: item[1]))  # in path order


# ---------------------------------------------------------------------- upload
_UPLOAD_NAMES = ("UploadResult", "api_key_env_var", "instance_and_key", "resolve_instance",
                 "upload")


def __getattr__(name: str) -> Any:
    """The upload half lives in :mod:`element_pose.export.dandi_upload`; its names work here."""
    if name in _UPLOAD_NAMES:
        from element_pose.export import dandi_upload

        return getattr(dandi_upload, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
