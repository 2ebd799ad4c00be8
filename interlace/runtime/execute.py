"""Trace bodies: the code that runs inside nnsight traces, wherever the model is.

A body runs a *step*, the wire form of a compiled plan (built by :mod:`interlace.runtime.steps`):
plain dicts, lists, tuples, strings, numbers and tensors, with modules named by their dotted
path. Nothing here imports interlace beyond :mod:`interlace.runtime.edits`, and both modules
are registered with ``nnsight.register``: an NDIF server, which cannot import interlace,
receives them by value and runs exactly the code that runs locally.

The steps' format (keys, meanings) is documented and typed in one place,
:mod:`interlace.runtime.steps`; this module only runs them. An edit names its op in
:data:`interlace.runtime.edits.OPS`; every op has the signature ``op(x, mask, **args)``.
"""

from __future__ import annotations

import sys
from typing import Any

import nnsight
import torch

from interlace.runtime import edits
from interlace.runtime.edits import OPS, gather_positions


def execute(nm: Any, steps: list[dict]) -> list[dict]:
    """Run ``steps`` in order on the nnsight model ``nm``; one dict of results per step."""
    with torch.inference_mode():
        return [_STEPS[step["kind"]](nm, step) for step in steps]


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


def _apply(edit: dict, x: torch.Tensor, step: int) -> torch.Tensor | None:
    """``x`` after ``edit`` at generation ``step`` (0 = the prompt forward); None if it does not
    apply at this step."""
    if step == 0:
        mask = edit["mask"]
    elif edit["on_generated"]:
        mask = torch.ones(x.shape[:2], dtype=torch.bool)
    else:
        return None
    return _op(edit["op"])(x, mask, **edit["args"])


def _op(name: str) -> Any:
    if name not in OPS:
        raise ValueError(f"unknown edit {name!r}")
    return OPS[name]


def _site_op(envoy: Any, op: dict, saved: dict, step: int) -> None:
    x, whole = _read(envoy, op["side"])
    changed = False
    for edit in op["edits"]:
        new = _apply(edit, x, step)
        if new is not None:
            x, changed = new, True
    if changed:
        _write(envoy, op["side"], x, whole)
    cap = op["softcap"]  # the model's logits, e.g. after Gemma 2's final softcap
    if cap is not None:
        x = cap * torch.tanh(x / cap)
    if step == 0:
        for key, layer, index, dtype in op["captures"]:
            saved[(key, layer)] = gather_positions(x, index).to(dtype)


def _kv(nm: Any, kv: dict, saved: dict, step: int) -> None:
    """KV-cache captures (prompt forward) and edits (of the entries this step wrote)."""
    if not kv["edits"] and not (kv["captures"] and step == 0):
        return
    cache = nm.output.past_key_values
    for edit in kv["edits"]:  # edits first: captures see them, as on every other site
        _edit_cache(cache.layers[edit["layer"]], edit, step)
    if step == 0:
        for name, layer, key, index, dtype in kv["captures"]:
            t = getattr(cache.layers[layer], name).transpose(1, 2)  # [batch, seq, heads, dim]
            saved[(key, layer)] = gather_positions(t, index).to(dtype)


def _edit_cache(layer_cache: Any, edit: dict, step: int) -> None:
    if step == 0:
        mask = edit["mask"]
    elif edit["on_generated"]:
        keys = layer_cache.keys
        mask = torch.zeros(keys.shape[0], keys.shape[2], dtype=torch.bool)
        mask[:, -1] = True
    else:
        return
    t = getattr(layer_cache, edit["name"])
    m = mask if mask.shape[1] == t.shape[2] else _right_align(mask, t.shape[2])
    _op(edit["op"])(t, m, **edit["args"])


def _right_align(mask: torch.Tensor, width: int) -> torch.Tensor:
    out = torch.zeros(mask.shape[0], width, dtype=torch.bool)
    out[:, width - mask.shape[1] :] = mask
    return out


def _logits(nm: Any, saved: dict, all_positions: bool) -> None:
    logits = nm.output.logits
    saved["__logits__"] = (logits if all_positions else logits[:, -1]).clone()


def forward(nm: Any, step: dict) -> dict:
    """One forward pass with the step's ops applied; what it saved (the KV cache under
    ``"__cache__"`` when the step keeps it)."""
    envoys = [nm.get(op["path"]) for op in step["ops"]]
    with nm.trace(**step["inputs"]):
        saved = nnsight.save({})
        for envoy, op in zip(envoys, step["ops"], strict=True):
            _site_op(envoy, op, saved, 0)
        _logits(nm, saved, step["all_logits"])
        _kv(nm, step["kv"], saved, 0)
        if step["keep_cache"]:
            saved["__cache__"] = nm.output.past_key_values
    return saved


def generate(nm: Any, step: dict) -> dict:
    """Generate ``max_new_tokens`` with the ops applied at every step.

    End-of-sequence does not stop the loop (so every step's body runs and the step count is
    fixed); the caller cuts each row at its first end-of-sequence token, which is exactly
    where plain ``generate`` would have stopped it.
    """
    envoys = [nm.get(op["path"]) for op in step["ops"]]
    n = step["max_new_tokens"]
    if step["seed"] is not None:
        torch.manual_seed(step["seed"])
    with nm.generate(step["inputs"], max_new_tokens=n, eos_token_id=None, **step["sampling"]) as t:
        saved = nnsight.save({})
        for i in t.iter[0:n]:
            for envoy, op in zip(envoys, step["ops"], strict=True):
                _site_op(envoy, op, saved, i)
            if i == 0:
                _logits(nm, saved, step["all_logits"])
            _kv(nm, step["kv"], saved, i)
        saved["__ids__"] = t.result
    return saved


def fork(nm: Any, step: dict) -> dict:
    """A fork readout: the prefix once, then each chunk of packed suffixes over its cache
    (cropped back after each chunk, so every chunk forks the same prefix). Returns only the
    log-probabilities read: per chunk the choice tokens' and the top-k at each suffix end."""
    cache = forward(nm, step["prefix"])["__cache__"]
    chunks = []
    for chunk in step["chunks"]:
        inputs = {**chunk["forward"]["inputs"], "past_key_values": cache, "use_cache": True}
        try:
            saved = forward(nm, {**chunk["forward"], "inputs": inputs})
        finally:
            cache.crop(-chunk["n"])
        lp = torch.log_softmax(saved["__logits__"][0].float(), dim=-1)
        top = lp[chunk["last"]].topk(step["top_k"])
        chunks.append(
            {
                "choices": lp[chunk["rows"], chunk["tokens"]],
                "top_values": top.values,
                "top_ids": top.indices,
            }
        )
    return {"chunks": chunks}


_STEPS = {"forward": forward, "generate": generate, "fork": fork}

# shipped by value to a remote server, which cannot import interlace
nnsight.register(edits)
nnsight.register(sys.modules[__name__])
