"""Compile a validated graph into a :class:`Plan`: the site operations of one forward pass in
execution order, each with its edits (tensors ready) and captures.

Each intervention lowers itself (``spec.lower``) into torch-free
:class:`~interlace.interventions.Edit` values; here they become :class:`SiteEdit` values, the
same way for every kind: positions become masks over the padded batch, numpy arrays tensors.

nnsight runs a trace body in lockstep with the forward pass, so module reads must follow the
order the model reaches them: by layer, and inside a layer resid_pre, head_z, attn_out,
mlp_act, mlp_out, resid_post. Edits on one site apply in declaration order; captures on a site
see the value after its edits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from interlace.interventions import Graph
from interlace.interventions.sites import ModelShape
from interlace.runtime.prompts import Batch
from interlace.runtime.selection import Gather, gather_plan, prompt_mask

# position of each site inside a decoder layer, in execution order
_LAYER_ORDER = {
    "resid_pre": 0,
    "head_z": 1,
    "attn_out": 2,
    "mlp_act": 3,
    "mlp_out": 4,
    "resid_post": 5,
}
KV_SITES = ("k", "v")


def site_order(site: str, layer: int | None, n_layers: int) -> tuple[int, int]:
    """Sort key: when the forward pass reaches ``site`` at ``layer`` (the KV cache is read and
    edited after the forward)."""
    if site == "embed":
        return (-1, 0)
    if site == "logits":
        return (n_layers, 0)
    if site in KV_SITES:
        return (n_layers, 2)
    assert layer is not None
    return (layer, _LAYER_ORDER[site])


@dataclass
class SiteEdit:
    """One edit of a site's activation: an ``edits.OPS`` name and its arguments."""

    op: str
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
class Plan:
    ops: list[SiteOp]  # sorted in execution order
    kv_edits: list[tuple[str, int, SiteEdit]]  # (site k|v, layer, edit)
    kv_captures: list[tuple[str, int, SiteCapture]]  # (site k|v, layer, capture)


_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def _tensors(args: dict[str, Any]) -> dict[str, Any]:
    """An edit's arguments with numpy arrays made tensors (the rest as given)."""
    return {k: torch.as_tensor(v) if isinstance(v, np.ndarray) else v for k, v in args.items()}


def compile_plan(
    graph: Graph,
    shape: ModelShape,
    batch: Batch,
    references: dict[int, Any],
    base_dir: str | Path | None = None,
) -> Plan:
    """Build the plan for ``graph`` on ``batch``.

    ``references`` holds what reference runs computed (:mod:`interlace.runtime.references`),
    by intervention index.
    """
    ops: dict[tuple[str, int | None], SiteOp] = {}

    def op(site: str, layer: int | None) -> SiteOp:
        return ops.setdefault((site, layer), SiteOp(site, layer))

    kv_edits: list[tuple[str, int, SiteEdit]] = []
    for i, spec in enumerate(graph.interventions):
        for edit in spec.lower(shape, references.get(i), base_dir):
            mask = prompt_mask(edit.positions, batch)
            site_edit = SiteEdit(edit.op, mask, edit.on_generated, _tensors(edit.args))
            if edit.site in KV_SITES:
                assert edit.layer is not None
                kv_edits.append((edit.site, edit.layer, site_edit))
            else:
                op(edit.site, edit.layer).edits.append(site_edit)

    kv_captures = []
    for cap in graph.capture:
        capture = SiteCapture(cap.key, gather_plan(cap.positions, batch), _DTYPES[cap.dtype])
        layers = cap.layers.resolve(shape.n_layers) if cap.layers is not None else [None]
        for layer in layers:
            if cap.site in KV_SITES:
                assert layer is not None
                kv_captures.append((cap.site, layer, capture))
            else:
                op(cap.site, layer).captures.append(capture)

    ordered = sorted(ops.values(), key=lambda o: site_order(o.site, o.layer, shape.n_layers))
    return Plan(ordered, kv_edits, kv_captures)
