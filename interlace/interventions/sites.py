"""The site vocabulary: names for the places in a transformer that interventions and captures
address, independent of any architecture's module paths.

This module is data only (no torch, no nnsight) so that graphs can be validated against a
model's :class:`ModelShape` before any weights are loaded.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

from interlace.interventions.errors import field_error

SiteName = Literal[
    "embed",
    "resid_pre",
    "resid_post",
    "attn_out",
    "mlp_out",
    "head_z",
    "mlp_act",
    "k",
    "v",
    "logits",
]


@dataclass(frozen=True)
class SiteInfo:
    """What a site is: whether it is indexed by layer, and the name of its last dimension(s)."""

    name: str
    per_layer: bool
    trailing_dims: tuple[str, ...]
    meaning: str


SITES: dict[str, SiteInfo] = {
    s.name: s
    for s in (
        SiteInfo("embed", False, ("d_model",), "token embeddings output"),
        SiteInfo("resid_pre", True, ("d_model",), "residual stream entering decoder layer l"),
        SiteInfo("resid_post", True, ("d_model",), "residual stream leaving decoder layer l"),
        SiteInfo("attn_out", True, ("d_model",), "attention block output added to the residual"),
        SiteInfo("mlp_out", True, ("d_model",), "MLP block output added to the residual"),
        SiteInfo(
            "head_z",
            True,
            ("head", "head_dim"),
            "per-head attention output before the output projection (input of o_proj)",
        ),
        SiteInfo(
            "mlp_act",
            True,
            ("neuron",),
            "MLP hidden activation, the input of the down projection: one coefficient per "
            "value vector",
        ),
        SiteInfo("k", True, ("kv_head", "head_dim"), "cached keys (after rotary embedding)"),
        SiteInfo("v", True, ("kv_head", "head_dim"), "cached values"),
        SiteInfo("logits", False, ("vocab",), "final logits"),
    )
}

RESIDUAL_SITES = ("embed", "resid_pre", "resid_post", "attn_out", "mlp_out")


@dataclass(frozen=True)
class ModelShape:
    """The shape facts of a model that validation needs; produced by an architecture adapter."""

    family: str
    n_layers: int
    d_model: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    d_mlp: int
    vocab: int
    sites: tuple[str, ...] = field(default=tuple(SITES))

    def site_width(self, site: str) -> tuple[int, ...]:
        """The trailing shape of one position of ``site``."""
        widths = {
            "d_model": self.d_model,
            "head": self.n_heads,
            "kv_head": self.n_kv_heads,
            "head_dim": self.head_dim,
            "neuron": self.d_mlp,
            "vocab": self.vocab,
        }
        return tuple(widths[d] for d in SITES[site].trailing_dims)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["sites"] = list(self.sites)
        return d


def check_layered(site: str, layer: object, field: str) -> None:
    """Per-layer sites need a layer; ``embed`` and ``logits`` take none (raised as a pydantic
    error from a model validator)."""
    if SITES[site].per_layer and layer is None:
        raise field_error(field, f"site {site!r} needs {field}", "layer indices")
    if not SITES[site].per_layer and layer is not None:
        raise field_error(field, f"site {site!r} has no layers", "leave it out")
