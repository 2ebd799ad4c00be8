"""``interlace cache`` and ``interlace store info``: write an activation store, describe one."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated, Any

import typer
from rich.table import Table

from interlace.cli.common import (
    BackendName,
    BackendOption,
    HostOption,
    JsonFlag,
    ModelOption,
    console,
    fail,
    flagged,
)

store_app = typer.Typer(help="Inspect activation stores.", no_args_is_help=True)


def cache(
    ctx: typer.Context,
    dataset: Annotated[
        str,
        typer.Option(
            "--dataset", "-d", help="JSONL file or fsspec URL: a text (or messages) field each."
        ),
    ],
    sites: Annotated[str, typer.Option("--sites", help="Sites, e.g. resid_post,mlp_act.")],
    out: Annotated[
        str, typer.Option("--out", "-o", help="The store: a path or fsspec URL (STORE.zarr).")
    ],
    model: ModelOption = "smollm2-135m",
    layers: Annotated[str, typer.Option("--layers", help="all, 0-29, 8,12,16 ...")] = "all",
    positions: Annotated[
        str, typer.Option("--positions", help="last, all, a list 0,-1, or a slice 1: / 2:-1 / ::2.")
    ] = "last",
    batch_size: Annotated[int, typer.Option("--batch-size", help="Examples per batch.")] = 8,
    dtype: Annotated[
        str, typer.Option("--dtype", help="float32, float16 or bfloat16 on disk.")
    ] = "float32",
    graph: Annotated[
        str | None, typer.Option("--graph", help="Apply this graph's interventions.")
    ] = None,
    text_field: Annotated[
        str | None,
        typer.Option("--text-field", help="The prompt's field (default: text or messages)."),
    ] = None,
    backend: BackendOption = BackendName.local,
    host: HostOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Cache activations of a dataset into a zarr store; rerun the same command to resume."""
    from interlace.interventions import ValidationError
    from interlace.jobs.cache import cache as cache_store
    from interlace.models.adapters import UnsupportedArchitectureError
    from interlace.models.errors import ModelLoadError
    from interlace.runtime.backend import NDIFError
    from interlace.stores.errors import StoreError

    try:
        report = cache_store(
            model,
            dataset,
            out,
            sites=sites,
            layers=layers,
            positions=positions,
            batch_size=batch_size,
            dtype=dtype,
            graph=graph,
            text_field=text_field,
            progress=not as_json,
            backend=backend.value,
            host=host,
        )
    except ValidationError as err:
        fail(f"nothing was run:\n{flagged(err, ctx)}")
    except (StoreError, ModelLoadError, UnsupportedArchitectureError, OSError, ValueError) as err:
        fail(err)
    except NDIFError as err:  # batches written so far stay: rerun the command to resume
        fail(f"{err}\nThe batches cached so far are kept: rerun the same command to resume.")
    if as_json:
        print(json.dumps(asdict(report), indent=2))
    else:
        console().print(report.message(), highlight=False)


@store_app.command("info")
def info(
    path: Annotated[str, typer.Argument(help="A store: a path or fsspec URL.")],
    as_json: JsonFlag = False,
) -> None:
    """Print a store's sites, dims, sizes, provenance and completeness."""
    from interlace.stores.errors import StoreError
    from interlace.stores.reader import describe

    try:
        facts = describe(path)
    except StoreError as err:
        fail(err)
    if as_json:
        print(json.dumps(facts, indent=2, default=str))
        return
    _print_info(facts)


PROVENANCE = (
    "model",
    "model_weights_sha256",
    "tokenizer_sha256",
    "adapter_family",
    "graph_sha256",
    "dataset",
    "dataset_sha256",
    "sites",
    "layers",
    "positions",
    "dtype",
    "batch_size",
    "created",
)


def _print_info(facts: dict[str, Any]) -> None:
    from interlace.stores.location import human_bytes

    out = console()
    done = facts["completeness"]
    state = "[green]complete[/green]" if done["complete"] else "[yellow]incomplete[/yellow]"
    out.print(
        f"[bold]{facts['path']}[/bold]: {state}, {done['batches_done']}/{done['n_batches']} "
        f"batches, {done['examples_done']}/{done['n_examples']} examples"
    )
    sites = Table("site", "dims", "dtype", "chunks", "compression", "raw")
    for name, s in facts["sites"].items():
        dims = ", ".join(f"{d}={n}" for d, n in s["dims"].items())
        codecs = ", ".join(_codec(c) for c in s["compressors"]) or "none"
        sites.add_row(
            name, dims, s["dtype"], str(tuple(s["chunks"])), codecs, human_bytes(s["raw_bytes"])
        )
    out.print(sites)
    disk, raw = facts["bytes_on_disk"], facts["raw_bytes"]
    out.print(
        f"on disk {human_bytes(disk)} for {human_bytes(raw)} of site arrays "
        f"(coordinates included on disk; ratio {raw / max(disk, 1):.2f})"
    )
    out.print(
        "coordinates: " + ", ".join(f"{k} ({', '.join(d)})" for k, d in facts["coords"].items())
    )
    p = facts["provenance"]
    table = Table("provenance", "value")
    for key in PROVENANCE:
        table.add_row(key, p[key] if isinstance(p.get(key), str) else json.dumps(p.get(key)))
    table.add_row("versions", ", ".join(f"{k} {v}" for k, v in p.get("versions", {}).items()))
    out.print(table)


def _codec(config: dict[str, Any]) -> str:
    c = config.get("configuration", {})
    extra = "-".join(str(c[k]) for k in ("cname", "shuffle", "level") if k in c)
    return f"{config['name']}({extra})" if extra else config["name"]
