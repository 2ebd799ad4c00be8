"""The ``interlace`` command line: thin commands that parse, call the API and print."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from interlace.analyses.commands import lens_command, probe_command
from interlace.runtime.backend_cli import BackendName, BackendOption, HostOption
from interlace.runtime.commands import confidence_command
from interlace.stores.commands import cache_command, store_app
from interlace.studies.commands import report_command, study_command

app = typer.Typer(
    help="Declarative mechanistic-interpretability experiments on language models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console()

JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def _fail(message: str) -> None:
    console.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(code=2)


@app.command()
def models(as_json: JsonFlag = False) -> None:
    """List the supported architecture families and the bundled model."""
    from interlace.models.adapters import TABLES
    from interlace.models.loading import ALIASES

    rows = [{"family": t.family, "model_types": list(t.model_types)} for t in TABLES]
    if as_json:
        print(json.dumps({"families": rows, "bundled": ALIASES}, indent=2))
        return
    table = Table("family", "transformers model_type")
    for r in rows:
        table.add_row(r["family"], ", ".join(r["model_types"]))
    console.print(table)
    for name, what in ALIASES.items():
        console.print(f"bundled: [bold]{name}[/bold] — {what}")


@app.command()
def info(
    model: Annotated[str, typer.Argument(help="Model name, hub id, directory or .gguf file.")],
    as_json: JsonFlag = False,
) -> None:
    """Print a model's shape facts and its sites (reads the config only, no weights)."""
    from transformers import AutoConfig

    from interlace.interventions.sites import SITES
    from interlace.models.adapters import UnsupportedArchitectureError, adapter_for
    from interlace.models.errors import ModelLoadError
    from interlace.models.loading import resolve_source

    try:
        adapter = adapter_for(AutoConfig.from_pretrained(str(resolve_source(model))))
    except (ModelLoadError, UnsupportedArchitectureError, OSError) as err:
        _fail(str(err))
    facts = adapter.shape.to_dict()
    if as_json:
        print(json.dumps({"model": model, **facts}, indent=2))
        return
    table = Table("fact", "value", title=model)
    for key, value in facts.items():
        if key != "sites":
            table.add_row(key, str(value))
    console.print(table)
    sites = Table("site", "per layer", "meaning")
    for name in facts["sites"]:
        s = SITES[name]
        sites.add_row(name, "yes" if s.per_layer else "", s.meaning)
    console.print(sites)


ModelOption = Annotated[
    str, typer.Option("--model", "-m", help="Model name, hub id, directory or .gguf file.")
]


def _adapter(model: str):
    """The adapter for ``model`` from its config alone (no weights)."""
    from transformers import AutoConfig

    from interlace.models.adapters import UnsupportedArchitectureError, adapter_for
    from interlace.models.errors import ModelLoadError
    from interlace.models.loading import resolve_source

    try:
        return adapter_for(AutoConfig.from_pretrained(str(resolve_source(model))))
    except (ModelLoadError, UnsupportedArchitectureError, OSError) as err:
        _fail(str(err))


def _load_graph(path: str):
    from interlace.interventions import Graph, ValidationError

    try:
        return Graph.load(path)
    except ValidationError as err:
        _fail(f"{path} is not a valid graph:\n{err}")
    except OSError as err:
        _fail(f"cannot read {path}: {err}")


@app.command()
def validate(
    file: Annotated[str, typer.Argument(help="A graph file (.yaml/.yml/.json).")],
    model: Annotated[
        str | None,
        typer.Option("--model", "-m", help="Also check against this model's shape (config only)."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Check a graph file; with --model also against the model's shape. Loads no weights."""
    from pathlib import Path

    from interlace.interventions import ValidationError

    graph = _load_graph(file)
    problems: list[dict] = []
    if model is not None:
        try:
            graph.validate(_adapter(model).shape, base_dir=Path(file).parent)
        except ValidationError as err:
            problems = [vars(p) for p in err.problems]
    if as_json:
        print(
            json.dumps(
                {
                    "file": file,
                    "valid": not problems,
                    "hash": graph.content_hash(Path(file).parent),
                    "problems": problems,
                },
                indent=2,
            )
        )
    elif problems:
        for p in problems:
            allowed = f" (allowed: {p['allowed']})" if p.get("allowed") else ""
            console.print(
                f"[red]{p['path'] or '<graph>'}[/red]: {p['message']}{allowed}", highlight=False
            )
    else:
        console.print(f"[green]valid[/green] {file}" + (f" for {model}" if model else ""))
    if problems:
        raise typer.Exit(code=1)


@app.command()
def explain(
    file: Annotated[str, typer.Argument(help="A graph file (.yaml/.yml/.json).")],
    model: ModelOption = "smollm2-135m",
) -> None:
    """Print the plan in words: which module, which slice, in which order. Loads no weights."""
    from pathlib import Path

    from interlace.interventions import ValidationError
    from interlace.runtime.explain import explain as explain_graph

    graph = _load_graph(file)
    adapter = _adapter(model)
    try:
        graph.validate(adapter.shape, base_dir=Path(file).parent)
    except ValidationError as err:
        _fail(str(err))
    for line in explain_graph(graph, adapter):
        print(line)


@app.command(context_settings={"allow_extra_args": True})
def run(
    ctx: typer.Context,
    graph_file: Annotated[str, typer.Argument(help="A graph file (.yaml/.yml/.json).")],
    prompt: Annotated[list[str], typer.Option("--prompt", "-p", help="A prompt (repeatable).")],
    model: ModelOption = "smollm2-135m",
    tokens: Annotated[
        list[str] | None,
        typer.Option(
            "--tokens",
            help="Report these tokens' logits and log-probabilities: --tokens ' Paris' ' London'.",
        ),
    ] = None,
    generate: Annotated[
        int | None,
        typer.Option(
            "--generate", help="Generate this many tokens (overrides the graph's generate)."
        ),
    ] = None,
    chat: Annotated[
        bool, typer.Option("--chat", help="Wrap prompts in the chat template.")
    ] = False,
    top: Annotated[int, typer.Option("--top", help="How many top next tokens to print.")] = 5,
    out: Annotated[str | None, typer.Option("--out", help="Write results to a zarr store.")] = None,
    backend: BackendOption = BackendName.local,
    host: HostOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Run a graph on prompts: top next tokens, requested tokens' logits, generations."""
    from pathlib import Path

    import interlace as il
    from interlace.interventions import Generate, ValidationError
    from interlace.runtime.backend_cli import load_for
    from interlace.runtime.ndif import NDIFError
    from interlace.runtime.report import summarize, token_ids

    tokens = [*(tokens or []), *ctx.args]  # `--tokens A B`: B arrives as an extra argument
    graph = _load_graph(graph_file)
    if generate is not None:
        graph = graph.model_copy(update={"generate": Generate(max_new_tokens=generate)})
    prompts = [il.ChatPrompt(user=p) for p in prompt] if chat else list(prompt)
    try:
        m, chosen = load_for(model, backend, host)
        ids = token_ids(m.tokenizer, tokens or [])
        result = il.run(m, graph, prompts, backend=chosen, base_dir=Path(graph_file).parent)
    except (ValidationError, ValueError, NDIFError) as err:
        _fail(str(err))
    report = summarize(m.tokenizer, result, prompt, tokens or [], ids, top)
    if out:
        from interlace.runtime.report import to_dataset

        to_dataset(result, graph).to_zarr(out, mode="w", consolidated=False)
        report["out"] = out
    if as_json:
        print(json.dumps(report, indent=2))
        return
    for ex in report["examples"]:
        console.print(f"[bold]{ex['prompt']!r}[/bold]", highlight=False)
        console.print(
            "  top: " + ", ".join(f"{t['token']!r} {t['logprob']:.3f}" for t in ex["top"]),
            highlight=False,
        )
        for t in ex["tokens"]:
            console.print(
                f"  {t['token']!r}: logit {t['logit']:.4f}  logprob {t['logprob']:.4f}",
                highlight=False,
            )
        if "generated" in ex:
            console.print(f"  generated: {ex['generated']!r}", highlight=False)
    if out:
        console.print(f"wrote {out}")


@app.command()
def demo(
    model: ModelOption = "smollm2-135m",
) -> None:
    """A small study on the bundled model (ablations, a steering sweep beside a random
    direction, a confidence curve, a probe) into ./interlace-demo: store, report, plots."""
    from interlace.demo import run_demo

    run_demo(model, console)


# Commands defined beside the API they drive (each module imports its heavy parts lazily).
app.command("cache")(cache_command)
app.add_typer(store_app, name="store")
app.command("confidence", context_settings={"allow_extra_args": True})(confidence_command)
app.command("lens")(lens_command)
app.command("probe")(probe_command)
app.command("study")(study_command)
app.command("report")(report_command)
