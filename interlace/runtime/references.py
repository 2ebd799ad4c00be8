"""Reference runs: what interventions need from runs on other prompts, computed before their
own run (:meth:`interlace.interventions.InterventionBase.reference_run` says what).

- ``mean``: the mean of a site over every position of the reference prompts (position 0 left
  out on request): one ``[*site width]`` tensor, e.g. ``[n_heads, head_dim]`` for ``head_z``.
- ``source``: a site's values at the selected positions of a run on the source prompts, to be
  written at the target's own selected positions: the op arguments ``{"index": [batch, k],
  "values": [batch, k, width]}``.

Both :func:`interlace.run` and :func:`interlace.confidence` use them.
"""

from __future__ import annotations

from typing import Any

import torch

from interlace.interventions import Capture, Graph, Problem, ReferenceRun, ValidationError
from interlace.interventions.positions import Positions, prompt_index
from interlace.interventions.sites import SITES
from interlace.models.model import Model
from interlace.runtime.backend import LOCAL, Backend
from interlace.runtime.forward import forward
from interlace.runtime.prompts import Batch, encode
from interlace.runtime.selection import gather_plan, real_positions


def check_references(model: Model, graph: Graph, batch: Batch | None) -> None:
    """Check reference and source prompts against the positions they must supply, before any
    forward (``batch``: the target; None when it is not known yet): one
    :class:`ValidationError` with every problem."""
    problems: list[Problem] = []
    for i, spec in enumerate(graph.interventions):
        request = spec.reference_run()
        if request is None:
            continue
        path = f"interventions[{i}]"
        if request.kind == "mean":
            problem = _mean_problem(model, request, path)
        elif batch is not None:
            sources = encode(model.tokenizer, request.prompts_for(batch.size)).lengths
            problem = _source_problem(request.positions, sources, batch.lengths, path)
        else:
            problem = None
        if problem is not None:
            problems.append(problem)
    if problems:
        raise ValidationError(problems)


def run_references(
    model: Model, graph: Graph, batch: Batch | None, backend: Backend = LOCAL
) -> dict[int, Any]:
    """What each intervention's reference run computed, by intervention index (``batch``: the
    target, needed for sources only)."""
    results: dict[int, Any] = {}
    for i, spec in enumerate(graph.interventions):
        request = spec.reference_run()
        if request is None:
            continue
        if request.kind == "mean":
            results[i] = _mean(model, request, backend)
        else:
            assert batch is not None, "a source run needs the target batch"
            results[i] = _source(model, request, batch, backend)
    return results


def _capture(
    model: Model, request: ReferenceRun, prompts: list[str], positions: Positions, backend: Backend
) -> torch.Tensor:
    """The requested site on ``prompts``: ``[example, k, *site width]`` (NaN where an example
    has fewer positions)."""
    layers = None if request.layer is None else [request.layer]
    cap = Capture(site=request.site, layers=layers, positions=positions)
    batch = encode(model.tokenizer, prompts)
    values = forward(model, Graph(capture=[cap]), batch, {}, backend).captured[request.site]
    if SITES[request.site].per_layer:
        values = values.sel(layer=request.layer)
    tensor = torch.as_tensor(values.values)
    return tensor if "position" in values.dims else tensor[:, None]


def _mean(model: Model, request: ReferenceRun, backend: Backend) -> torch.Tensor:
    values = _capture(model, request, request.prompts_for(1), "all", backend)
    valid = ~torch.isnan(values).flatten(2).any(-1)  # [example, position]
    if request.exclude_position_zero:
        valid[:, 0] = False
    return values[valid].mean(0)


def _source(model: Model, request: ReferenceRun, batch: Batch, backend: Backend) -> dict:
    prompts = request.prompts_for(batch.size)
    values = _capture(model, request, prompts, request.positions, backend)
    target = gather_plan(request.positions, batch)
    values = torch.nan_to_num(values.reshape(batch.size, values.shape[1], -1))
    return {"index": target.index, "values": values}


def _mean_problem(model: Model, request: ReferenceRun, path: str) -> Problem | None:
    lengths = encode(model.tokenizer, request.prompts_for(1)).lengths
    if sum(n - int(request.exclude_position_zero) for n in lengths) > 0:
        return None
    return Problem(
        f"{path}.{request.field}",
        "no positions left to average: every reference "
        "prompt has one token and position 0 is excluded",
        "a reference prompt of two or more tokens, or exclude_position_zero: false",
    )


def _source_problem(
    positions: Positions, sources: list[int], targets: list[int], path: str
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
