"""infra/procs.py on plain processes: spawn, pid files, port checks, stop."""

import socket
import sys

import psutil
import pytest

from infra import procs
from infra.procs import Proc, StackError


def _proc(tmp_path, argv, ports=()):
    return Proc(name="sleeper", argv=argv, ports=list(ports), log=tmp_path / "s.log", pidfile=tmp_path / "s.pid")


def test_spawn_stop_leaves_no_process(tmp_path):
    # A parent that forks a child: stopping must take the whole group down.
    code = "import subprocess,time; subprocess.Popen(['sleep','300']); time.sleep(300)"
    proc = _proc(tmp_path, [sys.executable, "-c", code])
    p = procs.spawn(proc)
    procs.wait_healthy(proc, lambda: len(p.children()) == 1, timeout=10, process=p)
    child = p.children()[0]
    assert procs.read_pid(proc).pid == p.pid
    assert procs.stop(proc) is True
    assert not psutil.pid_exists(p.pid) or p.status() == psutil.STATUS_ZOMBIE
    assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE
    assert not proc.pidfile.exists()
    assert procs.stop(proc) is False  # second stop is harmless


def test_stale_pidfile_is_ignored(tmp_path):
    proc = _proc(tmp_path, ["true"])
    proc.pidfile.write_text('{"pid": 1, "started": 0.0, "argv": []}')  # pid 1 started long before
    assert procs.read_pid(proc) is None
    assert procs.stop(proc) is False  # nothing to stop; the stale file is cleared
    assert not proc.pidfile.exists()


def test_port_taken_by_a_stranger_is_a_clear_error(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        proc = _proc(tmp_path, ["sleep", "5"], ports=[port])
        with pytest.raises(StackError, match=f"port {port} is already taken by pid"):
            procs.spawn(proc)


def test_process_dying_at_start_shows_its_log(tmp_path):
    proc = _proc(tmp_path, [sys.executable, "-c", "print('bad config: nope'); raise SystemExit(3)"])
    p = procs.spawn(proc)
    with pytest.raises(StackError, match="bad config: nope"):
        procs.wait_healthy(proc, lambda: False, timeout=20, process=p)
