"""DANDI publishing with the real ``dandi`` client: layout, checks, upload.

The modules import one way (each only from those above it in this list):

* :mod:`.errors` - the exceptions.
* :mod:`.layout` - names, ``dandiset.yaml``, ``dandi organize`` (stable video names),
  the files of a dandiset folder.
* :mod:`.checks` - ``dandi validate`` and nwbinspector (``element-pose validate``).
* :mod:`.checksums` - SHA-256 + dandi-etag of a file; the pure plan of a sync.
* :mod:`.archive` - the instance and API key; one dandiset's draft on the archive
  (key and owner check, listing, validation status, unfinished uploads, deletes).
* :mod:`.uploads` - ``dandi upload`` per file through one :class:`.archive.Archive`.

The names below are importable from this package. The incremental ``dandi-sync``
(which reads the database) lives in :mod:`element_pose.ops.dandi_sync`.
"""

from element_pose.export.dandi.archive import (
    Archive,
    RemoteAsset,
    api_key_env_var,
    instance_and_key,
    resolve_instance,
)
from element_pose.export.dandi.checks import Finding, check_folder, require_valid, validate
from element_pose.export.dandi.checksums import FileChecksum, SyncPlan, file_checksum, plan_sync
from element_pose.export.dandi.errors import (
    DandiAuthError,
    DandiError,
    DandiUploadError,
    DandiValidationError,
    describe,
)
from element_pose.export.dandi.layout import (
    ASSET_SUFFIXES,
    DANDISET_ID_RE,
    DANDISET_YAML,
    DEFAULT_SUFFIX,
    dandi_relpath,
    find_dandiset_dir,
    local_assets,
    organize,
    read_dandiset_id,
    referenced_files,
    sanitize_label,
    video_name,
    write_dandiset_yaml,
)
from element_pose.export.dandi.uploads import UploadResult, upload

__all__ = [
    "ASSET_SUFFIXES",
    "DANDISET_ID_RE",
    "DANDISET_YAML",
    "DEFAULT_SUFFIX",
    "Archive",
    "DandiAuthError",
    "DandiError",
    "DandiUploadError",
    "DandiValidationError",
    "FileChecksum",
    "Finding",
    "RemoteAsset",
    "SyncPlan",
    "UploadResult",
    "api_key_env_var",
    "check_folder",
    "dandi_relpath",
    "describe",
    "file_checksum",
    "find_dandiset_dir",
    "instance_and_key",
    "local_assets",
    "organize",
    "plan_sync",
    "read_dandiset_id",
    "referenced_files",
    "require_valid",
    "resolve_instance",
    "sanitize_label",
    "upload",
    "validate",
    "video_name",
    "write_dandiset_yaml",
]
