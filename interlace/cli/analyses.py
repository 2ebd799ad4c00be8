"""``interlace lens`` and ``interlace probe``: the logit lens on a prompt, linear probes on a
store."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich import box
from rich.table import Table

from interlace.cli.common import JsonFlag, ModelOption, PlotOption, console, fail

if TYPE_CHECKING:
    import xarray as xr

#: API fields named after the lens the --tuned directory holds.
LENS_ALIASES = {"path": "tuned", "lens": "tuned"}


def lens(
    ctx: typer.Context,
    prompt: Annotated[str, typer.Option("--prompt", "-p", help="The text to read.")],
    model: ModelOption = "smollm2-135m",
    targets: Annotated[
        list[str] | None,
        typer.Option("--target", "-t", help="A token to follow, e.g. ' Paris' (repeatable)."),
    ] = None,
    top_k: Annotated[int, typer.Option("--top", help="Top tokens per cell in --json.")] = 3,
    site: Annotated[str, typer.Option("--site", help="The residual-stream site.")] = "resid_post",
    tuned: Annotated[
        str | None, typer.Option("--tuned", help="A tuned lens directory to read through.")
    ] = None,
    plot: PlotOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Logit lens: what each layer would predict at each position (top-1 token per cell)."""
    from interlace.analyses.lens import first_top1_layer, logit_lens
    from interlace.analyses.tuned_lens import TunedLens
    from interlace.interventions import ValidationError
    from interlace.models.errors import ModelLoadError
    from interlace.models.loading import load

    try:
        m = load(model)
        translator = TunedLens.load(tuned, m) if tuned else None
        ds = logit_lens(m, prompt, targets, top_k=top_k, site=site, lens=translator)
    except (ValidationError, ModelLoadError, OSError) as err:
        fail(err, ctx, LENS_ALIASES)
    ds = ds.isel(example=0)
    report = lens_report(ds, prompt, model)
    if targets:
        first = first_top1_layer(ds).isel(position=-1)
        for t, entry in zip(report["targets"], first.values.tolist(), strict=True):
            t["first_top1_layer_at_last_position"] = entry
    if plot:
        from interlace.analyses.plots import plot_lens

        plot_lens(ds.expand_dims(example=1), path=plot)
        report["plot"] = plot
    if as_json:
        print(json.dumps(report, indent=2))
        return
    _print_lens(report)


def lens_report(ds: xr.Dataset, prompt: str, model: str) -> dict[str, Any]:
    """One example's lens as plain data: per layer and position the top tokens and the
    targets' log-probabilities and ranks."""
    targets = [
        {"token": str(t), "id": int(i)}
        for t, i in zip(ds["target"].values, ds["target_id"].values, strict=True)
    ]
    layers = []
    for layer in ds["layer"].values:
        at = ds.sel(layer=layer)
        cells = []
        for p in range(at.sizes["position"]):
            cell = at.isel(position=p)
            top = [
                {"token": str(w), "logprob": float(lp)}
                for w, lp in zip(cell["top_token"].values, cell["top_logprob"].values, strict=True)
            ]
            tgt = [
                {"token": t["token"], "logprob": float(lp), "rank": int(r)}
                for t, lp, r in zip(
                    targets, cell["target_logprob"].values, cell["target_rank"].values, strict=True
                )
            ]
            cells.append({"top": top, "targets": tgt})
        layers.append({"layer": int(layer), "positions": cells})
    return {
        "model": model,
        "prompt": prompt,
        "lens": ds.attrs["lens"],
        "tokens": [str(t) for t in ds["input_token"].values],
        "targets": targets,
        "layers": layers,
    }


def _print_lens(report: dict[str, Any]) -> None:
    words = [repr(t) for t in report["tokens"]]
    table = Table("layer", *words, title=report["prompt"], box=box.SIMPLE_HEAD, pad_edge=False)
    for t in report["targets"]:
        table.add_column(f"{t['token']!r} rank (log p)", no_wrap=True)
    for row in report["layers"]:
        top = [repr(cell["top"][0]["token"]) for cell in row["positions"]]
        last = [f"{t['rank']} ({t['logprob']:.1f})" for t in row["positions"][-1]["targets"]]
        table.add_row(str(row["layer"]), *top, *last)
    out = console()
    out.print(table)
    for t in report["targets"]:
        layer = t["first_top1_layer_at_last_position"]
        when = f"first top-1 at layer {layer}" if layer >= 0 else "never top-1"
        out.print(f"{t['token']!r}: {when} (last position)", highlight=False)
    if "plot" in report:
        out.print(f"wrote {report['plot']}", highlight=False)


def probe(
    ctx: typer.Context,
    store: Annotated[str, typer.Argument(help="An activation store (see `interlace cache`).")],
    label: Annotated[str, typer.Option("--label", "-l", help="A two-valued field to predict.")],
    sites: Annotated[
        list[str] | None, typer.Option("--site", "-s", help="A site to probe (repeatable).")
    ] = None,
    position: Annotated[
        int | None,
        typer.Option("--position", help="Probe this position only (default: every real one)."),
    ] = None,
    test_fraction: Annotated[float, typer.Option("--test-fraction")] = 0.25,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    plot: PlotOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Linear probes per layer: test accuracy and AUROC of predicting a label from a store."""
    from interlace.analyses.probes import train_probes
    from interlace.interventions import ValidationError
    from interlace.stores import StoreError, open_store

    try:
        data = open_store(store)
        if position is not None:
            if "position" not in data.dims:
                fail(f"{store} holds one position per example; leave --position out")
            held = data["position"].values.tolist()
            if position not in held:
                fail(f"position {position} is not in {store} (positions {held[0]}-{held[-1]})")
            data = data.sel(position=position)
        result = train_probes(data, label, sites=sites, test_fraction=test_fraction, seed=seed)
    except (ValidationError, StoreError, OSError) as err:
        fail(err, ctx, {"data": "store"})
    report = {
        "store": store,
        "label": label,
        "positive": result.attrs["positive"],
        "seed": seed,
        "test_fraction": test_fraction,
        "n_test_examples": int((result["split"] == "test").sum()),
        "sites": {str(s): _per_layer(result.sel(site=s)) for s in result["site"].values},
    }
    if plot:
        from interlace.analyses.plots import plot_probes

        plot_probes(result, path=plot)
        report["plot"] = plot
    if as_json:
        print(json.dumps(report, indent=2))
        return
    _print_probes(report)


def _per_layer(result: xr.Dataset) -> list[dict[str, Any]]:
    metrics = ("accuracy", "auroc", "chance")
    return [
        {"layer": int(layer), **{m: float(result[m].sel(layer=layer)) for m in metrics}}
        for layer in result["layer"].values
    ]


def _print_probes(report: dict[str, Any]) -> None:
    out = console()
    for s, rows in report["sites"].items():
        table = Table("layer", "accuracy", "AUROC", "chance", title=f"{s}: {report['label']}")
        for r in rows:
            scores = [f"{r[m]:.3f}" for m in ("accuracy", "auroc", "chance")]
            table.add_row(str(r["layer"]), *scores)
        out.print(table)
        best = max(rows, key=lambda r: r["accuracy"])
        out.print(f"best: layer {best['layer']}, accuracy {best['accuracy']:.3f}")
    if "plot" in report:
        out.print(f"wrote {report['plot']}", highlight=False)
