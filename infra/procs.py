"""A tiny process supervisor: pid files, logs, port checks, health waits.

Each server runs as its own session (process group) so that stopping it also stops
every child it spawned. The pid file stores the pid with its start time, so a reused
pid is never mistaken for our server.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil


class StackError(RuntimeError):
    """A failure the user can act on; the message says what to do."""


@dataclass
class Proc:
    """How to run one server process."""

    name: str
    argv: list[str]
    ports: list[int]
    log: Path
    pidfile: Path
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    user: str | None = None  # run as this user (PostgreSQL refuses root)
    stop_signal: int = signal.SIGTERM
    stop_timeout: float = 30.0


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    with socket.socket() as s:
        s.settimeout(timeout)
        return s.connect_ex((host, port)) == 0


def port_owner(port: int) -> psutil.Process | None:
    """The process listening on ``port``, if we may see it."""
    try:
        conns = psutil.net_connections(kind="inet")
    except psutil.AccessDenied:
        return None
    for c in conns:
        if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid:
            try:
                return psutil.Process(c.pid)
            except psutil.NoSuchProcess:
                return None
    return None


def read_pid(proc: Proc) -> psutil.Process | None:
    """The live process recorded in the pid file, or None.

    A pid file whose process is gone stays (the server died: `lake status` says so)
    until `lake up` restarts it or `lake down` clears it.
    """
    try:
        rec = json.loads(proc.pidfile.read_text())
        p = psutil.Process(rec["pid"])
        if abs(p.create_time() - rec["started"]) < 1.0 and p.status() != psutil.STATUS_ZOMBIE:
            return p
    except (FileNotFoundError, ValueError, KeyError, psutil.NoSuchProcess, psutil.AccessDenied):
        pass
    return None


def check_ports_free(proc: Proc) -> None:
    for port in proc.ports:
        if port_open(port):
            owner = port_owner(port)
            who = f"pid {owner.pid} ({owner.name()})" if owner else "another process"
            raise StackError(
                f"{proc.name}: port {port} is already taken by {who}, which Lake did not start. "
                f"Stop it, or move {proc.name} to another port with its LAKE_*_PORT setting."
            )


def spawn(proc: Proc) -> psutil.Process:
    """Start ``proc`` detached, in its own session, logging to its log file."""
    check_ports_free(proc)
    proc.log.parent.mkdir(parents=True, exist_ok=True)
    proc.pidfile.parent.mkdir(parents=True, exist_ok=True)
    with open(proc.log, "ab") as log:
        log.write(f"\n--- lake: starting {proc.name} at {time.strftime('%FT%T')} ---\n".encode())
        log.flush()
        try:
            popen = subprocess.Popen(
                proc.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=proc.cwd,
                env={**os.environ, **proc.env},
                start_new_session=True,
                user=proc.user,
            )
        except FileNotFoundError as e:
            raise StackError(f"{proc.name}: cannot run {proc.argv[0]}: {e}. Run `lake install`.") from e
    p = psutil.Process(popen.pid)
    proc.pidfile.write_text(json.dumps({"pid": p.pid, "started": p.create_time(), "argv": proc.argv}))
    return p


def wait_healthy(
    proc: Proc, healthy: Callable[[], bool], timeout: float, process: psutil.Process | None = None
) -> None:
    """Poll ``healthy`` until it is true; fail early if the process dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and (not process.is_running() or process.status() == psutil.STATUS_ZOMBIE):
            raise StackError(f"{proc.name} exited during start-up; see `lake logs {proc.name}`:\n{tail(proc.log)}")
        try:
            if healthy():
                return
        except Exception:  # a health probe may raise until the server is up
            pass
        time.sleep(0.5)
    raise StackError(f"{proc.name} not healthy after {timeout:.0f}s; see `lake logs {proc.name}`:\n{tail(proc.log)}")


def stop(proc: Proc) -> bool:
    """Stop the process group of ``proc``; True if something was running."""
    p = read_pid(proc)
    if p is None:
        # The leader is gone, but workers it forked (uvicorn, gunicorn, Airflow) may live on
        # in its process group, holding the ports: end them too.
        orphans = _group_survivors(proc)
        _kill(orphans)
        psutil.wait_procs(orphans, timeout=5)
        proc.pidfile.unlink(missing_ok=True)
        return bool(orphans)
    try:
        pgid = os.getpgid(p.pid)
    except ProcessLookupError:
        pgid = None
    group = [p, *p.children(recursive=True)]
    try:
        if pgid == p.pid:
            os.killpg(pgid, proc.stop_signal)
        else:
            p.send_signal(proc.stop_signal)
    except (ProcessLookupError, psutil.NoSuchProcess):
        pass
    deadline = time.monotonic() + proc.stop_timeout
    while any(_alive(q) for q in group) and time.monotonic() < deadline:
        time.sleep(0.2)
    leftover = [q for q in group if _alive(q)]
    if leftover and pgid == p.pid:  # did not stop in time: no process is left behind
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    _kill([q for q in leftover if _alive(q)])
    proc.pidfile.unlink(missing_ok=True)
    return True


def _group_survivors(proc: Proc) -> list[psutil.Process]:
    """Live processes of the recorded (dead) leader's group, started after it."""
    try:
        rec = json.loads(proc.pidfile.read_text())
    except (FileNotFoundError, ValueError):
        return []
    found = []
    for q in psutil.process_iter(["pid", "create_time"]):
        try:
            if q.pid != os.getpid() and os.getpgid(q.pid) == rec["pid"] and q.info["create_time"] >= rec["started"] - 1:
                found.append(q)
        except (ProcessLookupError, psutil.NoSuchProcess, KeyError):
            pass
    return [q for q in found if _alive(q)]


def _kill(processes: list[psutil.Process]) -> None:
    for q in processes:
        try:
            q.kill()
        except psutil.NoSuchProcess:
            pass


def _alive(p: psutil.Process) -> bool:
    """Running and not a zombie (a dead child waiting for its parent to reap it)."""
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def tail(path: Path, lines: int = 20) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            return "\n".join(f.read().decode(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log yet)"
