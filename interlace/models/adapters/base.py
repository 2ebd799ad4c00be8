"""Architecture adapters: one small declarative table per family, read by one generic class.

A table says where each site lives (a module path and which side of the module) and how the
family stores its weights. :class:`Adapter` turns a table plus a transformers config into shape
facts, site locations and orientation-normalised weights, so no caller ever cares whether a
family uses ``nn.Linear`` or GPT-2's ``Conv1D``, fused or separate projections.

Weight orientation (the same for every family):

- ``W_E``, ``W_U``: ``[vocab, d_model]``, one row per token.
- ``W_Q``: ``[n_heads, d_model, head_dim]``; ``W_K``, ``W_V``: ``[n_kv_heads, d_model, head_dim]``
  (so ``x @ W_Q[h]`` is head h's query before rotary embedding, and before the q/k norm of
  the families that have one: Qwen3, Gemma 3, OLMo-2).
- ``W_O``: ``[n_heads, head_dim, d_model]`` (so ``z[h] @ W_O[h]`` is head h's contribution).
- ``W_in``, ``W_gate``, ``W_out``: ``[d_mlp, d_model]``, one row per neuron; the rows of
  ``W_out`` are the value vectors.

Biases (None where the family has none): ``b_Q`` ``[n_heads, head_dim]``, ``b_K``, ``b_V``
``[n_kv_heads, head_dim]``, ``b_O`` ``[d_model]``, ``b_in``, ``b_gate`` ``[d_mlp]``, ``b_out``
``[d_model]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import reduce
from typing import Any, Literal

import torch

from interlace.interventions.sites import SITES, ModelShape

Side = Literal["input", "output"]
Kind = Literal["weight", "bias"]


@dataclass(frozen=True)
class Location:
    """Where a site is read or written: a module path and which side of it.

    For per-layer sites the path is relative to the decoder layer, otherwise to the model
    root. ``input`` means the module's first positional argument, ``output`` its output (the
    first element when the module returns a tuple).
    """

    path: str
    side: Side


@dataclass(frozen=True)
class SeparateQKV:
    """Three projections ``q``, ``k``, ``v`` (module paths relative to the layer)."""

    q: str
    k: str
    v: str


@dataclass(frozen=True)
class FusedQKV:
    """One projection producing q, k and v.

    ``layout="concat"``: output features are ``[q (n_heads*hd) | k (n_kv*hd) | v (n_kv*hd)]``
    (GPT-2's ``c_attn``, Phi-3's ``qkv_proj``). ``layout="per_head"``: features are
    ``[n_heads, 3, head_dim]`` (GPT-NeoX's ``query_key_value``).
    """

    path: str
    layout: Literal["concat", "per_head"]


@dataclass(frozen=True)
class MLPWeights:
    """Where the MLP keeps its input, gate and output projections (paths relative to the layer).

    ``fused_gate_up``: one projection whose output is ``[gate | up]`` (Phi-3); then ``up`` names
    it and ``gate`` is None.
    """

    up: str
    down: str
    gate: str | None = None
    fused_gate_up: bool = False


@dataclass(frozen=True)
class ArchitectureTable:
    """Everything that distinguishes one architecture family, as data."""

    family: str
    model_types: tuple[str, ...]
    layers: str
    embed: str
    final_norm: str
    unembed: str
    attn_out: Location
    mlp_out: Location
    o_proj: str
    qkv: SeparateQKV | FusedQKV
    mlp: MLPWeights
    # the layers' projections are GPT-2's Conv1D (weight [in, out]); the unembedding never is
    conv1d: bool = False
    # the embedding module multiplies its rows by sqrt(d_model) (Gemma)
    embed_scaled: bool = False
    # config attribute of a final-logit softcap c, applied after the unembedding as
    # c * tanh(logits / c) (Gemma 2): the model's logits are then not the unembedding's output
    logit_softcap_attr: str | None = None
    # attribute of the config holding the language model's hyperparameters, for multimodal
    # wrappers (Gemma 3's "text_config"); None: the config itself
    sub_config: str | None = None
    # config attribute names (transformers spells them differently per family)
    n_layers_attr: str = "num_hidden_layers"
    d_model_attr: str = "hidden_size"
    n_heads_attr: str = "num_attention_heads"
    n_kv_heads_attr: str | None = "num_key_value_heads"
    d_mlp_attr: str = "intermediate_size"
    head_dim_attr: str | None = "head_dim"


def get_path(root: Any, path: str) -> Any:
    """Follow a dotted path (``model.layers.3.mlp``) on a module or an nnsight Envoy."""
    if not path:
        return root
    return reduce(
        lambda obj, part: obj[int(part)] if part.isdigit() else getattr(obj, part),
        path.split("."),
        root,
    )


WEIGHTS = ("W_E", "W_U", "W_Q", "W_K", "W_V", "W_O", "W_in", "W_gate", "W_out")
BIASES = ("b_Q", "b_K", "b_V", "b_O", "b_in", "b_gate", "b_out")


class Adapter:
    """A family table bound to one model's config: shape facts, site locations, weights."""

    def __init__(self, table: ArchitectureTable, config: Any):
        self.table = table
        self.config = config
        t = table
        # the language model's hyperparameters (a multimodal wrapper keeps them in a sub-config)
        self.text_config = cfg = getattr(config, t.sub_config) if t.sub_config else config
        n_heads = getattr(cfg, t.n_heads_attr)
        d_model = getattr(cfg, t.d_model_attr)
        head_dim = getattr(cfg, t.head_dim_attr, None) if t.head_dim_attr else None
        n_kv = getattr(cfg, t.n_kv_heads_attr, None) if t.n_kv_heads_attr else None
        d_mlp = getattr(cfg, t.d_mlp_attr, None)
        self.shape = ModelShape(
            family=t.family,
            n_layers=getattr(cfg, t.n_layers_attr),
            d_model=d_model,
            n_heads=n_heads,
            n_kv_heads=n_kv or n_heads,
            head_dim=head_dim or d_model // n_heads,
            d_mlp=d_mlp or 4 * d_model,
            vocab=cfg.vocab_size,
        )

    @property
    def family(self) -> str:
        return self.table.family

    @property
    def embed_scale(self) -> float:
        """The factor the embedding module applies: its output is ``W_E[token] * embed_scale``."""
        return math.sqrt(self.shape.d_model) if self.table.embed_scaled else 1.0

    @property
    def logit_softcap(self) -> float | None:
        """The final-logit softcap c, or None when the logits are the unembedding's output."""
        attr = self.table.logit_softcap_attr
        return getattr(self.text_config, attr, None) if attr else None

    def final_logits(self, unembedded: torch.Tensor) -> torch.Tensor:
        """The model's logits given the unembedding's output (the ``logits`` site)."""
        cap = self.logit_softcap
        return unembedded if cap is None else cap * torch.tanh(unembedded / cap)

    # ---- sites -------------------------------------------------------------------------
    def location(self, site: str) -> Location:
        """Where ``site`` lives (``k``/``v`` live in the KV cache, not in a module).

        ``logits`` is the unembedding's output: for a family with a final-logit softcap
        (:attr:`logit_softcap`) the model returns :meth:`final_logits` of it instead.
        """
        t = self.table
        table = {
            "embed": Location(t.embed, "output"),
            "resid_pre": Location("", "input"),
            "resid_post": Location("", "output"),
            "attn_out": t.attn_out,
            "mlp_out": t.mlp_out,
            "head_z": Location(t.o_proj, "input"),
            "mlp_act": Location(t.mlp.down, "input"),
            "logits": Location(t.unembed, "output"),
        }
        if site not in SITES:
            raise KeyError(f"unknown site {site!r}; sites are {', '.join(SITES)}")
        if site not in table:
            raise KeyError(f"site {site!r} is read from the KV cache, not from a module")
        return table[site]

    def layer_module(self, root: Any, layer: int) -> Any:
        return get_path(root, self.table.layers)[layer]

    def site_module(self, root: Any, site: str, layer: int | None = None) -> Any:
        """The module (or Envoy, when ``root`` is an nnsight model) that holds ``site``."""
        loc = self.location(site)
        base = root if not SITES[site].per_layer else self.layer_module(root, layer)
        return get_path(base, loc.path)

    # ---- weights -----------------------------------------------------------------------
    def _param(self, layer_module: Any, path: str, kind: Kind) -> torch.Tensor | None:
        """A projection's weight as ``[out_features, in_features]`` whatever the module type,
        or its bias ``[out_features]`` (None when it has none)."""
        module = get_path(layer_module, path)
        if kind == "bias":
            return module.bias
        return module.weight.T if self.table.conv1d else module.weight

    def _qkv(self, layer_module: Any, kind: Kind) -> tuple[torch.Tensor | None, ...]:
        """q, k, v parameters as ``[heads, head_dim, *rest]`` each (rest: ``d_model`` or
        nothing for biases); None for a part that has no bias."""
        s, qkv = self.shape, self.table.qkv
        heads = (s.n_heads, s.n_kv_heads, s.n_kv_heads)
        if isinstance(qkv, SeparateQKV):
            parts = tuple(self._param(layer_module, p, kind) for p in (qkv.q, qkv.k, qkv.v))
        else:
            fused = self._param(layer_module, qkv.path, kind)
            if fused is None:
                return (None, None, None)
            if qkv.layout == "per_head":
                fused = fused.view(s.n_heads, 3, s.head_dim, *fused.shape[1:])
                return fused[:, 0], fused[:, 1], fused[:, 2]
            parts = torch.split(fused, [n * s.head_dim for n in heads])
        return tuple(
            None if p is None else p.reshape(n, s.head_dim, *p.shape[1:])
            for p, n in zip(parts, heads, strict=True)
        )

    def _mlp_in(self, layer_module: Any, name: str, kind: Kind) -> torch.Tensor | None:
        """The ``in`` or ``gate`` projection's parameter, ``[d_mlp, *rest]``."""
        mlp = self.table.mlp
        if mlp.fused_gate_up:
            fused = self._param(layer_module, mlp.up, kind)
            if fused is None:
                return None
            gate, up = fused.chunk(2, dim=0)
            return up if name == "in" else gate
        if name == "gate" and mlp.gate is None:
            raise KeyError(f"family {self.family!r} has no gated MLP: no W_gate or b_gate")
        return self._param(layer_module, mlp.up if name == "in" else mlp.gate, kind)

    def _layer_param(
        self, root: Any, name: str, layer: int | None, kind: Kind
    ) -> torch.Tensor | None:
        """The parameter of one layer named without its ``W_``/``b_`` prefix (``Q`` ... ``out``),
        in the module's own out-major orientation."""
        if layer is None:
            raise ValueError(f"{kind} {name!r} needs a layer")
        lay = self.layer_module(root, layer)
        if name in ("Q", "K", "V"):
            return self._qkv(lay, kind)["QKV".index(name)]
        if name in ("in", "gate"):
            return self._mlp_in(lay, name, kind)
        return self._param(lay, self.table.o_proj if name == "O" else self.table.mlp.down, kind)

    def weight(self, root: torch.nn.Module, name: str, layer: int | None = None) -> torch.Tensor:
        """An orientation-normalised weight (see the module docstring). A view, not a copy."""
        if name not in WEIGHTS:
            raise KeyError(f"unknown weight {name!r}; weights are {', '.join(WEIGHTS)}")
        if name == "W_E":
            return get_path(root, self.table.embed).weight
        if name == "W_U":  # an nn.Linear in every family, GPT-2 included
            return get_path(root, self.table.unembed).weight
        w = self._layer_param(root, name[2:], layer, "weight")
        if name in ("W_Q", "W_K", "W_V"):
            return w.transpose(1, 2)
        if name == "W_O":  # [d_model, n_heads*head_dim]
            return w.T.reshape(self.shape.n_heads, self.shape.head_dim, -1)
        if name == "W_out":  # [d_model, d_mlp]
            return w.T
        return w

    def bias(self, root: torch.nn.Module, name: str, layer: int) -> torch.Tensor | None:
        """A bias (see the module docstring), or None when the family has none. A view."""
        if name not in BIASES:
            raise KeyError(f"unknown bias {name!r}; biases are {', '.join(BIASES)}")
        return self._layer_param(root, name[2:], layer, "bias")

    def final_norm(self, root: Any) -> Any:
        """The final norm module, applied before the unembedding."""
        return get_path(root, self.table.final_norm)

    def unembed(self, root: Any) -> Any:
        return get_path(root, self.table.unembed)
