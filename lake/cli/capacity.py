"""`lake capacity`: cores, GPUs, brokers and nodes per stage, storage and bandwidth for a
workload, from the measured per-core figures in bench/results/ (the arithmetic is
lake/capacity.py).

    lake capacity                                  # the seed: 100 M users x 10 uploads/day x 250 KB
    lake capacity --users 1000000 --json           # machine-readable
    lake capacity --gpu-latency-ms 80 --gpu-batch 32
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

console = Console()


def _n(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:.3g}"


def show(p) -> None:
    """The plan as three tables (stages with their notes, storage, figures) plus totals."""
    w = p.workload
    console.print(
        f"[bold]{w.users:,} users x {w.uploads_per_user_day:g} uploads/day x {w.image_kb:g} KB[/bold]: "
        f"{p.uploads_s:,.0f} uploads/s (peak {p.uploads_s_peak:,.0f}/s at {w.peak_factor:g}x),\n"
        f"ingress {p.ingress_gb_s:.2f} GB/s (peak {p.ingress_gb_s_peak:.2f} GB/s, "
        f"{p.ingress_gb_s_peak * 8:.1f} Gbit/s); units sized for {w.utilisation:.0%} busy"
    )
    t = Table(title="Stages", title_justify="left")
    for col in ("stage", "load avg", "load peak", "per unit", "need avg", "need peak", "nodes", "in MB/s", "out MB/s"):
        t.add_column(col, justify="left" if col == "stage" else "right")
    for s in p.stages:
        t.add_row(
            s.name,
            f"{_n(s.load_avg)} {s.load_unit}",
            _n(s.load_peak),
            f"{_n(s.rate)}/{s.unit[:-1]}",
            f"{s.need_avg:,} {s.unit}",
            f"{s.need_peak:,} {s.unit}",
            f"{s.nodes_peak:,}",
            _n(s.in_mb_s),
            _n(s.out_mb_s),
        )
    console.print(t)
    for s in p.stages:
        console.print(f"  [dim]{s.name}: {s.note}[/dim]")
    st = Table(title="Storage added", title_justify="left")
    for col in ("what", "TB/day", "TB/month"):
        st.add_column(col, justify="left" if col == "what" else "right")
    st.add_column("note")
    for s in p.storage:
        st.add_row(s.name, _n(s.tb_day), _n(s.tb_month), s.note)
    console.print(st)
    f = p.figures
    console.print(
        f"object-store nodes added per month for disk: {p.storage_nodes_per_month:,} "
        f"({f['node_disk_tb'].value:g} TB each, filled to {w.utilisation:.0%}); "
        f"Kafka keeps {p.kafka_retained_tb:,.1f} TB"
    )
    tot = p.totals
    console.print(
        f"[bold]total at peak[/bold]: {tot['cores_peak_gpu_captioning']:,} cores + "
        f"{tot['gpus_peak']:,} GPUs + {tot['brokers']:,} brokers, {tot['nodes_peak_gpu_captioning']:,} "
        f"nodes (GPU captioning); {tot['cores_peak_cpu_captioning']:,} cores with CPU captioning instead"
    )
    ft = Table(title="Figures and their sources", title_justify="left")
    ft.add_column("figure")
    ft.add_column("value", justify="right")
    ft.add_column("source")
    for name, fig in f.items():
        ft.add_row(name, _n(fig.value), fig.source)
    console.print(ft)


def register(app: typer.Typer) -> None:
    @app.command()
    def capacity(
        users: Annotated[int, typer.Option(min=1, help="Active users.")] = 100_000_000,
        uploads_per_day: Annotated[float, typer.Option(min=0.001, help="Uploads per user per day.")] = 10,
        image_kb: Annotated[float, typer.Option(min=0.001, help="Average upload size, KB (1 KB = 1,000 bytes).")] = 250,
        gpu_latency_ms: Annotated[
            float | None,
            typer.Option(
                min=0.001,
                help="Milliseconds of one BLIP-2 generate over --gpu-batch images "
                "(default: bench/results/blip2_gpu.json, else the seed's 2.56 ms per query on an A100).",
                show_default=False,
            ),
        ] = None,
        gpu_batch: Annotated[
            int | None,
            typer.Option(
                min=1,
                help="Images per generate call that --gpu-latency-ms was timed at (default: 1).",
                show_default=False,
            ),
        ] = None,
        peak_factor: Annotated[float, typer.Option(min=1, help="Busiest hour over the daily average.")] = 2.5,
        utilisation: Annotated[float, typer.Option(min=0.05, max=1, help="Target busy fraction of each unit.")] = 0.7,
        inline_fraction: Annotated[
            float,
            typer.Option(min=0, max=1, help="Share of uploads sent as inline Kafka events instead of through the API."),
        ] = 0.0,
        results: Annotated[
            Path | None,
            typer.Option(
                help="Folder of bench results to read figures from (default: bench/results).", show_default=False
            ),
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    ) -> None:
        """How many cores, GPUs, brokers and nodes each stage needs, storage per day and month, and
        bandwidth, from measured per-core figures (bench/results/*.json) where present."""
        from lake.apps.capacity import RESULTS, Figures, Workload, plan

        if gpu_batch is not None and gpu_latency_ms is None:
            raise typer.BadParameter(
                "give --gpu-latency-ms with it: the latency of one batch of that size", param_hint="--gpu-batch"
            )
        w = Workload(
            users=users,
            uploads_per_user_day=uploads_per_day,
            image_kb=image_kb,
            peak_factor=peak_factor,
            utilisation=utilisation,
            inline_fraction=inline_fraction,
        )
        p = plan(
            w,
            Figures.measured(results or RESULTS, image_kb=image_kb),
            gpu_latency_ms=gpu_latency_ms,
            gpu_batch=gpu_batch,
        )
        if as_json:
            console.print_json(p.model_dump_json())
        else:
            show(p)
