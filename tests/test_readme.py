"""README.md's example queries run as written, against the real Trino (on empty tables in a
fresh lake: the point is that every name, column and function in them exists)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_queries() -> list[str]:
    text = README.read_text()
    section = text[text.index("## Querying") :]
    start = section.index("```sql") + len("```sql")
    sql = re.sub(r"--[^\n]*", "", section[start : section.index("```", start)])
    return [s.strip() for s in sql.split(";") if s.strip()]


def test_there_are_at_least_five_queries():
    assert len(readme_queries()) >= 5


@pytest.mark.integration
def test_readme_queries_run(spark):
    from lake.catalog import Catalog
    from lake.clients import trino_query
    from lake.config import get_settings
    from lake.tables import ensure_tables
    from lake.training import ensure_evaluations_table
    from spark_jobs.gold import build_gold

    ensure_tables(spark, get_settings().tables)  # what the first `lake layers run` creates
    build_gold.create_views()
    Catalog.connect().ensure_indexes()  # creates the collections Trino's `catalog` lists
    ensure_evaluations_table()  # what the first `lake model eval` creates
    for sql in readme_queries():
        trino_query(sql)  # raises on any error


def test_bad_input_lists_every_reason_code():
    from lake.events import Reason

    text = README.read_text()
    section = text[text.index("### Bad input") :]
    section = section[: section.index("\n## ")]
    missing = [r.value for r in Reason if f"`{r.value}`" not in section]
    assert not missing, f"README's Bad input section lacks {missing}: say what each means and what to do"
