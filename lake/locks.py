"""One writer at a time, across processes and machines: PostgreSQL advisory locks.

    with single_writer("silver:lake.silver.images"):
        ...   # a second holder of the same name is refused at once, with a clear error ...
    LAKE_LOCK_WAIT_SECONDS=900 ...  # ... or after waiting that long for the first (Airflow's tasks do)

    lock = acquire_for_tree(checkpoint)        # a driver that starts a JVM (pyspark) or other children
    spark = spark_session(...)
    lock.watch(spark.sparkContext._gateway.proc.pid)
    ...
    spark.stop(); lock.close()                 # released at once; if the driver dies instead, only
                                               # when it and every process it started are gone

Iceberg's MERGE ... WHEN NOT MATCHED is an anti-join plus an append with no conflict
check, so two concurrent writers of one table could both append the same key.

Why a lock for a process tree: a lock held by the driver's own connection dies with the driver,
but a SIGKILLed pyspark driver's JVM goes on writing for a few seconds (it notices only when its
stdin closes, then runs its shutdown hooks), and a stream restarted at once would overlap it.
``acquire_for_tree`` holds the connection in a small holder process of its own session (so
signals to the driver's process group miss it); the holder releases the lock when the driver
says so (``close()``: its writers are stopped) or, when the driver goes without a word, once the
driver, every process registered with ``watch()`` and every descendant of those is gone.
Descendants the driver starts after taking the lock are followed without being registered.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import structlog
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

from lake.config import Settings, get_settings

log = structlog.get_logger("lake.locks")

POLL_SECONDS = 0.1  # how often the holder looks at the tree it guards
RETRY_SECONDS = 2.0  # how often a waiting writer asks again
_LOCK_SQL = "SELECT pg_try_advisory_lock(hashtext(%s))"
_UNLOCK_SQL = "SELECT pg_advisory_unlock(hashtext(%s))"


BUSY_EXIT = 75  # what a command exits with when another writer holds its lock (sysexits' EX_TEMPFAIL: try later)


class AlreadyRunning(RuntimeError):
    """Another writer (a command, or the scheduler's task) holds the lock; nothing was done."""


def _refused(name: str) -> AlreadyRunning:
    return AlreadyRunning(f"another writer holds {name!r}; one at a time (wait for it, or stop it)")


def _patiently(take, name: str, s: Settings, wait: float | None):
    """``take(s)``; while another writer holds ``name``, asked again every RETRY_SECONDS for up to ``wait``
    seconds (None: the setting ``lock_wait_seconds``)."""
    wait = s.lock_wait_seconds if wait is None else wait
    if wait <= 0:
        return take(s)

    def said(state) -> None:
        if state.attempt_number == 1:
            log.info("another writer holds the lock: waiting", lock=name, up_to_s=wait)

    try:
        return Retrying(
            retry=retry_if_exception_type(AlreadyRunning),
            stop=stop_after_delay(wait),
            wait=wait_fixed(RETRY_SECONDS),
            before_sleep=said,
            reraise=True,
        )(take, s)
    except AlreadyRunning as e:
        raise AlreadyRunning(f"{e}; still held after {wait:.0f} s of waiting") from None


def acquire(name: str, s: Settings | None = None, wait: float | None = None):
    """Take the lock ``name`` or raise AlreadyRunning, after waiting up to ``wait`` seconds for its holder
    (default: the setting ``lock_wait_seconds``); the lock lives as long as the returned connection."""
    return _patiently(partial(_acquire, name), name, s or get_settings(), wait)


def _acquire(name: str, s: Settings):
    import psycopg

    conn = psycopg.connect(s.postgres_dsn, autocommit=True)
    (got,) = conn.execute(_LOCK_SQL, [name]).fetchone()
    if not got:
        conn.close()
        raise _refused(name)
    return conn


@contextmanager
def single_writer(name: str, s: Settings | None = None, wait: float | None = None) -> Iterator[None]:
    conn = acquire(name, s, wait)
    try:
        yield
    finally:
        conn.close()


class TreeLock:
    """The lock ``name`` held by a holder process for this process and the processes it starts.

    ``watch(pid)`` adds a process (and, as they appear, its descendants) to what the lock waits for
    should this process die without ``close()``; ``close()`` says its writers are stopped and
    returns once the lock is free. The same lock as ``acquire(name)``: each refuses the other.
    """

    def __init__(self, name: str, holder: subprocess.Popen):
        self.name = name
        self._holder = holder

    def _ask(self, line: str) -> str:
        try:
            self._holder.stdin.write(line + "\n")
            self._holder.stdin.flush()
            return self._holder.stdout.readline().strip()
        except (BrokenPipeError, ValueError):  # the holder is gone (and its connection, so the lock, with it)
            return ""

    def watch(self, pid: int) -> None:
        """Keep the lock while ``pid`` and its descendants live, should this process die unannounced.
        Returns once the holder follows it (and has looked at the tree it guards)."""
        if self._holder.stdin.closed:
            raise RuntimeError(f"lock {self.name!r} is closed")
        if self._ask(f"watch {int(pid)}") != "ok":
            raise RuntimeError(f"the holder of lock {self.name!r} is gone (exit {self._holder.poll()})")

    def close(self, timeout: float = 30) -> None:
        """Release the lock: this process's writers are stopped. Idempotent."""
        if self._holder.stdin.closed:
            return
        self._ask("release")  # answers "released" once the lock is free
        for f in (self._holder.stdin, self._holder.stdout):
            try:
                f.close()
            except OSError:
                pass
        try:
            self._holder.wait(timeout)
        except subprocess.TimeoutExpired:
            self._holder.kill()  # its connection closes with it: the lock is free either way
            self._holder.wait()

    def __enter__(self) -> TreeLock:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def acquire_for_tree(name: str, s: Settings | None = None, wait: float | None = None) -> TreeLock:
    """Take the lock ``name`` for this process and every process it starts, or raise AlreadyRunning
    (after waiting up to ``wait`` seconds, as `acquire`).

    Released by ``close()``, or, if this process dies first (SIGKILL included), once it and every
    watched process and their descendants have exited.
    """
    return _patiently(partial(_acquire_for_tree, name), name, s or get_settings(), wait)


def _acquire_for_tree(name: str, s: Settings) -> TreeLock:
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
    holder = subprocess.Popen(
        [sys.executable, "-c", "from lake.locks import _hold; _hold()"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,  # a Ctrl-C or a kill of the driver's process group must not take the lock along
    )
    lock = TreeLock(name, holder)
    # the DSN goes down a pipe: argv and the environment are visible to other users (ps, /proc)
    answer = lock._ask(json.dumps({"dsn": s.postgres_dsn, "name": name, "driver": os.getpid()}))
    if answer == "locked":
        return lock
    holder.wait()
    if answer == "busy":
        raise _refused(name)
    raise RuntimeError(f"could not take lock {name!r}: the holder process exited {holder.returncode} ({answer})")


# ---- the holder process -----------------------------------------------------------------------------------------


def _say(line: str) -> None:
    try:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
    except (BrokenPipeError, ValueError):  # the driver is gone; nobody to tell
        pass


def _alive(p) -> bool:
    import psutil

    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE  # is_running also catches a reused pid
    except psutil.Error:
        return False


def _hold() -> None:
    """Holder process: take the lock, then release it on "release" or once the guarded tree is gone.

    Reads a JSON line {dsn, name, driver} and then "watch <pid>" / "release" lines on stdin;
    answers "locked" | "busy" | "error ...", "ok" per watch, "released" at the end.
    """
    import signal

    import psutil
    import psycopg

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    cfg = json.loads(sys.stdin.readline())
    try:
        conn = psycopg.connect(cfg["dsn"], autocommit=True)
        (got,) = conn.execute(_LOCK_SQL, [cfg["name"]]).fetchone()
    except Exception as e:  # noqa: BLE001 -- told to the driver, which raises it
        _say(f"error {type(e).__name__}: {e}".replace("\n", " "))
        return
    if not got:
        conn.close()
        _say("busy")
        return
    me = os.getpid()
    try:
        driver = psutil.Process(cfg["driver"])
        # children the driver had before the lock (a JVM reused across runs, say) are not this run's:
        # they are followed only when watched
        before = {(c.pid, c.create_time()) for c in driver.children(recursive=True)}
    except psutil.Error:  # the driver died before we looked
        driver, before = None, set()
    guarded = {driver} if driver else set()

    def sweep() -> None:
        for p in list(guarded):
            if not _alive(p):
                guarded.discard(p)
                continue
            try:
                kids = p.children(recursive=True)
            except psutil.Error:
                continue
            for k in kids:
                try:
                    if k.pid != me and not (p is driver and (k.pid, k.create_time()) in before):
                        guarded.add(k)
                except psutil.Error:
                    pass

    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        for line in sys.stdin:
            lines.put(line)
        lines.put("")  # EOF: the driver closed its end or died

    threading.Thread(target=read, daemon=True).start()
    _say("locked")
    orphaned = False  # the driver went without "release"
    while True:
        sweep()
        if orphaned and not guarded:
            break
        try:
            line = lines.get(timeout=POLL_SECONDS).strip()
        except queue.Empty:
            continue
        if line == "release":
            break
        if line.startswith("watch "):
            try:
                guarded.add(psutil.Process(int(line.split()[1])))
            except (psutil.Error, ValueError):
                pass  # already gone: nothing to wait for
            sweep()
            _say("ok")
        elif not line:
            orphaned = True
    try:
        conn.execute(_UNLOCK_SQL, [cfg["name"]])  # at once: a closing connection frees it a moment later
    finally:
        conn.close()
    _say("released")
