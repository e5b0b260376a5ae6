"""Structured logs (structlog): key=value on a terminal, JSON when LAKE_LOG_JSON=1."""

from __future__ import annotations

import logging
import os

import structlog


def setup_logging(level: str | None = None) -> None:
    level = (level or os.environ.get("LAKE_LOG_LEVEL", "INFO")).upper()
    renderer = (
        structlog.processors.JSONRenderer()
        if os.environ.get("LAKE_LOG_JSON") == "1"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    logging.basicConfig(level=level, format="%(message)s")
    for noisy in ("httpx", "httpcore", "py4j", "urllib3"):  # their INFO lines drown ours
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # kafka-python logs every refused connection of a health probe; Lake reports those itself.
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    structlog.configure(
        processors=[structlog.processors.add_log_level, structlog.processors.TimeStamper(fmt="iso"), renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
    )
