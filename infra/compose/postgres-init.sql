-- Databases besides `lake` (the Iceberg JDBC catalog): Airflow's and Superset's metadata.
CREATE DATABASE airflow;
CREATE DATABASE superset;
