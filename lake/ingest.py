"""Bulk upload of image files into bronze: content-addressed PUT, then a claim-check
event on `images.uploaded`. Concurrent, with a progress bar, and resumable: a journal
in the state dir remembers which files' events the broker acknowledged, with the captions
they carried, so a re-run skips them, a file whose object landed but whose event did not
is completed, and a file whose captions were corrected or added since is sent again.

    lake ingest ./photos --captions captions.json --source bulk
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

from lake.bus import get_producer, publish_upload
from lake.clients import minio_client
from lake.config import Settings, get_settings
from lake.events import ImageUploaded, Rejected
from lake.images import ImageInfo, inspect_image
from lake.storage import put_bronze
from lake.tables import bronze_key

EVENT_NS = uuid.UUID("6f1c0d8e-6a57-4b8e-9a8e-1a4b3c2d1e0f")  # namespace of `lake ingest` event ids
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"}


@dataclass
class IngestReport:
    uploaded: int = 0  # events sent
    new_images: int = 0  # bronze objects created
    skipped: int = 0  # already sent by an earlier run, with the same captions
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)


def discover(paths: list[Path]) -> list[Path]:
    """Image files under the given files and folders, sorted, by suffix."""
    found: list[Path] = []
    for p in paths:
        if p.is_dir():
            found += [f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES]
        elif p.is_file():
            found.append(p)
        else:
            raise FileNotFoundError(f"no such file or folder: {p}")
    return sorted(set(found))


def _canonical(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class Journal:
    """Files whose event the broker acknowledged, with their captions (sqlite in the state dir)."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False)
        self._db.execute("CREATE TABLE IF NOT EXISTS sent (file TEXT PRIMARY KEY, image_id TEXT, event_id TEXT)")
        self._lock = threading.Lock()

    @staticmethod
    def key(path: Path, captions: list[str] | tuple[str, ...] = ()) -> str:
        """What makes a file "already sent": its path, size and mtime, and the captions it went with
        (a corrected or added caption is something the lake does not have yet). Without captions the
        key is the one journals held before captions counted, so those files are still skipped."""
        st = path.stat()
        key = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
        if captions:
            key += "|captions:" + hashlib.sha256(_canonical(list(captions)).encode()).hexdigest()
        return key

    def done(self, key: str) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1 FROM sent WHERE file = ?", (key,)).fetchone() is not None

    def record(self, key: str, event: ImageUploaded) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO sent VALUES (?, ?, ?)", (key, event.image_id, str(event.event_id)))
            self._db.commit()


@dataclass(frozen=True)
class Uploaded:
    event: ImageUploaded
    new: bool  # False: the same bytes were already in bronze (this upload is a sighting)
    info: ImageInfo


def upload_bytes(
    data: bytes,
    *,
    captions: list[str],
    source: str,
    s: Settings,
    mc=None,
    producer=None,
    user_id: str | None = None,
    tags: dict[str, str] | None = None,
    event_id: uuid.UUID | None = None,
) -> Uploaded:
    """Validate, store in bronze, then publish the claim-check event (the bytes are safe first)."""
    info = inspect_image(data, max_bytes=s.max_upload_bytes, max_pixels=s.max_image_pixels)
    image_id = hashlib.sha256(data).hexdigest()
    event = ImageUploaded(
        image_id=image_id,
        source=source,
        content_type=info.content_type,
        size_bytes=len(data),
        user_id=user_id,
        captions=captions,
        tags=tags or {},
        bronze_key=bronze_key(image_id),
        **({"event_id": event_id} if event_id else {}),
    ).signed(s.claim_check_keys[0].get_secret_value())  # the stream honours only signed claim-checks
    new = put_bronze(mc or minio_client(s), image_id, data, info.content_type)
    publish_upload(producer or get_producer(s), event, s.topic_uploads)
    return Uploaded(event, new, info)


def event_id_for(path: Path, image_id: str, source: str, captions: list[str]) -> uuid.UUID:
    """The event id of one file's upload. The same file (path and bytes) sent with the same source and
    captions always gets the same id: if a run dies between the broker's ack and the journal, the
    re-sent event is MERGEd away. Other bytes or captions are another event, never a reused id (which
    the stream refuses as `event_id_reused`)."""
    return uuid.uuid5(EVENT_NS, _canonical([str(path.resolve()), image_id, source, list(captions)]))


def _caption_key(path: Path, roots: list[Path], captions: dict[str, list[str]]) -> list[str]:
    """A file's captions: by its path under one of the given folders, else by its longest trailing
    part the sidecar names (``val/x.jpg`` finds ``.../val/x.jpg`` whichever folder was given)."""
    for root in roots:
        try:
            rel = path.relative_to(root).as_posix()
        except ValueError:
            continue
        if rel in captions:
            return captions[rel]
    parts = PurePosixPath(path.as_posix()).parts
    for n in range(len(parts), 0, -1):
        tail = "/".join(parts[-n:])
        if tail in captions:
            return captions[tail]
    return []


def ingest_paths(
    paths: list[Path],
    captions: dict[str, list[str]] | None = None,
    source: str = "bulk",
    workers: int = 8,
    s: Settings | None = None,
    show_progress: bool = True,
) -> IngestReport:
    """Upload every image under ``paths``; ``captions`` maps file names (or paths relative
    to a given folder, or their trailing folders and name) to human captions."""
    captions = captions or {}
    roots = [p for p in paths if p.is_dir()]
    files = {f: _caption_key(f, roots, captions) for f in discover(paths)}
    return ingest_files(files, source=source, workers=workers, s=s, show_progress=show_progress)


def ingest_files(
    files: dict[Path, list[str]],
    *,
    source: str = "bulk",
    workers: int = 8,
    s: Settings | None = None,
    show_progress: bool = True,
) -> IngestReport:
    """Upload each file with its captions (``lake datasets coco import`` names them itself). A file
    that cannot be read is a failure of its own, with the reason; the others go on."""
    s = s or get_settings()
    journal = Journal(s.state_dir / "ingest" / "journal.sqlite")
    mc, producer = minio_client(s), get_producer(s)
    report = IngestReport()

    def one(path: Path, caps: list[str]) -> tuple[Path, bool | None, str | None]:
        try:
            key = journal.key(path, caps)
            if journal.done(key):
                return path, None, None
            data = path.read_bytes()
        except OSError as e:  # gone since it was listed, a folder, no permission
            kind = "missing" if isinstance(e, FileNotFoundError) else "unreadable"
            return path, False, f"{kind}: {e.strerror or e}"
        try:
            up = upload_bytes(
                data,
                captions=caps,
                source=source,
                s=s,
                mc=mc,
                producer=producer,
                event_id=event_id_for(path, hashlib.sha256(data).hexdigest(), source, caps),
            )
        except Rejected as e:
            return path, False, f"{e.reason.value}: {e.message}"
        except ValueError as e:  # e.g. a caption over the schema's limits
            return path, False, f"invalid_event: {str(e)[:300]}"
        journal.record(key, up.event)
        return path, up.new, None

    cols = ["[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()]
    with Progress(*cols, disable=not show_progress) as bar, ThreadPoolExecutor(max_workers=workers) as pool:
        task = bar.add_task(f"ingest ({source})", total=len(files))
        for fut in as_completed([pool.submit(one, f, caps) for f, caps in sorted(files.items())]):
            path, new, error = fut.result()
            if error:
                report.failed.append((str(path), error))
            elif new is None:
                report.skipped += 1
            else:
                report.uploaded += 1
                report.new_images += int(new)
            bar.advance(task)
    producer.flush()
    return report
