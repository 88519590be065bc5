"""The archive: instance and API key, and one dandiset's draft (key check, assets, deletes).

DB-free; uses the real ``dandi`` client (:class:`dandi.dandiapi.DandiAPIClient`) for
every request, and its own objects where it has them (``RemoteDandiset``,
``RemoteAsset.from_data``, ``RemoteAsset.delete``, ``check_schema_version``). What is
ours, because the client lacks it:

* :func:`instance_and_key` - the key from an argument, the instance URL or the
  environment, never logged (the client reads only the environment or the keyring).
* the owner check when the connection opens (the client finds out file by file, 403);
* :meth:`Archive._rows` - listings that follow the archive's own ``next`` links (the
  client's ``paginate`` computes page numbers from the size it asked for);
* :meth:`Archive.clear_own_uploads` - the client cannot list or cancel unfinished uploads.

* :class:`Archive` - a connection to one dandiset's draft that checks the API key
  as it opens (every sync checks it, even when nothing is new).
* :meth:`Archive.assets` - every asset of the draft (path, asset id, size) in one
  paginated listing. Assets are immutable on the archive: the same asset id at a
  path means the same content, so comparing the recorded asset id is the cheap
  form of comparing path + dandi-etag; :meth:`Archive.etag` fetches the etag when
  the ids differ.
* :meth:`Archive.asset_at` - the draft's asset at a path, for an upload through this
  connection (:func:`element_pose.export.dandi.uploads.upload` with ``archive=``): from
  the listing when there is one, kept current with what the connection uploads.
* :meth:`Archive.validation` - an asset's validation status (``Pending``,
  ``Validating``, ``Valid``, ``Invalid``) and the archive's messages.
* :meth:`Archive.clear_own_uploads` / :meth:`Archive.clear_active_uploads` - unfinished
  uploads left by a killed client.
* :meth:`Archive.delete_own` - delete an asset, only when it is still the one the
  caller recorded (the client's ``RemoteAsset.delete``); nothing else deletes.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import threading
from collections.abc import Callable
from typing import Any

from element_pose.core.redact import redact_url, split_credentials
from element_pose.export.dandi.errors import DandiAuthError, DandiError

__all__ = ["Archive", "RemoteAsset", "api_key_env_var", "instance_and_key", "resolve_instance"]

log = logging.getLogger("element_pose.export.dandi")


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



@dataclasses.dataclass(frozen=True)
class RemoteAsset:
    """An asset of a draft, as the listing gives it.

    Attributes:
        path: Path in the dandiset.
        asset_id: The archive's asset id (a new id for every new content).
        size: Bytes.
    """

    path: str
    asset_id: str
    size: int


class Archive:
    """One dandiset's draft on an archive, with a checked key.

    Args:
        instance: ``dandi``, ``dandi-sandbox``, ... or an API URL (credentials in the
            URL are used as the key and never logged).
        dandiset_id: Six-digit id.
        api_key: The key; default from ``<INSTANCE>_API_KEY`` / ``DANDI_API_KEY``.

    Raises:
        DandiAuthError: no key, the archive rejects it (HTTP 401/403), or the key's user
            does not own the dandiset (only owners may upload to it).
        DandiError: the dandiset does not exist, or the archive cannot be reached.
    """

    def __init__(self, instance: str, dandiset_id: str, api_key: str | None = None) -> None:
        import requests
        from dandi.dandiapi import DandiAPIClient

        self.dandiset_id = str(dandiset_id)
        self.instance, self.key_var, self.api_key, source = instance_and_key(instance, api_key)
        self.url = redact_url(self.instance.api)
        self._lock = threading.Lock()
        self._listing: dict[str, dict] | None = None  # path -> row of the draft's listing
        self._found: dict[str, Any] = {}  # path -> dandi RemoteAsset (None: no asset there)
        self._metadata: dict[str, dict] = {}  # asset id -> metadata (its content is fixed)
        self._schema_checked = False
        self.client = DandiAPIClient(dandi_instance=self.instance)
        try:
            self.client.authenticate(self.api_key)
            self._get(f"/dandisets/{self.dandiset_id}/")
            self._require_owner(source)
        except DandiAuthError:
            self.close()
            raise
        except requests.HTTPError as exc:
            self.close()
            code = getattr(exc.response, "status_code", None)
            if code in (401, 403):
                raise DandiAuthError(
                    f"{self.url} rejected the API key given {source} (HTTP {code}): check "
                    "it on your account page of the archive") from None
            if code == 404:
                raise DandiError(f"dandiset {self.dandiset_id} not found on {self.url} "
                                 "(create it on the archive first)") from None
            raise DandiError(f"{self.url}: {redact_url(exc)}") from None
        except requests.RequestException as exc:
            self.close()
            raise DandiError(f"cannot reach {self.url}: {redact_url(exc)}") from None
        log.info("connected to %s, dandiset %s (API key accepted)", self.url, self.dandiset_id)

    def _require_owner(self, source: str) -> None:
        """Raise :class:`DandiAuthError` unless the key's user owns the dandiset (or is an
        admin): the archive answers 403 to anyone else's uploads, file by file."""
        import requests

        try:
            me = self._get("/users/me/")
            owners = self._get(f"/dandisets/{self.dandiset_id}/users/")
        except requests.HTTPError as exc:  # an archive without these: its writes say 403
            log.debug("owners of dandiset %s not known (%s)", self.dandiset_id,
                      redact_url(exc))
            return
        names = sorted(str(o.get("username")) for o in owners if isinstance(o, dict))
        user = str(me.get("username") or "")
        if me.get("admin") or not user or not names or user.lower() in map(str.lower, names):
            return  # (GitHub logins are case-insensitive; an unknown answer is not a denial)
        raise DandiAuthError(
            f"the API key given {source} belongs to {me.get('username')!r}, who is not an "
            f"owner of dandiset {self.dandiset_id} on {self.url} (owners: "
            f"{', '.join(map(repr, names))}); only owners may upload: ask one to add you")

    def _get(self, path: str, **kwargs: Any) -> Any:
        return self.client.get(path, **kwargs)

    def _rows(self, endpoint: str, /, **params: Any) -> list[dict]:
        """Every row of a paginated listing, following its ``next`` links.

        Pages of 1000 rows (the archive's maximum) are asked for; whatever page size the
        archive grants, the rows come from its own links (the dandi client's ``paginate``
        computes page numbers from the size it asked for, and would miss rows of an
        archive that grants fewer).
        """
        rows: list[dict] = []
        url: str | None = endpoint
        query: dict | None = {**params, "page_size": 1000}
        while url:
            page = self._get(url, params=query)
            rows.extend(page["results"])
            url, query = page.get("next"), None
        return rows

    @property
    def _draft(self) -> str:
        return f"/dandisets/{self.dandiset_id}/versions/draft"

    def close(self) -> None:
        """Close the HTTP session."""
        self.client.session.close()

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @functools.cached_property
    def draft(self) -> Any:
        """The draft as the dandi client's ``RemoteDandiset`` (no request: checked at open)."""
        from dandi.consts import DRAFT

        return self.client.get_dandiset(self.dandiset_id, DRAFT)  # lazy

    def check_schema_version(self) -> None:
        """The dandi client's check that its metadata schema suits the archive (once)."""
        if not self._schema_checked:
            self.client.check_schema_version()
            self._schema_checked = True

    def assets(self) -> dict[str, RemoteAsset]:
        """Path -> :class:`RemoteAsset` for every asset of the draft (one listing).

        The listing is kept: :meth:`asset_at` answers from it afterwards.
        """
        rows = {item["path"]: item for item in self._rows(f"{self._draft}/assets/",
                                                           order="path")}
        with self._lock:
            self._listing, self._found = rows, {}
        return {path: RemoteAsset(path, str(row["asset_id"]), int(row.get("size") or 0))
                for path, row in rows.items()}

    def metadata(self, asset_id: str) -> dict:
        """The asset's metadata, asked once per asset id: an asset's content never changes
        (its ``digest`` gains the SHA-256 once the archive has computed it; only the
        dandi-etag is read from it here)."""
        with self._lock:
            known = self._metadata.get(asset_id)
        if known is None:
            known = self._get(f"{self._draft}/assets/{asset_id}/")
            with self._lock:
                self._metadata[asset_id] = known
        return known

    def etag(self, asset_id: str) -> str | None:
        """The asset's ``dandi:dandi-etag`` (from its metadata)."""
        return (self.metadata(asset_id).get("digest") or {}).get("dandi:dandi-etag")

    def asset_at(self, path: str) -> Any:
        """The draft's asset at ``path`` (a dandi ``RemoteAsset`` with its metadata), or None.

        From this connection's listing (:meth:`assets`) when it made one, else one
        lookup by path; what :meth:`remember` was told since then comes first.
        """
        from dandi.dandiapi import RemoteAsset as DandiRemoteAsset

        with self._lock:
            if path in self._found:
                return self._found[path]
            listing = self._listing
        if listing is not None:
            rows = [listing[path]] if path in listing else []
        else:
            rows = [row for row in self._rows(f"{self._draft}/assets/", path=path)
                    if row["path"] == path]
        asset = None
        if rows:
            asset = DandiRemoteAsset.from_data(self.draft, dict(rows[0]),
                                               self.metadata(str(rows[0]["asset_id"])))
        with self._lock:
            self._found[path] = asset
        return asset

    def remember(self, asset: Any) -> None:
        """An asset this connection just made (a dandi ``RemoteAsset``) is now at its path."""
        metadata = asset.get_raw_metadata()  # the archive's answer to the upload holds it
        with self._lock:
            self._found[asset.path] = asset
            self._metadata[asset.identifier] = metadata

    def validation(self, asset_id: str) -> tuple[str, list[str]]:
        """``(status, messages)`` of the archive's validation of an asset."""
        data = self._get(f"{self._draft}/assets/{asset_id}/validation/")
        messages = []
        for err in data.get("validation_errors") or []:
            if isinstance(err, dict):
                field = err.get("field") or ""
                messages.append(f"{field}: {err.get('message', '')}" if field
                                else str(err.get("message", "")))
            else:
                messages.append(str(err))
        return str(data.get("status") or ""), messages

    def active_uploads(self) -> int:
        """How many unfinished uploads the draft lists (see :meth:`unfinished_uploads`)."""
        return len(self.unfinished_uploads())

    def unfinished_uploads(self) -> list[dict]:
        """The dandiset's unfinished uploads (``upload_id``, ``etag``, ``size``; none
        where the archive has no such listing: older archives).

        Raises:
            DandiAuthError: the key's user does not own the dandiset (HTTP 403).
        """
        import requests

        try:
            return self._rows(f"/dandisets/{self.dandiset_id}/uploads/")
        except requests.HTTPError as exc:
            code = getattr(exc.response, "status_code", None)
            if code == 403:
                raise DandiAuthError(f"{self.url}: only owners of dandiset {self.dandiset_id} "
                                     "may list or clear its uploads (HTTP 403)") from None
            if code == 404:
                log.debug("%s lists no unfinished uploads (an older archive)", self.url)
                return []
            raise

    def clear_active_uploads(self) -> int:
        """Cancel unfinished uploads (left by a killed client); returns how many.

        These are upload sessions, not assets: nothing published or drafted is removed.

        Raises:
            DandiAuthError: the key's user does not own the dandiset (HTTP 403).
        """
        return self.clear_own_uploads(lambda upload: True)[0]

    def clear_own_uploads(self, ours: Callable[[dict], bool]) -> tuple[int, int]:
        """Cancel unfinished uploads when every one of them is ``ours``.

        The archive cancels a dandiset's unfinished uploads all at once; when one of
        them is not ours (another client may be uploading now), none is cancelled.

        Args:
            ours: Whether an upload (``upload_id``, ``etag``, ``size``) is the caller's.

        Returns:
            ``(cancelled, left)``: how many were cancelled, and how many were left
            because another client's upload is among them.
        """
        uploads = self.unfinished_uploads()
        foreign = [u for u in uploads if not ours(u)]
        if foreign:
            log.warning("dandiset %s has %d unfinished upload(s) this client did not start "
                        "(another client may be uploading now): none of its %d is cancelled; "
                        "cancel them on the archive when no upload is running", self.dandiset_id,
                        len(foreign), len(uploads))
            return 0, len(uploads)
        count = len(uploads)
        if count:
            self.client.delete(f"/dandisets/{self.dandiset_id}/uploads/")
            log.warning("cleared %d unfinished upload(s) of dandiset %s left by an "
                        "interrupted client; their files are uploaded again",
                        count, self.dandiset_id)
        return count, 0

    def delete_own(self, path: str, asset_id: str) -> bool:
        """Delete the draft's asset at ``path`` when it is ``asset_id`` (the caller's own,
        as recorded when it uploaded it); an asset someone else put there is left.

        Returns:
            Whether it was deleted (False: no asset there, or another one).
        """
        asset = self.asset_at(path)
        if asset is None or asset.identifier != asset_id:
            log.warning("%s: the draft holds %s, not the asset %s uploaded earlier: left "
                        "alone", path, "nothing" if asset is None else asset.identifier,
                        asset_id)
            return False
        asset.delete()  # the dandi client's RemoteAsset.delete
        with self._lock:
            self._found[path] = None
            if self._listing is not None:
                self._listing.pop(path, None)
        log.info("deleted %s (asset %s) from dandiset %s", path, asset_id, self.dandiset_id)
        return True
