"""`lake up` / `status` / `down` on a second, private stack (own state dir and ports),
so the shared stack the other tests use is never disturbed."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys

import psutil
import pytest

from infra.procs import port_open
from lake.config import REPO_ROOT

pytestmark = pytest.mark.integration
SERVICES = ["postgres", "minio", "ferretdb", "kafka"]


@pytest.fixture
def private_stack(unique):
    # Under .lake/stacks/ rather than pytest's 0700 tmp dir: PostgreSQL runs as its own user. Its ports are
    # the defaults + 30000: clear of the user's stack, the tests' (+10000) and the benchmarks' (+20000).
    state = REPO_ROOT / ".lake" / "stacks" / f"lifecycle-{unique}"
    env = {**os.environ, "LAKE_STATE_DIR": str(state), "LAKE_PORT_OFFSET": "30000"}
    state.mkdir(parents=True)

    def lake(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        res = subprocess.run(
            [sys.executable, "-m", "lake.cli", *args], env=env, capture_output=True, text=True, timeout=300
        )
        if check:
            assert res.returncode == 0, res.stdout + res.stderr
        return res

    yield lake
    res = lake("clean", "--yes", check=False)  # stops the servers, removes the state (also outside .lake)
    assert res.returncode == 0, res.stdout + res.stderr
    shutil.rmtree(state, ignore_errors=True)


def _status(lake) -> dict[str, dict]:
    return {r["name"]: r for r in json.loads(lake("status", *SERVICES, "--json", check=False).stdout)}


def test_up_twice_kill_restart_down(private_stack):
    lake = private_stack
    assert "started postgres, minio, ferretdb, kafka" in lake("up", *SERVICES).stdout
    assert "started nothing (all running)" in lake("up", *SERVICES).stdout
    before = _status(lake)
    assert {r["state"] for r in before.values()} == {"healthy"}

    # Kill one server hard: status shows it unhealthy (exit 1), `lake up` restarts only it.
    victim = psutil.Process(before["minio"]["pid"])
    victim.send_signal(signal.SIGKILL)
    victim.wait(10)
    res = lake("status", *SERVICES, check=False)
    assert res.returncode == 1
    st = _status(lake)
    assert st["minio"]["state"] == "unhealthy" and st["postgres"]["state"] == "healthy"
    assert "started minio" in lake("up", *SERVICES).stdout
    after = _status(lake)
    assert {r["state"] for r in after.values()} == {"healthy"}
    assert after["postgres"]["pid"] == before["postgres"]["pid"]

    # `lake down` leaves no process behind: every recorded pid and its children are gone.
    tree = []
    for r in after.values():
        p = psutil.Process(r["pid"])
        tree += [p, *p.children(recursive=True)]
    lake("down")
    gone, alive = psutil.wait_procs(tree, timeout=10)
    assert not [p for p in alive if p.status() != psutil.STATUS_ZOMBIE]
    assert not any(port_open(p) for p in (35432, 39000, 39001, 57017, 39092, 39093))
    assert {r["state"] for r in _status(lake).values()} == {"stopped"}


def test_port_taken_gives_a_clear_error(private_stack):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 39000))
        s.listen()
        res = private_stack("up", "minio", check=False)
    assert res.returncode == 1
    assert "port 39000 is already taken by pid" in res.stdout
