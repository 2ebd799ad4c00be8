"""Vector extraction: mean differences between two groups of activations, random directions of
matched norm as baselines, PCA of paired differences, and a steering check against those
baselines.

Two kinds of groups: two values of a label coordinate (every real token of an example counts
once; position 0 is left out by default), or two positions of each example (the first and the
last occurrence of an answer, say), which pairs the activations example by example.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import xarray as xr

from interlace.analyses._data import (
    as_vectors,
    check_dims,
    example_labels,
    fail,
    layers_of,
    model_layers,
    position_dim,
    rows,
    two_groups,
)
from interlace.analyses.lens import target_ids
from interlace.interventions import AddVector, Graph
from interlace.models.model import Model
from interlace.runtime.prompts import Prompt
from interlace.runtime.run import run

STEER_SITES = ("resid_pre", "resid_post", "attn_out", "mlp_out")


def _per_layer(data: xr.DataArray) -> xr.DataArray:
    """``data`` with a ``layer`` dim (a length-1 one if it had none), so one code path serves
    both; :func:`_restore` drops it again."""
    return data if "layer" in data.dims else data.expand_dims(layer=[-1], axis=1)


def _restore(out: xr.Dataset | xr.DataArray, data: xr.DataArray) -> Any:
    return out if "layer" in data.dims else out.isel(layer=0, drop=True)


def unit(vectors: xr.DataArray) -> xr.DataArray:
    """Each vector (along the last dim) scaled to norm 1."""
    return vectors / np.sqrt((vectors**2).sum(vectors.dims[-1]))


def mean_difference(
    data: xr.DataArray,
    label: str,
    groups: tuple[Any, Any] | None = None,
    layers: Sequence[int] | None = None,
    normalize: bool = False,
    exclude_position_zero: bool = True,
) -> xr.DataArray:
    """Mean of ``groups[0]``'s activations minus mean of ``groups[1]``'s (the values of the
    coordinate ``label``; default its two values, the larger first), per layer.

    ``data``: ``(example, [layer], [position], feature)``; with a position dim every real token
    counts once. ``normalize`` scales each layer's vector to unit norm.
    """
    check_dims(data)
    labels = example_labels(data, label)
    pos, neg = two_groups(labels, groups)
    full = _per_layer(data)
    layer_list = layers_of(full, layers if "layer" in data.dims else None)
    vectors = []
    for layer in layer_list:
        x, examples = rows(full, layer, exclude_position_zero)
        means = []
        for value in (pos, neg):
            chosen = x[labels[examples] == value]
            if len(chosen) == 0:
                raise fail("label", f"no real token of an example with {label} == {value!r}")
            means.append(chosen.astype(np.float64).mean(0))
        vectors.append(means[0] - means[1])
    out = xr.DataArray(vectors, dims=("layer", data.dims[-1]), coords={"layer": layer_list})
    out = _restore(out, data).assign_attrs(label=label, positive=str(pos), negative=str(neg))
    return unit(out) if normalize else out


def _at(data: xr.DataArray, where: Any, path: str) -> xr.DataArray:
    """Each example's activation at position ``where`` (one label, or one per example)."""
    pos = position_dim(data)
    if pos is None:
        raise fail("data", f"has no position dim (dims: {data.dims})", "positions per example")
    n = data.sizes["example"]
    index = np.asarray(where.values if isinstance(where, xr.DataArray) else where)
    if index.ndim == 0:
        index = np.full(n, index)
    if index.shape != (n,):
        raise fail(path, f"has {index.size} positions for {n} examples", "one, or one per example")
    known = set(data[pos].values.tolist())
    bad = [i for i, p in enumerate(index.tolist()) if p not in known]
    if bad:
        allowed = f"{pos} labels {min(known)}-{max(known)}"
        raise fail(f"{path}[{bad[0]}]", f"position {index[bad[0]]} is not in the data", allowed)
    picked = data.sel({pos: xr.DataArray(index, dims="example")})
    return picked.drop_vars([k for k, c in picked.coords.items() if k == pos or pos in c.dims])


def paired_differences(
    data: xr.DataArray, first: Any, second: Any, layers: Sequence[int] | None = None
) -> xr.DataArray:
    """Per example, the activation at position ``first`` minus the one at ``second``
    (``(example, [layer], feature)``). Positions are labels of the position dim: one for all
    examples or one per example. A position that is padding in some example is refused."""
    check_dims(data)
    if "layer" in data.dims:
        data = data.sel(layer=layers_of(data, layers))
    diff = (_at(data, first, "first") - _at(data, second, "second")).load()
    nan = np.nonzero(np.isnan(diff.values).reshape(diff.sizes["example"], -1).any(-1))[0]
    if len(nan):
        raise fail("first", f"examples {nan[:10].tolist()} have padding at a chosen position")
    return diff


def position_difference(
    data: xr.DataArray,
    first: Any,
    second: Any,
    layers: Sequence[int] | None = None,
    normalize: bool = False,
) -> xr.DataArray:
    """The mean over examples of :func:`paired_differences`; unit norm with ``normalize``."""
    out = paired_differences(data, first, second, layers).mean("example")
    return unit(out) if normalize else out


def random_directions(vectors: Any, n: int, seed: int = 0) -> xr.DataArray:
    """``n`` random directions per vector (along a new ``sample`` dim), each as long as the
    vector it stands beside: the baseline for a steering or probing direction."""
    vectors = as_vectors(vectors, np.shape(vectors)[-1], "vectors")
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(n, *vectors.shape, generator=gen, dtype=torch.float64).numpy()
    noise /= np.linalg.norm(noise, axis=-1, keepdims=True)
    noise *= np.linalg.norm(vectors.values, axis=-1, keepdims=True)
    return xr.DataArray(noise, dims=("sample", *vectors.dims), coords=vectors.coords)


def difference_pca(differences: xr.DataArray, n_components: int = 3) -> xr.Dataset:
    """PCA (centred) of per-example differences ``(example, [layer], feature)`` per layer:
    ``components`` ``(layer, component, feature)`` (unit vectors, signed to point along the
    mean difference), ``explained_variance_ratio`` and ``cosine_to_mean`` (each component's
    cosine with the mean difference)."""
    from sklearn.decomposition import PCA

    check_dims(differences, path="differences")
    full = _per_layer(differences)
    if not 1 <= n_components <= min(full.sizes["example"], full.shape[-1]):
        raise fail("n_components", f"{n_components}", "between 1 and the number of examples")
    comps, ratios, cosines = [], [], []
    for layer in full["layer"].values:
        x = np.asarray(full.sel(layer=layer).transpose("example", ...).values, dtype=np.float64)
        pca = PCA(n_components=n_components).fit(x)
        mean = x.mean(0)
        cos = pca.components_ @ mean / np.linalg.norm(mean)
        sign = np.where(cos < 0, -1.0, 1.0)
        comps.append(pca.components_ * sign[:, None])
        ratios.append(pca.explained_variance_ratio_)
        cosines.append(cos * sign)
    out = xr.Dataset(
        {
            "components": (("layer", "component", full.dims[-1]), np.stack(comps)),
            "explained_variance_ratio": (("layer", "component"), np.stack(ratios)),
            "cosine_to_mean": (("layer", "component"), np.stack(cosines)),
        },
        coords={"layer": full["layer"].values, "component": np.arange(n_components)},
    )
    return _restore(out, differences)


def steering_effect(
    model: Model,
    vector: Any,
    layer: int,
    prompts: Prompt | list[Prompt],
    targets: Sequence[str | int],
    coeff: float = 1.0,
    n_random: int = 8,
    seed: int = 0,
    site: str = "resid_post",
    positions: Any = "all",
) -> xr.Dataset:
    """Add ``coeff * vector`` at ``site`` of ``layer`` and read the targets' log-probabilities
    at each prompt's last token, next to ``n_random`` random directions of the same norm.

    ``vector``: width ``d_model``, or a ``(layer, d_model)`` DataArray (``layer`` is taken).
    Returns ``logprob`` and ``delta`` (change from the unsteered run) over ``(condition,
    example, target)``; condition ``vector``, then ``random_0`` ... Arguments are checked
    before the model runs.
    """
    model_layers([layer], model.shape.n_layers, "layer")
    if isinstance(vector, xr.DataArray) and "layer" in vector.dims:
        vector = vector.sel(layer=layers_of(vector, [layer])[0])
    vec = as_vectors(vector, model.shape.d_model)
    if vec.ndim != 1:
        raise fail("vector", f"has dims {vec.dims}", "one vector")
    if site not in STEER_SITES:
        raise fail("site", f"{site!r}", ", ".join(STEER_SITES))
    ids = target_ids(model.tokenizer, targets)
    vectors = [vec.values, *random_directions(vec, n_random, seed).values]
    names = ["vector", *(f"random_{i}" for i in range(n_random))]

    def logprobs(graph: Graph) -> np.ndarray:
        return run(model, graph, prompts).logprobs().values[:, ids]

    graphs = [  # built (and so checked) before anything runs
        Graph(
            interventions=[
                AddVector(
                    site=site, layers=[layer], vector=v.tolist(), coeff=coeff, positions=positions
                )
            ]
        )
        for v in vectors
    ]
    clean = logprobs(Graph())
    steered = np.stack([logprobs(g) for g in graphs])
    dims = ("condition", "example", "target")
    coords = {"condition": names, "target": [str(t) for t in targets]}
    out = xr.Dataset({"logprob": (dims, steered), "delta": (dims, steered - clean)}, coords=coords)
    out.attrs.update(layer=layer, coeff=coeff, site=site, norm=float(np.linalg.norm(vec.values)))
    return out
