"""The two web apps of the stack, each in its own venv: Airflow 3 (api-server,
scheduler, dag-processor, triggerer) and Superset (gunicorn). Their metadata lives in
the stack's PostgreSQL; their admin logins come from Settings (refused outside local
mode when left at the local default).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import subprocess
import threading
from pathlib import Path

import httpx
from rich.console import Console

from infra.base import Service, secret_value, write_private
from infra.procs import StackError
from infra.superset_assets import IMPORTER, build_zip, content_hash
from lake.config import LOCAL_SECRETS, REPO_ROOT, Settings

# The venvs belong to the checkout (infra/bootstrap.sh), whatever LAKE_STATE_DIR says.
VENVS = REPO_ROOT / ".lake" / "venvs"


def bootstrap_venv(name: str) -> Path:
    """The app's venv under .lake/venvs, synced from requirements/<name>.lock."""
    res = subprocess.run([str(REPO_ROOT / "infra" / "bootstrap.sh"), name], capture_output=True, text=True)
    if res.returncode:
        raise StackError(f"building the {name} venv failed:\n{(res.stdout + res.stderr)[-3000:]}")
    return VENVS / name


def _pg_url(s: Settings, db: str) -> str:
    return (
        f"postgresql+psycopg2://{s.postgres_user}:{secret_value(s, 'postgres_password')}@{s.postgres_host}:"
        f"{s.postgres_port}/{db}"
    )


def _installed(venv: Path, dist: str) -> str:
    """Which version of ``dist`` the venv holds (its dist-info names): the key of one-time set-ups."""
    return str(sorted((venv / "lib").glob(f"python*/site-packages/{dist}-*.dist-info")))


def _once(stamp: Path, key: str, argv: list[str], env: dict[str, str], what: str, stdin: str | None = None) -> None:
    """Run a set-up command once per ``key`` (e.g. an app version), recorded in ``stamp``."""
    if stamp.exists() and stamp.read_text() == key:
        return
    res = subprocess.run(argv, env=env, capture_output=True, text=True, input=stdin)
    if res.returncode:
        raise StackError(f"{what} failed:\n{(res.stdout + res.stderr)[-3000:]}")
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text(key)


_KEYS_LOCK = threading.Lock()


def ui_password(s: Settings, app: str) -> str:
    """The admin password of a web UI (``app`` is "airflow" or "superset").

    ``LAKE_<APP>_PASSWORD`` when set; otherwise (local mode only: other modes refuse the
    default) one generated for this state dir on first use, kept in
    ``.lake/secrets/<app>_admin_password`` (mode 0600) and printed once, on the terminal
    only: never into a log file.
    """
    value = secret_value(s, f"{app}_password")
    if value not in LOCAL_SECRETS:
        return value
    path = s.state_dir / "secrets" / f"{app}_admin_password"
    with _KEYS_LOCK:
        if not path.exists():
            write_private(path, secrets.token_urlsafe(15))
            Console(stderr=True).print(
                f"[bold]{app.capitalize()} login[/bold]: user [cyan]{getattr(s, f'{app}_user')}[/cyan], password "
                f"[cyan]{path.read_text()}[/cyan] (shown once; kept in {path})",
                highlight=False,
            )
        return path.read_text()


class Airflow(Service):
    """One Airflow 3 component; all share the env built here."""

    wave = 2
    health_timeout = 180.0
    component = "api-server"

    @property
    def ports(self) -> list[int]:
        s = self.s
        by_component = {
            "api-server": [s.airflow_port],
            "scheduler": [s.airflow_worker_log_port],  # the log server of the tasks it runs
            "triggerer": [s.airflow_triggerer_log_port],
        }
        return by_component.get(self.component, [])

    @property
    def venv(self) -> Path:
        return VENVS / "airflow"

    @property
    def home(self) -> Path:
        return self.s.state_dir / "airflow"

    def install(self) -> None:
        bootstrap_venv("airflow")

    def _keys(self) -> dict[str, str]:
        # Generated once per state dir: shared by every component, never a fixed default.
        path = self.s.run_dir / "airflow-keys.json"
        with _KEYS_LOCK:  # components of one wave start from parallel threads
            return self._keys_locked(path)

    def _keys_locked(self, path: Path) -> dict[str, str]:
        if not path.exists():
            write_private(
                path,
                json.dumps(
                    {
                        "jwt": secrets.token_urlsafe(64),
                        "secret": secrets.token_urlsafe(32),
                        "fernet": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
                    }
                ),
            )
        return json.loads(path.read_text())

    def env(self) -> dict[str, str]:
        s, k = self.s, self._keys()
        base = s.airflow_url
        return {
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": str(s.airflow_parallelism),
            # Live by default: the pipeline runs by itself once parsed; a DAG a user paused stays paused.
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": str(not s.dags_live),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",  # new DAG files show up within 30 s
            "AIRFLOW__CORE__FERNET_KEY": k["fernet"],
            "AIRFLOW__CORE__AUTH_MANAGER": (
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
            ),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{s.airflow_user}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.home / "passwords.json"),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base}/execution/",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": _pg_url(s, "airflow"),
            "AIRFLOW__API__HOST": s.host,
            "AIRFLOW__API__PORT": str(s.airflow_port),
            "AIRFLOW__API__BASE_URL": base,
            "AIRFLOW__API__SECRET_KEY": k["secret"],
            "AIRFLOW__API_AUTH__JWT_SECRET": k["jwt"],
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.s.log_dir / "airflow"),
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(s.airflow_worker_log_port),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(s.airflow_triggerer_log_port),
            # Airflow tasks run Lake code with the core venv's interpreter (docs/architecture.md, "The local stack").
            "LAKE_CORE_PYTHON": str(VENVS / "core" / "bin" / "python"),
            "LAKE_REPO": str(REPO_ROOT),
            # What the DAG files schedule by (they import no Lake code: dags/_lake.py reads these).
            "LAKE_INGEST_INTERVAL": str(s.ingest_interval),
            "LAKE_RETRAIN_MIN_NEW": str(s.retrain_min_new),
            "LAKE_RETRAIN_MINUTES": str(s.retrain_minutes),
            "LAKE_RETRAIN_STEPS": str(s.retrain_steps),
            "LAKE_RETRAIN_TOLERANCE": str(s.retrain_tolerance),
            # A task waits for a writer typed by hand meanwhile (`lake layers run`) instead of failing red.
            "LAKE_LOCK_WAIT_SECONDS": str(s.task_lock_wait_seconds),
            "PATH": f"{self.venv / 'bin'}:/usr/local/bin:/usr/bin:/bin",
        }

    def prepare(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        write_private(self.home / "passwords.json", json.dumps({self.s.airflow_user: ui_password(self.s, "airflow")}))
        env = {**os.environ, **self.env()}
        _once(
            self.home / ".migrated",
            _installed(self.venv, "apache_airflow"),
            [str(self.venv / "bin" / "airflow"), "db", "migrate"],
            env,
            "airflow db migrate",
        )

    def argv(self) -> list[str]:
        return [str(self.venv / "bin" / "airflow"), self.component]

    def _health(self) -> dict:
        return httpx.get(f"{self.s.airflow_url}/api/v2/monitor/health", timeout=3).json()

    def healthy(self) -> bool:
        h = self._health()
        if self.component == "api-server":
            return h["metadatabase"]["status"] == "healthy"
        key = self.component.replace("-", "_")
        return h[key]["status"] == "healthy"


class AirflowScheduler(Airflow):
    wave = 3
    component = "scheduler"


class AirflowDagProcessor(Airflow):
    wave = 3
    component = "dag-processor"


class AirflowTriggerer(Airflow):
    wave = 3
    component = "triggerer"


class Superset(Service):
    """Superset under gunicorn, with Trino's `lake` catalog registered as a database and Lake's
    dashboards (superset/assets) imported."""

    wave = 2
    health_timeout = 180.0

    @property
    def ports(self) -> list[int]:
        return [self.s.superset_port]

    @property
    def venv(self) -> Path:
        return VENVS / "superset"

    def install(self) -> None:
        bootstrap_venv("superset")

    def env(self) -> dict[str, str]:
        s = self.s
        return {
            "SUPERSET_CONFIG_PATH": str(REPO_ROOT / "superset" / "superset_config.py"),
            "SUPERSET_HOME": str(s.state_dir / "superset"),
            "SUPERSET_SECRET_KEY": secret_value(s, "superset_secret_key"),
            "LAKE_SUPERSET_DATABASE_URI": _pg_url(s, "superset"),
            "FLASK_APP": "superset.app:create_app()",
            "PATH": f"{self.venv / 'bin'}:/usr/local/bin:/usr/bin:/bin",
        }

    def _cli(self, *args: str) -> list[str]:
        return [str(self.venv / "bin" / "superset"), *args]

    def prepare(self) -> None:
        s, env = self.s, {**os.environ, **self.env()}
        home = s.state_dir / "superset"
        version = _installed(self.venv, "apache_superset")
        _once(home / ".upgraded", version, self._cli("db", "upgrade"), env, "superset db upgrade")
        password = ui_password(s, "superset")
        # The password goes to the prompt on stdin, never into argv (which `ps` shows).
        _once(
            home / ".admin",
            s.superset_user,
            self._cli(
                "fab",
                "create-admin",
                "--username",
                s.superset_user,
                "--firstname",
                "Lake",
                "--lastname",
                "Admin",
                "--email",
                f"{s.superset_user}@lake.local",
            ),
            env,
            "superset fab create-admin",
            stdin=f"{password}\n{password}\n",
        )
        # A changed password (or one generated after the admin was made) is set again; the key is its hash.
        _once(
            home / ".admin-password",
            f"{s.superset_user}:{hashlib.sha256(password.encode()).hexdigest()}",
            self._cli("fab", "reset-password", "--username", s.superset_user),
            env,
            "superset fab reset-password",
            stdin=f"{password}\n{password}\n",
        )
        _once(home / ".init", version, self._cli("init"), env, "superset init")
        # The Trino database; re-registering the same URI is a no-op.
        _once(
            home / ".trino",
            f"{s.trino_host}:{s.trino_port}",
            self._cli("set-database-uri", "--database_name", "Lake (Trino)", "--uri", self.trino_uri),
            env,
            "superset set-database-uri",
        )
        self.import_dashboards()

    @property
    def trino_uri(self) -> str:
        s = self.s
        return f"trino://{s.trino_user}@{s.trino_host}:{s.trino_port}/{s.iceberg_catalog}"

    def import_dashboards(self, force: bool = False) -> Path:
        """Import Lake's dashboards (superset/assets; infra/superset_assets.py) once per content
        hash, overwriting what changed; ``force``: again even if unchanged. Their charts read
        the gold views, which need not exist yet. Returns the zip imported."""
        s, home = self.s, self.s.state_dir / "superset"
        bundle = build_zip(home / "lake_dashboards.zip")
        stamp = home / ".dashboards"
        if force:
            stamp.unlink(missing_ok=True)
        _once(
            stamp,
            f"{content_hash()} {s.superset_user} {self.trino_uri}",
            [
                str(self.venv / "bin" / "python"),
                str(IMPORTER),
                str(bundle),
                "--user",
                s.superset_user,
                "--database-uri",
                self.trino_uri,
            ],
            {**os.environ, **self.env()},
            "superset dashboard import",
        )
        return bundle

    def argv(self) -> list[str]:
        return [
            str(self.venv / "bin" / "gunicorn"),
            "-w",
            "2",
            "-k",
            "gthread",
            "--threads",
            "4",
            "--timeout",
            "120",
            "-b",
            f"{self.s.host}:{self.s.superset_port}",
            "--access-logfile",
            "-",
            "superset.app:create_app()",
        ]

    def healthy(self) -> bool:
        return httpx.get(f"http://{self.s.host}:{self.s.superset_port}/health", timeout=3).text.strip() == "OK"
