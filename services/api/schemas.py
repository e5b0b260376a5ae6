"""The API's public response schemas, named by role (``<Thing>Public``): what each route answers and what
its OpenAPI spec documents. Records shared with the jobs and training (a training example) are subclassed
from lake.tables, not declared again.

    from services.api.schemas import CaptionPublic
    CaptionPublic(caption="a red circle", model_version="compact-v3", image_id=i, cached=False)
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, Field

from lake.tables import ImageId, TrainingExampleBase


class ImagePublic(BaseModel):
    """What the API answers about an upload, and what it holds of an image in bronze."""

    image_id: ImageId
    new: bool | None = None
    event_id: UUID | None = None
    content_type: str
    size_bytes: int
    width: int | None = None
    height: int | None = None
    bronze_uri: str


class ImageCaptionPublic(BaseModel):
    """One caption of an image: a human one (sent with an upload), or the served model's."""

    caption: str = Field(description='the caption; "" when the moderation filter withheld a model caption')
    origin: Literal["human", "model"]
    model_version: str | None = Field(None, description="the registry version that wrote a model caption")
    filtered: str | None = Field(None, description="why the moderation filter withheld it, if it did")


class ImageDetailPublic(ImagePublic):
    """`GET /v1/images/{id}`: the image in bronze and its captions."""

    captions: list[ImageCaptionPublic] = Field(
        default_factory=list,
        description="human captions (from silver, through the catalog), then the served "
        "model's, whether the API or the batch job computed it",
    )


class CaptionPublic(BaseModel):
    caption: str = Field(description='the caption; "" when the moderation filter withheld it')
    model_version: str = Field(description="the registry version that wrote it, e.g. compact-v3")
    image_id: str | None = Field(None, description="the image's id: the one named, or the sha256 of the upload")
    cached: bool = Field(
        description="answered without running the model: this process's cache, or the caption "
        "the lake already stores for this image and version (the API's or the "
        "batch job's)"
    )
    filtered: str | None = Field(None, description="why the moderation filter withheld the caption, if it did")


class SearchHitPublic(BaseModel):
    image_id: str
    caption: str = Field(description="the caption that was indexed (the newest model caption, else a human one)")
    score: float = Field(description="cosine similarity of the caption embeddings, -1..1")


class ExamplePublic(TrainingExampleBase):
    """A training example as a pull hands it out: the row, and a signed URL of its image."""

    url: str = Field(description="presigned GET of the normalized JPEG in the silver bucket")


class ExamplesPublic(BaseModel):
    dataset: str = Field(description="the frozen data set read, training_examples@<snapshot>")
    snapshot_id: int
    rows: list[ExamplePublic]
    next: str | None = Field(description="pass as `after` for the next page; null on the last one")


class ModelVersionPublic(BaseModel):
    model_version: str
    name: str
    version: int
    stage: str
    created_at: datetime
    dataset: str | None
    cider: float | None
    changed_by: str | None
    changed_at: datetime | None
    reason: str | None


class EventRefusalPublic(BaseModel):
    """One refusal of an event by the bronze stream (a row of bronze's rejected_events, also a DLQ letter)."""

    reason: str | None = Field(description="why, e.g. invalid_event, untrusted_claim_check, event_id_reused")
    error: str | None = Field(None, description="what exactly was wrong")
    rejected_at: datetime | None = None
    image_id: str | None = Field(None, description="the event's image_id, when it parsed")
    user_id: str | None = Field(None, description="the event's user_id, when it parsed")
    source: str | None = Field(None, description="the event's source, when it parsed")


class EventPublic(BaseModel):
    """`GET /v1/events/{event_id}`: what became of an upload event."""

    event_id: UUID
    status: Literal["landed", "refused"] = Field(
        description="landed: a row in bronze (the image goes on to silver); refused: only refusals"
    )
    image_id: str | None = Field(None, description="the image it landed as")
    ingested_at: datetime | None = Field(None, description="when the lake received it (the lake's clock)")
    refusals: list[EventRefusalPublic] = Field(
        default_factory=list,
        description="newest first; a landed event can have some too: the same event_id sent again with "
        "other content is refused as event_id_reused",
    )
