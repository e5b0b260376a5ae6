"""What every server of the local stack shares: the ``Service`` base class (argv, probes,
set-up steps) and the helpers for its secrets and private files.

``infra.services`` (the data servers) and ``infra.apps`` (the web apps) subclass it;
``infra.stack`` lists them all and runs them.
"""

from __future__ import annotations

import os
from pathlib import Path

from infra.procs import Proc
from lake.config import Settings


class Service:
    """Base: subclasses fill in the argv and the probes."""

    wave = 1  # start order: every service of a wave is healthy before the next wave starts
    health_timeout = 60.0

    def __init__(self, name: str, s: Settings):
        self.name, self.s = name, s

    @property
    def ports(self) -> list[int]:
        raise NotImplementedError

    def dir(self, kind: str) -> Path:
        return self.s.state_dir / kind / self.name

    def proc(self, runnable: bool = True) -> Proc:
        """How to run the server; ``runnable=False`` gives just its pid file, log and ports,
        without resolving binaries (status and down must work even when an install fails)."""
        return Proc(
            name=self.name,
            argv=self.argv() if runnable else [],
            ports=self.ports,
            log=self.s.log_dir / f"{self.name}.log",
            pidfile=self.s.run_dir / f"{self.name}.pid",
            env=self.env() if runnable else {},
            **self.proc_options(),
        )

    def argv(self) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return {}

    def proc_options(self) -> dict:
        return {}

    def install(self) -> None:
        """Fetch or build what this service runs (cached)."""

    def prepare(self) -> None:
        """One-time set-up before the first start (config files, data dirs)."""

    def healthy(self) -> bool:
        raise NotImplementedError

    def seed(self) -> None:
        """Idempotent set-up that needs the server running."""


def secret_value(s: Settings, field: str) -> str:
    """The plain value of secret setting ``field`` (for a server's config or environment, never a log)."""
    return getattr(s, field).get_secret_value()


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read, from the first byte (no umask window)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
