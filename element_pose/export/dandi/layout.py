"""A dandiset's files: names, ``dandiset.yaml``, the layout ``dandi organize`` gives.

* :func:`dandi_relpath` - where a subject/session file lives in a dandiset.
* :func:`write_dandiset_yaml`, :func:`read_dandiset_id`, :func:`find_dandiset_dir`.
* :func:`organize` - ``dandi organize --update-external-file-paths`` run through dandi's
  own steps, with two changes of ours (see its docstring): the modalities of pose files,
  and **stable video names**. dandi names a video beside an NWB file after its
  ImageSeries' object id, which is new on every write of the file, so every re-export
  gave new video paths (and left the old ones behind on the archive); here a video is
  named after its ImageSeries (``<file stem>/<series name>_external_file_<n><ext>``;
  the series is named after the camera and recording), the same on every export.
* :func:`referenced_files` - the external files an NWB file refers to (what a sync keeps).
* :func:`local_assets` - the NWB files and videos of a dandiset folder.
"""

from __future__ import annotations

import logging
import os
import posixpath
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from element_pose.export.dandi.errors import DandiError

__all__ = [
    "ASSET_SUFFIXES",
    "DANDISET_ID_RE",
    "DANDISET_YAML",
    "DEFAULT_SUFFIX",
    "dandi_relpath",
    "find_dandiset_dir",
    "local_assets",
    "organize",
    "read_dandiset_id",
    "referenced_files",
    "sanitize_label",
    "video_name",
    "write_dandiset_yaml",
]

log = logging.getLogger("element_pose.export.dandi")

DEFAULT_SUFFIX = "behavior+image"
DANDISET_YAML = "dandiset.yaml"
DANDISET_ID_RE = re.compile(r"^\d{6}$")
#: Files a dandiset upload considers (NWB and the videos organize puts beside them).
ASSET_SUFFIXES = (".nwb", ".mp4", ".avi", ".wmv", ".mov", ".flv", ".mkv")
# The same replacement as dandi.organize._sanitize_value (kept here so computing a
# path needs no dandi import).
_UNSAFE = re.compile(r"[_*\\/<>:|\"'?%@;,\s]")
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]")


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


# -------------------------------------------------------------------- organize
def video_name(nwb_stem: str, series: str, number: int, suffix: str) -> str:
    """Where a video of an NWB file goes, relative to the file's folder (stable).

    ``<file stem>/<series name>_external_file_<number><suffix>``: named after the
    ImageSeries (unique in its file, named after the camera and recording by the
    export), never after its object id, which changes on every write of the file.
    """
    name = _UNSAFE_NAME.sub("-", str(series)) or "video"
    return posixpath.join(nwb_stem, f"{name}_external_file_{number}{suffix.lower()}")


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
    external videos to ``sub-<id>/<file stem>/<ImageSeries name>_external_file_<n>.mp4``
    (:func:`video_name`) with the paths inside the file updated.

    It runs dandi's own steps (``get_metadata``, ``create_unique_filenames_from_metadata``,
    ``rename_nwb_external_files``, ``organize_external_files``) rather than
    ``dandi.organize.organize`` itself, for three reasons: dandi derives the name's
    modalities from pynwb's modules and does not know ndx-pose types, so pose files
    would be named ``..._image.nwb`` (or have no modality without a video); the
    ``modalities`` given here are added to what dandi derives (``behavior+image``).
    ``session_id`` is always part of the name (dandi drops it when a batch holds one
    session), so names stay stable as sessions are added one sync at a time. And dandi
    names videos after the ImageSeries' object id, new on every write: here they are
    named after the series, so a re-export of a session gives the same video paths.

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
    from dandi.organize import CopyMode
    from dandi.pynwb_utils import ignore_benign_pynwb_warnings

    if files_mode not in ("copy", "move"):
        raise ValueError("files_mode must be 'copy' or 'move' to update external file paths")
    copy_media = CopyMode(media_files_mode)
    dandiset_dir = Path(dandiset_dir).absolute()
    if not (dandiset_dir / DANDISET_YAML).is_file():
        raise DandiError(f"no {DANDISET_YAML} in {dandiset_dir}; use write_dandiset_yaml")
    ignore_benign_pynwb_warnings()
    metadata = _named_metadata(nwb_paths, modalities)
    result = _targets(metadata, dandiset_dir)
    moved = [meta for meta in metadata
             if _place_file(Path(meta["path"]), result[Path(meta["path"])], files_mode,
                            dandiset_dir)]
    try:
        _place_videos(moved, result, dandiset_dir, copy_media)
    except FileNotFoundError as exc:
        raise DandiError(f"dandi organize: external video missing: {exc}") from exc
    return result


def _named_metadata(nwb_paths: Sequence[str | Path], modalities: Sequence[str]) -> list[dict]:
    """dandi's metadata of each file, with its DANDI path and its videos' new names."""
    from dandi.metadata.nwb import get_metadata
    from dandi.organize import create_unique_filenames_from_metadata

    metadata, problems = [], []
    for src in (Path(p).absolute() for p in nwb_paths):
        try:
            meta = get_metadata(src)
        except Exception as exc:
            problems.append(f"{src}: cannot read metadata: {exc}")
            continue
        meta["path"] = str(src)
        problems.extend(f"{src}: {field} is missing" for field in ("subject_id", "session_id")
                        if not meta.get(field))
        meta["modalities"] = tuple(modalities)
        metadata.append(meta)
    if problems:
        raise DandiError("cannot organize:\n" + "\n".join(f"  - {p}" for p in problems))
    try:
        metadata = create_unique_filenames_from_metadata(metadata, required_fields=["session_id"])
    except Exception as exc:  # OrganizeImpossibleError: duplicate names
        raise DandiError(f"dandi organize: {exc}") from exc
    for meta in metadata:
        _name_videos(meta)
    return metadata


def _name_videos(meta: dict) -> None:
    """Set dandi's ``external_files_renamed`` of a file's videos to :func:`video_name`
    (what ``dandi.organize._create_external_file_names`` does with the object id)."""
    stem = PurePosixPath(meta["dandi_path"]).stem
    seen: set[str] = set()
    for ext in meta.get("external_file_objects") or []:
        series = str(ext.get("name") or ext.get("id"))
        if series in seen:  # the same name in two modules: keep them apart
            series = f"{series}-{str(ext.get('id'))[:8]}"
        seen.add(series)
        ext["external_files_renamed"] = [
            video_name(stem, series, no, PurePosixPath(str(old)).suffix)
            for no, old in enumerate(ext["external_files"])]


def _targets(metadata: list[dict], dandiset_dir: Path) -> dict[Path, Path]:
    """Source -> target of each file; a different file already at a target is an error."""
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
    return result


def _place_file(src: Path, dest: Path, files_mode: str, dandiset_dir: Path) -> bool:
    """Copy or move one file to its place; False when it is there already."""
    if dest.resolve() == src.resolve():
        return False
    dest.parent.mkdir(parents=True, exist_ok=True)
    if files_mode == "copy":
        tmp = dest.with_name(f".{dest.name}.tmp")
        shutil.copy2(src, tmp)
        os.replace(tmp, dest)
    else:
        shutil.move(src, dest)
    log.info("organized %s -> %s", src, dest.relative_to(dandiset_dir))
    return True


def _place_videos(moved: list[dict], result: Mapping[Path, Path], dandiset_dir: Path,
                  copy_media: Any) -> None:
    """dandi's own renaming and placing of the videos, then the nested ones."""
    from dandi.organize import organize_external_files
    from dandi.pynwb_utils import rename_nwb_external_files

    with_media = [m for m in moved if m.get("external_file_objects")]
    if with_media:
        rename_nwb_external_files(with_media, str(dandiset_dir))
        organize_external_files(with_media, str(dandiset_dir), copy_media)
    for meta in moved:
        _organize_nested_videos(Path(meta["path"]), result[Path(meta["path"])], copy_media)


def _organize_nested_videos(src: Path, dest: Path, copy_mode: Any) -> None:
    """Place external videos that dandi does not handle next to ``dest`` too.

    dandi only renames ImageSeries at the top level of ``acquisition`` and
    ``processing``; the training videos of ndx-pose ``PoseTraining`` sit deeper
    (``SourceVideos``). They get the same treatment and a stable name:
    :func:`video_name` of ``<container name>-<series name>``.
    """
    from pynwb import NWBHDF5IO
    from pynwb.image import ImageSeries

    with NWBHDF5IO(str(dest), mode="r+") as io:
        nwbfile = io.read()
        for obj in list(nwbfile.objects.values()):
            if isinstance(obj, ImageSeries) and obj.external_file is not None:
                _place_nested(obj, src, dest, copy_mode)


def _place_nested(obj: Any, src: Path, dest: Path, copy_mode: Any) -> None:
    parent = getattr(obj.parent, "name", "") or ""
    for no, old in enumerate(list(obj.external_file[:])):
        old = old.decode() if isinstance(old, bytes) else str(old)
        if "://" in old or (Path(old).parts[:1] == (dest.stem,)
                            and (dest.parent / old).exists()):
            continue  # a URL, or already placed by dandi (a path under the file's
            # stem folder that is not there yet is the raw export's own: placed below)
        old_path = Path(old) if Path(old).is_absolute() else src.parent / old
        if not old_path.exists():
            raise FileNotFoundError(f"{old_path} does not exist")
        new = video_name(dest.stem, f"{parent}-{obj.name}" if parent else obj.name, no,
                         old_path.suffix)
        (dest.parent / new).parent.mkdir(parents=True, exist_ok=True)
        copy_mode.copy(str(old_path), str(dest.parent / new))
        obj.external_file[no] = new


def referenced_files(nwb_path: str | Path) -> set[Path]:
    """The local files an NWB file's ImageSeries refer to (``external_file``), resolved
    against the file's folder; URLs are left out. Reads with h5py (no pynwb)."""
    import h5py

    nwb_path = Path(nwb_path)
    found: set[Path] = set()

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset) and name.rsplit("/", 1)[-1] == "external_file":
            for value in obj[()].tolist() if obj.shape else [obj[()]]:
                text = value.decode() if isinstance(value, bytes) else str(value)
                if "://" not in text:
                    found.add(Path(os.path.normpath(nwb_path.parent / text)))

    with h5py.File(nwb_path, "r") as h5:
        h5.visititems(visit)
    return found


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
