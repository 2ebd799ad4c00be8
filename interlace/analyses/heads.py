"""Head rankings from weights: how strongly each attention head's OV circuit can write into a
residual-stream direction, or into the input weights of chosen MLP value vectors, ranked and
turned into an :class:`~interlace.AblateHeads` spec.

Head ``h`` of a layer reads values through KV head ``h // (n_heads // n_kv_heads)`` (grouped-
query attention), so its OV circuit is ``W_OV = W_V[kv(h)] @ W_O[h]`` ``[d_model, d_model]``:
a head attending fully to a position with (normalised) residual ``x`` adds ``x @ W_OV``. For
target directions ``T`` (rows), the score is ``||W_OV @ T.T||_F``: for one unit direction
``t``, the largest ``|x @ W_OV @ t|`` over unit inputs ``x``. Scores are weight-only and
input-independent: the attention's input norm gain and the value/output biases are not folded
in, nothing passes through the final norm, and a high score says a head *can* write there, not
that it does on a given prompt.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch
import xarray as xr

from interlace.analyses._data import as_vectors, fail, model_layers
from interlace.interventions import AblateHeads
from interlace.interventions.sites import ModelShape
from interlace.models.model import Model


def kv_head(shape: ModelShape, head: int) -> int:
    """The KV head that query head ``head`` reads its values through."""
    return head // (shape.n_heads // shape.n_kv_heads)


def ov_circuit(model: Model, layer: int, head: int) -> torch.Tensor:
    """``W_V[kv(head)] @ W_O[head]`` ``[d_model, d_model]`` of one head."""
    model_layers([layer], model.shape.n_layers, "layer")
    if not 0 <= head < model.shape.n_heads:
        raise fail("head", f"head {head}", f"0-{model.shape.n_heads - 1}")
    w_v = model.weight("W_V", layer)[kv_head(model.shape, head)]
    return (w_v @ model.weight("W_O", layer)[head]).detach()


def _write_norms(model: Model, layer: int, targets: torch.Tensor, relative: bool) -> torch.Tensor:
    """``||W_OV[h] @ targets.T||_F`` for every head ``h`` of ``layer`` (``[n_heads]``)."""
    s = model.shape
    with torch.inference_mode():
        w_o = model.weight("W_O", layer).detach().float()  # [head, head_dim, d_model]
        w_v = model.weight("W_V", layer).detach().float()  # [kv_head, d_model, head_dim]
        w_v = w_v.repeat_interleave(s.n_heads // s.n_kv_heads, dim=0)  # [head, d_model, hd]
        t = targets.to(w_o)
        written = w_v @ (w_o @ t.T)  # [head, d_model, n_targets]
        norms = written.flatten(1).norm(dim=-1)
        if relative:
            norms = norms / (w_v @ w_o).flatten(1).norm(dim=-1)
        return norms.cpu()


def _scores(values: list[torch.Tensor], layers: list[int], what: str) -> xr.DataArray:
    return xr.DataArray(
        torch.stack(values).numpy(),
        dims=("layer", "head"),
        coords={"layer": layers, "head": np.arange(len(values[0]))},
        attrs={"scores": what},
    )


def direction_scores(
    model: Model, direction: Any, layers: Sequence[int] | None = None, relative: bool = False
) -> xr.DataArray:
    """How strongly each head can write into ``direction`` (width ``d_model``, taken as a unit
    vector in the residual stream): ``||W_OV @ t||`` per ``(layer, head)``. ``relative``
    divides by ``||W_OV||_F``, the share of the head's OV circuit that points there."""
    vec = as_vectors(direction, model.shape.d_model, "direction")
    if vec.ndim != 1:
        raise fail("direction", f"has dims {vec.dims}", "one vector")
    t = torch.from_numpy(vec.values.astype(np.float32))[None]
    t = t / t.norm()
    layers = model_layers(layers, model.shape.n_layers)
    return _scores([_write_norms(model, lay, t, relative) for lay in layers], layers, "direction")


def value_vector_scores(
    model: Model, value_vectors: Sequence[tuple[int, int]], relative: bool = False
) -> xr.DataArray:
    """How strongly each head can drive the neurons of ``value_vectors`` (``(layer, index)``
    pairs): ``||W_OV @ R.T||_F`` over the rows ``R`` of ``W_in`` of the chosen neurons that the
    head feeds: those of its own layer and later ones (later ones only under GPT-NeoX's
    parallel residual, where the MLP reads the layer's input). Heads that feed none score
    NaN."""
    s = model.shape
    if not value_vectors:
        raise fail("value_vectors", "is empty", "(layer, index) pairs")
    bad = [
        i
        for i, (layer, index) in enumerate(value_vectors)
        if not (0 <= layer < s.n_layers and 0 <= index < s.d_mlp)
    ]
    if bad:
        allowed = f"layers 0-{s.n_layers - 1}, indices 0-{s.d_mlp - 1}"
        raise fail(f"value_vectors[{bad[0]}]", f"{value_vectors[bad[0]]}", allowed)
    parallel = bool(getattr(model.adapter.text_config, "use_parallel_residual", False))
    rows = {
        (layer, index): model.weight("W_in", layer)[index].detach().float()
        for layer, index in value_vectors
    }
    values = []
    for head_layer in range(s.n_layers):
        first_fed = head_layer + 1 if parallel else head_layer
        fed = [r for (layer, _), r in rows.items() if layer >= first_fed]
        if fed:
            values.append(_write_norms(model, head_layer, torch.stack(fed), relative))
        else:
            values.append(torch.full((s.n_heads,), float("nan")))
    return _scores(values, list(range(s.n_layers)), "value_vectors")


def rank_heads(scores: xr.DataArray, k: int | None = None) -> xr.Dataset:
    """Heads by descending score (NaN left out), the top ``k`` or all: ``layer``, ``head`` and
    ``score`` along ``rank``."""
    stacked = scores.stack(pair=("layer", "head"))
    keep = ~np.isnan(stacked.values)
    order = np.argsort(-stacked.values[keep], kind="stable")[:k]
    layers = stacked["layer"].values[keep][order]
    heads = stacked["head"].values[keep][order]
    return xr.Dataset(
        {
            "layer": ("rank", layers),
            "head": ("rank", heads),
            "score": ("rank", stacked.values[keep][order]),
        },
        coords={"rank": np.arange(len(order))},
    )


def ablation_spec(
    ranking: xr.Dataset, k: int, mode: Literal["zero", "mean", "patch"] = "zero", **options: Any
) -> list[AblateHeads]:
    """The top ``k`` heads of a :func:`rank_heads` ranking as ``AblateHeads`` specs, one per
    layer in layer order; ``options`` (``reference``, ``source``, ``positions``) pass through."""
    if not 1 <= k <= ranking.sizes["rank"]:
        raise fail("k", f"{k}", f"1-{ranking.sizes['rank']}")
    by_layer: dict[int, list[int]] = {}
    for layer, head in zip(ranking["layer"].values[:k], ranking["head"].values[:k], strict=True):
        by_layer.setdefault(int(layer), []).append(int(head))
    return [
        AblateHeads(layer=layer, heads=sorted(heads), mode=mode, **options)
        for layer, heads in sorted(by_layer.items())
    ]
