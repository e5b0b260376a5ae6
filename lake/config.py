"""One typed settings object for every part of Lake.

Read from the environment (``LAKE_*``); the defaults are the local stack started by
``lake up``. (Not from `.env`: that file is docker-compose's, with LAKE_MODE=compose.) Never
build it at import time (DAG parsing and Spark executors import modules): call ``get_settings()``.

    LAKE_MODE=compose LAKE_S3_SECRET_KEY=... lake status
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from lake.tables import CHECKPOINTS, WAREHOUSE_BUCKET, Tables

REPO_ROOT = Path(__file__).resolve().parent.parent

# Local-only credentials: fine on loopback, refused in any other mode.
LOCAL_SECRETS = frozenset({"lake-local-secret", "lake-local", "changeme", ""})
# The user's lake is <repo>/.lake; the tooling runs stacks of its own beside it (docs/architecture.md,
# "Stacks of the tooling"): their own state dir under .lake/stacks/ and ports moved by an offset.
USER_LAKE = REPO_ROOT / ".lake"
TOOLING_STACKS = {"test": 10000, "bench": 20000}
# Settings of a tooling stack beyond its state dir and ports. The benchmarks run as the user's lake would.
# Their DAGs stay paused: a scheduler running the pipeline would race the tests' and benchmarks' own runs.
TOOLING_SETTINGS = {
    # A test that unpauses lake_ingest (tests/dags/test_scheduler.py) sees its first run within 2 minutes. A
    # scheduled retrain (tests/dags/test_autonomy.py) trains 1.5 minutes and is judged with a 20 % tolerance:
    # models that small, learning stars, lose a real 10-23 % on shape=triangle (its 80 % interval -37 % to -6 % in
    # one run), while a batch of shuffled captions drops overall CIDEr by 30 % and its slices by 17-36 %. The
    # gate's defaults are tested on their own (tests/lake/test_retrain.py).
    "test": {
        "LAKE_SPARK_JAVA_OPTIONS": "-XX:TieredStopAtLevel=1",
        "LAKE_DAGS_LIVE": "false",
        "LAKE_INGEST_INTERVAL": "2",
        "LAKE_RETRAIN_MINUTES": "1.5",
        "LAKE_RETRAIN_TOLERANCE": "0.2",
    },
    "bench": {"LAKE_SPARK_JAVA_OPTIONS": "", "LAKE_DAGS_LIVE": "false"},
}

LOCAL_KEYS = frozenset({"lake-local-key", "lake-local-admin-key", "lake-local-claim-key"})


class Settings(BaseSettings):
    """Endpoints, credentials, names and paths. Environments differ only by these values.

    Fields (env var = ``LAKE_`` + upper-case name):
        mode (str, "local"): local | compose | cluster; secrets must be set outside local.
        host (str, "127.0.0.1"): the address local servers bind to.
        state_dir (Path, <repo>/.lake): data, logs and pid files of the local stack (the user's lake; the
            venvs stay in <repo>/.lake/venvs whatever it says).
        port_offset (int, 0): added to every ``*_port`` not set explicitly, so a second stack (the tests',
            the benchmarks': ``tooling_stack``) runs beside the user's without sharing a port.
        cache_dir (Path, ~/.cache/lake): downloads and builds shared by checkouts.
        kafka_port (int, 9092), kafka_bootstrap (str): the broker list clients use.
        topic_uploads, topic_uploads_dlq, topic_models_promoted (str): the topics of docs/architecture.md.
        s3_port (int, 9000), s3_console_port (int, 9001), s3_endpoint (str),
        s3_access_key (str), s3_secret_key (secret), s3_region (str).
        postgres_port (int, 5432), postgres_user (str), postgres_password (secret),
        postgres_db (str): the Iceberg JDBC catalog database.
        mongo_port (int, 27017), mongo_uri (str), mongo_db (str, "lake").
        trino_port (int, 8085), trino_user (str), trino_heap (str, "2G"),
        trino_mongo_catalog (str, "catalog"): Trino's name for the MongoDB catalog.
        spark_master (str, "local[2]"), spark_driver_memory (str, "2g").
        spark_java_options (str, ""): extra JVM options of the Spark driver (spark.driver.extraJavaOptions).
            The test stack sets ``-XX:TieredStopAtLevel=1``: its jobs are short, and on 2 cores the C2
            compiler's threads cost them more than its faster code gives back (~1.7x quicker jobs).
        spark_jars (str | None, None): comma-separated jars for spark.jars; None: the list `lake install` /
            `lake up` wrote (state_dir/spark-jars.txt); "": none beyond pyspark's.
        iceberg_catalog (str, "lake"), warehouse (str, "s3://warehouse/").
        airflow_port (int, 8080), airflow_user (str, "admin"), airflow_password (secret),
        airflow_parallelism (int, 4): LocalExecutor worker processes.
        airflow_worker_log_port (int, 8793), airflow_triggerer_log_port (int, 8794): the log servers of
            Airflow's task runner and triggerer.
        dags_live (bool, True): the pipeline DAGs (lake_ingest, lake_caption, lake_index, lake_retrain) run
            by themselves: Airflow creates them unpaused and `make demo` ends by unpausing them (`lake dags
            pause NAME` stops one). The tooling's stacks set it false.
        ingest_interval (float, 10): minutes between two scheduled lake_ingest runs.
        lock_wait_seconds (float, 0): how long a writer waits for another one on the same table (lake.locks)
            before it gives up with a clear error; task_lock_wait_seconds (float, 900): the same for
            Airflow's tasks, which wait for a `lake layers run` typed meanwhile instead of failing red.
        retrain_min_new (int, 100), retrain_minutes (float, 5), retrain_steps (int, 0: no step budget),
            retrain_tolerance (float, 0.05): the defaults of a lake_retrain run (new train examples needed,
            training budget, the gate's largest relative drop on a slice).
        superset_port (int, 8088), superset_user (str, "admin"), superset_password (secret),
        superset_secret_key (secret).
        api_port (int, 8000), api_workers (int, 1): uvicorn worker processes.
        api_keys (list[secret], ["lake-local-key"]): keys for writes.
        admin_keys (list[secret], ["lake-local-admin-key"]): keys for /v1/admin (promote, roll back); no key is both.
        claim_check_keys (list[secret], ["lake-local-claim-key"]): HMAC keys the API and `lake ingest` sign
            claim-check events with (the first) and the bronze stream honours them by (any: rotation).
        max_upload_bytes (int, 16 MiB), max_inline_bytes (int, 1 MiB): image size limits.
        max_image_pixels (int, 40 M): decompression-bomb guard (width x height).
        caption_model (str, "production"): the registry spec the API captions with (e.g. "compact:production").
        caption_max_batch (int, 16): most images in one `caption()` call of the API's batcher.
        caption_max_wait_ms (float, 10): how long the first request of a batch waits for company.
        caption_queue_size (int, 256): requests waiting for a batch; past it, 503 with Retry-After.
        caption_timeout_s (float, 30): a caption request waiting longer answers 504.
        caption_poll_s (float, 5): how often the API re-reads the production version (besides the
            `models.promoted` events that wake it at once).
        caption_cache_size (int, 4096): captions remembered per (model version, image).
        caption_blocklist (list[str], []): words/phrases a caption may not hold (lake.moderation), JSON in env.
        caption_filter (str, ""): another caption filter, "module:factory" called with the settings.
    """

    model_config = SettingsConfigDict(env_prefix="LAKE_", extra="ignore")

    mode: Literal["local", "compose", "cluster"] = "local"
    host: str = "127.0.0.1"
    state_dir: Path = USER_LAKE
    port_offset: int = Field(0, ge=0, le=30000)
    cache_dir: Path = Path.home() / ".cache" / "lake"

    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    kafka_bootstrap: str = ""
    topic_uploads: str = "images.uploaded"
    topic_uploads_dlq: str = "images.uploaded.dlq"
    topic_models_promoted: str = "models.promoted"
    kafka_partitions: int = 3

    s3_port: int = 9000
    s3_console_port: int = 9001
    s3_endpoint: str = ""
    s3_access_key: str = "lake"
    s3_secret_key: SecretStr = SecretStr("lake-local-secret")
    s3_region: str = "us-east-1"

    postgres_host: str = ""
    postgres_port: int = 5432
    postgres_user: str = "lake"
    postgres_password: SecretStr = SecretStr("lake-local")
    postgres_db: str = "lake"

    mongo_port: int = 27017
    mongo_uri: str = ""
    mongo_db: str = "lake"

    trino_host: str = ""
    trino_port: int = 8085
    trino_user: str = "lake"
    trino_heap: str = "2G"
    trino_mongo_catalog: str = "catalog"

    spark_master: str = "local[2]"
    spark_driver_memory: str = "2g"
    spark_java_options: str = ""
    spark_jars: str | None = None
    iceberg_catalog: str = "lake"
    warehouse: str = f"s3://{WAREHOUSE_BUCKET}/"

    airflow_port: int = 8080
    airflow_user: str = "admin"
    airflow_password: SecretStr = SecretStr("lake-local")
    airflow_parallelism: int = 4
    airflow_worker_log_port: int = 8793
    airflow_triggerer_log_port: int = 8794
    dags_live: bool = True
    ingest_interval: float = Field(10.0, gt=0)
    lock_wait_seconds: float = Field(0.0, ge=0)
    task_lock_wait_seconds: float = Field(900.0, ge=0)
    retrain_min_new: int = Field(100, ge=1)
    retrain_minutes: float = Field(5.0, gt=0)
    retrain_steps: int = Field(0, ge=0)
    retrain_tolerance: float = Field(0.05, ge=0)
    superset_port: int = 8088
    superset_user: str = "admin"
    superset_password: SecretStr = SecretStr("lake-local")
    superset_secret_key: SecretStr = SecretStr("lake-local-secret")
    api_port: int = 8000
    api_workers: int = 1
    api_keys: list[SecretStr] = Field(default_factory=lambda: [SecretStr("lake-local-key")])
    admin_keys: list[SecretStr] = Field(default_factory=lambda: [SecretStr("lake-local-admin-key")])
    claim_check_keys: list[SecretStr] = Field(default_factory=lambda: [SecretStr("lake-local-claim-key")], min_length=1)

    # Limits on what the front door accepts (API, `lake ingest`, inline Kafka events).
    max_upload_bytes: int = 16 * 2**20
    max_inline_bytes: int = 2**20
    max_image_pixels: int = 40_000_000

    # The API's captioner (services/api/caption_service.py): dynamic batching and hot swap.
    caption_model: str = "production"
    caption_max_batch: int = Field(16, ge=1)
    caption_max_wait_ms: float = Field(10.0, ge=0)
    caption_queue_size: int = Field(256, ge=1)
    caption_timeout_s: float = Field(30.0, gt=0)
    caption_poll_s: float = Field(5.0, gt=0)
    caption_cache_size: int = Field(4096, ge=0)
    caption_blocklist: list[str] = Field(default_factory=list)
    caption_filter: str = ""

    @model_validator(mode="after")
    def _derive_and_check(self) -> Settings:
        # A second stack on this machine: every port not set explicitly moves by the offset.
        for name in type(self).model_fields:
            if name.endswith("_port") and name not in self.model_fields_set:
                setattr(self, name, getattr(self, name) + self.port_offset)
        # Endpoints default to the local servers; compose/cluster set them explicitly.
        self.kafka_bootstrap = self.kafka_bootstrap or f"{self.host}:{self.kafka_port}"
        self.s3_endpoint = self.s3_endpoint or f"http://{self.host}:{self.s3_port}"
        self.postgres_host = self.postgres_host or self.host
        self.mongo_uri = self.mongo_uri or f"mongodb://{self.host}:{self.mongo_port}/"
        self.trino_host = self.trino_host or self.host
        if {k.get_secret_value() for k in self.api_keys} & {k.get_secret_value() for k in self.admin_keys}:
            raise ValueError("a key is in both LAKE_API_KEYS and LAKE_ADMIN_KEYS: an admin key must be its own")
        if self.mode != "local":
            weak = [
                name
                for name in (
                    "s3_secret_key",
                    "postgres_password",
                    "airflow_password",
                    "superset_password",
                    "superset_secret_key",
                )
                if getattr(self, name).get_secret_value() in LOCAL_SECRETS
            ]
            for name in ("api_keys", "admin_keys", "claim_check_keys"):
                if any(k.get_secret_value() in LOCAL_SECRETS | LOCAL_KEYS for k in getattr(self, name)):
                    weak.append(name)
            if weak:
                env = ", ".join(f"LAKE_{n.upper()}" for n in weak)
                raise ValueError(f"mode={self.mode} refuses local default secrets: set {env}")
        return self

    @property
    def tables(self) -> Tables:
        """The lake's Iceberg tables (lake.tables), named under this catalog and database."""
        return Tables.of(self)

    # Paths of the local stack (all under state_dir).
    @property
    def airflow_url(self) -> str:
        """The Airflow UI and REST API of this stack."""
        return f"http://{self.host}:{self.airflow_port}"

    @property
    def run_dir(self) -> Path:
        return self.state_dir / "run"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def data_dir(self) -> Path:
        return self.state_dir / "data"

    def checkpoint_uri(self, name: str) -> str:
        """Where a streaming job keeps its checkpoint (on the object store, via S3A)."""
        return f"s3a://{self.warehouse.removeprefix('s3://').split('/')[0]}/{CHECKPOINTS}/{name}"

    @property
    def is_user_lake(self) -> bool:
        """Whether this is the user's own lake (<repo>/.lake), which tests and benchmarks never touch."""
        return self.state_dir.resolve() == USER_LAKE.resolve()

    @property
    def postgres_dsn(self) -> str:
        pw = self.postgres_password.get_secret_value()
        return f"postgresql://{self.postgres_user}:{pw}@{self.postgres_host}:{self.postgres_port}/{self.postgres_db}"

    @property
    def jdbc_url(self) -> str:
        return f"jdbc:postgresql://{self.postgres_host}:{self.postgres_port}/{self.postgres_db}"


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, built on first use."""
    return Settings()


def tooling_stack(name: str) -> dict[str, str]:
    """The environment that points Lake at the tooling stack ``name`` ("test": `make test`, "bench":
    `make bench`): its own state dir and ports, so the user's lake is neither read nor written.

        eval "$(lake env test)"     # then `lake up`, `pytest tests/...` by hand
    """
    return {
        "LAKE_STATE_DIR": str(USER_LAKE / "stacks" / name),
        "LAKE_PORT_OFFSET": str(TOOLING_STACKS[name]),
        **TOOLING_SETTINGS[name],
    }
