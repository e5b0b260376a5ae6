"""Structured logs (structlog): key=value on a terminal, JSON when LAKE_LOG_JSON=1; and how a job's
process ends on an error (``fails_in_one_line``)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

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


@contextmanager
def fails_in_one_line(job: str) -> Iterator[None]:
    """A job's ``__main__``: an error that ends it is logged with its trace, then the process exits
    non-zero with one line naming the cause (``error: <job> failed: <Class>: <message>``). No input
    row ends a job (they are set aside with a reason); what reaches here is the system's.

        with fails_in_one_line("silver normalize"):
            main()
    """
    try:
        yield
    except Exception as e:
        structlog.get_logger("lake").exception(f"{job} failed")
        cause = (str(e).strip().splitlines() or [""])[0][:300]
        raise SystemExit(f"error: {job} failed: {type(e).__name__}: {cause}") from None
