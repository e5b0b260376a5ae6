# Superset with the Trino dialect, the PostgreSQL driver and Lake's config.
FROM apache/superset:6.1.0
USER root
RUN pip install --no-cache-dir "trino[sqlalchemy]" psycopg2-binary
COPY superset /app/lake
USER superset
