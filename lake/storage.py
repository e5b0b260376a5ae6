"""Object storage edges: content-addressed bronze writes. Keys are built from the
image id only, so no user string can ever pick an object's name or bucket.

    from lake.storage import put_bronze
    new = put_bronze(mc, image_id, data, content_type)   # True for exactly one of any concurrent writers
"""

from __future__ import annotations

from minio import Minio
from minio.error import S3Error
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

from lake.tables import BRONZE_BUCKET as BRONZE
from lake.tables import bronze_key

NOT_FOUND = frozenset({"NoSuchKey", "NoSuchObject", "NotFound"})  # S3 error codes of a missing object
LOST_CREATE = frozenset({"PreconditionFailed", "ConditionalRequestConflict"})  # another writer created it first

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
    """Store the bytes at s3://bronze/images/<image_id> unless already there; True if this call created it.

    The create is conditional (``If-None-Match: *``: the store answers 412 when the object exists), so of
    any number of concurrent callers with the same bytes exactly one is told True; a stat first spares the
    upload when the object is already there. One PUT, not a multipart upload (the condition is on the PUT).
    """
    key = bronze_key(image_id)
    if object_size(mc, BRONZE, key) == len(data):
        return False
    headers = {
        "Content-Type": content_type or "application/octet-stream",
        "x-amz-meta-lake-image-id": image_id,
        "If-None-Match": "*",
    }
    try:
        # minio-py's put_object would file If-None-Match under user metadata; _put_object sends it as is
        mc._put_object(BRONZE, key, data, headers=headers)
    except S3Error as e:
        if e.code not in LOST_CREATE:
            raise
        if object_size(mc, BRONZE, key) != len(data):  # a foreign write, or the winner's still in flight: same bytes
            headers.pop("If-None-Match")
            mc._put_object(BRONZE, key, data, headers=headers)
        return False
    return True
