"""Model captions of an image, wherever they were computed. Two writers, one answer:

- the API keeps each caption it computes in the catalog's ``captions`` (``<image_id>:<model_version>``,
  with the moderation reason when it withheld one);
- the batch job (spark_jobs/gold/caption_images.py) writes ``gold.captions`` and copies the API's in as they
  are instead of computing them again.

A reader asks the catalog first (one document by key), then gold.captions through Trino, so a caption is
computed once per image and model version whoever asked first. The human captions an image came with are in
its catalog document (from silver).

    from lake.captions import find_caption, human_captions
    hit = find_caption(catalog=cat, table=get_settings().tables.captions, image_id=i, model_version="compact-v3")
    hit.caption, hit.source                    # "a red circle on the left", "batch"
    human_captions(catalog=cat, image_id=i)    # ["a red circle"]
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Query = Callable[[str, list], list[list]]  # lake.clients.trino_query: SQL with ? parameters -> rows

# gold.captions keeps a withheld caption as "" without the reason; the API says that much
BATCH_FILTERED = "moderation"


@dataclass(frozen=True)
class FoundCaption:
    caption: str
    model_version: str
    filtered: str | None  # why the moderation filter withheld it ("" caption), or None
    source: str  # "api": the catalog's captions; "batch": gold.captions


def api_caption(*, catalog: Any, image_id: str, model_version: str) -> FoundCaption | None:
    """The caption the API stored for (image, version) in the catalog, or None."""
    doc = catalog.stored_caption(image_id, model_version)
    if doc is None:
        return None
    return FoundCaption(doc["caption"], model_version, doc.get("filtered"), "api")


def batch_caption(*, table: str, image_id: str, model_version: str, query: Query | None = None) -> FoundCaption | None:
    """The caption the batch job wrote for (image, version) in ``table`` (gold.captions), or None; a lake
    whose gold tables do not exist yet has none."""
    from trino.exceptions import TrinoUserError

    from lake.clients import no_tables_yet

    if query is None:
        from lake.clients import trino_query as query
    try:
        rows = query(
            f"SELECT caption FROM {table} WHERE image_id = ? AND model_version = ? LIMIT 1", [image_id, model_version]
        )
    except TrinoUserError as e:
        if no_tables_yet(e):  # before the first gold run
            return None
        raise
    if not rows:
        return None
    caption = rows[0][0] or ""
    return FoundCaption(caption, model_version, None if caption else BATCH_FILTERED, "batch")


def find_caption(
    *, catalog: Any, table: str, image_id: str, model_version: str, query: Query | None = None
) -> FoundCaption | None:
    """The caption of (image, version) the lake already holds: the API's, else the batch job's."""
    return api_caption(catalog=catalog, image_id=image_id, model_version=model_version) or batch_caption(
        table=table, image_id=image_id, model_version=model_version, query=query
    )


def human_captions(*, catalog: Any, image_id: str) -> list[str]:
    """The captions people sent with the image (its catalog document, written by silver); [] if unknown."""
    doc = catalog.image(image_id) or {}
    return list((doc.get("captions") or {}).get("human") or [])
