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
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Literal
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from lake.tables import IMAGE_ID, ImageId, bronze_key

SCHEMA_VERSION = 1
SOURCE = r"^[A-Za-z0-9_.:-]+$"
EARLIEST_UPLOAD = datetime(2000, 1, 1, tzinfo=UTC)  # a client clock before this is wrong, not early
MAX_CLOCK_SKEW = timedelta(days=1)  # how far ahead of the server's clock a client's may run


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
    BAD_TIMESTAMP = "bad_timestamp"
    BAD_TEXT = "bad_text"
    UNTRUSTED_CLAIM_CHECK = "untrusted_claim_check"
    EVENT_ID_REUSED = "event_id_reused"
    BAD_SINCE = "bad_since"
    UNPROCESSABLE = "unprocessable"  # a row a job could not convert: kept aside, the job goes on


class Rejected(ValueError):
    """An input Lake refuses, with a machine-readable reason and a human message; ``ident`` holds
    whichever of the event's event_id, image_id, user_id and source parsed (see ``identity``)."""

    def __init__(self, reason: Reason, message: str, ident: dict[str, str] | None = None):
        super().__init__(f"{reason.value}: {message}")
        self.reason, self.message, self.ident = reason, message, dict(ident or {})


IDENTITY = ("event_id", "image_id", "user_id", "source")


def identity(obj: object) -> dict[str, str]:
    """Of a decoded event, the identity fields that are valid on their own, so that a refused event
    can still be found by its event_id (rejected_events, the DLQ, ``GET /v1/events/{event_id}``)."""
    import re

    if not isinstance(obj, dict):
        return {}
    out: dict[str, str] = {}
    v = obj.get("event_id")
    if isinstance(v, str):
        try:
            out["event_id"] = str(UUID(v))
        except ValueError:
            pass
    for name, ok in (
        ("image_id", lambda v: IMAGE_ID.fullmatch(v)),
        ("user_id", lambda v: len(v) <= 128),
        ("source", lambda v: len(v) <= 64 and re.fullmatch(SOURCE, v)),
    ):
        v = obj.get(name)
        if isinstance(v, str) and v and _is_text(v) and ok(v):
            out[name] = v
    return out


def _is_text(v: str) -> bool:
    """False for a str holding lone surrogates (JSON's ``\\ud800``): no UTF-8 column can store it."""
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def plausible_time(v: datetime, now: datetime | None = None) -> datetime:
    """``v`` in UTC when it is a time a client could have uploaded at (2000-01-01 up to the server's
    clock plus MAX_CLOCK_SKEW); ValueError otherwise. Naive times are taken as UTC."""
    try:
        v = (v if v.tzinfo else v.replace(tzinfo=UTC)).astimezone(UTC)
    except (OverflowError, ValueError) as e:  # an offset that moves it past year 1 or 9999
        raise ValueError(f"{v.isoformat()} is not a representable UTC instant") from e
    latest = (now or utcnow()) + MAX_CLOCK_SKEW
    if not EARLIEST_UPLOAD <= v <= latest:
        raise ValueError(f"{v.isoformat()} is not a plausible upload time ({EARLIEST_UPLOAD:%Y-%m-%d} to now + 1 day)")
    return v


class ImageUploadedBase(BaseModel):
    """Fields every `images.uploaded` event carries, whatever delivers the bytes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = SCHEMA_VERSION
    event_id: UUID = Field(default_factory=uuid4)
    image_id: ImageId
    source: str = Field(default="api", min_length=1, max_length=64, pattern=SOURCE)
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
    def _plausible(cls, v: datetime) -> datetime:
        # The client's clock: kept as client_uploaded_at, never used for watermarks (the lake's own
        # ingested_at is); refused when no client could have meant it.
        return plausible_time(v)

    def fingerprint(self) -> str:
        """What makes two events the same upload (for a repeated event_id): the image and what the
        producer said about it. Not the delivery, the client's clock or the signature, which a retry
        of the same upload may change."""
        body = [self.image_id, self.user_id, self.source, list(self.captions), sorted(self.tags.items())]
        return hashlib.sha256(_canonical(body)).hexdigest()


def _canonical(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()


class ImageUploaded(ImageUploadedBase):
    """`images.uploaded` v1: a claim-check (`bronze_key`, bytes already in bronze) or
    inline bytes (`image_b64`, at most 1 MiB decoded, from a plain Kafka producer)."""

    bronze_key: str | None = None
    image_b64: str | None = None
    signature: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{64}$",
        description="claim-checks: HMAC-SHA256 of the event by a key the API and the stream share (claim_digest)",
    )

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

    def claim_digest(self, key: str) -> str:
        """HMAC-SHA256, under ``key``, of everything a claim-check asserts: which bytes, what they are
        (the sniffed content type, the size), who sent them with which captions and tags, and when."""
        body = [
            str(self.event_id),
            self.image_id,
            self.bronze_key,
            self.content_type,
            self.size_bytes,
            self.uploaded_at.isoformat(),
            self.user_id,
            self.source,
            list(self.captions),
            sorted(self.tags.items()),
        ]
        return hmac.new(key.encode(), _canonical(body), hashlib.sha256).hexdigest()

    def signed(self, key: str) -> ImageUploaded:
        """This claim-check with its signature (the API and `lake ingest` sign what they publish)."""
        return self.model_copy(update={"signature": self.claim_digest(key)})

    def trusted(self, keys: list[str]) -> bool:
        """Inline events always (their bytes are checked against image_id); a claim-check only when
        signed by one of ``keys`` (the first signs; the others are still honoured while keys rotate)."""
        if self.bronze_key is None:
            return True
        return self.signature is not None and any(
            hmac.compare_digest(self.signature, self.claim_digest(k)) for k in keys
        )

    def image_bytes(self, max_bytes: int = 2**20) -> bytes:
        """The inline bytes, checked: valid base64, within the limit, matching image_id."""
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
    image_id: str | None = None
    user_id: str | None = None
    source: str | None = None
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
    ident = identity(obj)
    version = obj.get("schema_version")
    if type(version) is not int or version != SCHEMA_VERSION:  # `true` and `1.0` equal 1 in Python
        raise Rejected(Reason.UNKNOWN_SCHEMA_VERSION, f"schema_version {version!r}; this reader knows 1", ident)
    if "event_id" not in obj:  # a default here would be a new id on every replay: duplicates
        raise Rejected(
            Reason.INVALID_EVENT,
            "event_id: required on the wire; the producer picks it once per upload and keeps it on retries",
            ident,
        )
    try:
        _canonical(obj)  # a lone surrogate (JSON's "\\ud800") is valid JSON but no text column can hold it
    except RecursionError as e:
        raise Rejected(Reason.BAD_JSON, "nested too deeply", ident) from e
    except UnicodeEncodeError as e:
        raise Rejected(Reason.BAD_TEXT, f"a string holds a lone surrogate ({e.reason}): not text", ident) from e
    try:
        return ImageUploaded.model_validate(obj)
    except ValidationError as e:
        errors = e.errors()
        msg = "; ".join(f"{'.'.join(map(str, err['loc'])) or 'event'}: {err['msg']}" for err in errors[:5])
        on_clock = all(err["loc"][:1] == ("uploaded_at",) for err in errors)
        raise Rejected(Reason.BAD_TIMESTAMP if on_clock else Reason.INVALID_EVENT, msg, ident) from e
