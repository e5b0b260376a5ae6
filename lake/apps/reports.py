"""Rich tables and lines that the CLI and the demo both print: the promotion gate's table of a
retrain, its outcome line, and the last run of each Airflow DAG.

    from lake.apps.reports import console, gate_table, outcome
    console.print(gate_table(retrain(...)))
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from lake.config import get_settings

console = Console()

STATE_STYLE = {"success": "green", "failed": "red", "running": "yellow", "queued": "yellow", "skipped": "dim"}


def styled(state: str | None) -> str:
    return f"[{STATE_STYLE.get(state or '', 'white')}]{state or '-'}[/]"


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def gate_table(out: dict, drill: dict | None = None) -> Table:
    """The promotion gate's table of a retrain (what `lake.retrain.retrain` answers); given a drill's answer
    too, its candidate's scores as the last column."""
    table = Table(
        title=f"{out['candidate']} vs {out['production']} on {out['dataset']} (test split, CIDEr)"
        + (f"; drill {drill['candidate']}" if drill else "")
    )
    for col in ("slice", "n", "production", "candidate", "change", "focus", "ok", *(("drill",) if drill else ())):
        table.add_column(col, justify="left" if col == "slice" else "right")
    drilled = {r["slice"]: r["candidate"] for r in (drill or {}).get("table", [])}
    for r in out["table"]:
        table.add_row(
            r["slice"],
            str(r.get("n") or "-"),
            _num(r["production"]),
            _num(r["candidate"]),
            "-" if r["change"] is None else f"{r['change']:+.1%}",
            "yes" if r["focus"] else "",
            ("[yellow]noise[/yellow]" if r.get("interval") else "[green]ok[/green]") if r["ok"] else "[red]no[/red]",
            *((_num(drilled.get(r["slice"])),) if drill else ()),
        )
    return table


def gate_summary(out: dict) -> dict:
    """The gate's decision and table, compact enough for an Airflow XCom: {slice: [production, candidate, ok]}."""
    return {
        "candidate": out["candidate"],
        "production": out["production"],
        "decision": out["decision"],
        "focus": out["focus_slices"],
        "slices": {r["slice"]: [r["production"], r["candidate"], r["ok"]] for r in out["table"]},
    }


def outcome(out: dict, most: int | None = None) -> str:
    """One line: the candidate, what became of it, and the gate's reasons (the first ``most`` of them, and
    how many more, where a table beside it shows them all)."""
    colour = {"promoted": "green", "drill passed": "green", "drill failed": "red"}.get(out["status"], "yellow")
    reasons = "; ".join(out["reasons"]).split("; ")  # a drill's reasons are one line: count its parts
    shown = "; ".join(reasons[:most]) + (f"; and {len(reasons) - most} more" if most and len(reasons) > most else "")
    return f"[{colour}]{out['candidate']} {out['status']}[/{colour}]: " + shown


def dags_table(rows: list[dict]) -> Table:
    """`lake.apps.orchestration.status` as a table (also the end of `make demo`)."""
    table = Table(title=f"Airflow DAGs ({get_settings().airflow_url})")
    for col in ("DAG", "paused", "last run", "by", "state", "started (UTC)", "took"):
        table.add_column(col)
    for r in rows:
        took = f"{r['duration_s']:.0f} s" if r["duration_s"] is not None else "-"
        table.add_row(
            r["dag_id"],
            "yes" if r["paused"] else "no",
            (r["last_run"] or "-").split("__")[0],
            r["triggered_by"] or "-",
            styled(r["state"]),
            (r["start"] or "-")[:19].replace("T", " "),
            took,
        )
    return table
