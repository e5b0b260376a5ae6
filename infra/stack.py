"""Bring the local stack up and down, and report on it.

lake up            # install what is missing, start every server, seed them
lake status        # one row per server: state, pid, ports, memory, log
lake down          # stop everything Lake started, leaving no process behind
"""

from __future__ import annotations

import fcntl
import shutil
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path

import psutil
import structlog

from infra import install as installers
from infra import procs
from infra.apps import Airflow, AirflowDagProcessor, AirflowScheduler, AirflowTriggerer, Superset
from infra.base import Service
from infra.procs import StackError
from infra.services import Api, FerretDB, Kafka, MinIO, Postgres, Trino
from lake.config import Settings

log = structlog.get_logger("lake.stack")


@dataclass
class ServiceStatus:
    name: str
    state: str  # healthy | unhealthy | stopped
    pid: int | None
    ports: list[int]
    mem_mb: float  # PSS where readable, else RSS
    uptime_s: float
    log: Path
    detail: str = ""


def servers(s: Settings) -> list[Service]:
    """The servers, in start order."""
    if shutil.which("python3") is None:  # Trino's launcher is a Python script
        raise StackError("python3 is needed on PATH for Trino's launcher")
    return [
        Postgres("postgres", s),
        MinIO("minio", s),
        FerretDB("ferretdb", s),
        Kafka("kafka", s),
        Trino("trino", s),
        Airflow("airflow-api", s),
        AirflowScheduler("airflow-scheduler", s),
        AirflowDagProcessor("airflow-dag-processor", s),
        AirflowTriggerer("airflow-triggerer", s),
        Superset("superset", s),
        Api("api", s),
    ]


def select(s: Settings, names: Iterable[str] = ()) -> list[Service]:
    services = servers(s)
    names = list(names)
    unknown = set(names) - {x.name for x in services}
    if unknown:
        raise StackError(f"unknown service(s) {sorted(unknown)}; known: {[x.name for x in services]}")
    return [x for x in services if not names or x.name in names]


def install(s: Settings, names: Iterable[str] = ()) -> None:
    for svc in select(s, names):
        log.info("install", service=svc.name)
        svc.install()
    if not names:
        log.info("install", component="spark connector jars", jars=len(installers.spark_jars(s)))


def _healthy(svc: Service) -> bool:
    try:
        return bool(svc.healthy())
    except Exception:
        return False


def _start_one(svc: Service) -> tuple[procs.Proc, psutil.Process, bool]:
    """Install, prepare and spawn one server unless it runs; returns (proc, process, started)."""
    svc.install()
    proc = svc.proc(runnable=False)
    running = procs.read_pid(proc)
    if running is not None:
        log.info("already running", service=svc.name, pid=running.pid)
        return proc, running, False
    if proc.pidfile.exists():
        log.warning("restarting a server that died", service=svc.name, log=str(proc.log))
    svc.prepare()
    proc = svc.proc()
    p = procs.spawn(proc)
    log.info("started", service=svc.name, pid=p.pid, ports=proc.ports, log=str(proc.log))
    return proc, p, True


def _ready_one(svc: Service, proc: procs.Proc, p: psutil.Process, started: bool) -> None:
    t0 = time.monotonic()
    procs.wait_healthy(proc, svc.healthy, svc.health_timeout, p)
    svc.seed()
    if started:
        log.info("healthy", service=svc.name, seconds=round(time.monotonic() - t0, 1))


@contextmanager
def _exclusive(s: Settings):
    """One `lake up`/`down`/`clean` at a time per state dir (pid files are not atomic)."""
    s.run_dir.mkdir(parents=True, exist_ok=True)
    with open(s.run_dir / ".lock", "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("waiting for another lake up/down on this state dir")
            fcntl.flock(f, fcntl.LOCK_EX)
        yield


def up(s: Settings, names: Iterable[str] = ()) -> list[str]:
    """Start what is not running; returns the names started. Safe to run twice.

    Servers start in waves; within a wave they install, prepare (migrations...), start
    and become healthy concurrently, so the slowest one sets the pace, not the sum.
    """
    for d in (s.run_dir, s.log_dir, s.data_dir):
        d.mkdir(parents=True, exist_ok=True)
    with _exclusive(s):
        # The jobs' connector jars, listed where lake.spark reads them (cached: a no-op once resolved).
        installers.spark_jars(s)
        return _up(s, names)


def _up(s: Settings, names: Iterable[str]) -> list[str]:
    started: list[str] = []
    for _, group in groupby(sorted(select(s, names), key=lambda x: x.wave), key=lambda x: x.wave):
        wave = list(group)
        with ThreadPoolExecutor(max_workers=len(wave)) as pool:
            launched = list(pool.map(_start_one, wave))
            started += [svc.name for svc, (_, _, new) in zip(wave, launched) if new]
            list(pool.map(lambda a: _ready_one(*a), [(svc, *x) for svc, x in zip(wave, launched)]))
    return started


def down(s: Settings, names: Iterable[str] = ()) -> list[str]:
    """Stop servers in reverse start order; returns the names that were running."""
    stopped = []
    with _exclusive(s):
        for svc in reversed(select(s, names)):
            if procs.stop(svc.proc(runnable=False)):
                log.info("stopped", service=svc.name)
                stopped.append(svc.name)
    return stopped


def clean(s: Settings) -> list[Path]:
    """Stop everything and delete the stack's state (data, logs, app metadata), including a
    PostgreSQL cluster kept outside the checkout; the venvs, the download cache and the tooling's own
    stacks (.lake/stacks/: `eval "$(lake env test)"; lake clean` cleans one) stay."""
    down(s)
    targets = [p for p in s.state_dir.glob("*") if p.name not in ("venvs", "stacks")]
    pg = Postgres("postgres", s).base
    if not pg.is_relative_to(s.state_dir):  # the /var/lib/lake/<key> fallback
        targets.append(pg.parent)
    for path in targets:
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    return targets


def _pss(p: psutil.Process) -> int:
    """Proportional set size (shared pages split fairly), else RSS: sums stay honest."""
    try:
        try:
            return p.memory_full_info().pss
        except (psutil.AccessDenied, AttributeError):
            return p.memory_info().rss
    except psutil.NoSuchProcess:
        return 0


def status(s: Settings, names: Iterable[str] = ()) -> list[ServiceStatus]:
    rows = []
    for svc in select(s, names):
        proc = svc.proc(runnable=False)
        p = procs.read_pid(proc)
        if p is None:
            # A pid file without its process: the server died (crashed or was killed).
            state = "unhealthy" if proc.pidfile.exists() else "stopped"
            rows.append(
                ServiceStatus(
                    svc.name,
                    state,
                    None,
                    proc.ports,
                    0.0,
                    0.0,
                    proc.log,
                    "exited; `lake up` restarts it" if state == "unhealthy" else "",
                )
            )
            continue
        rss = sum(_pss(q) for q in [p, *p.children(recursive=True)])
        state = "healthy" if _healthy(svc) else "unhealthy"
        rows.append(
            ServiceStatus(
                svc.name,
                state,
                p.pid,
                proc.ports,
                rss / 2**20,
                time.time() - p.create_time(),
                proc.log,
                "" if state == "healthy" else "running but failing its health check",
            )
        )
    return rows
