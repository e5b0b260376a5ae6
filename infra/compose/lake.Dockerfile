# Lake's core image: the core venv (Spark, clients, API) with Java 17 for Spark.
FROM python:3.11-slim-bookworm
RUN apt-get update && apt-get install -y --no-install-recommends openjdk-17-jre-headless \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/lake
COPY requirements/core.lock requirements/core.lock
RUN pip install --no-cache-dir -r requirements/core.lock
COPY pyproject.toml README.md ./
COPY lake lake
COPY infra infra
COPY services services
COPY spark_jobs spark_jobs
COPY models models
RUN pip install --no-cache-dir --no-deps -e .
USER nobody
