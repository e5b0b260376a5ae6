"""Object storage edges: content-addressed bronze writes. Keys are built from the
image id only, so no user string can ever pick an object's name or bucket.

    from lake.storage import put_bronze
    new = put_bronze(mc, image_id, data, content_type)
"""

from __future__ import annotations

import io

from minio import Minio
from minio.error import S3Error
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

from lake.tables import BRONZE_BUCKET as BRONZE
from lake.tables import bronze_key

NOT_FOUND = frozenset({"NoSuchKey", "NoSuchObject", "NotFound"})  # S3 error codes of a missing object

_retry = retry(
    retry=retry_if_exception_type((ConnectionError, OSError)),
    stop=stop_after_attempt(5),
    wait=wait_exponential(multiplier=0.2, max=5),
    reraise=True,
)


@_retry
def object_size(mc: Minio, bucket: str, key: str) -> int | None:
    """Size of an object, or None when it does not exist."""
    try:
        return mc.stat_object(bucket, key).size
    except S3Error as e:
        if e.code in NOT_FOUND:
            return None
        raise


def read_object(mc: Minio, bucket: str, key: str, length: int = 0) -> bytes | None:
    """The object's bytes (its first ``length`` bytes if given), or None when it does not exist."""
    try:
        resp = mc.get_object(bucket, key, offset=0, length=length)
    except S3Error as e:
        if e.code in NOT_FOUND:
            return None
        raise
    try:
        return resp.read()
    finally:
        resp.close()
        resp.release_conn()


@_retry
def put_bronze(mc: Minio, image_id: str, data: bytes, content_type: str) -> bool:
    """Store the bytes at s3://bronze/images/<image_id> unless already there; True if new.

    Same bytes, same key: a concurrent or repeated upload writes identical content,
    so the race between the stat and the put is harmless.
    """
    key = bronze_key(image_id)
    if object_size(mc, BRONZE, key) == len(data):
        return False
    mc.put_object(
        BRONZE,
        key,
        io.BytesIO(data),
        len(data),
        content_type=content_type,
        metadata={"x-amz-meta-lake-image-id": image_id},
    )
    return True
