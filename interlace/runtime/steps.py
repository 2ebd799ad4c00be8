"""Compiled plans -> *steps*, the wire form that trace bodies (:mod:`interlace.runtime.execute`)
run; this module is the one place that format is described.

A step is plain data (dicts, lists, tuples, strings, numbers, tensors; the TypedDicts below
are plain dicts on the wire), with modules named by their dotted path below the nnsight
model. Everything that needs interlace (the architecture adapter, the plan, the tokenizer) is
resolved here, on the client, so a step can be shipped to a server that has only torch and
nnsight. Each step carries ``result_bytes``, an upper bound of what it sends back, so a
backend can refuse a result too large before anything runs.

Steps, by ``kind``:

- ``forward`` (:class:`ForwardStep`): one forward pass over ``inputs`` with the ``ops`` and
  ``kv`` edits applied; saves the logits (all positions or the last), the captures, and the
  KV cache under ``"__cache__"`` when ``keep_cache``.
- ``generate`` (:class:`GenerateStep`): as ``forward``, over ``max_new_tokens`` steps of
  generation with ``sampling`` (``generate`` keyword arguments) and ``seed``; also saves
  ``"__ids__"``.
- ``fork`` (:class:`ForkStep`): a ``prefix`` forward step that keeps its cache, then
  ``chunks``, each a forward on packed suffixes over that cache with ``n`` (tokens to crop
  back afterwards) and the rows to read (``rows``/``tokens`` for the choices, ``last`` for the
  top-k). The cache never leaves the process that made it.

A :class:`OpWire` visits one site: it reads the site once, applies its ``edits`` in order,
writes the result back if anything changed, then gathers its ``captures``. In a generation the
same ops run at every step: step 0 is the prompt's forward (with the edits' position masks),
each later step one new token, edited where an edit is ``on_generated``. KV-cache edits
(:class:`CacheEditWire`) apply to the cache right after the forward that wrote the entries, so the
tokens that come later see them.
"""

from __future__ import annotations

import math
from typing import Any, TypedDict

import torch

from interlace.models.model import Model
from interlace.runtime.plan import Plan, SiteEdit
from interlace.runtime.prompts import Batch

_KV_NAMES = {"k": "keys", "v": "values"}
_LOGIT_BYTES = 4  # logits come back in the model's dtype: float32 at most


class EditWire(TypedDict):
    """One edit: ``op`` names a function of ``interlace.runtime.edits.OPS``, called as
    ``op(x, mask, **args)``; ``mask`` ``[batch, seq]`` bool for the prompt's forward."""

    op: str
    mask: torch.Tensor
    on_generated: bool
    args: dict[str, Any]


class CacheEditWire(EditWire):
    """An edit of the KV cache of ``layer``: ``name`` ``keys`` or ``values``."""

    layer: int
    name: str


#: A capture of a site: (key, layer, padded position index ``[batch, k]``, dtype).
CaptureWire = tuple[str, int | None, torch.Tensor, torch.dtype]
#: A capture of the KV cache: (``keys``|``values``, layer, key, index ``[batch, k]``, dtype).
CacheCaptureWire = tuple[str, int, str, torch.Tensor, torch.dtype]


class OpWire(TypedDict):
    """One site: its module's ``path``, ``side`` (``input``/``output``), ``softcap`` (the
    logits site's final softcap, else None), its ``edits`` and ``captures``."""

    path: str
    side: str
    softcap: float | None
    edits: list[EditWire]
    captures: list[CaptureWire]


class KVWire(TypedDict):
    edits: list[CacheEditWire]
    captures: list[CacheCaptureWire]


class ForwardStep(TypedDict):
    kind: str  # "forward"
    inputs: dict[str, Any]
    """Model keyword arguments (``input_ids``, ``attention_mask``, ...)."""
    ops: list[OpWire]
    kv: KVWire
    all_logits: bool
    keep_cache: bool
    result_bytes: int


class GenerateStep(ForwardStep):
    max_new_tokens: int
    sampling: dict[str, Any]
    seed: int | None


class ForkChunk(TypedDict):
    forward: ForwardStep
    n: int
    rows: torch.Tensor
    tokens: torch.Tensor
    last: torch.Tensor


class ForkStep(TypedDict):
    kind: str  # "fork"
    prefix: ForwardStep
    chunks: list[ForkChunk]
    top_k: int
    result_bytes: int


Step = ForwardStep | GenerateStep | ForkStep


def _edit(edit: SiteEdit) -> EditWire:
    return {"op": edit.op, "mask": edit.mask, "on_generated": edit.on_generated, "args": edit.args}


def _relative_path(root: Any, envoy: Any) -> str:
    """The module's dotted path below the nnsight model (what ``root.get`` resolves)."""
    return envoy.path.removeprefix(root.path).removeprefix(".")


def _ops(model: Model, plan: Plan) -> tuple[list[OpWire], int]:
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


def _kv(model: Model, plan: Plan) -> tuple[KVWire, int]:
    edits: list[CacheEditWire] = [
        {"layer": layer, "name": _KV_NAMES[site], **_edit(edit)}
        for site, layer, edit in plan.kv_edits
    ]
    captures, size = [], 0
    width = model.shape.n_kv_heads * model.shape.head_dim
    for site, layer, cap in plan.kv_captures:
        captures.append((_KV_NAMES[site], layer, cap.key, cap.gather.index, cap.dtype))
        size += cap.gather.index.numel() * width * cap.dtype.itemsize
    return {"edits": edits, "captures": captures}, size


def forward_step(
    model: Model, plan: Plan, inputs: dict[str, Any], all_logits: bool, keep_cache: bool = False
) -> ForwardStep:
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
        "keep_cache": keep_cache,
        "result_bytes": op_bytes + kv_bytes + logit_bytes,
    }


def generate_step(
    model: Model,
    plan: Plan,
    batch: Batch,
    all_logits: bool,
    max_new_tokens: int,
    sampling: dict[str, Any],
    seed: int | None,
) -> GenerateStep:
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


def fork_step(prefix: ForwardStep, chunks: list[ForkChunk], top_k: int) -> ForkStep:
    """A fork readout: ``prefix`` (a forward step that keeps its cache) and ``chunks``."""
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
