"""``interlace validate``, ``interlace explain`` and ``interlace run``: graph files checked,
explained in words, and run on prompts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from interlace.cli.common import (
    BackendName,
    BackendOption,
    HostOption,
    JsonFlag,
    ModelOption,
    adapter_of,
    console,
    fail,
    load_for,
)

if TYPE_CHECKING:
    import xarray as xr

    from interlace.interventions import Graph
    from interlace.runtime.forward import RunResult

GraphFile = Annotated[str, typer.Argument(help="A graph file (.yaml/.yml/.json).")]


def load_graph(path: str) -> Graph:
    """The graph in the file at ``path``; an unreadable or invalid file fails the command."""
    from interlace.interventions import Graph, ValidationError

    try:
        return Graph.load(path)
    except ValidationError as err:
        fail(f"{path} is not a valid graph:\n{err}")
    except OSError as err:
        fail(f"cannot read {path}: {err}")


def validate(
    file: GraphFile,
    model: Annotated[
        str | None,
        typer.Option("--model", "-m", help="Also check against this model's shape (config only)."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Check a graph file; with --model also against the model's shape. Loads no weights."""
    from interlace.interventions import ValidationError

    graph = load_graph(file)
    problems: list[dict] = []
    if model is not None:
        try:
            graph.validate(adapter_of(model).shape, base_dir=Path(file).parent)
        except ValidationError as err:
            problems = [vars(p) for p in err.problems]
    if as_json:
        report = {
            "file": file,
            "valid": not problems,
            "hash": graph.content_hash(Path(file).parent),
            "problems": problems,
        }
        print(json.dumps(report, indent=2))
    elif problems:
        out = console()
        for p in problems:
            allowed = f" (allowed: {p['allowed']})" if p.get("allowed") else ""
            where, what = escape(p["path"] or "<graph>"), escape(p["message"] + allowed)
            out.print(f"[red]{where}[/red]: {what}", highlight=False)
    else:
        console().print(f"[green]valid[/green] {file}" + (f" for {model}" if model else ""))
    if problems:
        raise typer.Exit(code=1)


def explain(file: GraphFile, model: ModelOption = "smollm2-135m") -> None:
    """Print the plan in words: which module, which slice, in which order. Loads no weights."""
    from interlace.interventions import ValidationError
    from interlace.runtime.explain import explain as explain_graph

    graph = load_graph(file)
    adapter = adapter_of(model)
    try:
        graph.validate(adapter.shape, base_dir=Path(file).parent)
    except ValidationError as err:
        fail(err)
    for line in explain_graph(graph, adapter):
        print(line)


def run(
    ctx: typer.Context,
    graph_file: GraphFile,
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
    from interlace.interventions import Generate, ValidationError
    from interlace.runtime.backend import NDIFError
    from interlace.runtime.prompts import ChatPrompt
    from interlace.runtime.run import run as run_graph

    tokens = [*(tokens or []), *ctx.args]  # `--tokens A B`: B arrives as an extra argument
    graph = load_graph(graph_file)
    if generate is not None:
        graph = graph.model_copy(update={"generate": Generate(max_new_tokens=generate)})
    prompts = [ChatPrompt(user=p) for p in prompt] if chat else list(prompt)
    try:
        m, chosen = load_for(model, backend, host)
        ids = token_ids(m.tokenizer, tokens)
        result = run_graph(m, graph, prompts, backend=chosen, base_dir=Path(graph_file).parent)
    except (ValidationError, ValueError, NDIFError) as err:
        fail(err, ctx)
    report = summarize(m.tokenizer, result, prompt, tokens, ids, top)
    if out:
        result_dataset(result, graph).to_zarr(out, mode="w", consolidated=False)
        report["out"] = out
    if as_json:
        print(json.dumps(report, indent=2))
        return
    _print_run(report)


def _print_run(report: dict[str, Any]) -> None:
    out = console()
    for ex in report["examples"]:
        out.print(f"[bold]{ex['prompt']!r}[/bold]", highlight=False)
        top = ", ".join(f"{t['token']!r} {t['logprob']:.3f}" for t in ex["top"])
        out.print(f"  top: {top}", highlight=False)
        for t in ex["tokens"]:
            out.print(
                f"  {t['token']!r}: logit {t['logit']:.4f}  logprob {t['logprob']:.4f}",
                highlight=False,
            )
        if "generated" in ex:
            out.print(f"  generated: {ex['generated']!r}", highlight=False)
    if "out" in report:
        out.print(f"wrote {report['out']}", highlight=False)


def token_ids(tokenizer: Any, tokens: list[str]) -> list[list[int]]:
    """Token ids of each requested token string; a string that is not one token fails the
    command (its log-probability would be a different quantity)."""
    out = []
    for t in tokens:
        ids = tokenizer(t, add_special_tokens=False)["input_ids"]
        if len(ids) != 1:
            fail(f"--tokens {t!r} is {len(ids)} tokens ({ids}); give single tokens")
        out.append(ids)
    return out


def summarize(
    tokenizer: Any,
    result: RunResult,
    prompts: list[str],
    tokens: list[str],
    ids: list[list[int]],
    top: int,
) -> dict[str, Any]:
    """Per prompt: the ``top`` next tokens, the requested tokens' logits and log-probabilities
    and, with generation, the generated text."""
    import numpy as np

    logits = result.logits.values
    logprobs = result.logprobs().values
    examples = []
    for b, prompt in enumerate(prompts):
        order = np.argsort(-logits[b])[:top]
        ex = {
            "prompt": prompt,
            "top": [
                {
                    "token": tokenizer.decode([int(i)]),
                    "id": int(i),
                    "logprob": float(logprobs[b, i]),
                }
                for i in order
            ],
            "tokens": [
                {
                    "token": t,
                    "id": i[0],
                    "logit": float(logits[b, i[0]]),
                    "logprob": float(logprobs[b, i[0]]),
                }
                for t, i in zip(tokens, ids, strict=True)
            ],
        }
        if result.generated_text is not None:
            ex["generated"] = result.generated_text[b]
        examples.append(ex)
    return {"examples": examples}


def result_dataset(result: RunResult, graph: Graph) -> xr.Dataset:
    """The result as one Dataset: each capture's position dim is named after the capture, so
    captures with different position selections can live side by side."""
    import xarray as xr

    data = {"logits": result.logits}
    for key, da in result.captured.items():
        renames = {d: f"{key}_{d}" for d in ("position",) if d in da.dims}
        da = da.rename(renames)
        if "token_index" in da.coords:
            da = da.rename({"token_index": f"{key}_token_index"})
        data[key] = da
    if result.generated_ids is not None:
        data["generated_ids"] = result.generated_ids
    ds = xr.Dataset(data)
    ds.attrs["graph"] = graph.to_json()
    ds.attrs["graph_hash"] = graph.content_hash()
    return ds
