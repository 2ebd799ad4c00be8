"""Trace bodies: the code that runs inside nnsight traces, wherever the model is.

A body runs a *step*, the wire form of a compiled plan (built by :mod:`interlace.runtime.steps`):
plain dicts, lists, tuples, strings, numbers and tensors, with modules named by their dotted
path. Nothing here imports interlace beyond :mod:`interlace.runtime.edits`, and both modules
are registered with ``nnsight.register``: an NDIF server, which cannot import interlace,
receives them by value and runs exactly the code that runs locally.

Steps (keys of the dicts):

- ``forward``: ``inputs`` (model keyword arguments), ``ops``, ``kv``, ``all_logits``,
  ``n_heads``, ``keep_cache``.
- ``generate``: as ``forward`` plus ``max_new_tokens``, ``sampling`` and ``seed``.
- ``fork``: ``prefix`` (a forward step run with its KV cache kept) and ``chunks``, each a
  forward step on packed suffixes over that cache with ``n`` (tokens to crop back afterwards)
  and the rows to read (``rows``/``tokens`` for choices, ``last`` for the top-k); ``top_k``.
  The cache never leaves the process that made it.

An op visits one site (``path``, ``side``, ``softcap`` for the logits site): it reads the site
once, applies its ``edits`` in order, writes the result back if anything changed, then gathers
its ``captures`` ``(key, layer, index, dtype)``. In a generation the same ops run at every step:
step 0 is the prompt's forward (with the edits' position masks), each later step one new token,
edited where an edit is ``on_generated``. KV-cache edits apply to the cache right after the
forward that wrote the entries, so the tokens that come later see them.
"""

from __future__ import annotations

import sys
from typing import Any

import nnsight
import torch

from interlace.runtime import edits
from interlace.runtime.edits import (
    add_to_cache,
    add_vector,
    gather_positions,
    scale_neurons,
    scatter_positions,
    set_heads,
)


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


def _apply(edit: dict, x: torch.Tensor, step: int, n_heads: int) -> torch.Tensor | None:
    """``x`` after ``edit`` at generation ``step`` (0 = the prompt forward); None if it does not
    apply at this step."""
    if step == 0:
        mask = edit["mask"]
    elif edit["on_generated"]:
        mask = torch.ones(x.shape[:2], dtype=torch.bool)
    else:
        return None
    fn = edit["fn"]
    if fn == "add_vector":
        return add_vector(x, mask, edit["vector"], edit["coeff"], edit["normalize"])
    if fn == "scale_neurons":
        return scale_neurons(x, mask, edit["indices"], edit["factor"])
    if fn == "scatter_positions":
        return scatter_positions(x, edit["index"], edit["values"])
    if fn == "set_heads":
        replacement = edit["replacement"]
        if isinstance(replacement, tuple):  # patch: source values scattered at their positions
            _, index, values = replacement
            replacement = scatter_positions(x, index, values)
            replacement = replacement.reshape(*x.shape[:-1], n_heads, -1)
        return set_heads(x, mask, edit["heads"], replacement, n_heads)
    raise ValueError(f"unknown edit {fn!r}")


def _site_op(envoy: Any, op: dict, n_heads: int, saved: dict, step: int) -> None:
    x, whole = _read(envoy, op["side"])
    changed = False
    for edit in op["edits"]:
        new = _apply(edit, x, step, n_heads)
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
    for e in kv["edits"]:  # edits first: captures see them, as on every other site
        _edit_cache(cache.layers[e["layer"]], e, step)
    if step == 0:
        for name, layer, key, index, dtype in kv["captures"]:
            t = getattr(cache.layers[layer], name).transpose(1, 2)  # [batch, seq, heads, dim]
            saved[(key, layer)] = gather_positions(t, index).to(dtype)


def _edit_cache(layer_cache: Any, e: dict, step: int) -> None:
    if step == 0:
        mask = e["mask"]
    elif e["on_generated"]:
        mask = torch.zeros(layer_cache.keys.shape[0], layer_cache.keys.shape[2], dtype=torch.bool)
        mask[:, -1] = True
    else:
        return
    for name in e["names"]:
        t = getattr(layer_cache, name)
        m = mask if mask.shape[1] == t.shape[2] else _right_align(mask, t.shape[2])
        add_to_cache(t, m, e["heads"], e["vector"], e["coeff"])


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
            _site_op(envoy, op, step["n_heads"], saved, 0)
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
                _site_op(envoy, op, step["n_heads"], saved, i)
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
