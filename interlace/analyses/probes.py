"""Linear probes: per layer (and per site), a logistic regression of activations on a binary
label coordinate, with accuracy and AUROC on held-out examples and the probe directions.

The split is drawn once, by example, before any activation is read: every row of an example
(each of its positions, at every layer and site) lands on that example's side, so no test
example can inform a probe. Features are standardised on the training rows; the returned
directions and biases are mapped back to raw activation space, so ``x @ direction + bias`` is
the probe's logit for a raw activation ``x``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr

from interlace.analyses._data import (
    check_dims,
    example_labels,
    fail,
    layers_of,
    rows,
    two_groups,
)

TRAIN, TEST, UNUSED = "train", "test", ""


def split_examples(
    labels: np.ndarray, groups: tuple[Any, Any], test_fraction: float, seed: int
) -> np.ndarray:
    """Each example's side, ``train`` or ``test`` (``""`` if its label is in neither group),
    stratified by label and drawn with ``seed``."""
    from sklearn.model_selection import train_test_split

    if not 0 < test_fraction < 1:
        raise fail("test_fraction", f"{test_fraction}", "between 0 and 1, exclusive")
    used = np.nonzero(np.isin(labels, groups))[0]
    counts = {g: int((labels[used] == g).sum()) for g in groups}
    n_test = {g: round(c * test_fraction) for g, c in counts.items()}
    if any(n < 1 or n >= counts[g] for g, n in n_test.items()):
        raise fail(
            "label",
            f"too few examples to split {test_fraction:.0%} off for testing: {counts}",
            "at least one test and one training example of each value",
        )
    _, test = train_test_split(
        used, test_size=test_fraction, random_state=seed, stratify=labels[used]
    )
    side = np.full(len(labels), UNUSED, dtype=object)
    side[used] = TRAIN
    side[test] = TEST
    return side.astype(str)


def _probe_one(
    data: xr.DataArray,
    labels: np.ndarray,
    side: np.ndarray,
    groups: tuple[Any, Any],
    layers: list[int],
    c: float,
    exclude_position_zero: bool,
) -> xr.Dataset:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.preprocessing import StandardScaler

    acc, auroc, chance, weights, biases = [], [], [], [], []
    for layer in layers:
        x, examples = rows(data, layer, exclude_position_zero)
        y = labels[examples] == groups[0]
        train, test = side[examples] == TRAIN, side[examples] == TEST
        scaler = StandardScaler().fit(x[train])
        clf = LogisticRegression(C=c, max_iter=2000).fit(scaler.transform(x[train]), y[train])
        w = clf.coef_[0] / scaler.scale_
        b = clf.intercept_[0] - w @ scaler.mean_
        logit = x[test] @ w + b
        acc.append(float(((logit > 0) == y[test]).mean()))
        auroc.append(float(roc_auc_score(y[test], logit)))
        chance.append(float(max(y[test].mean(), 1 - y[test].mean())))
        weights.append(w)
        biases.append(b)
    feature = data.dims[-1]
    return xr.Dataset(
        {
            "accuracy": ("layer", acc),
            "auroc": ("layer", auroc),
            "chance": ("layer", chance),
            "direction": (("layer", feature), np.array(weights, dtype=np.float32)),
            "bias": ("layer", biases),
        },
        coords={"layer": layers},
    )


def train_probes(
    data: xr.DataArray | xr.Dataset,
    label: str,
    groups: tuple[Any, Any] | None = None,
    layers: Sequence[int] | None = None,
    sites: Sequence[str] | None = None,
    test_fraction: float = 0.25,
    seed: int = 0,
    c: float = 1.0,
    exclude_position_zero: bool = True,
) -> xr.Dataset:
    """Train one probe per layer of ``data`` to tell ``groups[0]`` (positive) from
    ``groups[1]`` of the coordinate ``label`` (default: its two values, the larger positive).

    ``data``: a DataArray ``(example, layer, [position], feature)``, or a Dataset (a store),
    then one probe per layer of each of ``sites`` (default: its variables with a ``layer``
    dim), stacked along ``site`` (directions of sites of different widths share a NaN-padded
    ``feature`` dim). With a position dim every real position is a row (position
    0 left out by default). ``c`` is the inverse L2 strength of the logistic regression.

    Returns ``accuracy``, ``auroc`` and ``chance`` (the majority rate of the test rows) per
    layer, ``direction`` ``(layer, feature)`` and ``bias`` in raw activation space, and
    ``split`` ``(example)``: each example's side, ``train`` or ``test``.
    """
    if isinstance(data, xr.Dataset):
        held = [str(n) for n, v in data.data_vars.items() if {"example", "layer"} <= set(v.dims)]
        sites = held if sites is None else list(sites)
        missing = [s for s in sites if s not in held]
        if missing or not sites:
            raise fail("sites", f"{missing or 'none'} not per-layer variables", ", ".join(held))
        arrays = {s: data[s] for s in sites}
    elif isinstance(data, xr.DataArray):
        arrays = {None: data}
    else:
        raise fail("data", f"expected an xarray DataArray or Dataset, got {type(data).__name__}")
    for name, da in arrays.items():
        check_dims(da, path=name or "data")
    labels = example_labels(data, label)
    groups = two_groups(labels, groups)
    layer_sets = {name: layers_of(da, layers) for name, da in arrays.items()}
    side = split_examples(labels, groups, test_fraction, seed)
    results = [
        _probe_one(da, labels, side, groups, layer_sets[name], c, exclude_position_zero)
        for name, da in arrays.items()
    ]
    features = {da.dims[-1] for da in arrays.values()}
    if len(features) > 1:  # e.g. resid_post (d_model) beside mlp_act (neuron): pad to one dim
        results = [
            r.rename({da.dims[-1]: "feature"})
            for r, da in zip(results, arrays.values(), strict=True)
        ]
    out = results[0] if None in arrays else xr.concat(results, xr.Variable("site", sites))
    out["split"] = ("example", side)
    if "example" in data.coords:
        out = out.assign_coords(example=data["example"].values)
    out.attrs.update(
        label=label,
        positive=str(groups[0]),
        negative=str(groups[1]),
        test_fraction=test_fraction,
        seed=seed,
        c=c,
    )
    return out
