"""SparkSession factory: the Iceberg catalog named by ``settings.iceberg_catalog`` (JDBC catalog
in PostgreSQL, data on MinIO through Iceberg's S3FileIO), S3A for checkpoints, Kafka source jars.

    from lake.config import get_settings
    from lake.spark import spark_session
    spark = spark_session("my-job")
    spark.table(get_settings().tables.silver).show()

    stop_session(spark)     # not spark.stop(): that leaves the Iceberg catalog open (see stop_session)

The connector jars come from settings (``LAKE_SPARK_JARS``) or from the list `lake install` /
`lake up` resolved for this state dir (``jars_manifest``); the JDK from ``lake.java``. Nothing
here installs anything. The JVM's output (log4j: Spark, Iceberg, Hadoop, Kafka; the JVM's own
warnings; the Python workers' stderr) goes to .lake/logs/lake-spark.log, or to the console too with
``lake --verbose`` (LAKE_VERBOSE=1).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import structlog

from lake.config import Settings, get_settings
from lake.java import java_home
from lake.logging import SPARK_LOG, is_verbose, log_path, written_since

log = structlog.get_logger("lake.spark")

SECRET_SUFFIXES = ("password", "secret-access-key", "secret.key")
SPARK_JDKS = (17, 21)  # Spark 4.1 runs on 17 or 21


class SparkJarsMissing(RuntimeError):
    """The connector jars were never resolved for this state dir; the message names the command."""


def jars_manifest(s: Settings) -> Path:
    """Where `lake install` / `lake up` (``infra.install.spark_jars``) list the connector jars, one path a line."""
    return s.state_dir / "spark-jars.txt"


def spark_jars(s: Settings) -> list[str]:
    """The jars Spark needs beside the pyspark wheel's: ``settings.spark_jars`` (comma-separated) when
    set, else the list in ``jars_manifest``; SparkJarsMissing when that list is missing or stale."""
    given = s.spark_jars  # LAKE_SPARK_JARS: compose/cluster images ship their own
    if given is not None:
        return [j.strip() for j in given.split(",") if j.strip()]
    manifest = jars_manifest(s)
    if not manifest.exists():
        raise SparkJarsMissing(
            f"no Spark connector jars listed at {manifest}: run `lake install` (or `lake up`) "
            "first, or set LAKE_SPARK_JARS"
        )
    jars = manifest.read_text().split()
    if missing := [j for j in jars if not Path(j).exists()]:
        raise SparkJarsMissing(
            f"{len(missing)} Spark connector jar(s) listed at {manifest} are gone (e.g. "
            f"{missing[0]}): run `lake install` again"
        )
    return jars


def driver_conf(s: Settings) -> dict[str, str]:
    """The driver JVM's own options (`spark_java_options`), for Lake's sessions and the plain local ones."""
    return {"spark.driver.extraJavaOptions": s.spark_java_options} if s.spark_java_options else {}


def spark_conf(s: Settings) -> dict[str, str]:
    """Every Spark setting Lake relies on, as plain data (also used by spark-submit)."""
    cat = f"spark.sql.catalog.{s.iceberg_catalog}"
    secret = s.s3_secret_key.get_secret_value()
    return {
        "spark.jars": ",".join(spark_jars(s)),
        "spark.driver.memory": s.spark_driver_memory,
        **driver_conf(s),
        "spark.sql.extensions": "org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions",
        "spark.sql.shuffle.partitions": "4",
        "spark.sql.session.timeZone": "UTC",
        "spark.ui.showConsoleProgress": "false",
        cat: "org.apache.iceberg.spark.SparkCatalog",
        f"{cat}.type": "jdbc",
        f"{cat}.uri": s.jdbc_url,
        f"{cat}.jdbc.user": s.postgres_user,
        f"{cat}.jdbc.password": s.postgres_password.get_secret_value(),
        f"{cat}.warehouse": s.warehouse,
        f"{cat}.io-impl": "org.apache.iceberg.aws.s3.S3FileIO",
        f"{cat}.s3.endpoint": s.s3_endpoint,
        f"{cat}.s3.path-style-access": "true",
        f"{cat}.s3.access-key-id": s.s3_access_key,
        f"{cat}.s3.secret-access-key": secret,
        f"{cat}.client.region": s.s3_region,
        # Trino 476 reads format v2; keep Spark from writing a newer default.
        f"{cat}.table-default.format-version": "2",
        "spark.hadoop.fs.s3a.endpoint": s.s3_endpoint,
        "spark.hadoop.fs.s3a.path.style.access": "true",
        "spark.hadoop.fs.s3a.access.key": s.s3_access_key,
        "spark.hadoop.fs.s3a.secret.key": secret,
        "spark.hadoop.fs.s3a.endpoint.region": s.s3_region,
        "spark.hadoop.fs.s3a.connection.ssl.enabled": str(s.s3_endpoint.startswith("https")).lower(),
    }


def spark_session(app_name: str, s: Settings | None = None, **extra: str):
    """A SparkSession on ``settings.spark_master`` with Lake's catalogs configured."""
    from pyspark.sql import SparkSession

    s = s or get_settings()
    os.environ["JAVA_HOME"] = str(java_home(*SPARK_JDKS))
    os.environ.setdefault("SPARK_LOCAL_IP", s.host)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # executors run this venv's Python
    conf = {**spark_conf(s), **extra}
    # pyspark hands builder settings to spark-submit as `--conf k=v` (visible in `ps`), so
    # secrets are set only once the JVM runs: catalogs and S3A read them on first use.
    secret = {k: v for k, v in conf.items() if k.endswith(SECRET_SUFFIXES)}
    builder = SparkSession.builder.appName(app_name).master(s.spark_master)
    for k, v in conf.items():
        if k not in secret:
            builder = builder.config(k, v)
    with jvm_output():
        spark = builder.getOrCreate()
    hadoop = spark.sparkContext._jsc.hadoopConfiguration()
    for k, v in secret.items():
        if k.startswith("spark.hadoop."):
            hadoop.set(k.removeprefix("spark.hadoop."), v)
        else:
            spark.conf.set(k, v)
    spark.sparkContext.setLogLevel("WARN")
    return spark


@contextmanager
def jvm_output(log_file: Path | None = None) -> Iterator[None]:
    """Around the start of a SparkSession: a JVM started inside writes its stderr (log4j's console, the
    JVM's own warnings, what the Python workers print) to ``log_file`` (.lake/logs/lake-spark.log),
    not the console, unless verbose. The JVM inherits fd 2, so it is pointed at the file while the
    gateway starts and given back to this process after. A JVM that fails to start says why in a note
    on the error, with the lines it wrote.

        with jvm_output():
            spark = SparkSession.builder.getOrCreate()
    """
    from pyspark import SparkContext

    if is_verbose() or SparkContext._gateway is not None:  # a running JVM keeps the stderr it has
        yield
        return
    log_file = log_file or log_path(SPARK_LOG)
    start = log_file.stat().st_size if log_file.exists() else 0
    sys.stderr.flush()
    saved = os.dup(2)
    target = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.dup2(target, 2)
        yield
    except Exception as e:
        tail = written_since({log_file: start}).get(log_file, [])
        e.add_note(f"the JVM's output (all of it in {log_file}) ends:\n" + "\n".join(tail))
        raise
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(target)


def stop_session(spark) -> None:
    """``spark.stop()``, then close the Iceberg catalogs the session loaded (their S3FileIO and their
    pool of PostgreSQL connections).

    Why: Spark never closes a catalog plugin, and Iceberg's SparkCatalog has no close() of its own,
    so every stopped session left its JdbcCatalog open. A process that runs several sessions in one
    JVM (the demo, `lake layers run`, the tests) piled them up, and when the GC found one, S3FileIO
    warned "Unclosed S3FileIO instance created by:" with the stack trace of SparkCatalog.initialize.
    Both handles are private (CatalogManager.catalogs, CachingCatalog.catalog), reached by reflection;
    if a Spark or Iceberg upgrade moves them, the session is still stopped and a warning says so.
    """
    try:
        catalogs = iceberg_catalogs(spark)
    except Exception as e:  # never keep a job from ending over its cleanup
        log.warning("could not find the session's Iceberg catalogs to close them", error=str(e)[:200])
        catalogs = []
    spark.stop()
    for catalog in catalogs:
        try:
            catalog.close()
        except Exception as e:
            log.warning("could not close an Iceberg catalog", catalog=str(catalog.name()), error=str(e)[:200])


def iceberg_catalogs(spark) -> list:
    """The Iceberg catalogs (py4j handles on ``org.apache.iceberg.catalog.Catalog``, each closeable) that
    ``spark`` has loaded so far; catalogs it never used are not loaded here either."""
    jvm = spark._jvm
    manager = spark._jsparkSession.sessionState().catalogManager()
    field = manager.getClass().getDeclaredField("catalogs")
    field.setAccessible(True)
    loaded = jvm.scala.jdk.javaapi.CollectionConverters.asJava(field.get(manager))
    closeable = jvm.java.lang.Class.forName("java.io.Closeable")
    out = []
    for plugin in loaded.values():
        if not plugin.getClass().getName().startswith("org.apache.iceberg.spark."):
            continue
        catalog = plugin.icebergCatalog()
        if catalog.getClass().getName() == "org.apache.iceberg.CachingCatalog":  # not closeable: its delegate is
            inner = catalog.getClass().getDeclaredField("catalog")
            inner.setAccessible(True)
            catalog = inner.get(catalog)
        if closeable.isInstance(catalog):
            out.append(catalog)
    return out


@contextmanager
def local_session(app: str, cores: int = 2, conf: dict[str, str] | None = None) -> Iterator:
    """A plain local[cores] session (no Iceberg, no servers, no UI) for unit tests and benchmarks.
    A session already running is used as it is and left running; one started here is stopped at
    the end with its JVM, so that a later `spark_session` starts a JVM with the Iceberg jars."""
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        yield active
        return
    os.environ["JAVA_HOME"] = str(java_home(*SPARK_JDKS))
    os.environ["PYSPARK_PYTHON"] = sys.executable
    builder = SparkSession.builder.master(f"local[{cores}]").appName(app).config("spark.ui.enabled", "false")
    for k, v in {**driver_conf(get_settings()), **(conf or {})}.items():
        builder = builder.config(k, v)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    try:
        yield spark
    finally:
        spark.stop()
        if SparkContext._gateway is not None:
            SparkContext._gateway.shutdown()
            SparkContext._gateway = SparkContext._jvm = None
