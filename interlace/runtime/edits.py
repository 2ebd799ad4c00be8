"""The tensor operations that interventions lower to (:data:`OPS`, by the name an
:class:`interlace.interventions.Edit` gives): small pure-torch functions, called inside trace
bodies (so they must depend on torch only: a remote server receives them by value).

Every op has one signature, ``op(x, mask, **args) -> Tensor``: ``x`` is a site's activation
``[batch, seq, width]`` (or a cached key/value tensor for the cache ops), ``mask`` a
``[batch, seq]`` bool of the positions to edit, ``args`` the edit's own arguments. Site ops
return a new tensor and leave ``x`` untouched; cache ops edit the cache in place (the cache is
the state being steered) and return it.
"""

from __future__ import annotations

import torch


def add_vector(
    x: torch.Tensor, mask: torch.Tensor, vector: torch.Tensor, coeff: float, normalize: str
) -> torch.Tensor:
    """Residual steering: ``x + coeff·v`` (``none``), ``x + coeff·v̂`` (``unit``) or
    ``x + coeff·‖x‖·v̂`` (``resid_norm``, the norm taken per position)."""
    v = vector.to(device=x.device, dtype=x.dtype)
    if normalize == "none":
        delta = coeff * v
    else:
        unit = v / v.norm()
        delta = coeff * unit
        if normalize == "resid_norm":
            delta = delta * x.norm(dim=-1, keepdim=True)
    return torch.where(mask.to(x.device)[..., None], x + delta, x)


def scale_neurons(
    x: torch.Tensor, mask: torch.Tensor, indices: torch.Tensor, factor: float
) -> torch.Tensor:
    """Scale chosen MLP neurons (the coefficients of their value vectors)."""
    scale = torch.ones(x.shape[-1], device=x.device, dtype=x.dtype)
    scale[indices.to(x.device)] = factor
    return torch.where(mask.to(x.device)[..., None], x * scale, x)


def set_heads(
    x: torch.Tensor,
    mask: torch.Tensor,
    heads: torch.Tensor,
    n_heads: int,
    replacement: torch.Tensor,
) -> torch.Tensor:
    """Replace chosen heads of ``head_z`` (``[batch, seq, n_heads*head_dim]``) by
    ``replacement``, broadcastable to ``[batch, seq, n_heads, head_dim]``."""
    z = x.reshape(*x.shape[:-1], n_heads, -1)
    new = torch.broadcast_to(replacement.to(device=x.device, dtype=x.dtype), z.shape)
    pick = torch.zeros(n_heads, dtype=torch.bool, device=x.device)
    pick[heads.to(x.device)] = True
    where = mask.to(x.device)[..., None, None] & pick[:, None]
    return torch.where(where, new, z).reshape(x.shape)


def patch_heads(
    x: torch.Tensor,
    mask: torch.Tensor,
    heads: torch.Tensor,
    n_heads: int,
    index: torch.Tensor,
    values: torch.Tensor,
) -> torch.Tensor:
    """Replace chosen heads of ``head_z`` by a source run's: ``values[b]`` ``[k, n_heads *
    head_dim]`` go to row b's positions ``index[b]``."""
    source = _scatter(x, index, values).reshape(*x.shape[:-1], n_heads, -1)
    return set_heads(x, mask, heads, n_heads, source)


def scatter_positions(
    x: torch.Tensor, mask: torch.Tensor, index: torch.Tensor, values: torch.Tensor
) -> torch.Tensor:
    """Patching: row b's positions ``index[b]`` take ``values[b]`` (where masked)."""
    return torch.where(mask.to(x.device)[..., None], _scatter(x, index, values), x)


def _scatter(x: torch.Tensor, index: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """``x`` with row b's positions ``index[b]`` replaced by ``values[b]``."""
    out = x.clone()
    rows = torch.arange(x.shape[0], device=x.device)[:, None].expand_as(index)
    out[rows, index.to(x.device)] = values.to(device=x.device, dtype=x.dtype)
    return out


def add_to_cache(
    x: torch.Tensor,
    mask: torch.Tensor,
    heads: torch.Tensor,
    vector: torch.Tensor,
    coeff: float,
) -> torch.Tensor:
    """Add ``coeff·vector`` to cached keys or values ``x`` ``[batch, kv_heads, seq, head_dim]``
    at the masked positions of the chosen heads, in place (the cache is the state being
    steered)."""
    v = coeff * vector.to(device=x.device, dtype=x.dtype)
    pick = torch.zeros(x.shape[1], dtype=torch.bool, device=x.device)
    pick[heads.to(x.device)] = True
    where = pick[None, :, None, None] & mask.to(x.device)[:, None, :, None]
    return x.add_(torch.where(where, v, torch.zeros_like(v)))


OPS = {
    "add_vector": add_vector,
    "scale_neurons": scale_neurons,
    "set_heads": set_heads,
    "patch_heads": patch_heads,
    "scatter_positions": scatter_positions,
    "add_to_cache": add_to_cache,
}
"""Every op by name: what an edit's ``op`` names."""


def gather_positions(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``x[b, index[b]]`` for every row: ``[batch, k, ...]``, always a copy (advanced indexing),
    so a capture never aliases an activation that a later edit changes in place."""
    rows = torch.arange(x.shape[0], device=x.device)[:, None].expand_as(index)
    return x[rows, index.to(x.device)]
