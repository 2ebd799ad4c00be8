"""Every architecture adapter against the raw modules of a tiny random model of its family.

The module names below are written out per family from reading transformers' modeling files,
independently of the adapter tables, and the sites and weights read through the adapters are
checked against them and against identities that hold whatever the module names are.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import nnsight
import pytest
import torch
import transformers

from interlace.models.adapters import UnsupportedArchitectureError, adapter_for
from interlace.models.adapters.base import BIASES, WEIGHTS, Adapter
from interlace.models.tiny import TINY_FAMILIES, tiny_model

BATCH, SEQ = 2, 7
LAYER_SITES = ("resid_pre", "head_z", "attn_out", "mlp_act", "mlp_out", "resid_post")


@dataclass(frozen=True)
class Raw:
    """Where a family computes things, as plain module names (layer-relative below layers).

    ``attn_add``/``mlp_add``: the module whose output the block adds to the residual stream.
    ``qkv``: one module name (separate projections) per part, or the fused projection and a
    function splitting its output into q, k, v of shape ``[..., heads, head_dim]``.
    """

    layers: str
    embed: str
    final_norm: str
    unembed: str
    attn_add: str
    mlp_add: str
    o_proj: str
    down: str
    qkv: tuple[str, ...]
    up: str
    gate: str | None
    split_qkv: Callable[[torch.Tensor, Any], tuple[torch.Tensor, ...]] | None = None
    split_gate_up: bool = False
    post_attn_norm: str | None = None
    post_mlp_norm: str | None = None
    pos_embed: str | None = None
    qkv_bias: bool = False
    o_bias: bool = False
    mlp_bias: bool = False


def _heads(t: torch.Tensor, n: int) -> torch.Tensor:
    return t.reshape(*t.shape[:-1], n, -1)


def _split_concat(y: torch.Tensor, cfg: Any) -> tuple[torch.Tensor, ...]:
    hd = cfg.hidden_size // cfg.num_attention_heads
    kv = getattr(cfg, "num_key_value_heads", cfg.num_attention_heads)
    q, k, v = y.split([cfg.num_attention_heads * hd, kv * hd, kv * hd], dim=-1)
    return _heads(q, cfg.num_attention_heads), _heads(k, kv), _heads(v, kv)


def _split_neox(y: torch.Tensor, cfg: Any) -> tuple[torch.Tensor, ...]:
    # modeling_gpt_neox: qkv.view(*input_shape, -1, 3 * head_size).chunk(3, dim=-1)
    return _heads(y, cfg.num_attention_heads).chunk(3, dim=-1)


_LLAMA = Raw(
    layers="model.layers",
    embed="model.embed_tokens",
    final_norm="model.norm",
    unembed="lm_head",
    attn_add="self_attn",
    mlp_add="mlp",
    o_proj="self_attn.o_proj",
    down="mlp.down_proj",
    qkv=("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"),
    up="mlp.up_proj",
    gate="mlp.gate_proj",
)
_POST_NORM = replace(
    _LLAMA,
    attn_add="post_attention_layernorm",
    mlp_add="post_feedforward_layernorm",
    post_attn_norm="post_attention_layernorm",
    post_mlp_norm="post_feedforward_layernorm",
)

RAW: dict[str, Raw] = {
    "llama": replace(_LLAMA, qkv_bias=True, o_bias=True, mlp_bias=True),  # tiny's are biased
    "mistral": _LLAMA,
    "qwen2": replace(_LLAMA, qkv_bias=True),
    "qwen3": _LLAMA,
    "gemma2": _POST_NORM,
    "gemma3_text": _POST_NORM,
    "gemma3": replace(
        _POST_NORM,
        layers="model.language_model.layers",
        embed="model.language_model.embed_tokens",
        final_norm="model.language_model.norm",
    ),
    "olmo2": _POST_NORM,
    "phi3": replace(
        _LLAMA,
        qkv=("self_attn.qkv_proj",),
        split_qkv=_split_concat,
        up="mlp.gate_up_proj",
        gate=None,
        split_gate_up=True,
    ),
    "gpt2": Raw(
        layers="transformer.h",
        embed="transformer.wte",
        pos_embed="transformer.wpe",
        final_norm="transformer.ln_f",
        unembed="lm_head",
        attn_add="attn",
        mlp_add="mlp",
        o_proj="attn.c_proj",
        down="mlp.c_proj",
        qkv=("attn.c_attn",),
        split_qkv=_split_concat,
        up="mlp.c_fc",
        gate=None,
        qkv_bias=True,
        o_bias=True,
        mlp_bias=True,
    ),
    "gpt_neox": Raw(
        layers="gpt_neox.layers",
        embed="gpt_neox.embed_in",
        final_norm="gpt_neox.final_layer_norm",
        unembed="lm_head",
        attn_add="attention",
        mlp_add="mlp",
        o_proj="attention.dense",
        down="mlp.dense_4h_to_h",
        qkv=("attention.query_key_value",),
        split_qkv=_split_neox,
        up="mlp.dense_h_to_4h",
        gate=None,
        qkv_bias=True,
        o_bias=True,
        mlp_bias=True,
    ),
}


def assert_same(actual: torch.Tensor, expected: torch.Tensor, what: str) -> None:
    """Equal up to float32 rounding, relative to the tensors' scale; never trivially zero."""
    scale = expected.abs().max().item()
    assert scale > 1e-3, f"{what}: the expected tensor is trivially zero; the check is vacuous"
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=2e-6 * scale, msg=what)


@dataclass
class Tiny:
    """A tiny model of one family, its adapter, and one plain forward captured by raw hooks."""

    family: str
    model: transformers.PreTrainedModel
    adapter: Adapter
    raw: Raw
    ids: torch.Tensor
    out: Any = None
    inputs: dict[str, torch.Tensor] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)

    @property
    def cfg(self) -> Any:
        return self.model.config.get_text_config()

    @property
    def n_layers(self) -> int:
        return len(self.model.get_submodule(self.raw.layers))

    def name(self, layer: int, rel: str) -> str:
        return f"{self.raw.layers}.{layer}.{rel}"

    def output(self, name: str) -> torch.Tensor:
        out = self.outputs[name]
        return out[0] if isinstance(out, tuple) else out


@pytest.fixture(autouse=True)
def _inference_mode():
    """Weights require grad and captured activations are inference tensors: keep autograd off."""
    with torch.inference_mode():
        yield


REAL_MODELS = [
    pytest.param(f"real:{name}", marks=pytest.mark.slow)
    for name in ("gemma-3-270m", "qwen2.5-coder-0.5b-instruct")
]


@pytest.fixture(scope="module", params=[*TINY_FAMILIES, *REAL_MODELS])
def tiny_family(request: pytest.FixtureRequest) -> Tiny:
    """A tiny model of each family, run once with forward hooks on the modules in ``RAW``; and
    the two installed real models of other families than the bundled one (``real:NAME``):
    real weights catch what random ones cannot (biases, untied unembeddings, q/k norms)."""
    if request.param.startswith("real:"):
        from interlace.models.loading import load

        model = load(request.param.removeprefix("real:")).hf
        family = model.config.model_type
    else:
        family = request.param
        model = tiny_model(family)
    raw = RAW[family]
    vocab = model.config.get_text_config().vocab_size
    ids = torch.randint(0, vocab, (BATCH, SEQ), generator=torch.Generator().manual_seed(1))
    tiny = Tiny(family, model, adapter_for(model.config), raw, ids)
    rel_names = [raw.o_proj, raw.down, *raw.qkv, raw.up, raw.attn_add, raw.mlp_add]
    rel_names += [n for n in (raw.gate, raw.post_attn_norm, raw.post_mlp_norm) if n]
    names = [raw.embed, raw.final_norm, raw.unembed]
    names += [tiny.name(layer, n) for layer in range(tiny.n_layers) for n in rel_names]
    names += [f"{raw.layers}.{layer}" for layer in range(tiny.n_layers)]

    def hook(name: str):
        def record(_module, args, output):
            if args:  # attention modules are called with keywords only: no input to record
                tiny.inputs[name] = args[0]
            tiny.outputs[name] = output

        return record

    handles = [model.get_submodule(n).register_forward_hook(hook(n)) for n in set(names)]
    try:
        with torch.inference_mode():
            tiny.out = model(ids, output_hidden_states=True)
    finally:
        for h in handles:
            h.remove()
    return tiny


def _read(envoy: Any, side: str) -> Any:
    value = envoy.input if side == "input" else envoy.output
    return value[0] if isinstance(value, tuple) else value


def read_sites(tiny: Tiny) -> dict[tuple[str, int | None], torch.Tensor]:
    """Every module site of every layer, read through the adapter in an nnsight trace."""
    adapter, model = tiny.adapter, nnsight.NNsight(tiny.model)
    with torch.inference_mode(), model.trace(tiny.ids):
        got = nnsight.save({})
        got["embed", None] = _read(adapter.site_module(model, "embed"), "output")
        for layer in range(adapter.shape.n_layers):
            for site in LAYER_SITES:
                envoy = adapter.site_module(model, site, layer)
                got[site, layer] = _read(envoy, adapter.location(site).side)
        got["logits", None] = _read(adapter.site_module(model, "logits"), "output")
    return got


def test_shape_facts(tiny_family: Tiny) -> None:
    t, cfg = tiny_family, tiny_family.cfg
    shape = t.adapter.shape
    d = cfg.hidden_size
    assert shape.family == t.family
    assert shape.n_layers == t.n_layers == cfg.num_hidden_layers
    assert shape.d_model == d
    assert shape.n_heads == cfg.num_attention_heads
    assert shape.n_kv_heads == getattr(cfg, "num_key_value_heads", cfg.num_attention_heads)
    o_proj = t.model.get_submodule(t.name(0, t.raw.o_proj)).weight
    assert shape.head_dim == o_proj.numel() // d // shape.n_heads
    assert shape.d_mlp == t.model.get_submodule(t.name(0, t.raw.down)).weight.numel() // d
    assert shape.vocab == cfg.vocab_size == t.model.get_submodule(t.raw.embed).weight.shape[0]


def test_sites_match_raw_modules(tiny_family: Tiny) -> None:
    t = tiny_family
    got = read_sites(t)
    adapter, hidden = t.adapter, t.out.hidden_states
    for layer in range(t.n_layers):
        layer_name = f"{t.raw.layers}.{layer}"
        checks = {
            "resid_pre": t.inputs[layer_name],
            "resid_post": t.output(layer_name),
            "head_z": t.inputs[t.name(layer, t.raw.o_proj)],
            "attn_out": t.output(t.name(layer, t.raw.attn_add)),
            "mlp_act": t.inputs[t.name(layer, t.raw.down)],
            "mlp_out": t.output(t.name(layer, t.raw.mlp_add)),
        }
        for site, expected in checks.items():
            assert_same(got[site, layer], expected, f"{site}[{layer}] vs raw hook")
        assert_same(got["resid_pre", layer], hidden[layer], f"resid_pre[{layer}] vs hidden_states")
        assert_same(
            got["resid_pre", layer] + got["attn_out", layer] + got["mlp_out", layer],
            got["resid_post", layer],
            f"resid_pre + attn_out + mlp_out == resid_post [{layer}]",
        )
        if layer + 1 < t.n_layers:
            assert_same(got["resid_post", layer], got["resid_pre", layer + 1], "post[l] = pre[l+1]")
    assert_same(got["embed", None], t.output(t.raw.embed), "embed vs raw hook")
    resid0 = got["embed", None]
    if t.raw.pos_embed:
        resid0 = resid0 + t.model.get_submodule(t.raw.pos_embed).weight[:SEQ]
    assert_same(got["resid_pre", 0], resid0, "resid_pre[0] = embed (+ position embedding)")
    assert_same(got["logits", None], t.output(t.raw.unembed), "logits vs raw hook")
    normed = adapter.final_norm(t.model)(got["resid_post", t.n_layers - 1])
    unembedded = adapter.unembed(t.model)(normed)
    assert_same(unembedded, got["logits", None], "final norm + unembed of the last resid_post")
    assert_same(adapter.final_logits(unembedded), t.out.logits, "final logits")


def test_logit_softcap(tiny_family: Tiny) -> None:
    t = tiny_family
    cap = getattr(t.model.config, "final_logit_softcapping", None)  # top-level config only
    assert t.adapter.logit_softcap == cap
    raw_logits = t.output(t.raw.unembed)
    if cap is None:
        assert_same(raw_logits, t.out.logits, "no softcap: logits are lm_head's output")
    else:
        assert not torch.allclose(raw_logits, t.out.logits), "softcap should change the logits"
        assert_same(cap * torch.tanh(raw_logits / cap), t.out.logits, "softcapped logits")


def test_weights_by_algebra(tiny_family: Tiny) -> None:
    t = tiny_family
    adapter, model, raw = t.adapter, t.model, t.raw
    s = adapter.shape
    hd, d = s.head_dim, s.d_model
    gated = bool(raw.gate or raw.split_gate_up)
    for layer in range(t.n_layers):
        name = partial(t.name, layer)
        w = {n: adapter.weight(model, n, layer) for n in WEIGHTS[2:] if n != "W_gate"}
        b = {n: adapter.bias(model, n, layer) for n in BIASES if n != "b_gate" or gated}
        assert w["W_Q"].shape == (s.n_heads, d, hd)
        assert w["W_K"].shape == w["W_V"].shape == (s.n_kv_heads, d, hd)
        assert w["W_O"].shape == (s.n_heads, hd, d)
        assert w["W_in"].shape == w["W_out"].shape == (s.d_mlp, d)
        expected_biases = {
            *(("b_Q", "b_K", "b_V") if raw.qkv_bias else ()),
            *(("b_O",) if raw.o_bias else ()),
            *(("b_in", "b_out", "b_gate") if raw.mlp_bias else ()),
        }
        assert {n for n, v in b.items() if v is not None} == expected_biases & set(b)

        # q, k, v: the attention input through W_Q/W_K/W_V (+ bias) is each head's projection
        x = t.inputs[name(raw.qkv[0])]
        if raw.split_qkv:
            qkv = raw.split_qkv(t.output(name(raw.qkv[0])), t.cfg)
        else:
            heads = (s.n_heads, s.n_kv_heads, s.n_kv_heads)
            qkv = [_heads(t.output(name(n)), h) for n, h in zip(raw.qkv, heads, strict=True)]
        for part, expected in zip("QKV", qkv, strict=True):
            proj = torch.einsum("btd,hde->bthe", x, w[f"W_{part}"])
            if b[f"b_{part}"] is not None:
                proj = proj + b[f"b_{part}"]
            assert_same(proj, expected, f"x @ W_{part}[{layer}]")

        # o: head_z recombined through W_O (+ b_O) is o_proj's output, whose (post-norm) is attn_out
        z = _heads(t.inputs[name(raw.o_proj)], s.n_heads)
        o = torch.einsum("bthe,hed->btd", z, w["W_O"])
        o = o if b["b_O"] is None else o + b["b_O"]
        assert_same(o, t.output(name(raw.o_proj)), f"sum_h z_h @ W_O[{layer}][h]")
        added = model.get_submodule(name(raw.post_attn_norm))(o) if raw.post_attn_norm else o
        assert_same(added, t.output(name(raw.attn_add)), f"attn_out[{layer}] from W_O")

        # mlp: its input through W_in (W_gate), its activation through W_out (+ b_out)
        x = t.inputs[name(raw.up)]
        up_out = t.output(name(raw.up))
        if raw.split_gate_up:
            gate_out, up_out = up_out.chunk(2, dim=-1)  # modeling_phi3: gate, up = ....chunk(2)
        elif raw.gate:
            gate_out = t.output(name(raw.gate))
        pre = x @ w["W_in"].T
        assert_same(pre if b["b_in"] is None else pre + b["b_in"], up_out, f"x @ W_in[{layer}].T")
        if gated:
            w_gate = adapter.weight(model, "W_gate", layer)
            assert w_gate.shape == (s.d_mlp, d)
            pre = x @ w_gate.T
            pre = pre if b["b_gate"] is None else pre + b["b_gate"]
            assert_same(pre, gate_out, f"x @ W_gate[{layer}].T")
        else:
            with pytest.raises(KeyError, match="no gated MLP"):
                adapter.weight(model, "W_gate", layer)
        act = t.inputs[name(raw.down)]
        out = act @ w["W_out"] if b["b_out"] is None else act @ w["W_out"] + b["b_out"]
        assert_same(out, t.output(name(raw.down)), f"mlp_act @ W_out[{layer}]")
        added = model.get_submodule(name(raw.post_mlp_norm))(out) if raw.post_mlp_norm else out
        assert_same(added, t.output(name(raw.mlp_add)), f"mlp_out[{layer}] from W_out")

    # embedding and unembedding
    w_e, w_u = adapter.weight(model, "W_E"), adapter.weight(model, "W_U")
    assert w_e.shape == w_u.shape == (s.vocab, d)
    assert_same(w_e[t.ids] * adapter.embed_scale, t.output(raw.embed), "W_E[ids] * embed_scale")
    normed = t.output(raw.final_norm)
    assert_same(normed @ w_u.T, t.output(raw.unembed), "final-normed resid @ W_U.T")


def test_weights_are_views_of_parameters(tiny_family: Tiny) -> None:
    t = tiny_family
    storages = {p.untyped_storage().data_ptr() for p in t.model.parameters()}
    names = [n for n in WEIGHTS if n != "W_gate" or t.raw.gate or t.raw.split_gate_up]
    for n in names:
        w = t.adapter.weight(t.model, n, 0)
        assert w.untyped_storage().data_ptr() in storages, f"{n} is a copy, not a view"


def test_weight_and_bias_names_are_checked(tiny_family: Tiny) -> None:
    adapter, model = tiny_family.adapter, tiny_family.model
    with pytest.raises(KeyError, match="unknown weight 'W_X'"):
        adapter.weight(model, "W_X", 0)
    with pytest.raises(KeyError, match="unknown bias 'b_X'"):
        adapter.bias(model, "b_X", 0)
    with pytest.raises(ValueError, match="needs a layer"):
        adapter.weight(model, "W_Q")


@pytest.mark.parametrize(
    "config",
    [
        transformers.BertConfig(),
        type("MadeUpConfig", (transformers.PretrainedConfig,), {"model_type": "made_up_lm"})(),
    ],
    ids=["bert", "made-up"],
)
def test_unsupported_architecture(config: Any) -> None:
    with pytest.raises(UnsupportedArchitectureError) as err:
        adapter_for(config)
    message = str(err.value)
    assert repr(config.model_type) in message
    for model_type in ("llama", "gpt2", "gpt_neox", "gemma2", "gemma3_text", "phi3", "olmo2"):
        assert model_type in message
