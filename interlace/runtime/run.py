"""``interlace.run``: validate a graph against a model, run its reference runs, run it, label
the results, and read its fork readouts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import xarray as xr

from interlace.interventions import Graph, Problem, ValidationError
from interlace.models.model import Model
from interlace.runtime.backend import Backend, as_backend
from interlace.runtime.fork import (
    check_readout_interventions,
    compile_fork,
    plan_fork,
    readout_tokens,
    run_forks,
)
from interlace.runtime.forward import RunResult, forward
from interlace.runtime.prompts import ChatPrompt, Prompt, encode
from interlace.runtime.references import check_references, run_references


def _as_graph(graph: Graph | dict | str | Path) -> tuple[Graph, Path | None]:
    if isinstance(graph, Graph):
        return graph, None
    if isinstance(graph, dict):
        return Graph.from_dict(graph), None
    path = Path(graph)
    return Graph.load(path), path.parent


def _prompt_list(prompts: Prompt | list[Prompt]) -> list[Prompt]:
    """One prompt (text, chat, or a list of token ids) or a list of them -> a list."""
    single = isinstance(prompts, (str, ChatPrompt)) or (
        isinstance(prompts, (list, tuple))
        and len(prompts) > 0
        and all(isinstance(t, int) for t in prompts)
    )
    return [prompts] if single else list(prompts)


def run(
    model: Model,
    graph: Graph | dict | str | Path,
    prompts: Prompt | list[Prompt],
    backend: str | Backend = "local",
    logits: str = "last",
    base_dir: str | Path | None = None,
    host: str | None = None,
) -> RunResult:
    """Run ``graph`` on ``prompts`` and return labelled logits, captures and generations.

    ``backend``: ``"local"``, ``"ndif"`` (an NDIF server: ``host``, else ``NDIF_HOST``, else
    the public NDIF; the API key from ``NDIF_API_KEY`` or nnsight's config) or ``"simulate"``
    (the remote path in-process, to check a run before sending it); or a
    :class:`interlace.runtime.backend.Backend`. The graph is validated against the model (and
    the prompts' lengths) before anything runs; a problem raises
    :class:`interlace.ValidationError` listing every one.
    """
    backend = as_backend(backend, host)
    if logits not in ("last", "all"):
        raise ValueError(f"logits must be 'last' or 'all', not {logits!r}")
    graph, graph_dir = _as_graph(graph)
    base_dir = base_dir or graph_dir
    prompt_list = _prompt_list(prompts)
    if not prompt_list:
        raise ValueError("no prompts given")
    batch = encode(model.tokenizer, prompt_list)
    graph.validate(model.shape, prompt_lengths=batch.lengths, base_dir=base_dir)
    _check_supported(graph)
    check_references(model, graph, batch)
    _check_readouts(model, graph)
    refs = run_references(model, graph, batch, backend)
    # readouts with steer "readout" read a response generated without the interventions
    steered = (
        graph
        if not graph.readouts or graph.readouts[0].steer != "readout"
        else (graph.model_copy(update={"interventions": []}))
    )
    result = forward(model, steered, batch, refs, backend, logits == "all", base_dir)
    if graph.readouts:
        result.readouts = _readouts(model, graph, result, refs, backend)
    return result


def _check_readouts(model: Model, graph: Graph) -> None:
    """Readouts need a generation, agree on whether it is steered, and tokenize; checked
    before any forward."""
    if not graph.readouts:
        return
    if graph.generate is None:
        raise ValidationError(
            [
                Problem(
                    "readouts",
                    "a fork readout in a graph reads the generated response, and this "
                    "graph does not generate",
                    "a generate section, or il.confidence(..., response=...) for a given response",
                )
            ]
        )
    if len({r.steer == "readout" for r in graph.readouts}) > 1:
        raise ValidationError(
            [
                Problem(
                    "readouts",
                    "the readouts disagree on whether the generation is steered",
                    "steer 'readout' on all readouts or on none",
                )
            ]
        )
    if any(r.steer != "generation" for r in graph.readouts):
        check_readout_interventions(graph)
    for i, r in enumerate(graph.readouts):
        readout_tokens(model.tokenizer, r, f"readouts[{i}]")


def _readouts(
    model: Model, graph: Graph, result: RunResult, refs: dict[int, Any], backend: Backend
) -> list[dict[str, xr.Dataset]]:
    """Each example's readouts over its prompt and generated response (its end-of-sequence
    token left out: the answer is read after the thinking, not after the turn ended), all in
    one session."""
    eos = model.hf.generation_config.eos_token_id
    eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
    jobs = []
    for b, prompt_ids in enumerate(result.prompt_tokens):
        response = [int(t) for t in result.generated_ids.values[b] if t >= 0]
        if response and response[-1] in eos_ids:
            response = response[:-1]
        for i, r in enumerate(graph.readouts):
            fp = plan_fork(model.tokenizer, r, prompt_ids, response, f"readouts[{i}]")
            steering = list(graph.interventions) if r.steer != "generation" else []
            jobs.append(compile_fork(model, r, fp, steering, refs))
    datasets = iter(run_forks(model, jobs, backend))
    return [{r.key: next(datasets) for r in graph.readouts} for _ in result.prompt_tokens]


def _check_supported(graph: Graph) -> None:
    """Refuse, before any forward, what the runtime does not do yet."""
    problems = [
        Problem(
            f"capture[{i}].positions",
            "captures record the prompt's forward; capturing generated tokens is not supported yet",
            "'all' (the prompt), 'prompt', 'last', explicit prompt positions or a slice",
        )
        for i, cap in enumerate(graph.capture)
        if cap.positions == "generated"
    ]
    if problems:
        raise ValidationError(problems)
