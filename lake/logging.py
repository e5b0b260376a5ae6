"""Structured logs (structlog): key=value on a terminal, JSON when LAKE_LOG_JSON=1; where the libraries'
logs go (quiet by default, everything with ``lake --verbose``); and how a job's process ends on an error
(``fails_in_one_line``).

    lake demo                  # Lake's own lines; GX, py4j, urllib3 ... in .lake/logs/lake-cli.log,
                               # Spark's JVM (log4j, Iceberg) in .lake/logs/lake-spark.log
    lake --verbose demo        # the same, and every library's log on the console too
    LAKE_VERBOSE=1 make demo   # what --verbose sets: child processes (Spark, Airflow) inherit it
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import structlog

VERBOSE = "LAKE_VERBOSE"  # "1": libraries log to the console too (set by `lake --verbose`)
LIBRARY_LOG = "lake-cli.log"  # the Python libraries' records (GX, py4j, urllib3, warnings ...)
SPARK_LOG = "lake-spark.log"  # the Spark JVM's output (log4j: Spark, Iceberg, Hadoop; the JVM's own warnings)


def is_verbose() -> bool:
    return os.environ.get(VERBOSE, "") not in ("", "0")


def log_path(name: str) -> Path:
    """``settings.log_dir / name`` (the folder made if missing): where a library's log goes in quiet mode."""
    from lake.config import get_settings

    folder = get_settings().log_dir
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name


# Lake's own loggers (structlog's, named after the module): every other stdlib logger is a library's.
OURS = frozenset({"lake", "infra", "spark_jobs", "services", "models", "bench"})


class _Owner(logging.Filter):
    """Passes Lake's own records (``ours``) or only the libraries'."""

    def __init__(self, ours: bool):
        super().__init__()
        self.ours = ours

    def filter(self, record: logging.LogRecord) -> bool:
        return (record.name.split(".", 1)[0] in OURS) == self.ours


def setup_logging(level: str | None = None, *, log_file: Path | None = None) -> Path:
    """Lake's structured lines on the console (stdout) at ``level`` (LAKE_LOG_LEVEL, INFO; a command that
    prints its own summary passes WARNING, and ``--verbose`` brings its INFO lines back); the libraries'
    records (Great Expectations, py4j, urllib3, Python warnings) on the console (stderr) only when verbose.
    Both, at INFO and up, always go to ``log_file`` (.lake/logs/lake-cli.log). Returns ``log_file``.
    Calling it again replaces what an earlier call set up."""
    import sys

    default = os.environ.get("LAKE_LOG_LEVEL", "INFO").upper()
    levelno = logging.getLevelName((level or default).upper())
    if is_verbose():
        levelno = min(levelno, logging.getLevelName(default))
    log_file = log_file or log_path(LIBRARY_LOG)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "lake", False)]:
        root.removeHandler(old)
        old.close()
    ours = logging.StreamHandler(sys.stdout)
    ours.setLevel(levelno)
    ours.addFilter(_Owner(True))
    # Quiet: stdlib records are the libraries' (GX's hundreds of "Skipping registering function" lines,
    # its "Created temporary directory"), so only a CRITICAL one reaches the console.
    libraries = logging.StreamHandler()
    libraries.setLevel(levelno if is_verbose() else logging.CRITICAL)
    libraries.addFilter(_Owner(False))
    for h in (ours, libraries):
        h.setFormatter(logging.Formatter("%(message)s"))
    to_file = logging.FileHandler(log_file, encoding="utf-8")
    to_file.setLevel(logging.INFO)
    to_file.setFormatter(logging.Formatter("%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"))
    for h in (ours, libraries, to_file):
        h.lake = True
        root.addHandler(h)
    root.setLevel(min(levelno, logging.INFO))
    # Library warnings become records of `py.warnings` (the file in quiet mode). Off first: captureWarnings(True)
    # is a no-op while an earlier call's capture is recorded, even after something else replaced showwarning.
    logging.captureWarnings(False)
    logging.captureWarnings(True)
    for noisy in ("httpx", "httpcore", "py4j", "urllib3"):  # their INFO lines drown ours
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # kafka-python logs every refused connection of a health probe; Lake reports those itself.
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    if not is_verbose():
        # Hugging Face's own tqdm bars ("Writing model shards" at every save_pretrained): Lake draws its
        # own progress. Read when huggingface_hub is imported (later, here); Spark's workers inherit it.
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    renderer = (
        structlog.processors.JSONRenderer()
        if os.environ.get("LAKE_LOG_JSON") == "1"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[structlog.processors.add_log_level, structlog.processors.TimeStamper(fmt="iso"), renderer],
        # through the stdlib logger of the module's name: the console and the file handlers above
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(min(levelno, logging.INFO)),
        cache_logger_on_first_use=False,
    )
    return log_file


def cause_of(e: BaseException) -> str:
    """One line naming an error: ``<Class>: <first line of its message>``; for an error py4j brings back
    from the JVM, the Java exception's line rather than "An error occurred while calling o43.sql."."""
    lines = [ln.strip() for ln in str(e).strip().splitlines() if ln.strip()] or [""]
    first = lines[0]
    if first.startswith("An error occurred while calling") and len(lines) > 1:
        first = lines[1].removeprefix(": ")
    return f"{type(e).__name__}: {first[:300]}"


def sizes(paths: list[Path]) -> dict[Path, int]:
    """How long each log is now (0 if missing): a mark for ``written_since``."""
    return {p: p.stat().st_size if p.exists() else 0 for p in paths}


def written_since(marks: dict[Path, int], lines: int = 15) -> dict[Path, list[str]]:
    """The last ``lines`` lines each log gained after ``marks`` (logs that gained nothing are left out)."""
    out: dict[Path, list[str]] = {}
    for path, start in marks.items():
        if not path.exists() or path.stat().st_size <= start:
            continue
        with path.open("rb") as f:
            f.seek(start)
            tail = f.read().decode("utf-8", "replace").splitlines()[-lines:]
        if tail:
            out[path] = tail
    return out


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
        raise SystemExit(f"error: {job} failed: {cause_of(e)}") from None
