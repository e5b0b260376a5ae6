"""infra/install.py helpers that need no network."""

import pytest

from infra import install
from infra.procs import StackError


@pytest.mark.parametrize(
    "jar,name",
    [
        ("hadoop-client-api-3.4.2.jar", "hadoop-client-api"),
        ("iceberg-spark-runtime-4.1_2.13-1.12.0.jar", "iceberg-spark-runtime-4.1_2.13"),
        ("wildfly-openssl-2.1.4.Final.jar", "wildfly-openssl"),
    ],
)
def test_artifact_name(jar, name):
    assert install._artifact(jar) == name


def test_java_home_picks_the_oldest_fitting_jdk():
    home = install.java_home(17, 21)
    assert "17" in home.name or "21" in home.name
    with pytest.raises(StackError, match="no JDK 90"):
        install.java_home(90)


def test_download_failure_is_clear(tmp_path):
    with pytest.raises(StackError, match="download of .* failed"):
        install.download("http://127.0.0.1:9/nothing.tar.gz", tmp_path / "x.tar.gz")


def test_java_home_is_lake_javas_lookup(monkeypatch, tmp_path):
    from lake import java

    assert install.java_home(17, 21) == java.java_home(17, 21)
    fake = tmp_path / "jdk-99"
    (fake / "bin").mkdir(parents=True)
    (fake / "bin" / "java").touch()
    (fake / "release").write_text('JAVA_VERSION="99.0.1"\n')
    monkeypatch.setenv("JAVA_HOME", str(fake))
    assert java.java_major(fake) == 99 and java.java_home(99) == fake
    with pytest.raises(java.JdkNotFound, match=r"no JDK 100\.\.100"):
        java.java_home(100, 100)


def test_spark_jars_are_listed_for_the_session_factory(tmp_path):
    """infra.install.spark_jars writes the list lake.spark reads; without it, the error names the command."""
    from infra import versions as V
    from lake.config import Settings
    from lake.spark import SparkJarsMissing, jars_manifest, spark_conf, spark_jars

    s = Settings(cache_dir=tmp_path / "cache", state_dir=tmp_path / "state")
    with pytest.raises(SparkJarsMissing, match="lake install"):
        spark_conf(s)
    out = s.cache_dir / f"spark-jars-{V.SPARK}-iceberg-{V.ICEBERG}-r{V.SPARK_JARS_REV}"
    out.mkdir(parents=True)
    for jar in ("iceberg-spark-runtime-4.1_2.13-1.12.0.jar", "lake-test-only-1.0.jar"):
        (out / jar).touch()
    resolved = install.spark_jars(s)  # already "downloaded": no Maven run
    assert [p.name for p in resolved] == ["iceberg-spark-runtime-4.1_2.13-1.12.0.jar", "lake-test-only-1.0.jar"]
    assert jars_manifest(s).read_text().split() == [str(p) for p in resolved]
    assert spark_jars(s) == [str(p) for p in resolved]
    assert spark_conf(s)["spark.jars"] == ",".join(str(p) for p in resolved)
    (out / "lake-test-only-1.0.jar").unlink()
    with pytest.raises(SparkJarsMissing, match="lake install"):
        spark_jars(s)


def test_spark_jars_from_settings_need_no_install():
    from types import SimpleNamespace

    from lake.spark import spark_jars

    # LAKE_SPARK_JARS (compose/cluster images bring their own jars); "" means none beyond pyspark's
    assert spark_jars(SimpleNamespace(spark_jars="/opt/a.jar, /opt/b.jar")) == ["/opt/a.jar", "/opt/b.jar"]
    assert spark_jars(SimpleNamespace(spark_jars="")) == []
