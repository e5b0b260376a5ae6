"""Moderation: a pluggable filter applied to every caption before it is stored or returned (the API's
`POST /v1/captions`, the Spark captioning job). The default is a blocklist of words and phrases from
the settings; `caption_filter` names another (``module:factory``, called with the settings).

    LAKE_CAPTION_BLOCKLIST='["knife", "red star"]' lake up api
    python -c "from lake.moderation import Blocklist; print(Blocklist(('knife',))('a knife on the left'))"

A filtered caption is returned and stored as ``""`` with the reason; callers count what was filtered
(the API's `lake_captions_filtered_total`, the job's run counts).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property

from lake.config import Settings, get_settings


@dataclass(frozen=True)
class Verdict:
    text: str  # what may be stored and shown ("" when filtered)
    reason: str | None = None  # why it was filtered; None when it passed

    @property
    def filtered(self) -> bool:
        return self.reason is not None


CaptionFilter = Callable[[str], Verdict]


@dataclass(frozen=True)
class Blocklist:
    """Filters a caption holding any of ``terms`` as whole words (case-insensitive; a term may be a phrase)."""

    terms: tuple[str, ...] = ()

    @cached_property
    def _pattern(self) -> re.Pattern | None:
        words = [r"\s+".join(map(re.escape, t.lower().split())) for t in self.terms if t.strip()]
        return re.compile(r"\b(?:" + "|".join(words) + r")\b", re.IGNORECASE) if words else None

    def __call__(self, text: str) -> Verdict:
        if self._pattern is not None and self._pattern.search(text):
            return Verdict("", "blocklist")
        return Verdict(text)


def get_filter(settings: Settings | None = None) -> CaptionFilter:
    """The configured filter: ``caption_filter`` (``module:factory``) if set, else the blocklist."""
    s = settings or get_settings()
    if s.caption_filter:
        module, _, name = s.caption_filter.partition(":")
        return getattr(importlib.import_module(module), name)(s)
    return Blocklist(tuple(s.caption_blocklist))


def moderate_all(texts: Sequence[str], check: CaptionFilter) -> tuple[list[str], int]:
    """The texts as they may be stored, and how many were filtered."""
    verdicts = [check(t) for t in texts]
    return [v.text for v in verdicts], sum(v.filtered for v in verdicts)
