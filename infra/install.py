"""Idempotent installers for the local stack, cached under ``~/.cache/lake``.

Each function returns where its thing lives and does nothing when it is already
there, so a second ``lake up`` starts in seconds. Run them all with:

    lake install
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import httpx
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

from infra import versions as V
from infra.procs import StackError
from lake import java
from lake.config import REPO_ROOT, Settings
from lake.spark import jars_manifest

JARS = REPO_ROOT / "infra" / "jars"


def _run(argv: list[str], what: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> None:
    res = subprocess.run(argv, env={**os.environ, **(env or {})}, cwd=cwd, capture_output=True, text=True)
    if res.returncode != 0:
        out = (res.stdout + res.stderr).strip().splitlines()[-25:]
        raise StackError(f"{what} failed ({' '.join(argv[:3])} ... exit {res.returncode}):\n" + "\n".join(out))


@retry(
    retry=retry_if_exception_type(httpx.TransportError),
    stop=stop_after_attempt(4),
    wait=wait_exponential(multiplier=2, max=30),
    reraise=True,
)
def _download_once(url: str, part: Path) -> None:
    # Resume a partial download where the server allows it.
    have = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    with httpx.stream("GET", url, headers=headers, follow_redirects=True, timeout=60) as r:
        if r.status_code == 416:  # already complete
            return
        if r.status_code not in (200, 206):
            raise StackError(f"download of {url} failed: HTTP {r.status_code}")
        if r.status_code == 200:
            have = 0
        total = int(r.headers.get("content-length", 0)) + have
        with (
            open(part, "ab" if have else "wb") as f,
            Progress(
                "[progress.description]{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn()
            ) as bar,
        ):
            task = bar.add_task(f"download {url.rsplit('/', 1)[-1]}", total=total or None, completed=have)
            for chunk in r.iter_bytes(1 << 20):
                f.write(chunk)
                bar.advance(task, len(chunk))


def download(url: str, dest: Path) -> Path:
    """Fetch ``url`` to ``dest`` once (atomic rename; resumes a partial file)."""
    if dest.exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    try:
        _download_once(url, part)
    except httpx.HTTPError as e:
        raise StackError(f"download of {url} failed: {e}. Partial file kept at {part}; re-run to resume.") from e
    part.rename(dest)
    return dest


def java_home(min_major: int, max_major: int = 99) -> Path:
    """The oldest JDK in [min_major, max_major] (``lake.java.java_home``); StackError when there is none."""
    try:
        return java.java_home(min_major, max_major)
    except java.JdkNotFound as e:
        raise StackError(str(e)) from e


def _maven_copy(pom: Path, out: Path, s: Settings) -> None:
    if shutil.which("mvn") is None:
        raise StackError("Maven (mvn) is needed to fetch jars: apt-get install -y maven")
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    _run(
        [
            "mvn",
            "-q",
            "-B",
            "-s",
            str(JARS / "settings.xml"),
            "-f",
            str(pom),
            f"-Dmaven.repo.local={s.cache_dir / 'm2'}",
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={tmp}",
        ],
        f"resolving {pom.parent.name} jars from Maven Central",
    )
    tmp.rename(out)


def kafka_home(s: Settings) -> Path:
    """Kafka broker jars (KRaft), from Maven Central."""
    home = s.cache_dir / f"kafka-{V.KAFKA}"
    if not (home / "libs").exists():
        home.mkdir(parents=True, exist_ok=True)
        _maven_copy(JARS / "kafka" / "pom.xml", home / "libs", s)
    return home


def spark_jars(s: Settings) -> list[Path]:
    """Connector jars for Spark that the pyspark wheel lacks (dropping ones it has), listed in
    ``lake.spark.jars_manifest`` for the Spark session factory to read."""
    out = s.cache_dir / f"spark-jars-{V.SPARK}-iceberg-{V.ICEBERG}-r{V.SPARK_JARS_REV}"
    if not out.exists():
        _maven_copy(JARS / "spark" / "pom.xml", out, s)
    import pyspark

    have = {_artifact(p.name) for p in (Path(pyspark.__file__).parent / "jars").glob("*.jar")}
    jars = sorted(p for p in out.glob("*.jar") if _artifact(p.name) not in have)
    listing = "".join(f"{p}\n" for p in jars)
    manifest = jars_manifest(s)
    if not manifest.exists() or manifest.read_text() != listing:
        manifest.parent.mkdir(parents=True, exist_ok=True)
        tmp = manifest.with_name(f".{manifest.name}.{os.getpid()}")
        tmp.write_text(listing)
        tmp.replace(manifest)  # atomic: a job starting now reads the old list or the new one, never half
    return jars


def _artifact(jar: str) -> str:
    """'hadoop-client-api-3.4.2.jar' -> 'hadoop-client-api'."""
    return re.sub(r"-\d[^-]*\.jar$", "", jar)


def trino_home(s: Settings) -> Path:
    """Trino server from its Maven tarball, keeping only the plugins Lake uses."""
    home = s.cache_dir / f"trino-server-{V.TRINO}"
    if (home / ".lake-ok").exists():
        return home
    url = f"{V.MAVEN_CENTRAL}/io/trino/trino-server/{V.TRINO}/trino-server-{V.TRINO}.tar.gz"
    tgz = download(url, s.cache_dir / "downloads" / f"trino-server-{V.TRINO}.tar.gz")
    tmp = s.cache_dir / f".trino-extract-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    with tarfile.open(tgz) as tar:  # plugins hard-link each other's jars: extract all, then prune
        tar.extractall(tmp, filter="data")
    extracted = tmp / f"trino-server-{V.TRINO}"
    for plugin in (extracted / "plugin").iterdir():
        if plugin.name not in V.TRINO_PLUGINS:
            shutil.rmtree(plugin)
    shutil.rmtree(home, ignore_errors=True)
    extracted.rename(home)
    shutil.rmtree(tmp, ignore_errors=True)
    (home / ".lake-ok").touch()
    return home


def _go_env(s: Settings) -> dict[str, str]:
    if shutil.which("go") is None:
        raise StackError("Go is needed to build MinIO and FerretDB: apt-get install -y golang (1.24+)")
    return {
        "GOPATH": str(s.cache_dir / "go"),
        "GOCACHE": str(s.cache_dir / "gocache"),
        "GOFLAGS": "-modcacherw -trimpath",
        "CGO_ENABLED": "0",
    }


def minio_bin(s: Settings) -> Path:
    """MinIO server built with ``go install`` at a pinned version."""
    dest = s.cache_dir / "bin" / f"minio-{V.MINIO}"
    if not dest.exists():
        gobin = s.cache_dir / "gobin-minio"
        _run(
            ["go", "install", f"github.com/minio/minio@{V.MINIO}"],
            "building MinIO with go install",
            env={**_go_env(s), "GOBIN": str(gobin)},
        )
        dest.parent.mkdir(parents=True, exist_ok=True)
        (gobin / "minio").rename(dest)
    return dest


def ferretdb_bin(s: Settings) -> Path:
    """Our FerretDB embedding (infra/ferretdb), rebuilt whenever its sources change."""
    src = REPO_ROOT / "infra" / "ferretdb"
    digest = hashlib.sha256()
    for f in sorted(src.glob("*")):
        if f.suffix in {".go", ".mod", ".sum"} and not f.name.endswith("_test.go"):
            digest.update(f.name.encode() + f.read_bytes())
    dest = s.cache_dir / "bin" / f"lake-ferretdb-{digest.hexdigest()[:12]}"
    if not dest.exists():
        dest.parent.mkdir(parents=True, exist_ok=True)
        _run(["go", "build", "-o", str(dest), "."], "building lake-ferretdb", env=_go_env(s), cwd=src)
    return dest


def compose_cmd(s: Settings) -> list[str]:
    """`docker compose`, or a compose CLI built from the Go module proxy when the docker
    client has no compose plugin (this machine has no engine; `config` needs none)."""
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    dest = s.cache_dir / "bin" / f"docker-compose-{V.COMPOSE}"
    if not dest.exists():
        env = _go_env(s)
        res = subprocess.run(
            ["go", "mod", "download", "-json", f"github.com/docker/compose/v2@{V.COMPOSE}"],
            capture_output=True,
            text=True,
            env={**os.environ, **env},
        )
        if res.returncode:
            raise StackError(f"fetching docker compose {V.COMPOSE} failed:\n{res.stdout[-2000:]}{res.stderr[-2000:]}")
        src = Path(json.loads(res.stdout)["Dir"])
        # Built as its own main module: its go.mod has exclude directives that `go install` refuses.
        with tempfile.TemporaryDirectory() as tmp:
            shutil.copytree(src, Path(tmp) / "compose")
            _run(
                ["go", "build", "-o", str(dest), "./cmd"], "building docker compose", env=env, cwd=Path(tmp) / "compose"
            )
    return [str(dest)]


def postgres_bindir() -> Path:
    """PostgreSQL server binaries from Debian (installed with apt-get when missing)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"))
    if not found:
        if os.geteuid() != 0:
            raise StackError("PostgreSQL server missing: sudo apt-get install -y postgresql")
        _run(["apt-get", "update", "-q"], "apt-get update")
        _run(
            ["apt-get", "install", "-y", "-q", "postgresql"],
            "apt-get install postgresql",
            env={"DEBIAN_FRONTEND": "noninteractive"},
        )
        found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"))
    return found[-1].parent


def chromium_bin(s: Settings) -> Path:
    """Debian's Chromium for the browser tests (apt-get install chromium when missing).

    The .debs are kept under ``cache_dir/apt`` so the next fresh machine installs
    without downloading them again; Playwright drives this binary and never
    downloads a browser of its own.
    """
    exe = Path("/usr/bin/chromium")
    if exe.exists():
        return exe
    if os.geteuid() != 0:
        raise StackError("Chromium missing: sudo apt-get install -y chromium")
    archives = s.cache_dir / "apt"
    (archives / "partial").mkdir(parents=True, exist_ok=True)
    _run(["apt-get", "update", "-q"], "apt-get update")
    _run(
        [
            "apt-get",
            "install",
            "-y",
            "-q",
            "--no-install-recommends",
            "-o",
            f"Dir::Cache::archives={archives}",
            "chromium",
        ],
        "apt-get install chromium",
        env={"DEBIAN_FRONTEND": "noninteractive"},
    )
    if not exe.exists():
        raise StackError(f"apt-get installed chromium but {exe} is missing")
    return exe


def install_all(s: Settings) -> dict[str, Path]:
    """Everything `lake up` needs, in the order a fresh machine should fetch it."""
    return {
        "postgres": postgres_bindir(),
        "minio": minio_bin(s),
        "ferretdb": ferretdb_bin(s),
        "kafka": kafka_home(s),
        "trino": trino_home(s),
        "spark-jars": spark_jars(s)[0].parent,
    }
