"""lake.locks on the real PostgreSQL: one writer per name, and a lock that outlives a killed driver's tree."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

from lake.locks import AlreadyRunning, acquire, acquire_for_tree, single_writer

pytestmark = pytest.mark.integration

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# A driver that takes the lock, starts two sleeping children (stand-ins for a JVM), watches the
# first or neither, prints their pids and then sleeps until it is killed.
DRIVER = textwrap.dedent(
    """
    import subprocess, sys, time
    from lake.locks import acquire_for_tree

    lock = acquire_for_tree(sys.argv[1])
    kids = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"]) for _ in range(int(sys.argv[2]))]
    if sys.argv[3] == "watch":
        for k in kids:
            lock.watch(k.pid)
    else:
        time.sleep(1)  # the holder follows new children on its own, every POLL_SECONDS
    print(*[k.pid for k in kids], flush=True)
    time.sleep(120)
    """
)


def free(name: str) -> bool:
    try:
        acquire(name).close()
        return True
    except AlreadyRunning:
        return False


def wait_free(name: str, within: float) -> float:
    """Seconds until ``name`` can be taken; fails after ``within``."""
    t0 = time.monotonic()
    while not free(name):
        assert time.monotonic() - t0 < within, f"{name} still held {within}s after its tree exited"
        time.sleep(0.05)
    return time.monotonic() - t0


def kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        psutil.Process(pid).wait(10)  # reaped by us, or a zombie of whoever adopted it: gone either way
    except (psutil.NoSuchProcess, psutil.TimeoutExpired):
        pass


def start_driver(name: str, children: int, how: str) -> tuple[subprocess.Popen, list[int]]:
    env = {**os.environ, "PYTHONPATH": ROOT}
    drv = subprocess.Popen(
        [sys.executable, "-c", DRIVER, name, str(children), how], stdout=subprocess.PIPE, text=True, env=env
    )
    line = drv.stdout.readline()
    assert line, f"driver exited {drv.wait()} before taking the lock"
    return drv, [int(p) for p in line.split()]


def test_second_writer_is_refused_and_the_lock_frees(stack_up, unique):
    with single_writer(f"test:{unique}"):
        with pytest.raises(AlreadyRunning, match=unique):
            acquire(f"test:{unique}")
        acquire(f"test:other-{unique}").close()  # other names are independent
    acquire(f"test:{unique}").close()  # released with the block


def test_a_tree_lock_is_the_same_lock_and_a_normal_close_frees_it_at_once(stack_up, unique):
    name = f"test:{unique}"
    with single_writer(name):
        with pytest.raises(AlreadyRunning, match=unique):
            acquire_for_tree(name)
    lock = acquire_for_tree(name)
    holder = psutil.Process(lock._holder.pid)
    assert holder.ppid() == os.getpid() and os.getsid(holder.pid) == holder.pid  # a session of its own
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock.watch(sleeper.pid)
        with pytest.raises(AlreadyRunning, match=unique):
            acquire(name)
        with pytest.raises(AlreadyRunning, match=unique):
            acquire_for_tree(name)
        t0 = time.monotonic()
        lock.close()  # the driver says its writers are stopped: a live child does not keep the lock
        assert time.monotonic() - t0 < 2
        assert free(name) and not holder.is_running()
        lock.close()  # idempotent
    finally:
        kill(sleeper.pid)
    with acquire_for_tree(name):
        assert not free(name)
    assert free(name)


def test_a_waiting_writer_gets_the_lock_when_it_frees_and_a_bounded_wait_ends_clearly(stack_up, unique):
    """What a scheduled task does beside a run typed by hand (LAKE_LOCK_WAIT_SECONDS): it waits for the
    holder and goes on; once the wait is over it gives up with the reason, never before."""
    import threading

    name = f"test:{unique}"
    first = acquire(name)
    threading.Timer(1.5, first.close).start()
    t0 = time.monotonic()
    with single_writer(name, wait=30):
        waited = time.monotonic() - t0
        assert 1.0 < waited < 10
        t0 = time.monotonic()
        with pytest.raises(AlreadyRunning, match="still held after 3 s of waiting"):
            acquire_for_tree(name, wait=3)
        assert time.monotonic() - t0 >= 3
    assert free(name)


@pytest.mark.parametrize("how", ["watch", "follow"])
def test_a_killed_driver_keeps_the_lock_until_its_children_exit(stack_up, unique, how):
    """SIGKILL the driver: the lock stays while a child it started lives (watched, or followed
    unannounced) and frees right after the last one exits."""
    name = f"test:{unique}"
    drv, kids = start_driver(name, 2, how)
    try:
        assert not free(name)
        kill(drv.pid)
        drv.wait()
        time.sleep(1)  # a JVM's few seconds of shutdown: the lock must not be free meanwhile
        assert not free(name)
        kill(kids[0])
        time.sleep(0.5)
        assert not free(name)  # the other child still lives
        kill(kids[1])
        assert wait_free(name, within=3) < 2
    finally:
        for pid in [drv.pid, *kids]:
            kill(pid)
