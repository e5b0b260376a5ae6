"""How the API refuses a request: ``HTTPException(status, {"reason": ..., "message": ...})``, the one shape
of every 4xx/5xx the routes raise, and the status of each reason the front door (lake.events) gives.

    from services.api.errors import problem, refused
    raise problem(404, "not_found", f"no image {image_id}")
"""

from __future__ import annotations

from fastapi import HTTPException

from lake.events import Reason, Rejected

STATUS = {
    Reason.EMPTY: 400,
    Reason.TOO_LARGE: 413,
    Reason.TOO_MANY_PIXELS: 413,
    Reason.NOT_AN_IMAGE: 415,
    Reason.CORRUPT_IMAGE: 422,
}


def problem(status: int, reason: str, detail: str, retry_after: int | None = None) -> HTTPException:
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return HTTPException(status, {"reason": reason, "message": detail}, headers=headers)


def refused(e: Rejected) -> HTTPException:
    """A front-door rejection (bad bytes, too large, ...) as its HTTP answer."""
    return problem(STATUS.get(e.reason, 400), getattr(e.reason, "value", str(e.reason)), e.message)
