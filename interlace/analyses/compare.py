"""Model comparison: matrix by matrix between two models of one architecture (a base and its
fine-tune), and between the geometries of two models' token embeddings (any architectures).

Matrices are the orientation-normalised weights of the site vocabulary (``W_E``, ``W_U``, and
per layer ``W_Q``, ``W_K``, ``W_V``, ``W_O``, ``W_in``, ``W_gate``, ``W_out``); norm gains and
biases are not compared.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch
import xarray as xr

from interlace.analyses._data import fail
from interlace.interventions import Problem, ValidationError
from interlace.models.model import Model

GLOBAL = ("W_E", "W_U")
PER_LAYER = ("W_Q", "W_K", "W_V", "W_O", "W_in", "W_gate", "W_out")


def _matrices(model: Model, names: Sequence[str]) -> list[tuple[str, int]]:
    """(weight, layer) of every matrix the model has among ``names``; layer -1: global."""
    out = []
    for name in names:
        for layer in [-1] if name in GLOBAL else range(model.shape.n_layers):
            try:
                model.weight(name, None if layer < 0 else layer)
            except KeyError:  # e.g. no W_gate in GPT-2's ungated MLP
                break
            out.append((name, layer))
    return out


def compare_weights(a: Model, b: Model, weights: Sequence[str] = GLOBAL + PER_LAYER) -> xr.Dataset:
    """Cosine similarity (of the flattened matrices) and norm ratio ``||b|| / ||a||`` of every
    matrix of two models with the same shape, in float64.

    Returns ``cosine`` and ``norm_ratio`` along ``matrix`` (labels ``W_E``, ``W_Q.3``, ...),
    with coordinates ``weight`` and ``layer`` (-1 for ``W_E`` and ``W_U``).
    """
    diffs = [
        Problem(f"b.{k}", f"{v} here, {a.shape.to_dict()[k]} in a")
        for k, v in b.shape.to_dict().items()
        if v != a.shape.to_dict()[k] and k != "sites"
    ]
    if diffs:
        raise ValidationError(diffs)
    unknown = [w for w in weights if w not in GLOBAL + PER_LAYER]
    if unknown:
        raise fail("weights", f"{unknown}", ", ".join(GLOBAL + PER_LAYER))
    rows = []
    with torch.inference_mode():
        for name, layer in _matrices(a, weights):
            at = None if layer < 0 else layer
            wa = a.weight(name, at).detach().double().flatten().cpu()
            wb = b.weight(name, at).detach().double().flatten().cpu()
            na, nb = wa.norm(), wb.norm()
            rows.append((name, layer, float(wa @ wb / (na * nb)), float(nb / na)))
    labels = [name if layer < 0 else f"{name}.{layer}" for name, layer, *_ in rows]
    return xr.Dataset(
        {
            "cosine": ("matrix", [r[2] for r in rows]),
            "norm_ratio": ("matrix", [r[3] for r in rows]),
        },
        coords={
            "matrix": labels,
            "weight": ("matrix", [r[0] for r in rows]),
            "layer": ("matrix", [r[1] for r in rows]),
        },
        attrs={"a": a.name, "b": b.name},
    )


def changed_matrices(comparison: xr.Dataset, tol: float = 1e-6) -> list[str]:
    """Labels of the matrices whose cosine or norm ratio differs from 1 by more than ``tol``."""
    off = (np.abs(1 - comparison["cosine"]) > tol) | (np.abs(1 - comparison["norm_ratio"]) > tol)
    return [str(m) for m in comparison["matrix"].values[off.values]]


def shared_tokens(tokenizer_a: Any, tokenizer_b: Any) -> list[tuple[str, int, int]]:
    """Tokens both vocabularies hold (special tokens left out), sorted by their text: ``(text,
    id in a, id in b)``."""
    va, vb = tokenizer_a.get_vocab(), tokenizer_b.get_vocab()
    special = set(tokenizer_a.all_special_tokens) | set(tokenizer_b.all_special_tokens)
    return [(t, va[t], vb[t]) for t in sorted(va.keys() & vb.keys() - special)]


def _distances(x: torch.Tensor, metric: str) -> torch.Tensor:
    """The upper triangle (``i < j``) of the pairwise distance matrix of rows of ``x``."""
    if metric == "cosine":
        u = x / x.norm(dim=-1, keepdim=True)
        d = 1 - u @ u.T
    else:
        d = torch.cdist(x, x)
    i, j = torch.triu_indices(len(x), len(x), offset=1)
    return d[i, j]


def embedding_distance_correlation(
    a: Model,
    b: Model,
    n_tokens: int = 1000,
    seed: int = 0,
    metric: Literal["cosine", "euclidean"] = "cosine",
    weight: Literal["W_E", "W_U"] = "W_E",
) -> float:
    """Pearson correlation between the pairwise distances of two models' token embeddings over
    the same ``n_tokens`` tokens (drawn with ``seed`` from those both vocabularies share):
    whether the two models lay tokens out alike. The widths may differ."""
    if metric not in ("cosine", "euclidean") or weight not in GLOBAL:
        raise fail("metric", f"metric={metric!r}, weight={weight!r}", "cosine/euclidean, W_E/W_U")
    shared = shared_tokens(a.tokenizer, b.tokenizer)
    if n_tokens < 3 or len(shared) < 3:
        raise fail("n_tokens", f"{n_tokens} asked, {len(shared)} shared", "at least 3 of each")
    gen = torch.Generator().manual_seed(seed)
    pick = torch.randperm(len(shared), generator=gen)[:n_tokens].sort().values.tolist()
    ids_a = torch.tensor([shared[i][1] for i in pick])
    ids_b = torch.tensor([shared[i][2] for i in pick])
    with torch.inference_mode():
        da = _distances(a.weight(weight).detach().double().cpu()[ids_a], metric)
        db = _distances(b.weight(weight).detach().double().cpu()[ids_b], metric)
        return float(torch.corrcoef(torch.stack([da, db]))[0, 1])
