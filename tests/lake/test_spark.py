"""lake/spark.py: the JVM's output goes to .lake/logs/lake-spark.log unless verbose, and a stopped
session leaves no Iceberg catalog (S3FileIO, JDBC pool) open.

    .lake/venvs/core/bin/python -m pytest -q tests/lake/test_spark.py
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from lake.logging import VERBOSE
from lake.spark import jvm_output


@pytest.fixture
def no_jvm(monkeypatch):
    from pyspark import SparkContext

    monkeypatch.setattr(SparkContext, "_gateway", None)
    monkeypatch.delenv(VERBOSE, raising=False)


def test_a_jvm_started_inside_writes_its_stderr_to_the_log(no_jvm, tmp_path, capfd):
    log = tmp_path / "lake-spark.log"
    with jvm_output(log):  # a child started here inherits fd 2, as the JVM does
        subprocess.run(["sh", "-c", "echo 'WARN Utils: Your hostname resolves to a loopback address' >&2"], check=True)
    print("after", file=sys.stderr)  # this process has its stderr back
    assert capfd.readouterr().err == "after\n"
    assert "WARN Utils" in log.read_text()


def test_a_jvm_that_does_not_start_says_why(no_jvm, tmp_path):
    log = tmp_path / "lake-spark.log"
    with pytest.raises(RuntimeError) as e, jvm_output(log):
        subprocess.run(["sh", "-c", "echo 'Error: could not find java.lang.Object' >&2"], check=True)
        raise RuntimeError("Java gateway process exited before sending its port number")
    assert "could not find java.lang.Object" in "\n".join(e.value.__notes__)


def test_verbose_leaves_the_console_as_it_is(no_jvm, tmp_path, capfd, monkeypatch):
    monkeypatch.setenv(VERBOSE, "1")
    with jvm_output(tmp_path / "lake-spark.log"):
        subprocess.run(["sh", "-c", "echo 'WARN Utils' >&2"], check=True)
    assert "WARN Utils" in capfd.readouterr().err
    assert not (tmp_path / "lake-spark.log").exists()


CLOSES = textwrap.dedent("""
    import json, sys
    from pyspark.sql import SparkSession
    from lake.config import get_settings
    from lake.spark import iceberg_catalogs, stop_session, spark_jars

    # an Iceberg catalog on a local folder, with the lake's FileIO (S3FileIO: created, never used)
    spark = (SparkSession.builder.master("local[1]").config("spark.ui.enabled", "false")
        .config("spark.jars", ",".join(spark_jars(get_settings())))
        .config("spark.sql.catalog.h", "org.apache.iceberg.spark.SparkCatalog")
        .config("spark.sql.catalog.h.type", "hadoop").config("spark.sql.catalog.h.warehouse", sys.argv[1])
        .config("spark.sql.catalog.h.io-impl", "org.apache.iceberg.aws.s3.S3FileIO")
        .config("spark.sql.catalog.h.client.region", "us-east-1").getOrCreate())
    unused = len(iceberg_catalogs(spark))
    spark.sql("SHOW NAMESPACES IN h").collect()
    (catalog,) = iceberg_catalogs(spark)
    field = catalog.getClass().getDeclaredField("fileIO"); field.setAccessible(True)
    io = field.get(catalog)
    closed = io.getClass().getDeclaredField("isResourceClosed"); closed.setAccessible(True)
    before = closed.get(io).get()
    stop_session(spark)
    print(json.dumps({"unused": unused, "catalog": catalog.getClass().getName(), "before": before,
                      "after": closed.get(io).get()}))
""")


@pytest.mark.integration  # needs the connector jars `lake install` resolves; no server
@pytest.mark.slow
def test_stop_session_closes_the_iceberg_catalogs_it_loaded(tmp_path):
    import json
    import os

    from lake.java import java_home
    from lake.spark import SPARK_JDKS

    (tmp_path / "wh").mkdir()
    env = {**os.environ, "JAVA_HOME": str(java_home(*SPARK_JDKS)), "PYSPARK_PYTHON": sys.executable}
    argv = [sys.executable, "-c", CLOSES, f"file://{tmp_path / 'wh'}"]
    res = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    got = json.loads(res.stdout.strip().splitlines()[-1])
    # not loaded until used; spark.stop() alone leaves it open, which S3FileIO's finalizer reports as a leak
    assert got == {"unused": 0, "catalog": "org.apache.iceberg.hadoop.HadoopCatalog", "before": False, "after": True}


def test_the_test_stack_runs_spark_drivers_on_c1_and_the_benchmarks_as_the_user_would(monkeypatch):
    from lake.config import Settings, tooling_stack
    from lake.spark import spark_conf

    for name, want in (("test", "-XX:TieredStopAtLevel=1"), ("bench", None)):
        for k, v in tooling_stack(name).items():
            monkeypatch.setenv(k, v)
        conf = spark_conf(Settings(_env_file=None, spark_jars=""))
        assert conf.get("spark.driver.extraJavaOptions") == want, name
