"""Vocabulary projection: read any residual-stream direction -- a probe's weight, a steering
vector, an MLP value vector ``W_out[l][i]`` -- as tokens of the unembedding, and find the value
vectors most aligned with a direction (Geva et al. 2022, "Transformer Feed-Forward Layers Build
Predictions by Promoting Concepts in the Vocabulary Space").

The bottom tokens of a direction are the top tokens of its negation (its "antipode").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch
import xarray as xr

from interlace.analyses._data import as_vectors, fail, model_layers
from interlace.analyses.lens import CHUNK_ROWS, decode_tokens, unembed
from interlace.models.model import Model

Score = Literal["cosine", "logit"]


def value_vector(model: Model, layer: int, index: int) -> torch.Tensor:
    """MLP value vector ``W_out[layer][index]`` ``[d_model]`` (a copy)."""
    s = model.shape
    if not 0 <= layer < s.n_layers or not 0 <= index < s.d_mlp:
        allowed = f"layers 0-{s.n_layers - 1}, indices 0-{s.d_mlp - 1}"
        raise fail("index", f"value vector {index} of layer {layer}", allowed)
    return model.weight("W_out", layer)[index].detach().clone()


def _scores(model: Model, d: torch.Tensor, score: Score, final_norm: bool) -> torch.Tensor:
    """``[n, vocab]`` scores of directions ``d`` ``[n, d_model]`` against every token."""
    w_u = model.weight("W_U").detach()
    d = d.to(device=w_u.device, dtype=w_u.dtype)
    if score == "logit":
        return unembed(model, d) if final_norm else (d @ w_u.T).float()
    if final_norm:
        d = model.adapter.final_norm(model.hf)(d)
    d = d / d.norm(dim=-1, keepdim=True)
    return (d @ (w_u / w_u.norm(dim=-1, keepdim=True)).T).float()


def _cosines(rows: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """Cosine of each row of ``rows`` with the unit vector ``d``."""
    rows = rows.detach().float().cpu()
    return rows @ d / rows.norm(dim=-1)


def project(
    model: Model, direction: Any, k: int = 10, score: Score = "cosine", final_norm: bool = False
) -> xr.Dataset:
    """The ``k`` top and bottom tokens of each direction (width ``d_model``: a vector, a 2-D
    stack, or a DataArray whose leading dims are kept).

    ``score="cosine"``: cosine between the direction and each token's unembedding row (blind
    to the rows' norms, so an unembedding row projects to its own token first). ``"logit"``:
    the dot product, i.e. how much a unit of the direction adds to each token's logit (direct
    logit attribution; large-norm tokens dominate). ``final_norm=False`` scores the direction
    as it is, as a component among others in the residual stream; ``True`` passes it through
    the final norm first, as if it were the whole residual (for RMSNorm that multiplies it by
    the norm's gain), so ``score="logit", final_norm=True`` gives exactly the logit lens's
    logits of a residual equal to the direction.

    Returns ``token_id``, ``token`` and ``score`` over ``(*leading dims, side, rank)``, side
    ``top`` (highest first) and ``bottom`` (lowest first).
    """
    if score not in ("cosine", "logit"):
        raise fail("score", f"{score!r}", "'cosine' or 'logit'")
    vectors = as_vectors(direction, model.shape.d_model, "direction")
    if not 1 <= k <= model.shape.vocab:
        raise fail("k", f"{k}", f"1-{model.shape.vocab}")
    flat = torch.from_numpy(np.asarray(vectors.values, dtype=np.float32))
    flat = flat.reshape(-1, vectors.shape[-1])
    ids, values = [], []
    with torch.inference_mode():
        for start in range(0, len(flat), CHUNK_ROWS):
            s = _scores(model, flat[start : start + CHUNK_ROWS], score, final_norm).cpu()
            top, bottom = s.topk(k, dim=-1), s.topk(k, dim=-1, largest=False)
            ids.append(torch.stack([top.indices, bottom.indices], 1))
            values.append(torch.stack([top.values, bottom.values], 1))
    lead = vectors.shape[:-1]
    token_id = torch.cat(ids).numpy().reshape(*lead, 2, k)
    dims = (*vectors.dims[:-1], "side", "rank")
    coords = {n: c for n, c in vectors.coords.items() if vectors.dims[-1] not in c.dims}
    out = xr.Dataset(
        {
            "token_id": (dims, token_id),
            "token": (dims, decode_tokens(model.tokenizer, token_id)),
            "score": (dims, torch.cat(values).numpy().reshape(*lead, 2, k)),
        },
        coords={**coords, "side": ["top", "bottom"], "rank": np.arange(k)},
    )
    out.attrs.update(score=score, final_norm=int(final_norm))
    return out


def aligned_value_vectors(
    model: Model,
    direction: Any,
    layers: Sequence[int] | None = None,
    k: int = 10,
    absolute: bool = False,
) -> xr.Dataset:
    """The ``k`` MLP value vectors (rows of ``W_out`` of ``layers``, default all) with the
    highest cosine to ``direction`` (``absolute``: highest ``|cosine|``, so antipodes count).

    Cosines are taken in the residual stream, before any norm: a value vector is what its
    neuron adds to the residual. Returns ``layer``, ``neuron`` and ``cosine`` along ``rank``.
    """
    s = model.shape
    vec = as_vectors(direction, s.d_model, "direction")
    if vec.ndim != 1:
        raise fail("direction", f"has dims {vec.dims}", "one vector")
    layers = model_layers(layers, s.n_layers)
    if not 1 <= k <= len(layers) * s.d_mlp:
        raise fail("k", f"{k}", f"1-{len(layers) * s.d_mlp}")
    d = torch.from_numpy(vec.values.astype(np.float32))
    d = d / d.norm()
    with torch.inference_mode():
        cos = torch.stack([_cosines(model.weight("W_out", layer), d) for layer in layers])
    key = cos.abs() if absolute else cos
    best = key.flatten().topk(k).indices
    layer_of = np.array(layers)[(best // s.d_mlp).numpy()]
    neuron = (best % s.d_mlp).numpy()
    return xr.Dataset(
        {
            "layer": ("rank", layer_of),
            "neuron": ("rank", neuron),
            "cosine": ("rank", cos.flatten()[best].numpy()),
        },
        coords={"rank": np.arange(k)},
    )
