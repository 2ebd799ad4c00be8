"""The plan of a graph in words: which module, which slice, in which order. Reads no weights."""

from __future__ import annotations

from interlace.interventions import Graph, ReferenceRun
from interlace.interventions.sites import SITES
from interlace.models.adapters import Adapter
from interlace.runtime.plan import KV_SITES, site_order


def _where(adapter: Adapter, site: str, layer: int | None) -> str:
    if site in KV_SITES:
        return f"the KV cache of layer {layer} ({'keys' if site == 'k' else 'values'})"
    loc = adapter.location(site)
    base = adapter.table.layers + f".{layer}" if SITES[site].per_layer else ""
    path = ".".join(p for p in (base, loc.path) if p)
    return f"{loc.side} of {path}"


def explain(graph: Graph, adapter: Adapter) -> list[str]:
    """Numbered lines: the reference runs, then each site operation in execution order."""
    shape = adapter.shape
    lines: list[str] = []
    steps: list[tuple[tuple[int, int], int, str]] = []
    for i, spec in enumerate(graph.interventions):
        reference = spec.reference_run()
        if reference is not None:
            lines.append(f"{_reference_words(reference)} (interventions[{i}])")
        for site, layer, what in spec.describe(shape):
            key = site_order(site, layer, shape.n_layers)
            where = _where(adapter, site, layer)
            steps.append(
                (key, len(steps), f"{site}[{layer}] = {where}: {what} (interventions[{i}])")
            )
    for cap in graph.capture:
        layers = cap.layers.resolve(shape.n_layers) if SITES[cap.site].per_layer else [None]
        for layer in layers:
            key = site_order(cap.site, layer, shape.n_layers)
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


def _reference_words(reference: ReferenceRun) -> str:
    if reference.kind == "mean":
        return (
            f"reference run: mean of {reference.site}[{reference.layer}] over "
            f"{len(reference.prompts)} prompt(s)"
        )
    return "source run: capture the patched site on the source"
