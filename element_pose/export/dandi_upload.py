"""DANDI upload: the archive instance and API key, ``dandi upload`` with per-file results.

The upload half of :mod:`element_pose.export.dandi` (which still offers these names).
The API key comes from the environment (or an argument) and is never logged.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from element_pose.export.dandi import (
    DANDISET_YAML,
    DandiAuthError,
    DandiError,
    DandiUploadError,
    FileChecksum,
    file_checksum,
    find_dandiset_dir,
    local_assets,
    read_dandiset_id,
)
from element_pose.redact import redact_url, split_credentials

__all__ = ["UploadResult", "api_key_env_var", "instance_and_key", "resolve_instance", "upload"]

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

    with _reachable(dandi_instance.api), DandiAPIClient(dandi_instance=dandi_instance) as client:
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

    with _reachable(dandi_instance.api), \
            DandiAPIClient(dandi_instance=dandi_instance, token=key) as client:
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
