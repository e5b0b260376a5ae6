"""Find a JDK on this machine: ``$JAVA_HOME`` first, then every JDK under /usr/lib/jvm.

    from lake.java import java_home
    java_home(17, 21)     # Spark 4.1 runs on 17 or 21
    java_home(24)         # Trino 476 needs 24+

A pure lookup (nothing is installed or downloaded), so the Spark session factory can use it;
``infra.install`` uses the same one for the stack's servers.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

JVM_DIR = Path("/usr/lib/jvm")


class JdkNotFound(RuntimeError):
    """No JDK of the wanted major versions; the message says how to install one."""


def java_major(home: Path) -> int | None:
    """The major version of the JDK at ``home`` (read from its ``release`` file), or None if it is none."""
    release = home / "release"
    if not ((home / "bin" / "java").exists() and release.exists()):
        return None
    m = re.search(r'JAVA_VERSION="(\d+)', release.read_text())
    return int(m.group(1)) if m else None


def java_home(min_major: int, max_major: int = 99) -> Path:
    """The oldest JDK in [min_major, max_major]: $JAVA_HOME or one in /usr/lib/jvm.

    Spark 4.1 wants 17 or 21, Trino 476 wants 24+: both live side by side here.
    """
    candidates = [Path(os.environ["JAVA_HOME"])] if os.environ.get("JAVA_HOME") else []
    candidates += sorted(JVM_DIR.glob("*"))
    found = [
        (major, home)
        for home in candidates
        if (major := java_major(home)) is not None and min_major <= major <= max_major
    ]
    if not found:
        raise JdkNotFound(
            f"no JDK {min_major}..{max_major} in $JAVA_HOME or {JVM_DIR}; "
            f"install one (apt-get install -y openjdk-17-jdk, or Temurin {min_major})."
        )
    return min(found, key=lambda x: x[0])[1]
