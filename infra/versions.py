"""Pinned versions of everything the local stack downloads or builds.

Why these: see README "Local stack" (Trino 476 needs Java 24+, so it runs on the
Temurin JDK; pyspark < 4.2 because great-expectations[spark] caps it; Spark 4.1.1 is the
newest 4.1 whose Kafka token-provider jar Maven Central serves; FerretDB v1.24 is the
last v1 line, which runs on plain PostgreSQL).
"""

KAFKA = "4.1.1"
SPARK = "4.1.1"
SPARK_JARS_REV = 3  # bump when infra/jars/spark/pom.xml changes
ICEBERG = "1.12.0"
TRINO = "476"
FERRETDB = "v1.24.2"
# MinIO publishes no semver tags; this is the Go module proxy's newest pseudo-version.
MINIO = "v0.0.0-20260212201848-7aac2a2c5b7c"
UV = "0.13.9"
# docker compose v2 (v5 needs Go 1.26.10+); only for validating docker-compose.yml here.
COMPOSE = "v2.40.3"
POSTGRES_MAJOR = "15"

TRINO_PLUGINS = ("iceberg", "mongodb")
MAVEN_CENTRAL = "https://repo1.maven.org/maven2"
