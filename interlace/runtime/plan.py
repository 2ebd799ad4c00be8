"""Compile a validated graph into a :class:`Plan`: the site operations of one forward pass in
execution order, each with its edits (tensors ready) and captures.

nnsight runs a trace body in lockstep with the forward pass, so module reads must follow the
order the model reaches them: by layer, and inside a layer resid_pre, head_z, attn_out,
mlp_act, mlp_out, resid_post. Edits on one site apply in declaration order; captures on a site
see the value after its edits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from interlace.interventions import (
    AblateHeads,
    AddVector,
    Capture,
    Graph,
    Patch,
    SteerKV,
)
from interlace.interventions.sites import SITES
from interlace.interventions.specs import ValueVectorEdit
from interlace.interventions.vectors import load_vector
from interlace.runtime.prompts import Batch
from interlace.runtime.selection import Gather, covers_generated, gather_plan, prompt_mask

# position of each site inside a decoder layer, in execution order
_LAYER_ORDER = {
    "resid_pre": 0,
    "head_z": 1,
    "attn_out": 2,
    "mlp_act": 3,
    "mlp_out": 4,
    "resid_post": 5,
}


def site_order(site: str, layer: int | None, n_layers: int) -> tuple[int, int]:
    """Sort key: when the forward pass reaches ``site`` at ``layer``."""
    if site == "embed":
        return (-1, 0)
    if site == "logits":
        return (n_layers, 0)
    return (layer, _LAYER_ORDER[site])


@dataclass
class SiteEdit:
    """One edit of a site's activation: an ``edits`` function name and its arguments."""

    fn: str
    mask: torch.Tensor  # [batch, seq] for the prompt forward
    on_generated: bool  # also applies to each generated token
    args: dict[str, Any]


@dataclass
class SiteCapture:
    key: str
    gather: Gather
    dtype: torch.dtype


@dataclass
class SiteOp:
    site: str
    layer: int | None
    edits: list[SiteEdit] = field(default_factory=list)
    captures: list[SiteCapture] = field(default_factory=list)


@dataclass
class KVEdit:
    layer: int
    target: str  # keys | values | both
    heads: torch.Tensor
    vector: torch.Tensor
    coeff: float
    mask: torch.Tensor
    on_generated: bool


@dataclass
class Plan:
    ops: list[SiteOp]  # sorted in execution order
    kv_edits: list[KVEdit]
    kv_captures: list[tuple[str, int, SiteCapture]]  # (site k|v, layer, capture)
    n_heads: int


def _vector(ref: Any, base_dir: Any) -> torch.Tensor:
    return torch.as_tensor(load_vector(ref, base_dir), dtype=torch.float32)


_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def compile_plan(
    graph: Graph,
    shape: Any,
    batch: Batch,
    references: dict[int, Any],
    base_dir: Any = None,
) -> Plan:
    """Build the plan for ``graph`` on ``batch``.

    ``references`` holds what reference runs computed, by intervention index: the per-head mean
    ``[n_heads, head_dim]`` for mean ablation, ``(index, values)`` of the source run for
    patching.
    """
    ops: dict[tuple[str, int | None], SiteOp] = {}

    def op(site: str, layer: int | None) -> SiteOp:
        return ops.setdefault((site, layer), SiteOp(site, layer))

    kv_edits: list[KVEdit] = []
    for i, spec in enumerate(graph.interventions):
        mask = prompt_mask(spec.positions, batch) if hasattr(spec, "positions") else None
        gen = covers_generated(spec.positions)
        if isinstance(spec, AblateHeads):
            heads = torch.tensor(spec.heads)
            if spec.mode == "zero":
                replacement = torch.zeros(())
            elif spec.mode == "mean":
                replacement = references[i]
            else:  # patch: the source's values at the patched positions, heads picked below
                index, values = references[i]
                mask = torch.zeros_like(mask)
                mask[torch.arange(batch.size)[:, None], index] = True
                gen = False
                replacement = ("scatter", index, values)
            op("head_z", spec.layer).edits.append(
                SiteEdit("set_heads", mask, gen, {"heads": heads, "replacement": replacement})
            )
        elif isinstance(spec, ValueVectorEdit):
            op("mlp_act", spec.layer).edits.append(
                SiteEdit(
                    "scale_neurons",
                    mask,
                    gen,
                    {"indices": torch.tensor(spec.indices), "factor": float(spec.factor)},
                )
            )
        elif isinstance(spec, AddVector):
            vector = _vector(spec.vector, base_dir)
            for layer in spec.layers.resolve(shape.n_layers):
                op(spec.site, layer).edits.append(
                    SiteEdit(
                        "add_vector",
                        mask,
                        gen,
                        {"vector": vector, "coeff": spec.coeff, "normalize": spec.normalize},
                    )
                )
        elif isinstance(spec, SteerKV):
            heads = range(shape.n_kv_heads) if spec.heads == "all" else spec.heads
            kv_edits.append(
                KVEdit(
                    spec.layer,
                    spec.target,
                    torch.tensor(list(heads)),
                    _vector(spec.vector, base_dir),
                    spec.coeff,
                    mask,
                    gen,
                )
            )
        elif isinstance(spec, Patch):
            index, values = references[i]
            op(spec.site, spec.layer).edits.append(
                SiteEdit(
                    "scatter_positions",
                    torch.zeros_like(mask),
                    False,
                    {"index": index, "values": values},
                )
            )
        else:  # pragma: no cover - the union is closed
            raise TypeError(f"no compiler for {type(spec).__name__}")

    kv_captures = []
    for cap in graph.capture:
        capture = SiteCapture(cap.key, gather_plan(cap.positions, batch), _DTYPES[cap.dtype])
        layers = cap.layers.resolve(shape.n_layers) if SITES[cap.site].per_layer else [None]
        for layer in layers:
            if cap.site in ("k", "v"):
                kv_captures.append((cap.site, layer, capture))
            else:
                op(cap.site, layer).captures.append(capture)

    ordered = sorted(ops.values(), key=lambda o: site_order(o.site, o.layer, shape.n_layers))
    return Plan(ordered, kv_edits, kv_captures, shape.n_heads)


def capture_graph(site: str, layer: int | None, positions: Any) -> Graph:
    """A graph that only captures one site (used by reference runs)."""
    return Graph(
        capture=[Capture(site=site, layers=None if layer is None else [layer], positions=positions)]
    )
