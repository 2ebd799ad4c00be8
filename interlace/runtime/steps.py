"""Compiled plans -> *steps*, the wire form that trace bodies (:mod:`interlace.runtime.execute`)
run: plain dicts of tensors, numbers and strings, with modules named by dotted path.

Everything that needs interlace (the architecture adapter, the plan's dataclasses, the
tokenizer) is resolved here, on the client, so a step can be shipped to a server that has
only torch and nnsight. Each step also carries ``result_bytes``, an upper bound of what it
sends back, so a backend can refuse a result too large before anything runs.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from interlace.runtime.plan import Plan, SiteEdit
from interlace.runtime.prompts import Batch

_KV_NAMES = {"k": "keys", "v": "values"}
_KV_TARGETS = {"keys": ("keys",), "values": ("values",), "both": ("keys", "values")}
_LOGIT_BYTES = 4  # logits come back in the model's dtype: float32 at most


def _edit(edit: SiteEdit) -> dict:
    return {"fn": edit.fn, "mask": edit.mask, "on_generated": edit.on_generated, **edit.args}


def _relative_path(root: Any, envoy: Any) -> str:
    """The module's dotted path below the nnsight model (what ``root.get`` resolves)."""
    return envoy.path.removeprefix(root.path).removeprefix(".")


def _ops(model: Any, plan: Plan) -> tuple[list[dict], int]:
    """The plan's site ops in wire form, and the bytes their captures send back."""
    adapter, root = model.adapter, model.nnsight
    ops, size = [], 0
    for op in plan.ops:
        envoy = adapter.site_module(root, op.site, op.layer)
        captures = []
        for cap in op.captures:
            captures.append((cap.key, op.layer, cap.gather.index, cap.dtype))
            width = math.prod(model.shape.site_width(op.site))
            size += cap.gather.index.numel() * width * cap.dtype.itemsize
        ops.append(
            {
                "path": _relative_path(root, envoy),
                "side": adapter.location(op.site).side,
                "softcap": adapter.logit_softcap if op.site == "logits" else None,
                "edits": [_edit(e) for e in op.edits],
                "captures": captures,
            }
        )
    return ops, size


def _kv(model: Any, plan: Plan) -> tuple[dict, int]:
    edits = [
        {
            "layer": e.layer,
            "names": _KV_TARGETS[e.target],
            "heads": e.heads,
            "vector": e.vector,
            "coeff": e.coeff,
            "mask": e.mask,
            "on_generated": e.on_generated,
        }
        for e in plan.kv_edits
    ]
    captures, size = [], 0
    width = model.shape.n_kv_heads * model.shape.head_dim
    for site, layer, cap in plan.kv_captures:
        captures.append((_KV_NAMES[site], layer, cap.key, cap.gather.index, cap.dtype))
        size += cap.gather.index.numel() * width * cap.dtype.itemsize
    return {"edits": edits, "captures": captures}, size


def forward_step(
    model: Any, plan: Plan, inputs: dict[str, Any], all_logits: bool, keep_cache: bool = False
) -> dict:
    """One forward pass over ``inputs`` (model keyword arguments) with ``plan`` applied."""
    ops, op_bytes = _ops(model, plan)
    kv, kv_bytes = _kv(model, plan)
    batch, seq = inputs["input_ids"].shape
    logit_bytes = batch * (seq if all_logits else 1) * model.shape.vocab * _LOGIT_BYTES
    return {
        "kind": "forward",
        "inputs": inputs,
        "ops": ops,
        "kv": kv,
        "all_logits": all_logits,
        "n_heads": plan.n_heads,
        "keep_cache": keep_cache,
        "result_bytes": op_bytes + kv_bytes + logit_bytes,
    }


def generate_step(
    model: Any,
    plan: Plan,
    batch: Batch,
    all_logits: bool,
    max_new_tokens: int,
    sampling: dict[str, Any],
    seed: int | None,
) -> dict:
    """A generation of ``max_new_tokens`` with ``plan`` applied at every step (``seed`` seeds
    sampling where the generation runs)."""
    inputs = {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask}
    step = forward_step(model, plan, inputs, all_logits)
    ids_bytes = batch.size * (batch.width + max_new_tokens) * 8
    return {
        **step,
        "kind": "generate",
        "max_new_tokens": max_new_tokens,
        "sampling": sampling,
        "seed": seed,
        "result_bytes": step["result_bytes"] + ids_bytes,
    }


def fork_step(prefix: dict, chunks: list[dict], top_k: int) -> dict:
    """A fork readout: ``prefix`` (a forward step that keeps its cache) and ``chunks``, each
    ``{"forward": step, "n": tokens, "rows": .., "tokens": .., "last": ..}``."""
    size = sum((c["rows"].numel() + 2 * c["last"].numel() * top_k) * 8 for c in chunks)
    return {
        "kind": "fork",
        "prefix": prefix,
        "chunks": chunks,
        "top_k": top_k,
        "result_bytes": size,
    }


def chunk_reads(choice_reads: list, suffix_last: list[int]) -> dict[str, torch.Tensor]:
    """The rows a fork chunk reads: every (row, token) of every choice, flattened in order,
    and the last suffix row of each checkpoint (for the top-k)."""
    pairs = [pair for per_checkpoint in choice_reads for reads in per_checkpoint for pair in reads]
    return {
        "rows": torch.tensor([r for r, _ in pairs], dtype=torch.long),
        "tokens": torch.tensor([t for _, t in pairs], dtype=torch.long),
        "last": torch.tensor(suffix_last, dtype=torch.long),
    }
