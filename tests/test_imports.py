"""The import rules of docs/architecture.md, read off the source with `ast` (no module is imported):
every import statement counts, at module level or inside a function (only `if TYPE_CHECKING:`
blocks are left out: they never run).

    python -m pytest tests/test_imports.py -q

- the library core (`lake` outside `lake.apps` and `lake.cli`) imports only the core and `models`;
- `models` imports nothing of Lake's but itself;
- the Spark jobs and the API import the core and `models`; no job imports another layer's job (what
  they share is in the core: lake.tables, lake.iceberg, lake.quality);
- `infra` (the local stack's installer and runner) imports the core and itself;
- `lake.apps` imports anything but the CLI, services, DAGs and benchmarks;
- `dags` and `superset` import nothing of Lake's (they run in Airflow's and Superset's own venvs);
- no import cycle anywhere, between any two modules.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("lake", "models", "spark_jobs", "services", "infra", "dags", "bench", "superset")

# layer -> the layers it may import
ALLOWED = {
    "core": {"core", "models"},
    "models": {"models"},
    "jobs": {"core", "models", "jobs"},
    "services": {"core", "models", "services"},
    "infra": {"core", "infra"},
    "apps": {"core", "models", "jobs", "infra", "apps"},
    "cli": {"core", "models", "jobs", "infra", "apps", "cli"},
    # Airflow's and Superset's own venvs: a DAG task runs Lake code with the core venv's Python
    "dags": {"dags"},
    "superset": set(),
}


def layer(module: str) -> str:
    top = module.split(".")[0]
    if top == "lake":
        parts = module.split(".")
        return {"apps": "apps", "cli": "cli"}.get(parts[1] if len(parts) > 1 else "", "core")
    return {"spark_jobs": "jobs", "models": "models", "services": "services", "infra": "infra"}.get(top, top)


def modules(root: Path = ROOT) -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in (root / package).rglob("*.py"):
            name = ".".join(path.relative_to(root).with_suffix("").parts)
            out[name.removesuffix(".__init__")] = path
    # dags/ is Airflow's folder, not a package: its files import each other by plain name
    out.update({f"dags.{p.stem}": p for p in (root / "dags").glob("*.py")})
    return out


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imported(path: Path, module: str, known: dict[str, Path]) -> set[str]:
    """The known modules that ``module`` (its file at ``path``) imports anywhere."""
    tree = ast.parse(path.read_text())
    skip = {
        id(n)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and _type_checking(node)
        for child in node.body
        for n in ast.walk(child)
    }
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    names: list[str] = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            elif module.startswith("dags.") and base.startswith("_"):
                base = f"dags.{base}"
            names += [base] + [f"{base}.{a.name}" for a in node.names]
    out = set()
    for name in names:
        while name and name not in known:
            name = name.rpartition(".")[0]
        if name and name != module:
            out.add(name)
    return out


def graph() -> dict[str, set[str]]:
    known = modules()
    return {m: imported(p, m, known) for m, p in known.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def upward(edges: dict[str, set[str]]) -> list[str]:
    bad = []
    for m, targets in sorted(edges.items()):
        allowed = ALLOWED.get(layer(m))
        if allowed is None:  # bench: at the top, like the tests
            continue
        bad += [f"{m} ({layer(m)}) imports {t} ({layer(t)})" for t in sorted(targets) if layer(t) not in allowed]
    return bad


def test_no_upward_imports():
    assert upward(graph()) == []


def test_no_import_cycles():
    assert cycles(graph()) == []


def _defined(path: Path) -> set[str]:
    """Names a module binds at its top level (defs, classes, assignments, imports) or in if/try blocks there."""
    names: set[str] = set()

    def walk(body) -> None:
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                names.update((a.asname or a.name).split(".")[0] for a in node.names)
            elif isinstance(node, (ast.If, ast.Try, ast.With)):
                walk(node.body)
                walk(getattr(node, "orelse", []))
                for h in getattr(node, "handlers", []):
                    walk(h.body)

    walk(ast.parse(path.read_text()).body)
    return names


def unresolved(root: Path = ROOT) -> list[str]:
    """``from <ours> import name`` statements (anywhere, functions included) naming a module or a name that
    does not exist: what only fails when that function runs."""
    files = {
        **modules(root),
        **{
            ".".join(p.relative_to(root).with_suffix("").parts).removesuffix(".__init__"): p
            for p in (root / "tests").rglob("*.py")
        },
    }
    # superset/ holds files Apache Superset loads: its `superset.*` imports are Superset's own; dags/ is no package
    ours = {"lake", "models", "spark_jobs", "services", "infra", "bench", "tests"}
    bad = []
    for path in sorted(files.values()):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom) or node.level or (node.module or "").split(".")[0] not in ours:
                continue
            target = files.get(node.module)
            if target is None:
                bad.append(f"{path.relative_to(root)}:{node.lineno}: no module {node.module}")
                continue
            have = _defined(target)
            for a in node.names:
                if a.name != "*" and a.name not in have and f"{node.module}.{a.name}" not in files:
                    bad.append(f"{path.relative_to(root)}:{node.lineno}: {node.module} has no {a.name}")
    return bad


def test_every_import_of_ours_resolves():
    assert unresolved() == []


def test_unresolved_finds_an_import_inside_a_function(tmp_path):
    (tmp_path / "lake").mkdir()
    (tmp_path / "tests").mkdir()
    (tmp_path / "lake" / "demo.py").write_text("def api_client():\n    pass\n")
    (tmp_path / "tests" / "t.py").write_text("def f():\n    from lake.demo import api_client, moved\n")
    assert unresolved(tmp_path) == ["tests/t.py:2: lake.demo has no moved"]


def test_no_job_imports_another_layers_job():
    def layer_of(module: str) -> str:  # spark_jobs.<layer>.<job>
        return module.split(".")[1] if "." in module else ""

    crossing = [
        f"{m} imports {t}"
        for m, targets in sorted(graph().items())
        if m.startswith("spark_jobs.")
        for t in sorted(targets)
        if t.startswith("spark_jobs.") and layer_of(t) != layer_of(m)
    ]
    assert crossing == []


@pytest.mark.parametrize(
    ("edges", "found"),
    [
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
        ({"a": {"b"}, "b": set()}, []),
    ],
)
def test_cycles_finds_circles(edges, found):
    assert cycles(edges) == found


def test_the_rules_catch_what_they_should():
    edges = {
        "lake.retrain": {"lake.apps.demo", "models.captioner"},
        "models.captioner.compact": {"lake.datasets"},
        "services.api.data": {"spark_jobs.silver.normalize_images"},
        "lake.spark": {"infra.install"},
        "lake.apps.demo": {"lake.cli.dags", "spark_jobs.gold.build_gold"},
    }
    assert upward(edges) == [
        "lake.apps.demo (apps) imports lake.cli.dags (cli)",
        "lake.retrain (core) imports lake.apps.demo (apps)",
        "lake.spark (core) imports infra.install (infra)",
        "models.captioner.compact (models) imports lake.datasets (core)",
        "services.api.data (services) imports spark_jobs.silver.normalize_images (jobs)",
    ]


def test_imports_are_read_from_the_source():
    edges = graph()
    assert "lake.config" in edges["lake.events"] or "lake.tables" in edges["lake.events"]
    assert "spark_jobs.bronze.ingest_uploads" in edges  # every package is walked
