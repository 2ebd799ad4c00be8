"""The ``interlace confidence`` command and its plot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from interlace.runtime.backend_cli import BackendName, BackendOption, HostOption, load_for

console = Console()


def plot_confidence(ds: Any, path: str | Path, title: str = "") -> None:
    """Log-odds of the first two choices along the response, with the probability mass on the
    choices on a second axis (low-mass checkpoints marked)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = ds.token_index.values
    fig, ax = plt.subplots(figsize=(8, 4))
    choices = [str(c) for c in ds.choice.values]
    label = f"log-odds {choices[0]!r} vs {choices[1]!r}" if len(choices) > 1 else "log-prob"
    y = ds.log_odds.values if len(choices) > 1 else ds.logprob.values[:, 0]
    ax.plot(t, y, marker="o", color="tab:blue", label=label)
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_xlabel("response tokens before the suffix")
    ax.set_ylabel(label, color="tab:blue")
    mass_ax = ax.twinx()
    mass_ax.plot(t, ds.mass.values, color="tab:orange", ls="--", label="mass on choices")
    low = ds.low_mass.values
    mass_ax.scatter(t[low], ds.mass.values[low], color="red", zorder=3, label="low mass")
    mass_ax.set_ylabel("probability mass on the choices", color="tab:orange")
    mass_ax.set_ylim(0, 1.05)
    ax.set_title(title or f"suffix {ds.attrs['suffix']!r}")
    ax.xaxis.get_major_locator().set_params(integer=True)
    fig.legend(loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=3, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def confidence_command(
    ctx: typer.Context,
    prompt: Annotated[str, typer.Option("--prompt", "-p", help="The user's question (chat).")],
    choices: Annotated[
        list[str], typer.Option("--choices", help="Answer choices: --choices ' Yes' ' No'.")
    ],
    model: Annotated[str, typer.Option("--model", "-m", help="Model name or path.")] = (
        "smollm2-135m"
    ),
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
    ] = ("both"),
    plot: Annotated[str | None, typer.Option("--plot", help="Write the curve as PNG.")] = None,
    backend: BackendOption = BackendName.local,
    host: HostOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Answer confidence along a response: fork at checkpoints, append a suffix, read the
    choices' log-probabilities."""
    import interlace as il
    from interlace.interventions import Graph, ValidationError
    from interlace.runtime.ndif import NDIFError

    choices = [*choices, *ctx.args]  # `--choices A B`: B arrives as an extra argument
    if (response is None) == (generate is None):
        _fail("give exactly one of --response TEXT and --generate N")
    if every is not None and after is not None:
        _fail("give at most one of --every and --after")
    try:
        graph = Graph.load(graph_file) if graph_file else Graph()
        at: Any = {"every": every} if every else {"after": after} if after else "end"
        readout = il.ForkReadout.from_dict(
            {"kind": "fork_readout", "at": at, "suffix": suffix, "choices": choices, "steer": steer}
        )
        if generate is not None:
            graph = graph.model_copy(update={"generate": il.Generate(max_new_tokens=generate)})
        m, chosen = load_for(model, backend, host)
        ds = il.confidence(m, prompt, readout, response=response, graph=graph, backend=chosen)
    except (ValidationError, ValueError, OSError, NDIFError) as err:
        _fail(str(err))
    if plot:
        plot_confidence(ds, plot, title=prompt)
    if as_json:
        print(json.dumps(_as_records(ds), indent=2))
        return
    table = Table("tokens", *[f"logp {c!r}" for c in choices], "log-odds", "mass", "top")
    for r in _as_records(ds)["checkpoints"]:
        table.add_row(
            str(r["token_index"]),
            *[f"{v:.3f}" for v in r["logprob"].values()],
            f"{r['log_odds']:.3f}",
            f"{r['mass']:.3f}" + (" low" if r["low_mass"] else ""),
            repr(r["top"][0]),
        )
    console.print(table)
    if plot:
        console.print(f"wrote {plot}")


def _as_records(ds: Any) -> dict:
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


def _fail(message: str) -> None:
    console.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(code=2)
