"""A local, in-memory DANDI archive speaking the API subset ``dandi upload`` uses.

The real ``dandi`` client talks to it over HTTP; nothing in dandi is mocked. It
implements, under ``<url>/api``:

* ``GET /info/`` (version, schema_version, cli-minimal-version, cli-bad-versions,
  services.api.url); ``GET /server-info`` on the root answers 404 like the archive,
  so the client falls back to ``/api/info/``;
* ``GET /auth/token`` and token checks (``Authorization: token <key>``; a wrong key
  gets 401 on every endpoint; writes without a key get 401);
* ``GET /dandisets/{id}/``, ``/versions/{v}/``, ``/versions/{v}/info/``;
* ``GET|POST /dandisets/{id}/versions/draft/assets/`` (list with ``path``/``glob``
  filters, create), ``GET|PUT|DELETE .../assets/{asset_id}/``, ``.../info/``,
  ``.../download/``; ``GET /assets/{asset_id}/``, ``/info/``, ``/download/``;
* ``POST /uploads/initialize/`` (presigned part URLs pointing back to this server,
  part sizes from dandischema's ``PartGenerator`` like the archive; 409 with the
  blob id in ``Location`` when a blob with that dandi-etag exists),
  ``POST /uploads/{id}/complete/`` (returns ``complete_url`` + ``body``),
  ``POST /uploads/{id}/validate/`` (checks size and dandi-etag of the bytes);
* ``POST /blobs/digest/`` (blob lookup by digest);
* ``GET .../versions/draft/assets/{asset_id}/validation/`` (``status`` and
  ``validation_errors``); ``GET|DELETE /dandisets/{id}/uploads/`` (unfinished uploads,
  also counted as ``active_uploads`` in the version info).

Strict like the real archive (checked against dandi-archive's ``dandiapi`` views,
models and metadata service):

* it reports its own, older schema version (:attr:`LocalDandiArchive.SCHEMA_VERSION`,
  so the client downgrades metadata and warns); ``/info/`` has no
  ``allowed_schema_versions``;
* API routes end in ``/``; a route without it is redirected (301), as Django's
  ``APPEND_SLASH`` does;
* only owners of a dandiset may start uploads to it, create, replace or delete its
  assets, or list and clear its unfinished uploads (403 otherwise; :meth:`add_user`
  makes a valid key of a user who owns nothing); ``GET /users/me/`` and
  ``GET /dandisets/{id}/users/`` (the owners) answer as the archive does;
* parts are 64 MiB (``PartGenerator``); ``contentSize`` must be at least 1; an
  unknown dandiset is 404;
* asset paths must match the archive's ``ASSET_PATH_REGEX`` and may not be both a
  file and a folder (409);
* listings are paginated (``page``, ``page_size`` up to :attr:`max_page_size`, a
  ``next`` link, ``count`` on the first page only), the ``path`` filter is a
  case-insensitive prefix, ``glob`` knows only ``*``, ``order`` is honoured;
* a new blob has no SHA-256 until a background job computes it; a new asset is
  ``Pending`` until then, and is then validated like the archive validates it: its
  metadata as if published (ids, ``contentUrl``, ``digest``, ``publishedBy``,
  ``datePublished`` added) through ``dandischema.metadata.validate(...,
  schema_key="PublishedAsset")`` (``Valid``, or ``Invalid`` with the archive's
  ``{field, message}`` errors; :meth:`LocalDandiArchive.invalidate` makes chosen
  paths Invalid); the draft is ``Pending`` while any asset is;
* an upload that a killed client never completed stays listed until it is completed
  or cleared; a wrong key gets 401 on every authenticated call.

Storage (what S3 does on the archive) is under ``<url>/storage/``: ``PUT`` a part
(answers the part's MD5 as ``ETag``), ``POST`` the completion (answers the S3 XML
with the multipart ETag computed from the stored bytes). :meth:`fail_parts` makes
the next part uploads answer 500 once, to exercise the client's retries.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")


def multipart_etag(part_md5s: list[str]) -> str:
    """S3's multipart ETag (= DANDI's dandi-etag): md5 of the part digests + part count."""
    joined = b"".join(bytes.fromhex(m) for m in part_md5s)
    return f"{hashlib.md5(joined).hexdigest()}-{len(part_md5s)}"


@dataclass
class Blob:
    """Stored file content."""

    blob_id: str
    etag: str
    sha256: str | None  # computed by a background job, as on the archive
    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass
class Asset:
    """An asset of a dandiset version."""

    asset_id: str
    path: str
    blob_id: str
    size: int
    metadata: dict[str, Any]
    created: str
    modified: str
    status: str = "Pending"
    validation_errors: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {"asset_id": self.asset_id, "blob": self.blob_id, "zarr": None,
                "path": self.path, "size": self.size, "created": self.created,
                "modified": self.modified}


@dataclass
class Upload:
    """A multipart upload in progress."""

    upload_id: str
    dandiset_id: str
    size: int
    etag: str
    parts: list[dict[str, Any]]
    received: dict[int, bytes] = field(default_factory=dict)
    completed: bool = False


@dataclass
class Dandiset:
    """A dandiset with a draft version."""

    identifier: str
    name: str
    created: str = field(default_factory=_now)
    assets: dict[str, Asset] = field(default_factory=dict)  # asset_id -> Asset
    owners: set[str] = field(default_factory=lambda: {OWNER})  # usernames


OWNER = "tester"  # the user of the key the server is started with
#: dandi-archive's ``dandiapi.api.models.asset.ASSET_PATH_REGEX``
ASSET_CHARS = r"[A-z0-9(),&\s#+~_=-]"
ASSET_PATH_REGEX = re.compile(rf"^({ASSET_CHARS}?\/?\.?{ASSET_CHARS})+$")


class LocalDandiArchive:
    """A threaded HTTP server holding dandisets, blobs and assets in memory.

    Args:
        api_key: The key of the user who owns every dandiset (more users: :meth:`add_user`).
        dandisets: Identifiers of the (empty) dandisets that exist.
        host: Interface to bind; a free port is picked.

    Use as a context manager or call :meth:`start` / :meth:`stop`.
    """

    VERSION = "0.4.0"
    SCHEMA_VERSION = "0.7.0"  # older than the client's, as on the real archive

    def __init__(self, api_key: str = "local-test-key", dandisets: tuple[str, ...] = ("000123",),
                 host: str = "127.0.0.1") -> None:
        self.api_key = api_key
        self.users = {api_key: OWNER}  # key -> username
        self.max_page_size = 1000  # the archive's DandiPagination.max_page_size
        self.host = host
        self.lock = threading.RLock()
        self.dandisets = {d: Dandiset(d, f"Test dandiset {d}") for d in dandisets}
        self.blobs: dict[str, Blob] = {}
        self.uploads: dict[str, Upload] = {}
        self.requests: list[tuple[str, str, int]] = []  # (method, path, status)
        self.deleted: list[str] = []
        self.part_puts = 0
        self._fail_parts = 0
        self.validation_delay = 0.2  # seconds before the SHA-256/validation job runs
        self.invalid_paths: dict[str, str] = {}  # asset path -> validation message
        self._hold_after: int | None = None
        self.parts_held = threading.Event()
        self._release = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._port: int | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------- lifecycle
    @property
    def url(self) -> str:
        """Root URL, e.g. ``http://127.0.0.1:54321``."""
        assert self._port is not None, "server not started"
        return f"http://{self.host}:{self._port}"

    @property
    def api_url(self) -> str:
        """API base URL (``<url>/api``): what to pass as the DANDI instance."""
        return f"{self.url}/api"

    def start(self) -> LocalDandiArchive:
        archive = self

        class Handler(_Handler):
            pass

        Handler.archive = archive
        self._server = ThreadingHTTPServer((self.host, 0), Handler)
        self._port = self._server.server_address[1]  # kept for jobs that outlive the server
        self._server.daemon_threads = True
        server = self._server
        self._thread = threading.Thread(target=lambda: server.serve_forever(poll_interval=0.05),
                                        daemon=True, name="local-dandi-archive")
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> LocalDandiArchive:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ------------------------------------------------------------ test hooks
    def add_user(self, api_key: str, username: str) -> None:
        """A valid key of a user who owns no dandiset (reads work, writes get 403)."""
        with self.lock:
            self.users[api_key] = username

    def fail_parts(self, n: int = 1) -> None:
        """Make the next ``n`` part uploads answer HTTP 500 (each part fails once)."""
        with self.lock:
            self._fail_parts += n

    def hold_parts(self, after: int) -> None:
        """Let ``after`` more part uploads through, then block the next ones.

        :attr:`parts_held` is set once a part is blocked (the client can then be
        killed mid-upload); :meth:`release_parts` lets them go (answering 500).
        """
        with self.lock:
            self._hold_after = self.part_puts + after
            self._release.clear()
            self.parts_held.clear()

    def release_parts(self) -> None:
        """Stop holding part uploads (held ones fail with 500)."""
        with self.lock:
            self._hold_after = None
        self._release.set()

    def invalidate(self, path: str, message: str) -> None:
        """Make the validation job mark assets at ``path`` Invalid with ``message``."""
        with self.lock:
            self.invalid_paths[path] = message

    def wait_validated(self, timeout: float = 10.0) -> None:
        """Wait until no asset is Pending."""
        import time

        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self.lock:
                if not any(a.status == "Pending" for ds in self.dandisets.values()
                           for a in ds.assets.values()):
                    return
            time.sleep(0.02)
        raise TimeoutError("assets still Pending")

    def active_uploads(self, dandiset_id: str = "000123") -> list[str]:
        """Ids of unfinished uploads of a dandiset."""
        with self.lock:
            return [u.upload_id for u in self.uploads.values() if u.dandiset_id == dandiset_id]

    def _validate_later(self, asset: Asset) -> None:
        """The archive's jobs: the blob's SHA-256, then the asset's metadata validation."""
        def job() -> None:
            with self.lock:
                blob = self.blobs[asset.blob_id]
            if blob.sha256 is None:
                sha = hashlib.sha256(blob.data).hexdigest()
                with self.lock:
                    blob.sha256 = sha
            with self.lock:
                asset.metadata["digest"] = self.digest(blob)
                errors = self._validation_errors(asset, blob)
                if asset.path in self.invalid_paths:
                    errors.append({"field": "", "message": self.invalid_paths[asset.path]})
                asset.validation_errors = errors
                asset.status = "Invalid" if errors else "Valid"

        timer = threading.Timer(self.validation_delay, job)
        timer.daemon = True
        timer.start()

    @staticmethod
    def digest(blob: Blob) -> dict[str, str]:
        """An asset's ``digest``: the etag, and the SHA-256 once computed."""
        digest = {"dandi:dandi-etag": blob.etag}
        if blob.sha256:
            digest["dandi:sha2-256"] = blob.sha256
        return digest

    def published_metadata(self, asset: Asset, blob: Blob) -> dict[str, Any]:
        """The asset's metadata as if published (the archive's ``published_metadata``)."""
        now = dt.datetime.now(dt.UTC).isoformat()
        metadata = {
            **asset.metadata, "id": f"dandiasset:{asset.asset_id}", "path": asset.path,
            "identifier": asset.asset_id,
            "contentUrl": [f"{self.api_url}/assets/{asset.asset_id}/download/",
                           f"{self.url}/storage/blobs/{blob.blob_id}"],
            "contentSize": blob.size, "digest": self.digest(blob),
            "publishedBy": {
                "id": uuid.uuid4().urn, "name": "DANDI publish", "startDate": now,
                "endDate": now, "schemaKey": "PublishActivity",
                "wasAssociatedWith": [{"identifier": "RRID:SCR_017571", "name": "DANDI API",
                                       "version": "0.1.0", "schemaKey": "Software"}],
            },
            "datePublished": now,
        }
        metadata["@context"] = ("https://raw.githubusercontent.com/dandi/schema/master/"
                                f"releases/{metadata.get('schemaVersion')}/context.json")
        return metadata

    def _validation_errors(self, asset: Asset, blob: Blob) -> list[dict[str, str]]:
        """``validate_asset_metadata`` of dandi-archive: ``[]`` when the asset is valid.

        The archive's dandischema knows versions up to :attr:`SCHEMA_VERSION`; the
        pydantic models are those of the installed dandischema, and the JSON schema is
        checked too when the metadata have that dandischema's own version (older JSON
        schemas would be downloaded).
        """
        import dandischema.exceptions as dx
        from dandischema.consts import DANDI_SCHEMA_VERSION
        from dandischema.metadata import validate
        from packaging.version import Version

        version = asset.metadata.get("schemaVersion")
        if version is None or Version(version) > Version(self.SCHEMA_VERSION):
            return [{"field": "", "message": f"Metadata version {version} is not allowed; "
                                             f"the archive's is {self.SCHEMA_VERSION}"}]
        try:
            validate(self.published_metadata(asset, blob), schema_key="PublishedAsset",
                     json_validation=version == DANDI_SCHEMA_VERSION)
        except dx.PydanticValidationError as exc:
            return [{"field": str(e["loc"][0]), "message": e["msg"]} for e in exc.errors]
        except dx.JsonschemaValidationError as exc:
            return [{"field": ".".join(str(p) for p in e.path), "message": e.message}
                    for e in exc.errors]
        except ValueError as exc:
            return [{"field": "", "message": str(exc)}]
        return []

    def assets(self, dandiset_id: str = "000123") -> dict[str, Asset]:
        """Asset path -> :class:`Asset` of a dandiset's draft."""
        with self.lock:
            return {a.path: a for a in self.dandisets[dandiset_id].assets.values()}

    def asset_bytes(self, dandiset_id: str, path: str) -> bytes:
        """The content stored for an asset path."""
        with self.lock:
            return self.blobs[self.assets(dandiset_id)[path].blob_id].data

    def count(self, method: str, pattern: str) -> int:
        """How many requests matched a method and a path regex."""
        return sum(1 for m, p, _ in self.requests if m == method and re.search(pattern, p))

    # --------------------------------------------------------------- helpers
    def info(self) -> dict[str, Any]:
        from dandischema.models import get_schema_version

        schema_version = self.SCHEMA_VERSION
        from packaging.version import Version

        assert Version(schema_version) < Version(get_schema_version()), \
            "the archive's schema must be older"
        return {
            "version": self.VERSION,
            "schema_version": schema_version,
            "schema_url": "https://raw.githubusercontent.com/dandi/schema/master/releases/"
                          f"{schema_version}/dandiset.json",
            "cli-minimal-version": "0.60.0",
            "cli-bad-versions": [],
            "services": {
                "api": {"url": self.api_url},
                "webui": {"url": self.url},
                "jupyterhub": {"url": self.url},
            },
        }

    def version_data(self, ds: Dandiset) -> dict[str, Any]:
        assets = list(ds.assets.values())
        modified = max([a.modified for a in assets], default=ds.created)
        pending = any(a.status == "Pending" for a in assets)
        return {"version": "draft", "name": ds.name, "asset_count": len(assets),
                "size": sum(a.size for a in assets), "created": ds.created,
                "modified": modified, "status": "Pending" if pending else "Valid",
                "active_uploads": len(self.active_uploads(ds.identifier))}

    def dandiset_data(self, ds: Dandiset) -> dict[str, Any]:
        version = self.version_data(ds)
        return {"identifier": ds.identifier, "created": ds.created,
                "modified": version["modified"], "contact_person": "Test, User",
                "embargo_status": "OPEN", "most_recent_published_version": None,
                "draft_version": version}


def _filtered(assets: list[Asset], query: dict) -> list[Asset]:
    """A draft's assets as its listing's ``order``, ``path`` and ``glob`` select them."""
    order = query.get("order") or ""
    if order.lstrip("-") in ("path", "created", "modified"):
        assets = sorted(assets, key=lambda x: getattr(x, order.lstrip("-")),
                        reverse=order.startswith("-"))
    if query.get("path") is not None:  # path__istartswith
        assets = [x for x in assets if x.path.lower().startswith(query["path"].lower())]
    if query.get("glob"):  # only * is a wildcard, case-insensitive
        pattern = re.compile(re.escape(query["glob"]).replace(r"\*", ".*"), re.IGNORECASE)
        assets = [x for x in assets if pattern.fullmatch(x.path)]
    return assets


class _BadRequest(Exception):
    """Answered 400 with its JSON."""


class _NotFound(Exception):
    """Answered 404."""


class _Handler(BaseHTTPRequestHandler):
    archive: LocalDandiArchive
    protocol_version = "HTTP/1.1"
    user: str | None = None
    query: dict[str, str]

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean; requests are recorded in archive.requests

    # ------------------------------------------------------------ responses
    def _send(self, status: int, body: bytes = b"", content_type: str = "application/json",
              headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        with self.archive.lock:
            self.archive.requests.append((self.command, urlsplit(self.path).path, status))

    def _json(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(data).encode(), headers=headers)

    def _error(self, status: int, detail: str) -> None:
        self._json(status, {"detail": detail})

    def _body(self) -> bytes:
        return self._raw

    def _json_body(self) -> Any:
        raw = self._body()
        return json.loads(raw) if raw else {}

    # ------------------------------------------------------------- dispatch
    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self._raw = self.rfile.read(length) if length else b""  # always drain (keep-alive)
        parts = urlsplit(self.path)
        path = parts.path
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        method = "GET" if self.command == "HEAD" else self.command
        self.query = query
        try:
            return self._route(method, path, parts.query, query)
        except _BadRequest as exc:
            return self._json(400, exc.args[0])
        except _NotFound as exc:
            return self._error(404, str(exc))
        except Exception as exc:
            return self._error(500, f"local archive error: {type(exc).__name__}: {exc}")

    def _route(self, method: str, path: str, raw_query: str, query: dict[str, str]) -> None:
        if path.startswith("/storage/"):
            return self._storage(method, path)
        if not path.startswith("/api/"):
            return self._error(404, "Not found.")
        if not path.endswith("/"):  # Django's APPEND_SLASH
            location = path + "/" + (f"?{raw_query}" if raw_query else "")
            return self._send(301, headers={"Location": location})
        route = "/" + path[len("/api/"):].strip("/")
        if route == "/info":
            return self._json(200, self.archive.info())
        return self._authenticated(method, route, query)

    def _authenticated(self, method: str, route: str, query: dict[str, str]) -> None:
        token = self._token()
        with self.archive.lock:
            self.user = self.archive.users.get(token) if token is not None else None
        if token is not None and self.user is None:
            return self._error(401, "Invalid token.")
        if route == "/auth/token":
            if token is None:
                return self._error(401, "Authentication credentials were not provided.")
            return self._json(200, {"detail": "ok"})
        if method in ("POST", "PUT", "DELETE") and token is None:
            return self._error(401, "Authentication credentials were not provided.")
        return self._api(method, route, query)

    def _token(self) -> str | None:
        auth = self.headers.get("Authorization")
        if not auth:
            return None
        scheme, _, value = auth.partition(" ")
        return value.strip() if scheme.lower() == "token" else ""

    def _forbidden(self, ds: Dandiset) -> bool:
        """Answer 403 (and return True) unless the caller owns ``ds``."""
        if self.user is None:
            self._error(401, "Authentication credentials were not provided.")
            return True
        if self.user not in ds.owners:
            self._error(403, "You do not have permission to perform this action.")
            return True
        return False

    def _page(self, items: list[Any]) -> dict[str, Any]:
        """One page of ``items`` (``page``, ``page_size``; a ``next`` link when more)."""
        size = min(int(self.query.get("page_size") or 100), self.archive.max_page_size)
        page = int(self.query.get("page") or 1)
        if size < 1 or page < 1:
            raise _BadRequest({"detail": "Invalid page."})
        chunk = items[(page - 1) * size:page * size]
        if not chunk and page > 1:
            raise _NotFound("Invalid page.")

        def link(n: int) -> str:
            return f"{self.archive.url}{urlsplit(self.path).path}?" + urlencode(
                {**self.query, "page": n})

        return {"count": len(items) if page == 1 else None,  # LazyPagination: page 1 only
                "results": chunk,
                "next": link(page + 1) if page * size < len(items) else None,
                "previous": link(page - 1) if page > 1 else None}

    # ------------------------------------------------------------------ API
    def _api(self, method: str, route: str, query: dict[str, str]) -> None:
        seg = route.strip("/").split("/")
        if seg == ["users", "me"] and method == "GET":
            return self._me()
        if seg[0] == "uploads":
            return self._uploads(method, seg[1:])
        if seg == ["blobs", "digest"] and method == "POST":  # no login needed
            return self._blob_by_digest()
        if seg[0] == "assets" and len(seg) >= 2:
            asset = self._find_asset(seg[1])
            if asset is None:
                return self._error(404, "Not found.")
            return self._asset_get(asset, seg[2:])
        if seg[0] == "dandisets" and len(seg) >= 2:
            return self._dandiset(method, seg[1], seg[2:], route, query)
        return self._error(404, f"Not found: {method} {route}")

    def _me(self) -> None:
        if self.user is None:
            return self._error(401, "Authentication credentials were not provided.")
        return self._json(200, {"username": self.user, "name": "Test User",
                                "admin": False, "status": "APPROVED"})

    def _blob_by_digest(self) -> None:
        body = self._json_body()
        field_name = {"dandi:dandi-etag": "etag", "dandi:sha2-256": "sha256"}.get(
            body.get("algorithm"))
        if field_name is None:
            return self._json(400, {"algorithm": ["unsupported digest algorithm"]})
        with self.archive.lock:
            for blob in self.archive.blobs.values():
                if body.get("value") == getattr(blob, field_name):
                    return self._json(200, self._blob_data(blob))
        return self._error(404, "Not found.")

    def _dandiset(self, method: str, identifier: str, rest: list[str], route: str,
                  query: dict[str, str]) -> None:
        a = self.archive
        with a.lock:
            ds = a.dandisets.get(identifier)
        if ds is None:
            return self._error(404, "Not found.")
        if not rest and method == "GET":
            return self._json(200, a.dandiset_data(ds))
        if rest == ["users"] and method == "GET":
            return self._json(200, [{"username": u, "name": "Test User", "email": None}
                                    for u in sorted(ds.owners)])
        if rest == ["uploads"] and method in ("GET", "DELETE"):
            return self._dandiset_uploads(method, ds)
        if rest[:1] == ["versions"] and len(rest) >= 2:
            if rest[1] != "draft":
                return self._error(404, "Not found.")
            return self._version(method, ds, rest[2:], query)
        return self._error(404, f"Not found: {method} {route}")

    def _dandiset_uploads(self, method: str, ds: Dandiset) -> None:
        a = self.archive
        if self._forbidden(ds):
            return None
        with a.lock:
            mine = [u for u in a.uploads.values() if u.dandiset_id == ds.identifier]
            if method == "DELETE":
                for u in mine:
                    del a.uploads[u.upload_id]
                return self._send(204)
        return self._json(200, self._page(
            [{"upload_id": u.upload_id, "etag": u.etag, "size": u.size} for u in mine]))

    def _version(self, method: str, ds: Dandiset, rest: list[str], query: dict) -> None:
        a = self.archive
        if not rest and method == "GET":
            return self._json(200, {"name": ds.name, "schemaKey": "Dandiset",
                                    "identifier": f"DANDI:{ds.identifier}"})
        if rest == ["info"] and method == "GET":
            return self._json(200, {**a.version_data(ds), "metadata": {"name": ds.name},
                                    "asset_validation_errors": [],
                                    "version_validation_errors": []})
        if rest[:1] != ["assets"]:
            return self._error(404, "Not found.")
        if len(rest) == 1:
            return self._assets(method, ds, query)
        return self._asset(method, ds, rest)

    def _assets(self, method: str, ds: Dandiset, query: dict) -> None:
        """``.../versions/draft/assets/``: the listing (GET) or a new asset (POST)."""
        if method == "GET":
            with self.archive.lock:
                assets = list(ds.assets.values())  # creation order unless ``order``
            include_md = query.get("metadata") in ("true", "1")
            results = [{**x.summary(), **({"metadata": x.metadata} if include_md else {})}
                       for x in _filtered(assets, query)]
            return self._json(200, self._page(results))
        if method == "POST":
            if self._forbidden(ds):
                return None
            return self._create_asset(ds, self._json_body(), replacing=None)
        return self._error(405, "Method not allowed.")

    def _asset(self, method: str, ds: Dandiset, rest: list[str]) -> None:
        """``.../versions/draft/assets/{asset_id}/...``."""
        a = self.archive
        with a.lock:
            asset = ds.assets.get(rest[1])
        if asset is None:
            return self._error(404, "Not found.")
        if len(rest) == 2 and method in ("PUT", "DELETE") and self._forbidden(ds):
            return None
        if len(rest) == 2 and method == "PUT":
            return self._create_asset(ds, self._json_body(), replacing=asset)
        if rest[2:] == ["validation"] and method == "GET":
            with a.lock:
                return self._json(200, {"status": asset.status,
                                        "validation_errors": list(asset.validation_errors)})
        if len(rest) == 2 and method == "DELETE":
            with a.lock:
                ds.assets.pop(asset.asset_id, None)
                a.deleted.append(asset.path)
            return self._send(204)
        return self._asset_get(asset, rest[2:])

    def _asset_get(self, asset: Asset, rest: list[str]) -> None:
        if self.command not in ("GET", "HEAD"):
            return self._error(405, "Method not allowed.")
        if not rest:
            return self._json(200, asset.metadata)
        if rest == ["info"]:
            return self._json(200, {**asset.summary(), "metadata": asset.metadata})
        if rest == ["download"]:
            with self.archive.lock:
                data = self.archive.blobs[asset.blob_id].data
            return self._send(200, data, "application/octet-stream")
        return self._error(404, "Not found.")

    def _find_asset(self, asset_id: str) -> Asset | None:
        with self.archive.lock:
            for ds in self.archive.dandisets.values():
                if asset_id in ds.assets:
                    return ds.assets[asset_id]
        return None

    def _create_asset(self, ds: Dandiset, body: dict, replacing: Asset | None) -> None:
        a = self.archive
        metadata = dict(body.get("metadata") or {})
        blob_id = body.get("blob_id")
        path = metadata.get("path")
        if not path:
            return self._json(400, {"metadata": ["a 'path' is required"]})
        if path.startswith("/"):
            return self._json(400, {"path": ["Path must not begin with /"]})
        if not ASSET_PATH_REGEX.match(path) or ".." in path.split("/"):
            return self._json(400, {"path": ["Path improperly formatted"]})
        if not metadata.get("schemaVersion"):
            return self._json(400, {"metadata": ["schemaVersion is required"]})
        with a.lock:
            blob = a.blobs.get(blob_id)
            if blob is None:
                return self._json(400, {"blob_id": [f"unknown blob {blob_id!r}"]})
            others = [x for x in ds.assets.values() if replacing is None or x is not replacing]
            if any(x.path == path for x in others):
                return self._error(409, f"An asset already exists at {path!r}.")
            if any(x.path.startswith(path + "/") or path.startswith(x.path + "/")
                   for x in others):  # the archive's get_conflicting_paths
                return self._error(409, f"{path!r} conflicts with an existing file or folder.")
            if replacing is not None:
                if replacing.path != path:
                    return self._error(400, "Replacing asset path differs.")
                ds.assets.pop(replacing.asset_id)
            now = _now()
            asset_id = str(uuid.uuid4())
            metadata.update(id=f"dandiasset:{asset_id}", identifier=asset_id,
                            contentSize=blob.size,
                            contentUrl=[f"{a.api_url}/assets/{asset_id}/download/"])
            metadata["digest"] = a.digest(blob)
            asset = Asset(asset_id=asset_id, path=path, blob_id=blob_id, size=blob.size,
                          metadata=metadata,
                          created=replacing.created if replacing else now, modified=now)
            ds.assets[asset_id] = asset
        a._validate_later(asset)
        return self._json(200, {**asset.summary(), "metadata": asset.metadata})

    @staticmethod
    def _blob_data(blob: Blob) -> dict[str, Any]:
        return {"blob_id": blob.blob_id, "etag": blob.etag, "sha256": blob.sha256,
                "size": blob.size}

    def _uploads(self, method: str, seg: list[str]) -> None:
        if seg == ["initialize"] and method == "POST":
            return self._upload_initialize()
        if len(seg) == 2 and method == "POST":
            with self.archive.lock:
                up = self.archive.uploads.get(seg[0])
            if up is None:
                return self._error(404, "Not found.")
            if seg[1] == "complete":
                return self._upload_complete(up)
            if seg[1] == "validate":
                return self._upload_validate(up)
        return self._error(404, "Not found.")

    def _upload_initialize(self) -> None:
        from dandischema.digests.dandietag import PartGenerator

        a = self.archive
        body = self._json_body()
        digest = body.get("digest") or {}
        if digest.get("algorithm") != "dandi:dandi-etag" or not digest.get("value"):
            return self._json(400, {"digest": ["a dandi:dandi-etag digest is required"]})
        size = int(body.get("contentSize", -1))
        if size < 1:  # IntegerField(min_value=1)
            return self._json(400, {"contentSize": [
                "Ensure this value is greater than or equal to 1."]})
        with a.lock:
            ds = a.dandisets.get(str(body.get("dandiset")))
        if ds is None:
            return self._error(404, "No Dandiset matches the given query.")
        if self._forbidden(ds):
            return None
        with a.lock:
            for blob in a.blobs.values():
                if blob.etag == digest["value"]:
                    return self._json(409, {"detail": "Blob already exists."},
                                      headers={"Location": blob.blob_id})
            upload_id = str(uuid.uuid4())
            parts = [
                {"part_number": p.number, "size": p.size,
                 "upload_url": f"{a.url}/storage/uploads/{upload_id}/{p.number}"
                               f"?X-Amz-Signature={uuid.uuid4().hex}"}
                for p in PartGenerator.for_file_size(size)
            ]
            a.uploads[upload_id] = Upload(upload_id, body["dandiset"], size,
                                          digest["value"], parts)
        return self._json(200, {"upload_id": upload_id, "parts": parts})

    def _upload_complete(self, up: Upload) -> None:
        body = self._json_body()
        listed = sorted(int(p["part_number"]) for p in body.get("parts", []))
        if listed != [p["part_number"] for p in up.parts]:
            return self._json(400, {"parts": ["parts missing or out of range"]})
        return self._json(200, {
            "complete_url": f"{self.archive.url}/storage/uploads/{up.upload_id}/complete"
                            f"?X-Amz-Signature={uuid.uuid4().hex}",
            "body": "<CompleteMultipartUpload>" + "".join(
                f"<Part><PartNumber>{p['part_number']}</PartNumber>"
                f"<ETag>{p['etag']}</ETag></Part>" for p in body["parts"]
            ) + "</CompleteMultipartUpload>",
        })

    def _upload_validate(self, up: Upload) -> None:
        a = self.archive
        with a.lock:
            if not up.completed:
                return self._json(400, {"detail": "upload not completed"})
            data = b"".join(up.received[p["part_number"]] for p in up.parts)
            etag = multipart_etag([hashlib.md5(up.received[p["part_number"]])
                                   .hexdigest() for p in up.parts])
            if len(data) != up.size or etag != up.etag:
                return self._json(400, {"detail": f"checksum mismatch: got {etag} "
                                                  f"({len(data)} bytes), expected "
                                                  f"{up.etag} ({up.size} bytes)"})
            blob = next((b for b in a.blobs.values()
                         if b.etag == etag and b.size == len(data)), None)
            if blob is None:  # SHA-256: computed later by the asset's job
                blob = Blob(str(uuid.uuid4()), etag, None, data)
                a.blobs[blob.blob_id] = blob
            del a.uploads[up.upload_id]
        return self._json(200, self._blob_data(blob))

    # -------------------------------------------------------------- storage
    def _storage(self, method: str, path: str) -> None:
        a = self.archive
        m = re.fullmatch(r"/storage/uploads/([^/]+)/(\d+|complete)", path)
        if m is None:
            return self._error(404, "NoSuchKey")
        with a.lock:
            up = a.uploads.get(m[1])
        if up is None:
            return self._error(404, "NoSuchUpload")
        if method == "PUT" and m[2] != "complete":
            data = self._body()
            number = int(m[2])
            with a.lock:
                a.part_puts += 1
                fail = a._fail_parts > 0
                if fail:
                    a._fail_parts -= 1
                hold = a._hold_after is not None and a.part_puts > a._hold_after
            if hold:
                a.parts_held.set()
                a._release.wait(60)
                return self._send(500, b"<Error><Code>SlowDown</Code></Error>",
                                  "application/xml")
            if fail:
                return self._send(500, b"<Error><Code>InternalError</Code></Error>",
                                  "application/xml")
            expected = next((p["size"] for p in up.parts if p["part_number"] == number), None)
            if expected is None or expected != len(data):
                return self._send(400, b"<Error><Code>BadDigest</Code></Error>",
                                  "application/xml")
            with a.lock:
                up.received[number] = data
            return self._send(200, headers={"ETag": f'"{hashlib.md5(data).hexdigest()}"'})
        if method == "POST" and m[2] == "complete":
            with a.lock:
                missing = [p["part_number"] for p in up.parts
                           if p["part_number"] not in up.received]
                if missing:
                    return self._send(400, b"<Error><Code>InvalidPart</Code></Error>",
                                      "application/xml")
                up.completed = True
                etag = multipart_etag([hashlib.md5(up.received[p["part_number"]]).hexdigest()
                                       for p in up.parts])
            xml = ('<?xml version="1.0" encoding="UTF-8"?>'
                   '<CompleteMultipartUploadResult '
                   'xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
                   f"<Location>{a.url}/storage/blobs/{up.upload_id}</Location>"
                   "<Bucket>dandi</Bucket>"
                   f"<Key>blobs/{up.upload_id}</Key><ETag>&quot;{etag}&quot;</ETag>"
                   "</CompleteMultipartUploadResult>")
            return self._send(200, xml.encode(), "application/xml")
        return self._error(405, "MethodNotAllowed")
