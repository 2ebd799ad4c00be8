"""How analyses read activations: DataArrays shaped like a store's variables or ``il.run``
captures, ``(example, [layer], [position], feature)``, NaN where a position is padding.

Analyses load one layer at a time (``.sel(layer=l).values``), so a dask-backed store is never
read whole. Averages and training sets leave position 0 out by default (the massive
activations of SmolLM2 and others live there); it is recognised by the ``token_index``
coordinate (``-1`` marks padding in a store).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr

from interlace.interventions import Problem, ValidationError


def fail(path: str, message: str, allowed: str | None = None) -> ValidationError:
    """One problem with an analysis argument, as interlace reports problems everywhere."""
    return ValidationError([Problem(path, message, allowed)])


def as_dataarray(data: Any, path: str = "data") -> xr.DataArray:
    if not isinstance(data, xr.DataArray):
        raise fail(path, f"expected an xarray DataArray, got {type(data).__name__}")
    return data


def check_dims(da: xr.DataArray, width: int | None = None, path: str = "data") -> None:
    """``da`` is ``(example, [layer], [one position dim], feature)``, the feature ``width`` wide."""
    if "example" not in da.dims:
        raise fail(path, f"has no 'example' dim (dims: {da.dims})", "dims (example, ...)")
    extra = [d for d in da.dims[:-1] if d not in ("example", "layer")]
    if len(extra) > 1:
        raise fail(
            path,
            f"has dims {da.dims}: more than one dim besides example, layer and the feature dim",
            "select or stack the others first, e.g. .sel(head=3) or .stack(f=('head', 'head_dim'))",
        )
    if width is not None and da.shape[-1] != width:
        raise fail(path, f"its last dim {da.dims[-1]!r} has width {da.shape[-1]}", str(width))


def position_dim(da: xr.DataArray) -> str | None:
    """The positions dim (whatever it is called), or None for one position per example."""
    extra = [d for d in da.dims[:-1] if d not in ("example", "layer")]
    return extra[0] if extra else None


def token_index(da: xr.DataArray) -> xr.DataArray | None:
    """The ``token_index`` coordinate (a run's, or a store's ``<key>_token_index``), if any."""
    for name, coord in da.coords.items():
        if (name == "token_index" or str(name).endswith("_token_index")) and set(coord.dims) <= set(
            da.dims
        ):
            return coord
    return None


def layers_of(
    da: xr.DataArray, layers: Sequence[int] | None, n_layers: int | None = None
) -> list[int]:
    """The requested layers (default: every layer ``da`` holds), each checked to be in ``da``
    and, given ``n_layers``, in the model."""
    if "layer" not in da.dims:
        raise fail("data", f"has no 'layer' dim (dims: {da.dims})", "a per-layer site")
    held = [int(v) for v in da["layer"].values]
    wanted = held if layers is None else [int(v) for v in layers]
    problems = [
        Problem(f"layers[{i}]", f"layer {v} is not in the data", f"layers {_span(held)}")
        for i, v in enumerate(wanted)
        if v not in held
    ]
    if n_layers is not None:
        problems += _outside(wanted, n_layers, "layers")
    if problems:
        raise ValidationError(problems)
    return wanted


def _outside(layers: Sequence[int], n_layers: int, path: str) -> list[Problem]:
    return [
        Problem(f"{path}[{i}]", f"layer {v} of a {n_layers}-layer model", f"0-{n_layers - 1}")
        for i, v in enumerate(layers)
        if not 0 <= v < n_layers
    ]


def model_layers(layers: Sequence[int] | None, n_layers: int, path: str = "layers") -> list[int]:
    """``layers`` (default: all), each checked to be a layer of an ``n_layers``-layer model."""
    wanted = list(range(n_layers)) if layers is None else [int(v) for v in layers]
    problems = _outside(wanted, n_layers, path)
    if problems:
        raise ValidationError(problems)
    return wanted


def _span(values: list[int]) -> str:
    if values and values == list(range(values[0], values[-1] + 1)):
        return f"{values[0]}-{values[-1]}"
    return ", ".join(map(str, values))


def at_layer(da: xr.DataArray, layer: int | None) -> xr.DataArray:
    return da if layer is None else da.sel(layer=layer)


def valid_mask(da: xr.DataArray, values: np.ndarray, exclude_position_zero: bool) -> np.ndarray:
    """Which ``(example, [position])`` slots of one layer's ``values`` (in that order, feature
    last) hold a real token."""
    mask = ~np.isnan(values).any(-1)
    index = token_index(da)
    if index is not None:
        ti = index.transpose("example", ...).values
        mask &= ti >= 0
        if exclude_position_zero:
            mask &= ti != 0
    return mask


def rows(
    da: xr.DataArray, layer: int | None, exclude_position_zero: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """One layer's real tokens as rows ``[n, feature]`` (float32) and each row's example index.

    Loads just that layer. Padding and, by default, position 0 are left out.
    """
    sub = at_layer(da, layer)
    order = ["example", *([position_dim(da)] if position_dim(da) else []), da.dims[-1]]
    values = np.asarray(sub.transpose(*order).values, dtype=np.float32)
    mask = valid_mask(sub, values, exclude_position_zero)
    return values[mask], np.nonzero(mask)[0]


def example_labels(data: xr.DataArray | xr.Dataset, label: str) -> np.ndarray:
    """The values of coordinate ``label`` along ``example``."""
    along = [str(n) for n, c in data.coords.items() if c.dims == ("example",)]
    if label not in data.coords or data.coords[label].dims != ("example",):
        raise fail("label", f"no coordinate {label!r} along 'example'", ", ".join(along) or None)
    return np.asarray(data.coords[label].values)


def two_groups(
    labels: np.ndarray, groups: tuple[Any, Any] | None, path: str = "label"
) -> tuple[Any, Any]:
    """The (positive, negative) label values: ``groups``, else the two values the label takes
    (the larger one positive, so True / 1 is positive)."""
    present = sorted(np.unique(labels).tolist())
    if groups is None:
        if len(present) != 2:
            raise fail(path, f"takes {len(present)} values {present[:10]}", "exactly two values")
        return present[1], present[0]
    missing = [g for g in groups if g not in present]
    if len(groups) != 2 or groups[0] == groups[1] or missing:
        raise fail("groups", f"{groups!r} are not two of the label's values", f"{present[:10]}")
    return groups[0], groups[1]


def as_vectors(x: Any, width: int, path: str = "vector") -> xr.DataArray:
    """Vectors as a DataArray whose last dim is ``width`` wide: a DataArray as it is, or a
    tensor / array / list (1-D: one vector; 2-D: ``(direction, feature)``)."""
    if not isinstance(x, xr.DataArray):
        if hasattr(x, "detach"):
            x = x.detach().float().cpu().numpy()
        values = np.asarray(x, dtype=np.float32)
        if values.ndim not in (1, 2):
            raise fail(path, f"has {values.ndim} dims", "one vector, or a 2-D stack of them")
        x = xr.DataArray(values, dims=("direction", "feature")[2 - values.ndim :])
    if x.ndim == 0 or x.shape[-1] != width:
        raise fail(path, f"has width {x.shape[-1] if x.ndim else 0}", f"width {width}")
    if not np.isfinite(x.values).all():
        raise fail(path, "holds NaN or infinite values", "finite values")
    return x
