"""One compiled run of a graph on a batch: compile the plan, run its step on a backend, label
what comes back. The reference runs and :func:`interlace.run`'s checks sit above this."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import xarray as xr

from interlace.interventions import Graph
from interlace.interventions.sites import SITES, ModelShape
from interlace.models.model import Model
from interlace.runtime.backend import Backend, execute
from interlace.runtime.plan import Plan, compile_plan
from interlace.runtime.prompts import Batch
from interlace.runtime.selection import Gather, gather_plan
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


def forward(
    model: Model,
    graph: Graph,
    batch: Batch,
    references: dict[int, Any],
    backend: Backend,
    all_logits: bool = False,
    base_dir: str | Path | None = None,
) -> RunResult:
    """Run ``graph`` (validated) on ``batch`` with what its reference runs computed, and
    label the results (readouts are not run here)."""
    plan = compile_plan(graph, model.shape, batch, references, base_dir)
    # every position's unembedding only where it is read (generate keeps the last by default)
    every_position = all_logits or any(op.site == "logits" for op in plan.ops)
    if graph.generate is None:
        inputs = batch.model_inputs()
        if not every_position:
            inputs["logits_to_keep"] = 1
        step = forward_step(model, plan, inputs, all_logits)
    else:
        sampling, seed = _sampling(graph)
        if every_position:
            sampling["logits_to_keep"] = 0
        step = generate_step(
            model, plan, batch, all_logits, graph.generate.max_new_tokens, sampling, seed
        )
    saved = execute(model, [step], backend)[0]
    return _label(model, graph, plan, batch, saved, all_logits)


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


def _captured(graph: Graph, plan: Plan, saved: dict, shape: ModelShape) -> dict[str, xr.DataArray]:
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
    model: Model, graph: Graph, plan: Plan, batch: Batch, saved: dict, all_logits: bool
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


def _finish(model: Model, new: torch.Tensor, graph: Graph) -> tuple[xr.DataArray, list[str]]:
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
