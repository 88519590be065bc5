"""``dandi upload``, file by file, through one connection to the archive.

What the dandi client does, it does here: per file the client's own steps run in the
client's order (``_check_dandidownload_paths``, ``dandi_file``,
``get_validation_errors``, ``check_replace_asset``, ``get_metadata``, ``iter_upload``),
with the client's ``UploadExisting`` / ``UploadValidation`` options.
``dandi.upload.upload`` itself is not called, because of what it lacks and a sync needs:

* one connection for many files (:class:`element_pose.export.dandi.archive.Archive`):
  the client's ``upload`` authenticates, looks up the dandiset and asks the archive for
  every file's asset again on each call; a sync lists the draft once and uploads through
  that listing;
* checksums known before the upload (a sync records SHA-256 and dandi-etag before it
  uploads, to know its own unfinished uploads): the client would read every file again;
* a result per file (:class:`UploadResult`: status, asset id, checksums) instead of a
  progress table on the terminal, and the API key from an argument, never logged.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import dataclasses
import logging
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from element_pose.core.redact import redact_url
from element_pose.export.dandi.archive import Archive
from element_pose.export.dandi.checksums import FileChecksum, file_checksum
from element_pose.export.dandi.errors import (
    DandiAuthError,
    DandiError,
    DandiUploadError,
    describe,
)
from element_pose.export.dandi.layout import (
    DANDISET_YAML,
    find_dandiset_dir,
    local_assets,
    read_dandiset_id,
)

__all__ = ["UploadResult", "upload"]

log = logging.getLogger("element_pose.export.dandi")


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


def _status_code(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


@contextlib.contextmanager
def _reachable(api: str) -> Iterator[None]:
    """Turn a connection failure (no answer, time-out; not an HTTP status) into DandiError."""
    import requests

    try:
        yield
    except requests.HTTPError:
        raise
    except requests.RequestException as exc:
        raise DandiError(f"cannot reach {redact_url(api)}: "
                         f"{type(exc).__name__}: {redact_url(str(exc))}") from None


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
    archive: Any = None,
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
        jobs: Files uploaded in parallel (default 5, as ``dandi upload``).
        jobs_per_file: Parts of one file uploaded in parallel.
        checksums: Asset path -> :class:`FileChecksum` already known (not recomputed).
        archive: An open :class:`element_pose.export.dandi.archive.Archive` of this
            dandiset to upload through (its checked key, its dandiset lookup and its
            listing of the draft are used; ``instance`` and ``api_key`` are not).
            By default the upload opens its own.

    Returns:
        One :class:`UploadResult` per file, in path order.

    Raises:
        DandiAuthError: no key, or the archive rejects it.
        DandiUploadError: some file failed (``.results`` holds every file's outcome).
        DandiError: dandiset missing, id mismatch, unreachable instance.
    """
    from dandi.upload import UploadExisting, UploadValidation

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
    # a file's organized videos live in "<file stem>/" next to it: they go along
    roots = [*paths, *(p.with_suffix("") for p in paths if p.suffix == ".nwb")]
    selected = local_assets(dandiset_dir, within=roots)  # only there, not the whole folder
    if not selected:
        raise DandiError(f"no NWB or video files to upload under {[str(p) for p in paths]}")
    options = _Options(dandiset_dir, existing, validation, jobs_per_file)
    if archive is not None:
        if archive.dandiset_id != dandiset_id:
            raise DandiError(f"the connection is to dandiset {archive.dandiset_id}, but the "
                             f"upload targets {dandiset_id!r}")
        return _upload(archive, selected, checksums, jobs, options)
    with Archive(instance, dandiset_id, api_key) as own:
        return _upload(own, selected, checksums, jobs, options)


@dataclasses.dataclass(frozen=True)
class _Options:
    """How each file of one upload goes (see :func:`upload`)."""

    dandiset_dir: Path
    existing: Any
    validation: Any
    jobs_per_file: int | None


def _upload(archive: Any, selected: dict[str, Path],
            checksums: Mapping[str, FileChecksum] | None, jobs: int | None,
            options: _Options) -> list[UploadResult]:
    from dandi.pynwb_utils import ignore_benign_pynwb_warnings

    log.info("dandi upload of %d file(s) to %s, dandiset %s", len(selected), archive.url,
             archive.dandiset_id)
    known = dict(checksums or {})
    sums = {rel: known.get(rel) or file_checksum(p) for rel, p in selected.items()}
    ignore_benign_pynwb_warnings()  # as dandi upload does
    with _reachable(archive.url):
        try:
            archive.check_schema_version()
        except DandiError:
            raise
        except Exception as exc:  # as dandi upload: no file goes to an archive it cannot suit
            results = [_result(rel, sums[rel], "failed", message=redact_url(exc))
                       for rel in sorted(selected)]
        else:
            with cf.ThreadPoolExecutor(max_workers=max(1, min(jobs or 5, len(selected))),
                                       thread_name_prefix="dandi-upload") as pool:
                results = list(pool.map(
                    lambda rel: _upload_file(archive, rel, selected[rel], sums[rel], options),
                    sorted(selected)))
    for r in results:
        log.info("dandi upload %s: %s", r.asset_path, r.status)
    failed = [r for r in results if r.status == "failed"]
    if failed:
        raise DandiUploadError(
            f"{len(failed)} of {len(results)} file(s) failed to upload to dandiset "
            f"{archive.dandiset_id}: "
            + "; ".join(f"{r.asset_path}: {r.message}" for r in failed),
            results,
        )
    return results


def _upload_file(archive: Any, rel: str, path: Path, cs: FileChecksum, options: _Options
                 ) -> UploadResult:
    """One file as ``dandi upload`` does it: validate, compare, extract metadata, upload."""
    import requests

    before = None
    try:
        dfile = _checked_file(path, options)
        extant = archive.asset_at(rel)
        replace, before = _replaces(dfile, extant, cs, options)
        if not replace:
            return _outcome(rel, cs, extant, before, options.existing)
        asset = _send(archive, dfile, cs, extant, options)
    except requests.HTTPError as exc:
        _raise_if_denied(exc, archive)
        return _failed(rel, cs, exc)
    except requests.RequestException:
        raise  # the archive is unreachable: the whole upload fails
    except Exception as exc:
        return _failed(rel, cs, exc)
    return _outcome(rel, cs, asset, before, options.existing)


def _checked_file(path: Path, options: _Options) -> Any:
    """The client's ``DandiFile`` of ``path``, checked as ``dandi upload`` checks it."""
    from dandi.files import GenericAsset, dandi_file
    from dandi.upload import UploadValidation, _check_dandidownload_paths
    from dandi.validate import Severity

    dfile = dandi_file(path, options.dandiset_dir)
    _check_dandidownload_paths(dfile)  # an incomplete download is never uploaded
    if type(dfile) is GenericAsset:
        raise DandiError("not recognized as a DANDI asset")
    if options.validation is not UploadValidation.SKIP:
        errors = [e for e in dfile.get_validation_errors()
                  if e.severity is not None and e.severity >= Severity.ERROR]
        if errors and options.validation is UploadValidation.REQUIRE:
            raise DandiError("failed validation: " + "; ".join(
                describe(e) for e in errors[:10]))
    return dfile


def _replaces(dfile: Any, extant: Any, cs: FileChecksum, options: _Options
              ) -> tuple[bool, str | None]:
    """(upload it?, the archive's etag at the path before) - the client's
    ``check_replace_asset`` with the ``existing`` option."""
    from dandi.upload import check_replace_asset

    if extant is None:
        return True, None
    replace, _ = check_replace_asset(local_asset=dfile, remote_asset=extant,
                                     existing=options.existing,
                                     local_etag=_digest(cs))
    return replace, _etag(extant)


def _digest(cs: FileChecksum) -> Any:
    from dandi.misctypes import Digest

    return Digest.dandi_etag(cs.dandi_etag)  # known: not computed again


def _send(archive: Any, dfile: Any, cs: FileChecksum, extant: Any, options: _Options) -> Any:
    """The client's metadata extraction and ``iter_upload``; the new asset (or None)."""
    try:
        metadata = dfile.get_metadata(digest=_digest(cs), ignore_errors=False).model_dump(
            mode="json", exclude_none=True)
    except Exception as exc:
        raise DandiError(f"failed to extract metadata: {exc}") from exc
    asset = None
    for status in dfile.iter_upload(archive.draft, metadata, jobs=options.jobs_per_file,
                                    replacing=extant):
        asset = status.get("asset", asset)
    if asset is not None:
        archive.remember(asset)
    return asset


def _raise_if_denied(exc: BaseException, archive: Any) -> None:
    """A rejected key (401) or a user who may not write (403) ends the whole upload."""
    if _status_code(exc) == 401:
        raise DandiAuthError(f"{archive.url} rejected the API key (HTTP 401)") from None
    if _status_code(exc) == 403:
        raise DandiAuthError(f"{archive.url} refused to let the key's user write to "
                             f"dandiset {archive.dandiset_id} (HTTP 403: only its owners "
                             "may upload)") from None


def _etag(asset: Any) -> str | None:
    return (asset.get_raw_metadata().get("digest") or {}).get("dandi:dandi-etag")


def _outcome(rel: str, cs: FileChecksum, asset: Any, before: str | None, existing: Any
             ) -> UploadResult:
    """The file's status from the archive's etag before and its asset after."""
    if asset is None:
        return _result(rel, cs, "failed", message="asset missing after upload")
    if _etag(asset) != cs.dandi_etag:
        return _result(rel, cs, "failed", message="the archive holds other content at this path "
                                             f"(not replaced: existing={existing.value})")
    status = ("uploaded" if before is None else
              "unchanged" if before == cs.dandi_etag else "replaced")
    return _result(rel, cs, status, asset=asset)


def _failed(rel: str, cs: FileChecksum, exc: BaseException) -> UploadResult:
    message = redact_url(exc)
    log.error("dandi upload of %s failed: %s", rel, message)
    return _result(rel, cs, "failed", message=message)


def _result(rel: str, cs: FileChecksum, status: str, *, asset: Any = None,
            message: str = "") -> UploadResult:
    return UploadResult(
        path=cs.path, asset_path=rel, size=cs.size, sha256=cs.sha256,
        dandi_etag=cs.dandi_etag, asset_id=asset.identifier if asset is not None else None,
        blob_id=getattr(asset, "blob", None), status=status, message=message)
