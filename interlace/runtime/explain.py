"""The plan of a graph in words: which module, which slice, in which order. Reads no weights."""

from __future__ import annotations

from typing import Any

from interlace.interventions import AblateHeads, AddVector, Graph, Patch, SteerKV
from interlace.interventions.sites import SITES
from interlace.interventions.specs import ValueVectorEdit
from interlace.models.adapters import Adapter
from interlace.runtime.plan import site_order


def _where(adapter: Adapter, site: str, layer: int | None) -> str:
    if site in ("k", "v"):
        return f"the KV cache of layer {layer} ({'keys' if site == 'k' else 'values'})"
    loc = adapter.location(site)
    base = adapter.table.layers + f".{layer}" if SITES[site].per_layer else ""
    path = ".".join(p for p in (base, loc.path) if p)
    return f"{loc.side} of {path}"


def _describe(spec: Any, shape: Any) -> list[tuple[str, int | None, str]]:
    """(site, layer, what) for each site an intervention touches."""
    pos = f"at positions {spec.positions!r}" if hasattr(spec, "positions") else ""
    if isinstance(spec, AblateHeads):
        how = {"zero": "zero", "mean": "the reference mean", "patch": "the source run's values"}
        return [
            (
                "head_z",
                spec.layer,
                f"set heads {spec.heads} (slices [h*{shape.head_dim}:(h+1)*{shape.head_dim}]) "
                f"to {how[spec.mode]} {pos}",
            )
        ]
    if isinstance(spec, ValueVectorEdit):
        return [("mlp_act", spec.layer, f"multiply neurons {spec.indices} by {spec.factor} {pos}")]
    if isinstance(spec, AddVector):
        norm = {"none": "coeff·v", "unit": "coeff·v/‖v‖", "resid_norm": "coeff·‖h‖·v/‖v‖"}
        return [
            (spec.site, layer, f"add {norm[spec.normalize]} with coeff={spec.coeff} {pos}")
            for layer in spec.layers.resolve(shape.n_layers)
        ]
    if isinstance(spec, SteerKV):
        return [
            (
                k,
                spec.layer,
                f"after each forward, add coeff={spec.coeff}·v to kv heads "
                f"{spec.heads} of the cached entries {pos}",
            )
            for k in {"keys": ["k"], "values": ["v"], "both": ["k", "v"]}[spec.target]
        ]
    if isinstance(spec, Patch):
        return [(spec.site, spec.layer, f"replace {pos} by the source run's values")]
    raise TypeError(type(spec).__name__)


def explain(graph: Graph, adapter: Adapter) -> list[str]:
    """Numbered lines: the reference runs, then each site operation in execution order."""
    shape = adapter.shape
    lines: list[str] = []
    steps: list[tuple[tuple[int, int], int, str]] = []
    for i, spec in enumerate(graph.interventions):
        if isinstance(spec, AblateHeads) and spec.mode == "mean":
            lines.append(
                f"reference run: mean of head_z[{spec.layer}] over "
                f"{len(spec.reference)} prompt(s) (interventions[{i}])"
            )
        if isinstance(spec, Patch) or (isinstance(spec, AblateHeads) and spec.mode == "patch"):
            lines.append(f"source run: capture the patched site on the source (interventions[{i}])")
        for site, layer, what in _describe(spec, shape):
            key = (
                (shape.n_layers, 2)
                if site in ("k", "v")
                else site_order(site, layer, shape.n_layers)
            )
            steps.append(
                (
                    key,
                    len(steps),
                    f"{site}[{layer}] = {_where(adapter, site, layer)}: "
                    f"{what} (interventions[{i}])",
                )
            )
    for cap in graph.capture:
        layers = cap.layers.resolve(shape.n_layers) if SITES[cap.site].per_layer else [None]
        for layer in layers:
            key = (
                (shape.n_layers, 2)
                if cap.site in ("k", "v")
                else site_order(cap.site, layer, shape.n_layers)
            )
            label = f"{cap.site}[{layer}]" if layer is not None else cap.site
            steps.append(
                (
                    key,
                    len(steps) + 10**6,
                    f"{label} = {_where(adapter, cap.site, layer)}: capture positions "
                    f"{cap.positions!r} as {cap.dtype} into {cap.key!r}",
                )
            )
    lines += [f"{n}. {text}" for n, (_, _, text) in enumerate(sorted(steps), 1)]
    if graph.generate is not None:
        g = graph.generate
        lines.append(
            f"generate {g.max_new_tokens} tokens "
            f"({'sampling' if g.do_sample else 'greedy'}); the steps above run at every "
            "step, on the new token where their positions cover generated tokens"
        )
    return lines
