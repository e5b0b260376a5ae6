"""The one schema of Lake's storage: every Iceberg table's name and DDL, the buckets, the
object keys, and the record models that the jobs, the API and training share.

Events (what travels on Kafka) live in `lake.events`; this module is what lands. Nothing
else spells a table name, a bucket or a key layout (tests/test_layout.py greps for them).

    from lake.config import get_settings
    from lake.tables import SILVER_BUCKET, ensure_tables, silver_key
    t = get_settings().tables                # names under settings.iceberg_catalog ("lake")
    t.silver                                 # "lake.silver.images"
    t.view("image_captions")                 # "lake.gold.image_captions"
    t.under("lake.t1").events                # tests and scratch lanes: one namespace of their own
    ensure_tables(spark, t, "bronze", "silver")
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:  # tables imports nothing of Lake's: config and every other module import it
    from pyspark.sql import SparkSession

    from lake.config import Settings

# ---- ids and object keys ---------------------------------------------------------------------------------------

IMAGE_ID = re.compile(r"^[0-9a-f]{64}$")
ImageId = Annotated[str, Field(pattern=IMAGE_ID.pattern, description="hex sha256 of the image bytes")]

BRONZE_BUCKET = "bronze"  # raw bytes, exactly as uploaded: images/<sha256>
SILVER_BUCKET = "silver"  # normalized JPEGs: images/<sha256>.jpg
GOLD_BUCKET = "gold"  # derived artifacts: the search index under search/
MODELS_BUCKET = "models"  # the registry: <name>/v<N>/
WAREHOUSE_BUCKET = "warehouse"  # Iceberg data and metadata, stream checkpoints, quality results
BUCKETS = (BRONZE_BUCKET, SILVER_BUCKET, GOLD_BUCKET, MODELS_BUCKET, WAREHOUSE_BUCKET)

SEARCH_PREFIX = "search/"  # in GOLD_BUCKET; versions under search/v<N>/
SEARCH_POINTER = SEARCH_PREFIX + "current.json"
CHECKPOINTS = "_checkpoints"  # in WAREHOUSE_BUCKET: one folder per streaming query
QUALITY_RESULTS = "_quality"  # in WAREHOUSE_BUCKET: one Great Expectations result per validation


def check_image_id(image_id: str) -> str:
    """``image_id`` when it is 64 lower-case hex digits; ValueError otherwise (never user text in a key)."""
    # fullmatch: `$` alone also matches before a trailing newline
    if not isinstance(image_id, str) or not IMAGE_ID.fullmatch(image_id):
        raise ValueError("image_id must be 64 lower-case hex digits")
    return image_id


def bronze_key(image_id: str) -> str:
    """The object key of an image in the bronze bucket: content-addressed, never user text."""
    return f"images/{check_image_id(image_id)}"


def silver_key(image_id: str) -> str:
    """The object key of an image's normalized JPEG in the silver bucket."""
    return bronze_key(image_id) + ".jpg"


def model_prefix(name: str, version: int) -> str:
    """The registry's folder of one model version in the models bucket (``compact/v3/``)."""
    return f"{name}/v{int(version)}/"


def search_prefix(version: int, base: str = SEARCH_PREFIX) -> str:
    """The folder of one search index version in the gold bucket (under ``base``: tests use their own)."""
    return f"{base}v{int(version)}/"


def quality_key(suite: str, run_id: str) -> str:
    return f"{QUALITY_RESULTS}/{suite}/{run_id}.json"


def s3_uri(bucket: str, key: str = "") -> str:
    return f"s3://{bucket}/{key}"


def silver_uri_sql(column: str) -> str:
    """A SQL expression of the silver URI of a silver_key column (for views)."""
    return f"'{s3_uri(SILVER_BUCKET)}' || {column}"


# ---- Iceberg tables --------------------------------------------------------------------------------------------

NAMESPACE = re.compile(r"[a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)+")


def check_namespace(namespace: str) -> str:
    """``namespace`` when it is ``catalog.schema`` of plain identifiers (it is written into SQL)."""
    if not isinstance(namespace, str) or not NAMESPACE.fullmatch(namespace):
        raise ValueError(f"namespace {namespace!r}: catalog.schema, lower-case letters, digits and _")
    return namespace


@dataclass(frozen=True)
class Tables:
    """The tables one run reads and writes. ``Tables.of(settings)`` is the lake (its catalog named by
    the settings); tests and scratch lanes put every table under a namespace of their own."""

    events: str  # bronze: one row per accepted upload event
    rejected: str  # bronze: refused events with their reason (also on the DLQ topic)
    silver: str  # silver: one row per normalized image
    quarantine: str  # images a stage refused, with the reason
    gold: str  # namespace of the gold tables and views
    catalog: str  # the MongoDB catalog as Trino sees it (<trino catalog>.<database>)
    hello: str  # the stack's smoke table (spark_jobs.demo.hello_lake, the lake_stack_smoke DAG)

    @classmethod
    def of(cls, s: Settings) -> Tables:
        """The lake's tables: the Iceberg catalog and the MongoDB database the settings name
        (``settings.tables`` is this for the process-wide settings)."""
        c = s.iceberg_catalog
        return cls(
            events=f"{c}.bronze.upload_events",
            rejected=f"{c}.bronze.rejected_events",
            silver=f"{c}.silver.images",
            quarantine=f"{c}.bronze.quarantine",
            gold=f"{c}.gold",
            catalog=f"{s.trino_mongo_catalog}.{s.mongo_db}",
            hello=f"{c}.demo.hello",
        )

    def under(self, namespace: str) -> Tables:
        """The same tables, every one under ``catalog.namespace`` (tests, scratch lanes); the
        MongoDB catalog stays this one's."""
        ns = check_namespace(namespace)
        return Tables(
            events=f"{ns}.upload_events",
            rejected=f"{ns}.rejected_events",
            silver=f"{ns}.images",
            quarantine=f"{ns}.quarantine",
            gold=ns,
            catalog=self.catalog,
            hello=f"{ns}.hello",
        )

    def view(self, name: str) -> str:
        """A gold table or view by its short name (``image_captions``)."""
        return f"{self.gold}.{name}"

    @property
    def training_examples(self) -> str:
        return self.view("training_examples")

    @property
    def ingest_daily(self) -> str:
        return self.view("ingest_daily")

    @property
    def captions(self) -> str:
        return self.view("captions")

    @property
    def model_evaluations(self) -> str:
        return self.view("model_evaluations")

    @property
    def image_captions(self) -> str:
        return self.view("image_captions")

    @property
    def promotions(self) -> str:
        """The catalog's gate decisions and rollbacks, through Trino's mongodb connector."""
        return f"{self.catalog}.promotions"

    @property
    def runs(self) -> str:
        """The catalog's job runs (every Lake job records one), through Trino's mongodb connector."""
        return f"{self.catalog}.runs"

    @property
    def task_runs(self) -> str:
        """Airflow's task runs as the catalog keeps them (`lake dags record`, from Airflow's REST API)."""
        return f"{self.catalog}.pipeline_runs"

    @property
    def namespaces(self) -> list[str]:
        return sorted(
            {t.rsplit(".", 1)[0] for t in (self.events, self.rejected, self.silver, self.quarantine)} | {self.gold}
        )


# Spark SQL column lists; ``{table}`` is filled in by ensure_tables.
DDL = {
    "events": """CREATE TABLE IF NOT EXISTS {table} (
  event_id string NOT NULL, image_id string NOT NULL, source string, content_type string, size_bytes long,
  client_uploaded_at timestamp, user_id string, captions array<string>, tags map<string,string>,
  bronze_key string, delivery string, kafka_topic string, kafka_partition int, kafka_offset long,
  kafka_timestamp timestamp, ingested_at timestamp, batch_id long, fingerprint string)
USING iceberg PARTITIONED BY (days(ingested_at))
TBLPROPERTIES ('format-version'='2', 'write.merge.mode'='merge-on-read')""",
    "rejected": """CREATE TABLE IF NOT EXISTS {table} (
  kafka_topic string NOT NULL, kafka_partition int NOT NULL, kafka_offset long NOT NULL, kafka_key string,
  kafka_timestamp timestamp, event_id string, reason string, error string, raw_prefix string,
  rejected_at timestamp, batch_id long, image_id string, user_id string, source string)
USING iceberg TBLPROPERTIES ('format-version'='2')""",
    "silver": """CREATE TABLE IF NOT EXISTS {table} (
  image_id string NOT NULL, width int, height int, src_format string, src_width int, src_height int,
  bytes_out long, phash string, sha256_out string, split string, captions array<string>,
  first_seen_at timestamp, last_seen_at timestamp, sightings long, sources array<string>, event_ids array<string>,
  silver_key string, normalized_at timestamp)
USING iceberg PARTITIONED BY (split)
TBLPROPERTIES ('format-version'='2', 'write.merge.mode'='merge-on-read')""",
    "quarantine": """CREATE TABLE IF NOT EXISTS {table} (
  image_id string NOT NULL, stage string NOT NULL, reason string, error string, first_seen_at timestamp,
  last_seen_at timestamp, sightings long, quarantined_at timestamp)
USING iceberg TBLPROPERTIES ('format-version'='2')""",
    "training_examples": """CREATE TABLE IF NOT EXISTS {table} (
  image_id string NOT NULL, caption string NOT NULL, caption_index int, split string, origin string,
  silver_key string, width int, height int, first_seen_at timestamp)
USING iceberg PARTITIONED BY (split) TBLPROPERTIES ('format-version'='2')""",
    "ingest_daily": """CREATE TABLE IF NOT EXISTS {table} (
  day date NOT NULL, source string NOT NULL, uploads long, images long, new_images long, bytes long)
USING iceberg TBLPROPERTIES ('format-version'='2')""",
    "captions": """CREATE TABLE IF NOT EXISTS {table} (
  image_id string NOT NULL, model_version string NOT NULL, caption string, generated_at timestamp, run_id string)
USING iceberg TBLPROPERTIES ('format-version'='2')""",
}

# Which tables each layer's job writes (and so creates); a later layer also creates the earlier
# ones it reads, so that it finds an empty table on an empty lake instead of an error.
LAYERS = {
    "bronze": ("events", "rejected"),
    "silver": ("events", "silver", "quarantine"),
    "gold": ("events", "rejected", "silver", "quarantine", "training_examples", "ingest_daily", "captions"),
}

# Written through Trino (the evaluation runs outside Spark), so Trino's types.
EVALUATIONS_DDL = """CREATE TABLE IF NOT EXISTS {table} (
    model_name varchar, model_version varchar, dataset varchar, snapshot_id bigint, split varchar,
    slice varchar, metric varchar, value double, n bigint, evaluated_at timestamp(6) with time zone,
    run_id varchar)"""


# Tables made by an earlier Lake, brought up to the DDL above: (DDL entry, column, how). Columns are
# added at the end (Iceberg keeps data files as they are); a rename keeps the column's id, so the old
# partitioning on it stays valid.
MIGRATIONS = [
    ("silver", "event_ids", "ADD COLUMN event_ids array<string>"),  # made before lineage was kept
    # The client's clock, kept but no longer trusted (ingested_at is the lake's own time).
    ("events", "client_uploaded_at", "RENAME COLUMN uploaded_at TO client_uploaded_at"),
    ("events", "fingerprint", "ADD COLUMN fingerprint string"),  # what makes a reused event_id "reused"
    ("rejected", "image_id", "ADD COLUMN image_id string"),  # a refused event's identity, when it parsed
    ("rejected", "user_id", "ADD COLUMN user_id string"),
    ("rejected", "source", "ADD COLUMN source string"),
]


def table_name(t: Tables, name: str) -> str:
    """The full name of DDL entry ``name`` in ``t``."""
    return getattr(t, name)


def ensure_tables(spark: SparkSession, t: Tables, *layers: str) -> None:
    """Create the namespaces and tables the given layers write (all of them by default); idempotent."""
    names = dict.fromkeys(n for layer in (layers or tuple(LAYERS)) for n in LAYERS[layer])
    for ns in sorted({table_name(t, n).rsplit(".", 1)[0] for n in names}):
        spark.sql(f"CREATE NAMESPACE IF NOT EXISTS {ns}")
    for name in names:
        spark.sql(DDL[name].format(table=table_name(t, name)))
    columns = {name: spark.table(table_name(t, name)).columns for name in {m[0] for m in MIGRATIONS} & set(names)}
    for name, column, change in MIGRATIONS:
        if name in columns and column not in columns[name]:
            spark.sql(f"ALTER TABLE {table_name(t, name)} {change}")


# ---- records the jobs, training and the API share --------------------------------------------------------------


class TrainingExampleBase(BaseModel):
    """One human caption of one silver image (a row of ``gold.training_examples``), as users see it."""

    model_config = ConfigDict(frozen=True)

    image_id: str
    caption: str
    caption_index: int
    split: str
    width: int | None = None
    height: int | None = None
    first_seen_at: datetime | None = None


class TrainingExample(TrainingExampleBase):
    """The whole row: where the image lies and where the caption came from."""

    silver_key: str
    origin: str = "human"

    @classmethod
    def from_row(cls, row) -> TrainingExample:
        """A row of EXAMPLE_COLUMNS (what training reads), in that order."""
        return cls(**dict(zip(EXAMPLE_COLUMNS, row, strict=True)))


EXAMPLE_COLUMNS = ("image_id", "caption", "caption_index", "split", "silver_key")  # what training reads
EXAMPLE_SELECT = ", ".join(EXAMPLE_COLUMNS)  # the same, for a SELECT list


class ModelCaption(BaseModel):
    """One model's caption of one image (a row of ``gold.captions``): computed once per image and version."""

    image_id: str
    model_version: str
    caption: str
    generated_at: datetime | None = None
    run_id: str | None = None
