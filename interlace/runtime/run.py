"""``interlace.run``: validate a graph against a model, compile it, run it, label the results."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import xarray as xr

from interlace.interventions import AblateHeads, Graph, Patch, Problem, ValidationError
from interlace.interventions.positions import prompt_index
from interlace.interventions.sites import SITES
from interlace.runtime.backend import LOCAL, Backend, as_backend, execute
from interlace.runtime.plan import Plan, capture_graph, compile_plan
from interlace.runtime.prompts import Batch, ChatPrompt, Prompt, encode
from interlace.runtime.selection import Gather, gather_plan, real_positions
from interlace.runtime.steps import forward_step, generate_step


@dataclass
class RunResult:
    """What a run returns, labelled.

    ``logits``: ``(example, vocab)`` at each prompt's last position, or
    ``(example, position, vocab)`` with ``logits="all"``. ``captured``: one DataArray per
    capture key with dims ``(example, [layer], [position], *site dims)``. With generation,
    ``generated_ids`` ``(example, step)`` (-1 after a row ended) and ``generated_text``;
    with fork readouts, ``readouts[example][key]``: a Dataset over checkpoints.
    """

    logits: xr.DataArray
    captured: dict[str, xr.DataArray] = field(default_factory=dict)
    generated_ids: xr.DataArray | None = None
    generated_text: list[str] | None = None
    prompt_tokens: list[list[int]] = field(default_factory=list)
    readouts: list[dict[str, xr.Dataset]] | None = None

    def logprobs(self) -> xr.DataArray:
        """Log-softmax of the logits over the vocabulary."""
        values = torch.log_softmax(torch.as_tensor(self.logits.values), dim=-1).numpy()
        return self.logits.copy(data=values)


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


def _per_example(source: str | list[str], n: int) -> list[str]:
    return [source] * n if isinstance(source, str) else list(source)


def references(
    model: Any, graph: Graph, batch: Batch | None, backend: Backend = LOCAL
) -> dict[int, Any]:
    """Run what interventions need from other inputs: reference means and patch sources
    (``batch`` is the target, needed for patches only)."""
    refs: dict[int, Any] = {}
    for i, spec in enumerate(graph.interventions):
        if isinstance(spec, AblateHeads) and spec.mode == "mean":
            ref = run(
                model, capture_graph("head_z", spec.layer, "all"), list(spec.reference), backend
            )
            z = torch.as_tensor(ref.captured["head_z"].sel(layer=spec.layer).values)
            valid = ~torch.isnan(z).flatten(2).any(-1)  # [batch, position]
            if spec.exclude_position_zero:
                valid[:, 0] = False
            refs[i] = z[valid].mean(0)  # [n_heads, head_dim]
        elif isinstance(spec, Patch) or (isinstance(spec, AblateHeads) and spec.mode == "patch"):
            site = "head_z" if isinstance(spec, AblateHeads) else spec.site
            sources = _per_example(spec.source, batch.size)
            src = run(model, capture_graph(site, spec.layer, spec.positions), sources, backend)
            values = src.captured[site]
            if SITES[site].per_layer:
                values = values.sel(layer=spec.layer)
            target = gather_plan(spec.positions, batch)
            vals = torch.as_tensor(values.values)
            if "position" not in values.dims:
                vals = vals[:, None]
            vals = vals.reshape(batch.size, vals.shape[1], -1) if site == "head_z" else vals
            refs[i] = (target.index, torch.nan_to_num(vals))
    return refs


def _check_sources(model: Any, graph: Graph, batch: Batch) -> None:
    """Check reference and source prompts against the positions they must supply, before any
    forward: one :class:`ValidationError` with every problem."""
    problems: list[Problem] = []
    for i, spec in enumerate(graph.interventions):
        path = f"interventions[{i}]"
        if isinstance(spec, AblateHeads) and spec.mode == "mean":
            lengths = encode(model.tokenizer, list(spec.reference)).lengths
            if sum(n - int(spec.exclude_position_zero) for n in lengths) <= 0:
                problems.append(
                    Problem(
                        f"{path}.reference",
                        "no positions left to average: every reference "
                        "prompt has one token and position 0 is excluded",
                        "a reference prompt of two or more tokens, or exclude_position_zero: false",
                    )
                )
        elif isinstance(spec, Patch) or (isinstance(spec, AblateHeads) and spec.mode == "patch"):
            sources = encode(model.tokenizer, _per_example(spec.source, batch.size)).lengths
            problem = _source_problem(spec.positions, sources, batch.lengths, path)
            if problem is not None:
                problems.append(problem)
    if problems:
        raise ValidationError(problems)


def _source_problem(
    positions: Any, sources: list[int], targets: list[int], path: str
) -> Problem | None:
    """The first way the source prompts cannot supply the target's positions, if any."""
    for b, (n_src, n_tgt) in enumerate(zip(sources, targets, strict=True)):
        if isinstance(positions, list):
            bad = [j for j, p in enumerate(positions) if prompt_index(p, n_src) is None]
            if bad:
                return Problem(
                    f"{path}.positions[{bad[0]}]",
                    f"position {positions[bad[0]]} is outside example {b}'s {n_src}-token source",
                    f"-{n_src} to {n_src - 1}",
                )
        n_s, n_t = len(real_positions(positions, n_src)), len(real_positions(positions, n_tgt))
        if n_s != n_t:
            return Problem(
                f"{path}.source",
                f"example {b}: the source selects {n_s} "
                f"position(s) but the target {n_t}; the k-th target position takes "
                "the source's k-th",
                "a source that selects as many positions",
            )
    return None


def run(
    model: Any,
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
    _check_sources(model, graph, batch)
    _check_readouts(model, graph)
    refs = references(model, graph, batch, backend)
    # readouts with steer "readout" read a response generated without the interventions
    steered = (
        graph
        if not graph.readouts or graph.readouts[0].steer != "readout"
        else (graph.model_copy(update={"interventions": []}))
    )
    plan = compile_plan(steered, model.shape, batch, refs, base_dir)
    all_logits = logits == "all"
    if graph.generate is None:
        inputs = batch.model_inputs()
        if not all_logits and not any(op.site == "logits" for op in plan.ops):
            inputs["logits_to_keep"] = 1  # the unembedding of the last position only
        step = forward_step(model, plan, inputs, all_logits)
    else:
        sampling, seed = _sampling(graph)
        step = generate_step(
            model, plan, batch, all_logits, graph.generate.max_new_tokens, sampling, seed
        )
    saved = execute(model, [step], backend)[0]
    result = _label(model, graph, plan, batch, saved, all_logits)
    if graph.readouts:
        result.readouts = _readouts(model, graph, result, refs, backend)
    return result


def _check_readouts(model: Any, graph: Graph) -> None:
    """Readouts need a generation, agree on whether it is steered, and tokenize; checked
    before any forward."""
    from interlace.runtime.fork import check_readout_interventions, readout_tokens

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
    model: Any, graph: Graph, result: RunResult, refs: dict[int, Any], backend: Backend
) -> list[dict[str, xr.Dataset]]:
    """Each example's readouts over its prompt and generated response (its end-of-sequence
    token left out: the answer is read after the thinking, not after the turn ended), all in
    one session."""
    from interlace.runtime.fork import compile_fork, plan_fork, run_forks

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


def _sampling(graph: Graph) -> tuple[dict[str, Any], int | None]:
    """Generation keyword arguments, and the seed to set where the generation runs."""
    g = graph.generate
    if not g.do_sample:
        return {"do_sample": False}, None
    kw: dict[str, Any] = {"do_sample": True, "temperature": g.temperature}
    if g.top_p is not None:
        kw["top_p"] = g.top_p
    if g.top_k is not None:
        kw["top_k"] = g.top_k
    return kw, g.seed


def _positions_coords(g: Gather, prefix_dims: tuple[str, ...]) -> tuple[tuple[str, ...], dict]:
    if g.squeeze:
        return prefix_dims, {"token_index": ("example", g.token_index[:, 0].numpy())}
    return prefix_dims + ("position",), {
        "position": g.labels,
        "token_index": (("example", "position"), g.token_index.numpy()),
    }


def _captured(graph: Graph, plan: Plan, saved: dict, shape: Any) -> dict[str, xr.DataArray]:
    out: dict[str, xr.DataArray] = {}
    gathers = {c.key: c.gather for op in plan.ops for c in op.captures}
    gathers.update({c.key: c.gather for _, _, c in plan.kv_captures})
    for cap in graph.capture:
        site = SITES[cap.site]
        g = gathers[cap.key]
        layers = cap.layers.resolve(shape.n_layers) if site.per_layer else [None]
        stacked = torch.stack([saved[(cap.key, layer)] for layer in layers], dim=1).float()
        # [example, layer, k, width...]; padding positions become NaN
        stacked = stacked.reshape(*stacked.shape[:3], *shape.site_width(cap.site))
        invalid = ~g.valid
        stacked[invalid[:, None].expand(-1, len(layers), -1)] = float("nan")
        if g.squeeze:
            stacked = stacked[:, :, 0]
        dims: tuple[str, ...] = ("example", "layer")
        dims, coords = _positions_coords(g, dims)
        values = stacked.numpy()
        if not site.per_layer:
            values = values[:, 0]
            dims = tuple(d for d in dims if d != "layer")
        else:
            coords["layer"] = layers
        out[cap.key] = xr.DataArray(
            values,
            dims=dims + site.trailing_dims,
            coords=coords,
            name=cap.key,
            attrs={"site": cap.site, "dtype": cap.dtype},
        )
    return out


def _label(
    model: Any, graph: Graph, plan: Plan, batch: Batch, saved: dict, all_logits: bool
) -> RunResult:
    logits = saved["__logits__"].float()
    if all_logits:
        g = gather_plan("all", batch)
        values = torch.stack([logits[b, g.index[b]] for b in range(batch.size)])
        values[~g.valid] = float("nan")
        logits_da = xr.DataArray(
            values.numpy(),
            dims=("example", "position", "vocab"),
            coords={
                "position": g.labels,
                "token_index": (("example", "position"), g.token_index.numpy()),
            },
        )
    else:
        logits_da = xr.DataArray(logits.numpy(), dims=("example", "vocab"))
    prompt_tokens = [batch.input_ids[b, batch.pad(b) :].tolist() for b in range(batch.size)]
    result = RunResult(
        logits_da, _captured(graph, plan, saved, model.shape), prompt_tokens=prompt_tokens
    )
    if graph.generate is not None:
        new = saved["__ids__"][:, batch.width :]
        result.generated_ids, result.generated_text = _finish(model, new, graph)
    return result


def _finish(model: Any, new: torch.Tensor, graph: Graph) -> tuple[xr.DataArray, list[str]]:
    """Cut each generated row at its first end-of-sequence token or stop string."""
    tok = model.tokenizer
    eos = model.hf.generation_config.eos_token_id
    eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
    ids = new.clone()
    texts = []
    for b in range(ids.shape[0]):
        row = ids[b].tolist()
        end = next((j + 1 for j, t in enumerate(row) if t in eos_ids), len(row))
        if graph.generate.stop:  # the shortest prefix that contains a stop string
            end = next(
                (
                    j
                    for j in range(1, end + 1)
                    if any(s in tok.decode(row[:j]) for s in graph.generate.stop)
                ),
                end,
            )
        ids[b, end:] = -1
        texts.append(tok.decode(row[:end]))
    return xr.DataArray(ids.numpy(), dims=("example", "step")), texts
