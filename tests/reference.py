"""Independent reference implementations of interlace's interventions, in plain PyTorch.

Everything here works on the raw transformers model with ordinary forward hooks and forward
pre-hooks, or on the KV cache transformers returns; it imports nothing from ``interlace``. The
module paths of each family are written out below from reading transformers' modeling files,
not taken from interlace's adapter tables, so a wrong adapter entry shows up as a mismatch.

Edits are functions ``x -> x'`` of a site's activation ``[batch, seq, width]`` (``head_z`` is
the flat input of the output projection, ``[batch, seq, n_heads * head_dim]``). The reference
runs are unbatched, so a prompt position is a sequence index. Positions are given as a list of
indices, or ``None`` for every position of the call.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

Edit = Callable[[torch.Tensor], torch.Tensor]
Positions = Sequence[int] | None


# ---- where each family computes things ---------------------------------------------------------


@dataclass(frozen=True)
class Modules:
    """Module paths of one family: ``layers`` and ``embed`` from the model root, the others
    relative to a decoder layer. ``attn_out``/``mlp_out`` name the module whose output the
    layer adds to the residual stream."""

    layers: str
    embed: str
    attn_out: str
    mlp_out: str
    o_proj: str
    down: str
    unembed: str = "lm_head"


_LLAMA = Modules(
    layers="model.layers",
    embed="model.embed_tokens",
    attn_out="self_attn",
    mlp_out="mlp",
    o_proj="self_attn.o_proj",
    down="mlp.down_proj",
)

# Gemma 2 and 3 normalise each block's output before adding it to the residual stream
_POST_NORM = Modules(
    layers="model.layers",
    embed="model.embed_tokens",
    attn_out="post_attention_layernorm",
    mlp_out="post_feedforward_layernorm",
    o_proj="self_attn.o_proj",
    down="mlp.down_proj",
)

MODULES: dict[str, Modules] = {
    "llama": _LLAMA,
    "qwen2": _LLAMA,
    "gemma2": _POST_NORM,
    "gemma3_text": _POST_NORM,
    "gpt2": Modules(
        layers="transformer.h",
        embed="transformer.wte",
        attn_out="attn",
        mlp_out="mlp",
        o_proj="attn.c_proj",
        down="mlp.c_proj",
    ),
    "gpt_neox": Modules(
        layers="gpt_neox.layers",
        embed="gpt_neox.embed_in",
        attn_out="attention",
        mlp_out="mlp",
        o_proj="attention.dense",
        down="mlp.dense_4h_to_h",
    ),
}


def modules(hf: torch.nn.Module) -> Modules:
    return MODULES[hf.config.model_type]


def n_heads(hf: torch.nn.Module) -> int:
    return hf.config.num_attention_heads


def decoder_layer(hf: torch.nn.Module, layer: int) -> torch.nn.Module:
    return hf.get_submodule(modules(hf).layers)[layer]


def site_point(hf: torch.nn.Module, site: str, layer: int | None = None) -> tuple[Any, str]:
    """The module holding ``site`` and whether the site is its ``input`` or ``output``."""
    mods = modules(hf)
    if site == "embed":
        return hf.get_submodule(mods.embed), "output"
    if site == "logits":  # the unembedding's output (before any final-logit softcap)
        return hf.get_submodule(mods.unembed), "output"
    lay = decoder_layer(hf, layer)
    return {
        "resid_pre": (lay, "input"),
        "resid_post": (lay, "output"),
        "attn_out": (lay.get_submodule(mods.attn_out), "output"),
        "mlp_out": (lay.get_submodule(mods.mlp_out), "output"),
        "head_z": (lay.get_submodule(mods.o_proj), "input"),
        "mlp_act": (lay.get_submodule(mods.down), "input"),
    }[site]


# ---- hooks -------------------------------------------------------------------------------------


def _input_hook(fn: Edit) -> Callable:
    def hook(module: Any, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        if args:
            return (fn(args[0]), *args[1:]), kwargs
        return args, {**kwargs, "hidden_states": fn(kwargs["hidden_states"])}

    return hook


def _output_hook(fn: Edit) -> Callable:
    def hook(module: Any, args: tuple, output: Any) -> Any:
        if isinstance(output, tuple):
            return (fn(output[0]), *output[1:])
        return fn(output)

    return hook


@contextlib.contextmanager
def hooked(hf: torch.nn.Module, edits: Sequence[tuple[str, int | None, Edit]]) -> Iterator[None]:
    """Register ``(site, layer, fn)`` edits as hooks, in order (so two edits on one site apply
    in the order given), and remove them on exit."""
    handles = []
    try:
        for site, layer, fn in edits:
            module, side = site_point(hf, site, layer)
            if side == "input":
                handles.append(module.register_forward_pre_hook(_input_hook(fn), with_kwargs=True))
            else:
                handles.append(module.register_forward_hook(_output_hook(fn)))
        yield
    finally:
        for h in handles:
            h.remove()


def record(store: list) -> Edit:
    """An edit that changes nothing and appends a copy of what it sees to ``store``."""

    def fn(x: torch.Tensor) -> torch.Tensor:
        store.append(x.detach().clone())
        return x

    return fn


# ---- runs --------------------------------------------------------------------------------------


def as_batch(ids: Sequence[int]) -> torch.Tensor:
    return torch.tensor([list(ids)], dtype=torch.long)


def forward(
    hf: torch.nn.Module, ids: Sequence[int], edits: Sequence[tuple[str, int | None, Edit]] = ()
) -> Any:
    """One unbatched forward of ``ids`` with ``edits`` hooked in; the transformers output."""
    with torch.inference_mode(), hooked(hf, edits):
        return hf(input_ids=as_batch(ids), use_cache=True)


def logits(
    hf: torch.nn.Module, ids: Sequence[int], edits: Sequence[tuple[str, int | None, Edit]] = ()
) -> torch.Tensor:
    """``[seq, vocab]`` logits of one prompt with ``edits`` applied."""
    return forward(hf, ids, edits).logits[0].float()


def capture(
    hf: torch.nn.Module,
    ids: Sequence[int],
    site: str,
    layer: int | None = None,
    edits: Sequence[tuple[str, int | None, Edit]] = (),
) -> torch.Tensor:
    """``[seq, width]`` of ``site`` in one prompt's forward (after ``edits``, which come
    first)."""
    store: list[torch.Tensor] = []
    forward(hf, ids, [*edits, (site, layer, record(store))])
    assert len(store) == 1, f"{site} at layer {layer} ran {len(store)} times"
    return store[0][0]


def cached_kv(hf: torch.nn.Module, ids: Sequence[int], layer: int) -> tuple[torch.Tensor, ...]:
    """The keys and values the model caches for one prompt at ``layer``, ``[seq, kv, hd]``."""
    cache = forward(hf, ids).past_key_values.layers[layer]
    return cache.keys[0].transpose(0, 1), cache.values[0].transpose(0, 1)


# ---- edits -------------------------------------------------------------------------------------


def _rows(x: torch.Tensor, positions: Positions) -> Any:
    return slice(None) if positions is None else list(positions)


def set_heads(heads: Sequence[int], n: int, positions: Positions, value: Any) -> Edit:
    """Write ``value`` into heads of ``head_z``. ``value`` is ``0``, a per-head tensor
    ``[n_heads, head_dim]`` (mean ablation) or per-position ``[n_pos, n_heads, head_dim]``
    (patching)."""

    def fn(x: torch.Tensor) -> torch.Tensor:
        z = x.clone().reshape(*x.shape[:-1], n, -1)
        rows = _rows(x, positions)
        for h in heads:
            if isinstance(value, torch.Tensor) and value.dim() == 3:
                z[0, rows, h] = value[:, h].to(z.dtype)
            elif isinstance(value, torch.Tensor):
                z[:, rows, h] = value[h].to(z.dtype)
            else:
                z[:, rows, h] = value
        return z.reshape(x.shape)

    return fn


def scale_neurons(indices: Sequence[int], factor: float, positions: Positions) -> Edit:
    def fn(x: torch.Tensor) -> torch.Tensor:
        out = x.clone()
        rows = _rows(x, positions)
        for i in indices:
            out[:, rows, i] = out[:, rows, i] * factor
        return out

    return fn


def add_vector(vector: Sequence[float], coeff: float, normalize: str, positions: Positions) -> Edit:
    """``h + coeff v`` / ``h + coeff v/|v|`` / ``h + coeff |h| v/|v|`` at ``positions``."""
    v = torch.tensor(list(vector), dtype=torch.float64)

    def fn(x: torch.Tensor) -> torch.Tensor:
        out = x.clone()
        rows = _rows(x, positions)
        h = out[:, rows].double()
        if normalize == "none":
            delta = coeff * v
        elif normalize == "unit":
            delta = coeff * v / v.norm()
        elif normalize == "resid_norm":
            delta = coeff * h.norm(dim=-1, keepdim=True) * v / v.norm()
        else:
            raise ValueError(normalize)
        out[:, rows] = (h + delta).to(x.dtype)
        return out

    return fn


def replace_positions(positions: Sequence[int], values: torch.Tensor) -> Edit:
    """Write ``values[k]`` at ``positions[k]`` (patching)."""

    def fn(x: torch.Tensor) -> torch.Tensor:
        out = x.clone()
        out[0, list(positions)] = values.to(x.dtype)
        return out

    return fn


def mean_head_z(
    hf: torch.nn.Module, layer: int, prompts: Sequence[Sequence[int]], skip_first: bool = True
) -> torch.Tensor:
    """Each head's output ``[n_heads, head_dim]`` averaged over every position of every
    reference prompt (position 0 left out when ``skip_first``)."""
    rows = [capture(hf, ids, "head_z", layer)[1 if skip_first else 0 :] for ids in prompts]
    return torch.cat(rows).mean(0).reshape(n_heads(hf), -1)


class PerCall:
    """An edit that knows whether it sees the prompt (its first call) or a generated token.

    ``prompt_positions`` are edited in the prompt's forward; every later call (one new token)
    is edited entirely when ``on_generated``, else not at all.
    """

    def __init__(
        self, make: Callable[[Positions], Edit], prompt_positions: Positions, on_generated: bool
    ):
        self.make, self.prompt_positions, self.on_generated = make, prompt_positions, on_generated
        self.calls = 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        first, self.calls = self.calls == 0, self.calls + 1
        if first:
            return self.make(self.prompt_positions)(x)
        return self.make(None)(x) if self.on_generated else x


# ---- generation --------------------------------------------------------------------------------


def generate(
    hf: torch.nn.Module,
    ids: Sequence[int],
    max_new_tokens: int,
    edits: Sequence[tuple[str, int | None, Edit]] = (),
) -> list[int]:
    """Greedy ``hf.generate`` of one prompt with ``edits`` hooked in at every step."""
    with torch.inference_mode(), hooked(hf, edits):
        out = hf.generate(
            input_ids=as_batch(ids),
            attention_mask=torch.ones(1, len(ids), dtype=torch.long),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=hf.generation_config.pad_token_id or 0,
        )
    return out[0, len(ids) :].tolist()


def _steer_cache(
    layer_cache: Any,
    target: str,
    heads: Sequence[int],
    positions: Sequence[int],
    delta: torch.Tensor,
) -> None:
    names = {"keys": ["keys"], "values": ["values"], "both": ["keys", "values"]}[target]
    for name in names:
        t = getattr(layer_cache, name)  # [batch, kv_heads, seq, head_dim]
        for h in heads:
            for p in positions:
                t[:, h, p, :] += delta.to(t.dtype)


def generate_steering_kv(
    hf: torch.nn.Module,
    ids: Sequence[int],
    max_new_tokens: int,
    layer: int,
    heads: Sequence[int],
    target: str,
    vector: Sequence[float],
    coeff: float,
    prompt_positions: Sequence[int],
    on_generated: bool,
) -> list[int]:
    """Greedy decoding by hand with ``coeff * vector`` added to the cached keys/values of
    ``heads`` at ``layer``: at ``prompt_positions`` right after the prompt's forward, and
    (``on_generated``) at each new token's entry right after the forward that wrote it."""
    delta = coeff * torch.tensor(list(vector), dtype=torch.float32)
    n = len(ids)
    with torch.inference_mode():
        out = hf(input_ids=as_batch(ids), use_cache=True)
        cache = out.past_key_values
        _steer_cache(cache.layers[layer], target, heads, prompt_positions, delta)
        tokens = [int(out.logits[0, -1].argmax())]
        for step in range(1, max_new_tokens):
            length = n + step
            out = hf(
                input_ids=torch.tensor([[tokens[-1]]]),
                attention_mask=torch.ones(1, length, dtype=torch.long),
                position_ids=torch.tensor([[length - 1]]),
                past_key_values=cache,
                use_cache=True,
            )
            cache = out.past_key_values
            if on_generated:
                _steer_cache(cache.layers[layer], target, heads, [length - 1], delta)
            tokens.append(int(out.logits[0, -1].argmax()))
    return tokens


def cut_at_eos(tokens: Sequence[int], eos: Sequence[int]) -> list[int]:
    """``tokens`` up to and including the first end-of-sequence token."""
    out = []
    for t in tokens:
        if t < 0:
            break
        out.append(int(t))
        if t in eos:
            break
    return out


# ---- comparisons -------------------------------------------------------------------------------


def assert_close_rel(actual: Any, expected: Any, rtol: float = 1e-5, what: str = "") -> None:
    """``actual`` equals ``expected`` to ``rtol`` relative to the largest magnitude of each
    position (each vector along the last dimension), so a massive activation at one position
    does not loosen the check of the others."""
    a = torch.as_tensor(actual).double()
    e = torch.as_tensor(expected).double()
    assert a.shape == e.shape, f"{what}: shape {tuple(a.shape)} != {tuple(e.shape)}"
    assert torch.isfinite(e).all(), f"{what}: reference is not finite"
    scale = e.abs().amax(dim=-1, keepdim=True).clamp(min=1e-12)
    err = ((a - e).abs() / scale).nan_to_num(nan=float("inf"))
    worst = float(err.max())
    assert worst <= rtol, f"{what}: relative difference {worst:.3g} > {rtol:g}"


def assert_effect(edited: Any, clean: Any, min_rel: float = 1e-2, what: str = "") -> None:
    """Guard: the intervention moved ``edited`` away from ``clean`` by a clear margin."""
    a = torch.as_tensor(edited).double()
    c = torch.as_tensor(clean).double()
    diff = float((a - c).abs().max())
    scale = float(c.abs().max())
    assert diff > min_rel * scale, (
        f"{what}: the intervention barely changed anything ({diff:.3g} vs scale {scale:.3g})"
    )
