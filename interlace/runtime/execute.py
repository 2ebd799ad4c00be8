"""Trace bodies: run a :class:`Plan` inside one nnsight trace (a forward) or one generation.

The body visits the plan's site operations in execution order. For each it reads the site once,
applies its edits in order, writes the result back if anything changed, then gathers its
captures. In a generation the same body runs at every step: step 0 is the prompt's forward
(with the plan's position masks), each later step one new token, edited where an edit's
positions cover generated tokens. KV-cache edits are applied to the cache right after the
forward that wrote the entries, so the tokens that come later see them.
"""

from __future__ import annotations

from typing import Any

import nnsight
import torch

from interlace.runtime import edits
from interlace.runtime.plan import KVEdit, Plan, SiteEdit, SiteOp
from interlace.runtime.prompts import Batch


def _read(envoy: Any, side: str) -> tuple[torch.Tensor, Any]:
    value = envoy.output if side == "output" else envoy.input
    if isinstance(value, tuple):
        return value[0], value
    return value, None


def _write(envoy: Any, side: str, new: torch.Tensor, whole: Any) -> None:
    if whole is not None:
        new = (new, *whole[1:])
    if side == "output":
        envoy.output = new
    else:
        envoy.input = new


def _apply(edit: SiteEdit, x: torch.Tensor, step: int, n_heads: int) -> torch.Tensor | None:
    """``x`` after ``edit`` at generation ``step`` (0 = the prompt forward); None if it does not
    apply at this step."""
    if step == 0:
        mask = edit.mask
    elif edit.on_generated:
        mask = torch.ones(x.shape[:2], dtype=torch.bool)
    else:
        return None
    a = edit.args
    if edit.fn == "add_vector":
        return edits.add_vector(x, mask, a["vector"], a["coeff"], a["normalize"])
    if edit.fn == "scale_neurons":
        return edits.scale_neurons(x, mask, a["indices"], a["factor"])
    if edit.fn == "scatter_positions":
        return edits.scatter_positions(x, a["index"], a["values"])
    if edit.fn == "set_heads":
        replacement = a["replacement"]
        if isinstance(replacement, tuple):  # patch: source values scattered at their positions
            _, index, values = replacement
            replacement = edits.scatter_positions(x, index, values)
            replacement = replacement.reshape(*x.shape[:-1], n_heads, -1)
        return edits.set_heads(x, mask, a["heads"], replacement, n_heads)
    raise ValueError(f"unknown edit {edit.fn!r}")


def _site_op(model: Any, op: SiteOp, plan: Plan, saved: dict, step: int) -> None:
    adapter = model.adapter
    loc = adapter.location(op.site)
    envoy = adapter.site_module(model.nnsight, op.site, op.layer)
    x, whole = _read(envoy, loc.side)
    changed = False
    for edit in op.edits:
        new = _apply(edit, x, step, plan.n_heads)
        if new is not None:
            x, changed = new, True
    if changed:
        _write(envoy, loc.side, x, whole)
    if op.site == "logits":  # the model's logits, e.g. after Gemma 2's final softcap
        x = adapter.final_logits(x)
    if step == 0:
        for cap in op.captures:
            saved[(cap.key, op.layer)] = edits.gather_positions(x, cap.gather.index).to(cap.dtype)


def _kv(model: Any, plan: Plan, saved: dict, step: int) -> None:
    """KV-cache captures (prompt forward) and edits (of the entries this step wrote)."""
    if not plan.kv_edits and not (plan.kv_captures and step == 0):
        return
    cache = model.nnsight.output.past_key_values
    for e in plan.kv_edits:  # edits first: captures see them, as on every other site
        _edit_cache(cache.layers[e.layer], e, step)
    if step == 0:
        for site, layer, cap in plan.kv_captures:
            layer_cache = cache.layers[layer]
            t = layer_cache.keys if site == "k" else layer_cache.values
            t = t.transpose(1, 2)  # [batch, seq, kv_heads, head_dim]
            saved[(cap.key, layer)] = edits.gather_positions(t, cap.gather.index).to(cap.dtype)


def _edit_cache(layer_cache: Any, e: KVEdit, step: int) -> None:
    if step == 0:
        mask = e.mask
    elif e.on_generated:
        mask = torch.zeros(layer_cache.keys.shape[0], layer_cache.keys.shape[2], dtype=torch.bool)
        mask[:, -1] = True
    else:
        return
    targets = {"keys": ("keys",), "values": ("values",), "both": ("keys", "values")}[e.target]
    for name in targets:
        t = getattr(layer_cache, name)
        m = mask if mask.shape[1] == t.shape[2] else _right_align(mask, t.shape[2])
        edits.add_to_cache(t, m, e.heads, e.vector, e.coeff)


def _right_align(mask: torch.Tensor, width: int) -> torch.Tensor:
    out = torch.zeros(mask.shape[0], width, dtype=torch.bool)
    out[:, width - mask.shape[1] :] = mask
    return out


def _logits(model: Any, saved: dict, all_positions: bool) -> None:
    logits = model.nnsight.output.logits
    saved["__logits__"] = (logits if all_positions else logits[:, -1]).clone()


def run_forward(
    model: Any, plan: Plan, inputs: dict[str, Any], all_logits: bool, keep_cache: bool = False
) -> dict:
    """One forward pass over ``inputs`` (model keyword arguments) with the plan applied; returns
    what it saved, and the KV cache under ``"__cache__"`` when ``keep_cache``."""
    nm = model.nnsight
    with torch.inference_mode():
        with nm.trace(**inputs):
            saved = nnsight.save({})
            for op in plan.ops:
                _site_op(model, op, plan, saved, 0)
            _logits(model, saved, all_logits)
            _kv(model, plan, saved, 0)
            if keep_cache:
                saved["__cache__"] = nm.output.past_key_values
    return saved


def run_generate(
    model: Any,
    plan: Plan,
    batch: Batch,
    all_logits: bool,
    max_new_tokens: int,
    sampling: dict,
) -> dict:
    """Generate ``max_new_tokens`` with the plan applied at every step.

    End-of-sequence does not stop the loop (so every step's body runs and the step count is
    fixed); the caller cuts each row at its first end-of-sequence token, which is exactly
    where plain ``generate`` would have stopped it.
    """
    nm = model.nnsight
    with torch.inference_mode():
        with nm.generate(
            {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask},
            max_new_tokens=max_new_tokens,
            eos_token_id=None,
            **sampling,
        ) as tracer:
            saved = nnsight.save({})
            for step in tracer.iter[0:max_new_tokens]:
                for op in plan.ops:
                    _site_op(model, op, plan, saved, step)
                if step == 0:
                    _logits(model, saved, all_logits)
                _kv(model, plan, saved, step)
            saved["__ids__"] = tracer.result
    return saved
