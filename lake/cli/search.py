"""Caption search commands: build the index from gold captions, and query it.

    lake search index                        # embed new captions, add (or refit), publish s3://gold/search/v<N>/
    lake search index --refit                # refit the lists on the stored vectors
    lake search query "a red star on the left" -k 5
    lake search query --like <image_id>      # images with captions like that image's

Airflow's lake_index DAG runs `lake search index --idle-exit-code 99` after each captioning run.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from lake.tables import GOLD_BUCKET, SEARCH_PREFIX, s3_uri

console = Console()
search_app = typer.Typer(
    help=f"Caption search: the embedding index of gold captions ({s3_uri(GOLD_BUCKET, SEARCH_PREFIX)}).",
    no_args_is_help=True,
)


def _fail(e: Exception) -> typer.Exit:
    console.print(f"[red]error:[/red] {e}")
    return typer.Exit(2)


@search_app.command("index")
def index(
    refit: Annotated[bool, typer.Option(help="Refit PCA and k-means even if only new captions arrived.")] = False,
    idle_exit_code: Annotated[
        int, typer.Option(help="Exit code when nothing changed (Airflow's lake_index uses 99: the task shows skipped).")
    ] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Embed the gold captions not indexed yet and publish a new index version (nothing changed: no version)."""
    from lake.locks import AlreadyRunning
    from lake.logging import setup_logging
    from lake.search_index import build

    setup_logging("WARNING")
    try:
        with console.status("indexing captions..."):
            out = build(refit=refit)
    except (LookupError, AlreadyRunning) as e:
        raise _fail(e) from e
    if as_json:
        console.print_json(json.dumps(out, default=str))
    elif out["status"] == "indexed":
        c = out["counts"]
        console.print(
            f"[green]indexed[/green] v{out['version']} ({out['uri']}): {out['size']:,} captions in "
            f"{out['n_lists']} lists; {c['new']} new, {c['changed']} changed, {c['removed']} removed, "
            f"{c['embedded']} embedded, {'refit' if c['refit'] else 'added'}"
        )
    else:
        console.print(out["message"])
    if out["status"] == "nothing to do":
        raise typer.Exit(idle_exit_code)


@search_app.command("query")
def query(
    text: Annotated[str | None, typer.Argument(help="What to look for, in words.")] = None,
    like: Annotated[str | None, typer.Option(help="An image id: images with captions like its caption.")] = None,
    k: Annotated[int, typer.Option("-k", min=1, max=1000, help="How many results.")] = 10,
    nprobe: Annotated[int, typer.Option(min=1, help="Lists scanned (more: better recall, slower).")] = 16,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
) -> None:
    """Search the current index by text (or by an image's caption, with --like)."""
    from lake.clients import minio_client
    from lake.search import minilm_embedder
    from lake.search_index import load_current, read_pointer

    if (text is None) == (like is None):
        raise _fail(ValueError("give either a TEXT or --like IMAGE_ID"))
    try:
        ci = load_current(read_pointer(minio_client()))
    except Exception as e:  # MinIO down: say what to do instead of a traceback
        raise _fail(
            RuntimeError(f"the index is not reachable ({type(e).__name__}: {e}): is the stack up (`lake up`)?")
        ) from e
    if ci is None:
        raise _fail(LookupError("no search index yet: run `lake search index`"))
    if like is not None:
        try:
            hits = ci.similar(like, k, nprobe)
        except KeyError:
            raise _fail(LookupError(f"image {like} is not in index v{ci.version}")) from None
    else:
        hits = ci.search(minilm_embedder()([text]), k, nprobe)[0]
    if as_json:
        console.print_json(json.dumps([h._asdict() for h in hits]))
        return
    table = Table(title=f"index v{ci.version}, {ci.index.size:,} captions, nprobe {nprobe}")
    for col in ("score", "image_id", "caption"):
        table.add_column(col)
    for h in hits:
        table.add_row(f"{h.score:.3f}", h.image_id[:16], h.caption)
    console.print(table)
