"""infra/install.py helpers that need no network."""

import pytest

from infra import install
from infra.procs import StackError


@pytest.mark.parametrize(
    "jar,name",
    [("hadoop-client-api-3.4.2.jar", "hadoop-client-api"), ("iceberg-spark-runtime-4.1_2.13-1.12.0.jar",
     "iceberg-spark-runtime-4.1_2.13"), ("wildfly-openssl-2.1.4.Final.jar", "wildfly-openssl")],
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
