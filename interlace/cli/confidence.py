"""``interlace confidence``: answer confidence along a response, as a table, JSON or a plot."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

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
    load_for,
)

if TYPE_CHECKING:
    import xarray as xr


def confidence(
    ctx: typer.Context,
    prompt: Annotated[str, typer.Option("--prompt", "-p", help="The user's question (chat).")],
    choices: Annotated[
        list[str], typer.Option("--choices", help="Answer choices: --choices ' Yes' ' No'.")
    ],
    model: ModelOption = "smollm2-135m",
    response: Annotated[
        str | None, typer.Option("--response", help="The assistant's response text to read along.")
    ] = None,
    generate: Annotated[
        int | None,
        typer.Option("--generate", help="Generate a response of up to N tokens instead."),
    ] = None,
    suffix: Annotated[str, typer.Option("--suffix", help="Appended at each checkpoint.")] = (
        " The final answer is"
    ),
    every: Annotated[int | None, typer.Option("--every", help="A checkpoint every N tokens.")] = (
        None
    ),
    after: Annotated[
        str | None, typer.Option("--after", help="A checkpoint after each occurrence of this text.")
    ] = None,
    graph_file: Annotated[
        str | None, typer.Option("--graph", help="Interventions to apply (a graph file).")
    ] = None,
    steer: Annotated[
        str,
        typer.Option(
            "--steer", help="Where the graph's interventions act: generation|readout|both."
        ),
    ] = "both",
    plot: Annotated[str | None, typer.Option("--plot", help="Write the curve as PNG.")] = None,
    backend: BackendOption = BackendName.local,
    host: HostOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Answer confidence along a response: fork at checkpoints, append a suffix, read the
    choices' log-probabilities."""
    from interlace.interventions import ForkReadout, Generate, Graph, ValidationError
    from interlace.runtime.backend import NDIFError
    from interlace.runtime.confidence import confidence as read_confidence

    choices = [*choices, *ctx.args]  # `--choices A B`: B arrives as an extra argument
    if (response is None) == (generate is None):
        fail("give exactly one of --response TEXT and --generate N")
    if every is not None and after is not None:
        fail("give at most one of --every and --after")
    try:
        graph = Graph.load(graph_file) if graph_file else Graph()
        at: Any = {"every": every} if every else {"after": after} if after else "end"
        readout = ForkReadout.from_dict(
            {"kind": "fork_readout", "at": at, "suffix": suffix, "choices": choices, "steer": steer}
        )
        if generate is not None:
            graph = graph.model_copy(update={"generate": Generate(max_new_tokens=generate)})
        m, chosen = load_for(model, backend, host)
        ds = read_confidence(m, prompt, readout, response=response, graph=graph, backend=chosen)
    except (ValidationError, ValueError, OSError, NDIFError) as err:
        fail(err, ctx)
    if plot:
        from interlace.analyses.plots import plot_confidence

        plot_confidence(ds, title=prompt, path=plot)
    report = confidence_report(ds)
    if as_json:
        print(json.dumps(report, indent=2))
        return
    table = Table("tokens", *[f"logp {c!r}" for c in choices], "log-odds", "mass", "top")
    for r in report["checkpoints"]:
        table.add_row(
            str(r["token_index"]),
            *[f"{v:.3f}" for v in r["logprob"].values()],
            f"{r['log_odds']:.3f}",
            f"{r['mass']:.3f}" + (" low" if r["low_mass"] else ""),
            repr(r["top"][0]),
        )
    out = console()
    out.print(table)
    if plot:
        out.print(f"wrote {plot}", highlight=False)


def confidence_report(ds: xr.Dataset) -> dict[str, Any]:
    """The readout of :func:`interlace.confidence` as plain data: the suffix, the choices and
    one record per checkpoint."""
    rows = []
    for c in range(ds.sizes["checkpoint"]):
        rows.append(
            {
                "token_index": int(ds.token_index.values[c]),
                "text": str(ds.text.values[c]),
                "logprob": {
                    str(k): float(v)
                    for k, v in zip(ds.choice.values, ds.logprob.values[c], strict=True)
                },
                "prob": [float(v) for v in ds.prob.values[c]],
                "log_odds": float(ds.log_odds.values[c]),
                "mass": float(ds.mass.values[c]),
                "low_mass": bool(ds.low_mass.values[c]),
                "top": [str(t) for t in ds.top_token.values[c]],
            }
        )
    return {
        "suffix": ds.attrs["suffix"],
        "choices": [str(c) for c in ds.choice.values],
        "checkpoints": rows,
    }
