"""The servers of the local stack: how each is prepared, run, probed and seeded.

Ports, credentials and paths all come from ``lake.config.Settings``; nothing here
branches on the environment. ``lake up`` starts them in waves (PostgreSQL first, the
rest together), waits for each health check, then runs its seeding step (databases,
buckets, topics), all idempotent.
"""

from __future__ import annotations

import base64
import hashlib
import os
import pwd
import signal
import subprocess
import uuid
from functools import cached_property
from pathlib import Path

import httpx

from infra import install
from infra.base import Service, secret_value, write_private
from infra.procs import StackError
from lake.config import REPO_ROOT
from lake.tables import BUCKETS

DATABASES = ("ferretdb", "airflow", "superset")  # besides settings.postgres_db


class Postgres(Service):
    """PostgreSQL from Debian with its own cluster under .lake/ (not the system one)."""

    wave = 0  # FerretDB and the Iceberg catalog live in it

    @property
    def ports(self) -> list[int]:
        return [self.s.postgres_port]

    @property
    def user(self) -> str | None:
        # PostgreSQL refuses to run as root; Debian's package provides the postgres user.
        return "postgres" if os.geteuid() == 0 else None

    def dir(self, kind: str) -> Path:
        return self.base / kind

    @cached_property
    def base(self) -> Path:
        """Where the cluster lives: .lake/ if the postgres user can reach it, else /var/lib/lake.

        As root, PostgreSQL runs as `postgres`, which cannot enter a checkout under a
        0700 home directory; then its files go to a root-made folder keyed by checkout.
        """
        local = self.s.state_dir / "postgres"
        if self.user is None:
            return local
        self.s.state_dir.mkdir(parents=True, exist_ok=True)
        probe = subprocess.run(["test", "-x", str(self.s.state_dir)], user=self.user)
        if probe.returncode == 0:
            return local
        key = hashlib.sha256(str(self.s.state_dir.resolve()).encode()).hexdigest()[:12]
        return Path("/var/lib/lake") / key / "postgres"

    def _as_user(self, *paths: Path) -> None:
        if self.user:
            pw = pwd.getpwnam(self.user)
            for p in paths:
                p.mkdir(parents=True, exist_ok=True)
                os.chown(p, pw.pw_uid, pw.pw_gid)

    def install(self) -> None:
        self.bindir = install.postgres_bindir()

    def prepare(self) -> None:
        self.bindir = install.postgres_bindir()
        data, sock = self.dir("data"), self.dir("run")
        self.s.state_dir.mkdir(parents=True, exist_ok=True)
        self.base.mkdir(parents=True, exist_ok=True)
        self._as_user(self.base, data, sock)
        if (data / "PG_VERSION").exists():
            return
        pwfile = sock / "initdb.pw"
        write_private(pwfile, secret_value(self.s, "postgres_password"))
        self._as_user(sock)
        if self.user:
            os.chown(pwfile, pwd.getpwnam(self.user).pw_uid, -1)
        res = subprocess.run(
            [
                str(self.bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                self.s.postgres_user,
                f"--pwfile={pwfile}",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C",
            ],
            capture_output=True,
            text=True,
            user=self.user,
        )
        pwfile.unlink(missing_ok=True)
        if res.returncode:
            raise StackError(f"initdb failed (is {data} reachable by user {self.user}?):\n{res.stderr[-2000:]}")

    def argv(self) -> list[str]:
        self.bindir = install.postgres_bindir()
        return [
            str(self.bindir / "postgres"),
            "-D",
            str(self.dir("data")),
            "-p",
            str(self.s.postgres_port),
            "-k",
            str(self.dir("run")),
            "-c",
            f"listen_addresses={self.s.host}",
            "-c",
            "max_connections=300",
            "-c",
            "shared_buffers=128MB",
        ]

    def proc_options(self) -> dict:
        return {"user": self.user, "stop_signal": signal.SIGINT}  # SIGINT = fast shutdown

    def _connect(self, dbname: str):
        import psycopg

        return psycopg.connect(
            host=self.s.postgres_host,
            port=self.s.postgres_port,
            user=self.s.postgres_user,
            password=secret_value(self.s, "postgres_password"),
            dbname=dbname,
            connect_timeout=3,
            autocommit=True,
        )

    def healthy(self) -> bool:
        with self._connect("postgres") as c:
            return c.execute("select 1").fetchone() == (1,)

    def seed(self) -> None:
        with self._connect("postgres") as c:
            have = {r[0] for r in c.execute("select datname from pg_database")}
            for db in (self.s.postgres_db, *DATABASES):
                if db not in have:
                    c.execute(f'create database "{db}" owner "{self.s.postgres_user}"')


class MinIO(Service):
    """MinIO object store (built with go install); console on its own port."""

    @property
    def ports(self) -> list[int]:
        return [self.s.s3_port, self.s.s3_console_port]

    def install(self) -> None:
        install.minio_bin(self.s)

    def argv(self) -> list[str]:
        h = self.s.host
        return [
            str(install.minio_bin(self.s)),
            "server",
            str(self.dir("data")),
            "--address",
            f"{h}:{self.s.s3_port}",
            "--console-address",
            f"{h}:{self.s.s3_console_port}",
        ]

    def env(self) -> dict[str, str]:
        return {
            "MINIO_ROOT_USER": self.s.s3_access_key,
            "MINIO_ROOT_PASSWORD": secret_value(self.s, "s3_secret_key"),
            "MINIO_REGION": self.s.s3_region,
            "MINIO_UPDATE": "off",
            "MINIO_BROWSER": "on",
        }

    def healthy(self) -> bool:
        return httpx.get(f"{self.s.s3_endpoint}/minio/health/ready", timeout=2).status_code == 200

    def seed(self) -> None:
        from lake.clients import minio_client

        mc = minio_client(self.s)
        for bucket in BUCKETS:
            if not mc.bucket_exists(bucket):
                mc.make_bucket(bucket)


class FerretDB(Service):
    """MongoDB wire protocol on PostgreSQL: our embedding of FerretDB v1 (infra/ferretdb).

    FerretDB itself listens on a Unix socket; our proxy in front of it drops the
    `collation: {locale: "simple"}` that Trino's mongodb connector sends on `find`
    (FerretDB v1 rejects any collation; "simple" is its default binary order anyway).
    """

    @property
    def ports(self) -> list[int]:
        return [self.s.mongo_port]

    def install(self) -> None:
        install.ferretdb_bin(self.s)

    def argv(self) -> list[str]:
        return [
            str(install.ferretdb_bin(self.s)),
            "-listen",
            f"{self.s.host}:{self.s.mongo_port}",
            "-internal-socket",
            str(self.s.run_dir / "ferretdb.sock"),
        ]

    def env(self) -> dict[str, str]:
        s = self.s
        url = (
            f"postgres://{s.postgres_user}:{secret_value(s, 'postgres_password')}@{s.postgres_host}:"
            f"{s.postgres_port}/ferretdb?pool_max_conns=150"
        )
        # FerretDB 1.x holds a pooled connection per open cursor and takes a second one for
        # each update it runs while reading: with its default 50 the pool can run dry and
        # every request then waits forever. PostgreSQL here allows 300.
        return {"LAKE_FERRETDB_POSTGRESQL_URL": url}  # in the environment, not argv: ps shows argv

    def healthy(self) -> bool:
        from lake.clients import mongo_client

        with mongo_client(self.s, timeout_ms=2000) as c:
            return c.admin.command("ping").get("ok") == 1.0


class Kafka(Service):
    """Kafka broker and controller in one process (KRaft), from Maven Central jars."""

    health_timeout = 90.0

    @property
    def ports(self) -> list[int]:
        return [self.s.kafka_port, self.s.kafka_controller_port]

    def install(self) -> None:
        install.kafka_home(self.s)

    @property
    def config(self) -> Path:
        return self.dir("conf") / "server.properties"

    def _java(self, main: str, *args: str, heap: str = "512m") -> list[str]:
        java = install.java_home(17) / "bin" / "java"
        libs = install.kafka_home(self.s) / "libs"
        return [
            str(java),
            f"-Xmx{heap}",
            f"-Xms{heap}",
            "-XX:+UseG1GC",
            f"-Dlog4j2.configurationFile={self.dir('conf') / 'log4j2.properties'}",
            "-cp",
            f"{libs}/*",
            main,
            *args,
        ]

    def prepare(self) -> None:
        s, h = self.s, self.s.host
        conf = self.dir("conf")
        conf.mkdir(parents=True, exist_ok=True)
        self.config.write_text(f"""# written by lake up (infra/services.py); edit Settings, not this file
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers={h}:{s.kafka_controller_port}
listeners=PLAINTEXT://{h}:{s.kafka_port},CONTROLLER://{h}:{s.kafka_controller_port}
advertised.listeners=PLAINTEXT://{h}:{s.kafka_port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs={self.dir("data")}
num.partitions={s.kafka_partitions}
auto.create.topics.enable=false
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
message.max.bytes=8388608
log.retention.hours=168
""")
        (conf / "log4j2.properties").write_text(
            "rootLogger.level=INFO\nrootLogger.appenderRef.out.ref=OUT\nappender.out.type=Console\n"
            "appender.out.name=OUT\nappender.out.layout.type=PatternLayout\n"
            "appender.out.layout.pattern=[%d] %p %m (%c)%n\nlogger.kafka.name=kafka\nlogger.kafka.level=INFO\n"
            "logger.state.name=state.change.logger\nlogger.state.level=WARN\n"
        )
        if not (self.dir("data") / "meta.properties").exists():
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            res = subprocess.run(
                # "=": a base64 id starts with "-" one time in 64, which the tool's parser takes for an option
                self._java(
                    "kafka.tools.StorageTool",
                    "format",
                    "--standalone",
                    f"--cluster-id={cluster_id}",
                    "-c",
                    str(self.config),
                    heap="256m",
                ),
                capture_output=True,
                text=True,
            )
            if res.returncode:
                raise StackError(f"formatting Kafka storage failed:\n{(res.stdout + res.stderr)[-2000:]}")

    def argv(self) -> list[str]:
        return self._java("kafka.Kafka", str(self.config))

    def healthy(self) -> bool:
        from lake.clients import kafka_admin

        with kafka_admin(self.s) as admin:
            admin.list_topics()
        return True

    def seed(self) -> None:
        from kafka.admin import NewTopic

        from lake.clients import kafka_admin

        s = self.s
        want = {s.topic_uploads: s.kafka_partitions, s.topic_uploads_dlq: 1, s.topic_models_promoted: 1}
        # Inline images live only in Kafka until the stream lands them: never expire them.
        keep = {"retention.ms": "-1", "retention.bytes": "-1"}
        with kafka_admin(s) as admin:
            missing = [
                NewTopic(t, n, 1, topic_configs=keep) for t, n in want.items() if t not in set(admin.list_topics())
            ]
            if missing:
                admin.create_topics(missing)


class Trino(Service):
    """Trino coordinator+worker with two catalogs: Iceberg (``settings.iceberg_catalog``, "lake") and
    MongoDB (``settings.trino_mongo_catalog``, "catalog")."""

    wave = 2  # after MinIO and FerretDB, so that the first queries work
    health_timeout = 120.0

    @property
    def ports(self) -> list[int]:
        return [self.s.trino_port]

    def install(self) -> None:
        install.trino_home(self.s)

    def prepare(self) -> None:
        s, etc = self.s, self.dir("conf")
        (etc / "catalog").mkdir(parents=True, exist_ok=True)
        (etc / "node.properties").write_text(
            f"node.environment=lake_{s.mode}\nnode.id=lake-local-1\nnode.data-dir={self.dir('data')}\n"
            f"node.bind-ip={s.host}\nnode.internal-address={s.host}\n"
        )
        (etc / "jvm.config").write_text(
            "\n".join(
                [
                    "-server",
                    f"-Xmx{s.trino_heap}",
                    "-XX:+UseG1GC",
                    "-XX:+ExitOnOutOfMemoryError",
                    "-XX:+UseContainerSupport",
                    "-Djdk.attach.allowAttachSelf=true",
                    "--add-modules=jdk.incubator.vector",
                    "-XX:ReservedCodeCacheSize=256M",
                    "",
                ]
            )
        )
        (etc / "config.properties").write_text(
            f"coordinator=true\nnode-scheduler.include-coordinator=true\nhttp-server.http.port={s.trino_port}\n"
            f"discovery.uri=http://{s.host}:{s.trino_port}\n"
            "query.max-memory=1GB\nquery.max-memory-per-node=1GB\n"
        )
        (etc / "log.properties").write_text("io.trino=INFO\n")
        write_private(
            etc / "catalog" / f"{s.iceberg_catalog}.properties",
            f"""connector.name=iceberg
iceberg.catalog.type=jdbc
iceberg.jdbc-catalog.catalog-name={s.iceberg_catalog}
iceberg.jdbc-catalog.driver-class=org.postgresql.Driver
iceberg.jdbc-catalog.connection-url={s.jdbc_url}
iceberg.jdbc-catalog.connection-user={s.postgres_user}
iceberg.jdbc-catalog.connection-password={secret_value(s, "postgres_password")}
iceberg.jdbc-catalog.default-warehouse-dir={s.warehouse}
fs.native-s3.enabled=true
s3.endpoint={s.s3_endpoint}
s3.region={s.s3_region}
s3.path-style-access=true
s3.aws-access-key={s.s3_access_key}
s3.aws-secret-key={secret_value(s, "s3_secret_key")}
""",
        )
        write_private(
            etc / "catalog" / f"{s.trino_mongo_catalog}.properties",
            f"connector.name=mongodb\nmongodb.connection-url={s.mongo_uri}\n",
        )

    def argv(self) -> list[str]:
        return [
            str(install.trino_home(self.s) / "bin" / "launcher"),
            "run",
            f"--etc-dir={self.dir('conf')}",
            f"--data-dir={self.dir('data')}",
        ]

    def env(self) -> dict[str, str]:
        jdk = install.java_home(24)  # Trino 476 needs Java 24+: the Temurin JDK beside the default
        return {"JAVA_HOME": str(jdk), "PATH": f"{jdk / 'bin'}:{os.environ.get('PATH', '')}"}

    def healthy(self) -> bool:
        info = httpx.get(f"http://{self.s.trino_host}:{self.s.trino_port}/v1/info", timeout=2).json()
        return info.get("starting") is False


class Api(Service):
    """The Lake API (services/api) under uvicorn, from the core venv."""

    wave = 2

    @property
    def ports(self) -> list[int]:
        return [self.s.api_port]

    def argv(self) -> list[str]:
        import sys

        return [
            sys.executable,
            "-m",
            "uvicorn",
            "services.api.main:app",
            "--host",
            self.s.host,
            "--port",
            str(self.s.api_port),
            "--no-access-log",
            "--workers",
            str(self.s.api_workers),
        ]

    def proc_options(self) -> dict:
        return {"cwd": REPO_ROOT}

    def healthy(self) -> bool:
        return httpx.get(f"http://{self.s.host}:{self.s.api_port}/readyz", timeout=5).status_code == 200
