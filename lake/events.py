"""The one schema of Lake's events and dead letters. JSON on the wire; every part
(API, `lake ingest`, Spark jobs, the model loop) imports these models.

    from lake.events import ImageUploaded, parse_upload
    event = parse_upload(kafka_value)          # ImageUploaded, or raises Rejected(reason)

Topics (docs/architecture.md): `images.uploaded` (key = image_id), `images.uploaded.dlq`,
`models.promoted`.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Literal
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from lake.tables import ImageId, bronze_key

SCHEMA_VERSION = 1


def utcnow() -> datetime:
    return datetime.now(UTC)


class Reason(StrEnum):
    """Why an event or upload was refused; the DLQ and the API both use these codes."""

    BAD_JSON = "bad_json"
    UNKNOWN_SCHEMA_VERSION = "unknown_schema_version"
    INVALID_EVENT = "invalid_event"
    BAD_BASE64 = "bad_base64"
    MISSING_OBJECT = "missing_object"
    TOO_LARGE = "too_large"
    EMPTY = "empty"
    NOT_AN_IMAGE = "not_an_image"
    CORRUPT_IMAGE = "corrupt_image"
    TOO_MANY_PIXELS = "too_many_pixels"
    CHECKSUM_MISMATCH = "checksum_mismatch"


class Rejected(ValueError):
    """An input Lake refuses, with a machine-readable reason and a human message."""

    def __init__(self, reason: Reason, message: str):
        super().__init__(f"{reason.value}: {message}")
        self.reason, self.message = reason, message


class ImageUploadedBase(BaseModel):
    """Fields every `images.uploaded` event carries, whatever delivers the bytes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = SCHEMA_VERSION
    event_id: UUID = Field(default_factory=uuid4)
    image_id: ImageId
    source: str = Field(default="api", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
    content_type: str = Field(pattern=r"^image/[a-z0-9.+-]+$")
    size_bytes: int = Field(gt=0)
    uploaded_at: datetime = Field(default_factory=utcnow)
    user_id: str | None = Field(default=None, max_length=128)
    captions: list[Annotated[str, Field(max_length=1000)]] = Field(default_factory=list, max_length=20)
    tags: dict[Annotated[str, Field(max_length=64)], Annotated[str, Field(max_length=256)]] = Field(
        default_factory=dict, max_length=50
    )

    @field_validator("uploaded_at")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        return v if v.tzinfo else v.replace(tzinfo=UTC)


class ImageUploaded(ImageUploadedBase):
    """`images.uploaded` v1: a claim-check (`bronze_key`, bytes already in bronze) or
    inline bytes (`image_b64`, at most 1 MiB decoded, from a plain Kafka producer)."""

    bronze_key: str | None = None
    image_b64: str | None = None

    @model_validator(mode="after")
    def _one_delivery(self) -> ImageUploaded:
        if (self.bronze_key is None) == (self.image_b64 is None):
            raise ValueError("exactly one of bronze_key or image_b64 must be set")
        if self.bronze_key is not None and self.bronze_key != bronze_key(self.image_id):
            raise ValueError(f"bronze_key must be images/<image_id>, got {self.bronze_key!r}")
        return self

    @property
    def delivery(self) -> str:
        return "claim_check" if self.bronze_key else "inline"

    def image_bytes(self, max_bytes: int = 2**20) -> bytes:
        """The inline bytes, checked: valid base64, within the limit, matching image_id."""
        import hashlib

        assert self.image_b64 is not None
        if len(self.image_b64) > (max_bytes * 4) // 3 + 4:
            raise Rejected(Reason.TOO_LARGE, f"inline image over {max_bytes} bytes")
        try:
            data = base64.b64decode(self.image_b64, validate=True)
        except (binascii.Error, ValueError) as e:
            raise Rejected(Reason.BAD_BASE64, str(e)) from e
        if len(data) > max_bytes:  # the length pre-check above lets a few bytes more through
            raise Rejected(Reason.TOO_LARGE, f"inline image of {len(data)} bytes; the limit is {max_bytes}")
        if len(data) != self.size_bytes:
            raise Rejected(Reason.CHECKSUM_MISMATCH, f"size_bytes {self.size_bytes} but {len(data)} bytes decoded")
        if hashlib.sha256(data).hexdigest() != self.image_id:
            raise Rejected(Reason.CHECKSUM_MISMATCH, "image_id is not the sha256 of the bytes")
        return data

    def to_kafka(self) -> tuple[bytes, bytes]:
        """(key, value) for the `images.uploaded` topic."""
        return self.image_id.encode(), self.model_dump_json(exclude_none=True).encode()


class ModelPromoted(BaseModel):
    """`models.promoted`: a model version became the production one."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = SCHEMA_VERSION
    model_version: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*-v\d+$")
    previous_version: str | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    promoted_at: datetime = Field(default_factory=utcnow)


class DeadLetter(BaseModel):
    """One refused event on `images.uploaded.dlq`: why, and where it came from."""

    reason: Reason
    error: str = Field(max_length=2000)
    topic: str
    partition: int
    offset: int
    key: str | None = None
    event_id: str | None = None
    raw_prefix: str = Field(default="", description="first 512 bytes of the refused value, for triage")
    failed_at: datetime = Field(default_factory=utcnow)


def parse_upload(value: bytes | str | None) -> ImageUploaded:
    """Decode one `images.uploaded` value, or raise Rejected with the reason."""
    if value is None:  # a Kafka tombstone
        raise Rejected(Reason.BAD_JSON, "no value")
    try:
        obj = json.loads(value)
    # ValueError covers JSONDecodeError, UnicodeDecodeError and integers over Python's 4300-digit
    # limit; RecursionError is deep nesting. Any of them must reach the DLQ, not stop the stream.
    except (ValueError, RecursionError) as e:
        raise Rejected(Reason.BAD_JSON, str(e)[:300]) from e
    if not isinstance(obj, dict):
        raise Rejected(Reason.BAD_JSON, "event must be a JSON object")
    version = obj.get("schema_version")
    if type(version) is not int or version != SCHEMA_VERSION:  # `true` and `1.0` equal 1 in Python
        raise Rejected(Reason.UNKNOWN_SCHEMA_VERSION, f"schema_version {version!r}; this reader knows 1")
    if "event_id" not in obj:  # a default here would be a new id on every replay: duplicates
        raise Rejected(
            Reason.INVALID_EVENT,
            "event_id: required on the wire; the producer picks it once per upload and keeps it on retries",
        )
    try:
        return ImageUploaded.model_validate(obj)
    except ValidationError as e:
        msg = "; ".join(f"{'.'.join(map(str, err['loc'])) or 'event'}: {err['msg']}" for err in e.errors()[:5])
        raise Rejected(Reason.INVALID_EVENT, msg) from e
