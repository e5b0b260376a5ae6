"""No module but lake/tables.py spells a table name, a bucket or an object-key layout: they are
read off the string literals of every source file with `ast` (docstrings and comments may name
them; code takes them from lake.tables).

    python -m pytest tests/test_layout.py -q
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from lake import tables

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("lake", "models", "spark_jobs", "services", "infra", "dags", "bench", "superset")
OWNER = ROOT / "lake" / "tables.py"

LAYER = r"(?:bronze|silver|gold|demo)"
TABLE = [
    # catalog.layer.table (any catalog name; not a module path such as spark_jobs.silver.normalize_images)
    re.compile(rf"(?<![\w.])(?!spark_jobs\b)[a-z_]+\.{LAYER}\.[a-z_]+"),
    # layer.table after a SQL keyword (a schema-relative name)
    re.compile(rf"(?i)\b(?:from|join|into|table|view|exists)\s+{LAYER}\.\w+"),
    # the rest of a name whose catalog is a placeholder: f"{catalog}.bronze.upload_events"
    re.compile(rf"^\.{LAYER}\.\w+"),
]
BUCKET = re.compile(r"s3a?://(?:{})\b".format("|".join(tables.BUCKETS)))
KEY = re.compile(r"^(?:images/(?:$|[0-9a-f]{8})|search/|_checkpoints\b|_quality/)")
# MinIO calls whose first argument is a bucket
BUCKET_CALLS = {
    "put_object",
    "get_object",
    "fget_object",
    "fput_object",
    "stat_object",
    "remove_object",
    "list_objects",
    "presigned_get_object",
    "presigned_put_object",
    "bucket_exists",
    "make_bucket",
}


def sources() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py") if p != OWNER)


def _docstrings(tree: ast.AST) -> set[int]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                out.add(id(first.value))
    return out


def spelled(source: str) -> list[str]:
    """What the source spells that belongs in lake/tables.py, as `line: text` entries."""
    tree = ast.parse(source)
    docs = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            text = node.value
            if any(p.search(text) for p in TABLE) or BUCKET.search(text) or KEY.search(text):
                found.append(f"{node.lineno}: {text[:80]!r}")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in BUCKET_CALLS
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            found.append(f"{node.lineno}: {node.func.attr}({node.args[0].value!r}, ...)")
        elif (
            isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Constant)
            and any(isinstance(t, ast.Name) and "BUCKET" in t.id for t in node.targets)
        ):
            found.append(f"{node.lineno}: bucket {node.value.value!r}")
    return found


def test_only_lake_tables_spells_tables_buckets_and_keys():
    found = {str(p.relative_to(ROOT)): hits for p in sources() if (hits := spelled(p.read_text()))}
    assert found == {}


@pytest.mark.parametrize(
    "code",
    [
        'q = "SELECT * FROM lake.silver.images"',
        'q = f"SELECT * FROM {c}.bronze.upload_events"',
        'q = "DELETE FROM gold.captions WHERE 1 = 1"',
        'uri = "s3://silver/" + key',
        'key = f"images/{image_id}"',
        'mc.put_object("warehouse", key, body, n)',
        'SILVER_BUCKET = "silver"',
    ],
)
def test_spelled_finds(code):
    assert spelled(code)


@pytest.mark.parametrize(
    "code",
    [
        '"""Reads lake.silver.images."""',
        'cmd = "python -m spark_jobs.silver.normalize_images"',
        'STAGE = "silver.normalize_images"',
        'layers = {"silver": 1, "gold": 2}',
        'q = f"SELECT * FROM {t.silver}"',
    ],
)
def test_spelled_leaves_alone(code):
    assert spelled(code) == []
