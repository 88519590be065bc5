"""The S3 bucket of the pose store: checked, and created at first use unless forbidden.

DataJoint's ``s3`` store writes into an existing bucket and fails on every insert
("The specified bucket does not exist") when there is none.  :func:`ensure_bucket`
checks the bucket of the ``pose`` store through the same client DataJoint uses
(``datajoint.storage``: s3fs) and creates it when it is missing, unless
``ELEMENT_POSE_S3_CREATE_BUCKET`` is false (a lab whose buckets are made by an
administrator): then it raises :class:`BucketMissing`, naming the command that
creates it (``element-pose store create-bucket``).  ``element-pose submit`` calls it
before anything is submitted, and every worker when it starts.

This module imports only the standard library at import time.
"""

from __future__ import annotations

import logging
import os

__all__ = ["CREATE_BUCKET_ENV", "BucketMissing", "create_allowed", "ensure_bucket"]

log = logging.getLogger(__name__)

CREATE_BUCKET_ENV = "ELEMENT_POSE_S3_CREATE_BUCKET"
CREATE_COMMAND = "element-pose store create-bucket"


class BucketMissing(RuntimeError):
    """The pose store's bucket does not exist and may not (or could not) be created."""


def create_allowed() -> bool:
    """Whether a missing bucket may be created (``ELEMENT_POSE_S3_CREATE_BUCKET``, default true).

    Raises:
        ValueError: the setting is not a boolean.
    """
    text = os.environ.get(CREATE_BUCKET_ENV, "").strip().lower()
    if text in ("", "1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{CREATE_BUCKET_ENV} must be true or false, not {text!r}")


def _pose_store_spec() -> dict | None:
    from element_pose.db.config import POSE_STORE, configure, import_datajoint

    dj = import_datajoint()
    stores = dj.config["stores"] or {}
    if POSE_STORE not in stores:
        configure()
        stores = dj.config["stores"] or {}
    return stores.get(POSE_STORE)


def ensure_bucket(create: bool | None = None) -> str | None:
    """Make sure the pose store's bucket exists (a no-op for a store that is not S3).

    Args:
        create: Create a missing bucket (``None``: as ``ELEMENT_POSE_S3_CREATE_BUCKET``
            says, true by default).

    Returns:
        ``"exists"``, ``"created"``, or ``None`` when the pose store is not on S3.

    Raises:
        BucketMissing: the bucket is missing and may not be created, or creating it failed.
    """
    spec = _pose_store_spec()
    if not spec or spec.get("protocol") != "s3":
        return None
    from datajoint.storage import get_storage_backend

    from element_pose.core.redact import redact_url

    bucket = spec["bucket"]
    where = redact_url(f"s3://{bucket} at {spec.get('endpoint')}")
    fs = get_storage_backend(spec).fs
    fs.invalidate_cache()
    if fs.exists(bucket):
        return "exists"
    if not (create_allowed() if create is None else create):
        raise BucketMissing(f"the pose store's bucket {where} does not exist; create it with "
                            f"`{CREATE_COMMAND}` ({CREATE_BUCKET_ENV} is false: workers "
                            "do not create it)")
    try:
        fs.mkdir(bucket)
    except Exception as exc:
        fs.invalidate_cache()
        if fs.exists(bucket):  # another worker of the array made it first
            return "exists"
        raise BucketMissing(f"the pose store's bucket {where} does not exist and could not be "
                            f"created ({type(exc).__name__}: {redact_url(exc)}); create it "
                            "with your S3 provider's tools, or give these keys the right to "
                            "create buckets") from exc
    fs.invalidate_cache()
    log.warning("created the pose store's S3 bucket %s", where)
    return "created"
