"""The tensor operations that interventions compile to: small pure-torch functions, called
inside trace bodies (so they must depend on torch only: a remote server can import them or
receive them by value).

``x`` is a site's activation ``[batch, seq, width]``; ``mask`` a ``[batch, seq]`` bool of the
positions to edit. Every function returns a new tensor and leaves ``x`` untouched.
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
    replacement: torch.Tensor,
    n_heads: int,
) -> torch.Tensor:
    """Replace chosen heads of ``head_z`` (``[batch, seq, n_heads*head_dim]``) by
    ``replacement``, broadcastable to ``[batch, seq, n_heads, head_dim]``."""
    z = x.reshape(*x.shape[:-1], n_heads, -1)
    new = torch.broadcast_to(replacement.to(device=x.device, dtype=x.dtype), z.shape)
    pick = torch.zeros(n_heads, dtype=torch.bool, device=x.device)
    pick[heads.to(x.device)] = True
    where = mask.to(x.device)[..., None, None] & pick[:, None]
    return torch.where(where, new, z).reshape(x.shape)


def scatter_positions(x: torch.Tensor, index: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """``x`` with row b's positions ``index[b]`` replaced by ``values[b]`` (patching)."""
    out = x.clone()
    rows = torch.arange(x.shape[0], device=x.device)[:, None].expand_as(index)
    out[rows, index.to(x.device)] = values.to(device=x.device, dtype=x.dtype)
    return out


def add_to_cache(
    cache: torch.Tensor,
    mask: torch.Tensor,
    heads: torch.Tensor,
    vector: torch.Tensor,
    coeff: float,
) -> None:
    """Add ``coeff·vector`` to cached keys or values ``[batch, kv_heads, seq, head_dim]`` at the
    masked positions of the chosen heads, in place (the cache is the state being steered)."""
    v = coeff * vector.to(device=cache.device, dtype=cache.dtype)
    pick = torch.zeros(cache.shape[1], dtype=torch.bool, device=cache.device)
    pick[heads.to(cache.device)] = True
    where = pick[None, :, None, None] & mask.to(cache.device)[:, None, :, None]
    cache.add_(torch.where(where, v, torch.zeros_like(v)))


def gather_positions(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``x[b, index[b]]`` for every row: ``[batch, k, ...]``, always a copy (advanced indexing),
    so a capture never aliases an activation that a later edit changes in place."""
    rows = torch.arange(x.shape[0], device=x.device)[:, None].expand_as(index)
    return x[rows, index.to(x.device)]
