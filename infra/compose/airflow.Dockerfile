# Airflow with Lake's DAGs and a core venv beside it: tasks run Lake code with
# /opt/lake/core/bin/python, as in the local stack.
FROM apache/airflow:3.3.2-python3.11
USER root
RUN apt-get update && apt-get install -y --no-install-recommends openjdk-17-jre-headless \
    && rm -rf /var/lib/apt/lists/*
COPY requirements/core.lock /opt/lake/requirements/core.lock
RUN python -m venv /opt/lake/core && /opt/lake/core/bin/pip install --no-cache-dir -r /opt/lake/requirements/core.lock
COPY pyproject.toml README.md /opt/lake/
COPY lake /opt/lake/lake
COPY infra /opt/lake/infra
COPY services /opt/lake/services
COPY spark_jobs /opt/lake/spark_jobs
COPY models /opt/lake/models
COPY dags /opt/lake/dags
RUN /opt/lake/core/bin/pip install --no-cache-dir --no-deps -e /opt/lake && chown -R airflow /opt/lake
USER airflow
