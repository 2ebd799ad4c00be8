"""The layout of a store: one xarray Dataset, a variable per site, named dims and coordinates.

A site's variable has dims ``(example, [layer], [position], *site dims)`` -- ``layer`` for
per-layer sites, ``position`` unless positions are ``last``, then the site's own dims
(``d_model``; ``head, head_dim``; ``neuron``; ``kv_head, head_dim``; ``vocab``). This is the
shape ``il.run`` returns, so code written against a :class:`~interlace.RunResult` reads a store.

Ragged lengths: **padded positions with a mask**. The ``position`` dim is as long as the most
positions any example selects; an example's k-th selected position sits at ``position=k``
(``all``: its k-th token), the rest is NaN, and the ``token_index`` coordinate gives each slot's
real token index, -1 for padding (the mask: ``token_index >= 0``). Chunks along ``position``
that hold only padding are never written, so padding costs neither disk nor write time, and a
site can be flattened to one row per real token with ``where(token_index >= 0)`` and
``stack``. A flat token dim was the alternative; padding was chosen because every batch then
owns whole chunks (see below), which is what makes resuming safe, and because it keeps the
run-result shape.

Coordinates: along ``example``, its index in the dataset, the dataset's other fields, ``prompt``
(the text as tokenized, chat template applied) and ``n_tokens``; along ``(example,
[position])``, ``token_index``, ``token_id`` and ``token_str`` of each selected token; ``layer``
and ``position`` label their dims.

Chunks are aligned with batches: ``batch_size`` examples along ``example``, so each batch
writes chunks no other batch touches. Along ``layer`` and ``position`` a chunk grows to about
:data:`CHUNK_BYTES` so that files stay few while reading one layer reads few others.

Dtypes on disk: float32, float16, or bfloat16 stored as its bit pattern in uint16 (numpy and
zarr have no bfloat16) with the attribute ``interlace_dtype: bfloat16``; ``open_store`` decodes
it to float32. Compression per dtype is :data:`CODECS` (measured in BENCHMARKS.md).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import dask.array
import numpy as np
import pydantic
import xarray as xr
from zarr.codecs import BloscCodec, ZstdCodec

from interlace.interventions import Layers, ModelShape, Problem, Slice, ValidationError
from interlace.interventions.layers import LAYERS_ALLOWED
from interlace.interventions.sites import SITES

DTYPES = ("float32", "float16", "bfloat16")
CHUNK_BYTES = 4 << 20
BFLOAT16_NAN = 0x7FC0
DTYPE_ATTR = "interlace_dtype"
# Activations are close to incompressible (random low mantissa bits): measured on SmolLM2's
# residuals, the best codecs gain 7-8% on float32, 6% on float16, 24% on bfloat16 (its 8-bit
# exponent repeats). For float32, bit-shuffled LZ4 gains the most and is the fastest (~1.2 GB/s);
# for the 16-bit dtypes it gains little, and zstd level 1 gains the most at ~0.55 GB/s -- the
# same time per value as LZ4 on float32. Either squeezes NaN padding to nothing. BENCHMARKS.md.
CODECS: dict[str, BloscCodec | ZstdCodec] = {
    "float32": BloscCodec(cname="lz4", clevel=5, shuffle="bitshuffle", typesize=4),
    "float16": ZstdCodec(level=1),
    "bfloat16": ZstdCodec(level=1),
}
_STORAGE = {"float32": np.float32, "float16": np.float16, "bfloat16": np.uint16}
_FILL: dict[str, Any] = {"float32": np.nan, "float16": np.nan, "bfloat16": BFLOAT16_NAN}
EXAMPLE_COORDS = ("prompt", "n_tokens")
TOKEN_COORDS = ("token_index", "token_id", "token_str")
POSITION_KEYWORDS = ("last", "all", "prompt")
STRING = np.dtypes.StringDType()
"""Text on disk: numpy's variable-width strings, stored by zarr as plain UTF-8."""
FieldKind = Literal["bool", "int", "float", "str"]
"""The coordinate type of a dataset's field (see :mod:`interlace.jobs.dataset`)."""
_FIELD_DTYPES: dict[str, Any] = {
    "bool": np.bool_,
    "int": np.int64,
    "float": np.float64,
    "str": STRING,
}
_FIELD_FILLS: dict[str, Any] = {"bool": False, "int": 0, "float": np.nan, "str": ""}


def coordinate_dtype(kind: FieldKind) -> Any:
    """The dtype on disk of a field of this kind."""
    return _FIELD_DTYPES[kind]


@dataclass(frozen=True)
class Batches:
    """``n_examples`` examples in batches of ``size``, in order: the chunks along ``example``
    (each batch writes chunks no other batch touches).

    ``Batches(5, 2)[2]`` is ``slice(4, 5)``; ``len(Batches(5, 2))`` is 3."""

    n_examples: int
    size: int

    def __len__(self) -> int:
        return -(-self.n_examples // self.size)

    def __getitem__(self, index: int) -> slice:
        start = index * self.size
        return slice(start, min(start + self.size, self.n_examples))


@dataclass(frozen=True)
class Selection:
    """What to capture: sites, resolved layers, positions and the dtype on disk."""

    sites: tuple[str, ...]
    layers: tuple[int, ...]
    positions: str | list[int] | Slice
    dtype: str

    def positions_json(self) -> Any:
        return self.positions.to_dict() if isinstance(self.positions, Slice) else self.positions


def parse_selection(
    sites: str | list[str] | tuple[str, ...],
    layers: Any,
    positions: Any,
    dtype: str,
    shape: ModelShape,
) -> Selection:
    """Check and resolve what to capture against a model's shape; one ``ValidationError``
    listing every problem. Strings are the CLI forms: ``"resid_post,mlp_act"``, ``"0-29"``,
    ``"last"``/``"all"``/``"0,-1"``/``"1:"``."""
    problems: list[Problem] = []
    names = [s.strip() for s in sites.split(",")] if isinstance(sites, str) else list(sites)
    unknown = [s for s in names if s not in SITES]
    if not names or unknown:
        problems.append(
            Problem(
                "sites",
                f"unknown site(s) {unknown}" if unknown else "no site given",
                ", ".join(SITES),
            )
        )
    if len(set(names)) != len(names):
        problems.append(Problem("sites", f"a site is named twice in {names}"))
    resolved: list[int] = []
    try:
        resolved = Layers(list(layers) if isinstance(layers, tuple) else layers).resolve(
            shape.n_layers
        )
    except pydantic.ValidationError:
        problems.append(Problem("layers", f"{layers!r} is not a layer selection", LAYERS_ALLOWED))
    except ValueError as err:
        problems.append(Problem("layers", str(err), f"0-{shape.n_layers - 1}"))
    parsed = _positions(positions, problems)
    if dtype not in DTYPES:
        problems.append(Problem("dtype", f"unknown dtype {dtype!r}", ", ".join(DTYPES)))
    if problems:
        raise ValidationError(problems)
    return Selection(tuple(names), tuple(resolved), parsed, dtype)


def _positions(value: Any, problems: list[Problem]) -> Any:
    """A positions selection from its CLI string or Python form; None after a problem."""
    allowed = "last, all, prompt, a list like 0,5,-1 or a slice like 1: or 2:-1:2"
    if value == "generated":
        problems.append(Problem("positions", "caching records the prompt's forward pass", allowed))
        return None
    try:
        if isinstance(value, str) and value not in POSITION_KEYWORDS:
            if ":" not in value:
                return [int(p) for p in value.split(",")]
            parts = [int(p) if p.strip() else None for p in value.split(":")]
            if len(parts) <= 3:
                return Slice(**dict(zip(("start", "stop", "step"), parts, strict=False)))
        elif isinstance(value, dict):
            return Slice(**value)
        elif value in POSITION_KEYWORDS or isinstance(value, Slice):
            return value
        elif isinstance(value, list) and value and all(isinstance(p, int) for p in value):
            return list(value)
    except (ValueError, TypeError):  # int() of a non-number, or a bad slice
        pass
    problems.append(Problem("positions", f"{value!r} is not a form of positions", allowed))
    return None


@dataclass(frozen=True)
class Var:
    """One array of the store: dims, shape, chunks, dtype on disk and encoding."""

    dims: tuple[str, ...]
    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    dtype: Any
    fill: Any
    codec: BloscCodec | ZstdCodec | None = None
    attrs: dict[str, Any] | None = None

    def encoding(self) -> dict[str, Any]:
        enc: dict[str, Any] = {"chunks": self.chunks, "fill_value": self.fill}
        if self.codec is not None:
            enc["compressors"] = [self.codec]
        return enc


@dataclass(frozen=True)
class Layout:
    """Every array of one store, derived from the selection, the model and the dataset."""

    selection: Selection
    shape: ModelShape
    batches: Batches
    max_selected: int
    fields: dict[str, FieldKind]

    @property
    def n_examples(self) -> int:
        return self.batches.n_examples

    @property
    def position_labels(self) -> list[int] | None:
        """Labels of the ``position`` dim, or None when there is none (``last``)."""
        p = self.selection.positions
        if p == "last":
            return None
        return list(p) if isinstance(p, list) else list(range(self.max_selected))

    def site_var(self, site: str) -> Var:
        """A site's array. A chunk is one batch along ``example`` and whole along the site's
        own dims; along ``position``, then ``layer``, it takes as much as fits in
        :data:`CHUNK_BYTES`."""
        info = SITES[site]
        dtype = self.selection.dtype
        width = self.shape.site_width(site)
        b = self.batches.size
        unit = b * math.prod(width) * np.dtype(_STORAGE[dtype]).itemsize
        labels = self.position_labels
        n_pos = 1 if labels is None else len(labels)
        pos_chunk = max(1, min(n_pos, CHUNK_BYTES // unit))
        axes = [("example", self.n_examples, b)]
        if info.per_layer:
            n = len(self.selection.layers)
            axes.append(("layer", n, max(1, min(n, CHUNK_BYTES // (pos_chunk * unit)))))
        if labels is not None:
            axes.append(("position", n_pos, pos_chunk))
        axes += [(d, n, n) for d, n in zip(info.trailing_dims, width, strict=True)]
        dims, shape, chunks = zip(*axes, strict=True)
        attrs = {DTYPE_ATTR: "bfloat16"} if dtype == "bfloat16" else None
        return Var(dims, shape, chunks, _STORAGE[dtype], _FILL[dtype], CODECS[dtype], attrs)

    def variables(self) -> dict[str, Var]:
        """Every array written batch by batch: the sites and the per-example coordinates."""
        out = {site: self.site_var(site) for site in self.selection.sites}
        out.update(example_vars(self.fields, self.batches))
        labels = self.position_labels
        dims, shape = ("example",), (self.n_examples,)
        if labels is not None:
            dims, shape = ("example", "position"), (self.n_examples, len(labels))
        chunks = (self.batches.size,) + shape[1:]
        out["token_index"] = Var(dims, shape, chunks, np.int32, -1)
        out["token_id"] = Var(dims, shape, chunks, np.int32, -1)
        out["token_str"] = Var(dims, shape, chunks, STRING, "")
        return out

    def template(self, attrs: dict[str, Any]) -> tuple[xr.Dataset, dict[str, dict[str, Any]]]:
        """An empty Dataset of the store's shape and its zarr encoding (see :func:`template`)."""
        coords: dict[str, Any] = {"example": np.arange(self.n_examples)}
        if any(SITES[s].per_layer for s in self.selection.sites):
            coords["layer"] = list(self.selection.layers)
        if self.position_labels is not None:
            coords["position"] = self.position_labels
        return template(self.variables(), self.selection.sites, coords, attrs)


def example_vars(fields: Mapping[str, FieldKind], batches: Batches) -> dict[str, Var]:
    """The arrays along ``example`` every store has: the dataset's fields, ``prompt`` (the text
    as tokenized) and ``n_tokens``; one chunk per batch."""
    n, b = (batches.n_examples,), (batches.size,)
    out = {
        name: Var(("example",), n, b, _FIELD_DTYPES[kind], _FIELD_FILLS[kind])
        for name, kind in fields.items()
    }
    out["prompt"] = Var(("example",), n, b, STRING, "")
    out["n_tokens"] = Var(("example",), n, b, np.int32, 0)
    return out


def template(
    variables: Mapping[str, Var],
    data: Collection[str],
    coords: Mapping[str, Any],
    attrs: Mapping[str, Any],
) -> tuple[xr.Dataset, dict[str, dict[str, Any]]]:
    """An empty Dataset of these arrays -- ``data`` as its variables, the rest as coordinates
    beside ``coords`` -- and its zarr encoding. Writing it with ``compute=False`` creates every
    array and writes only ``coords``. Each lazy array is one dask chunk, so creating a store of
    any size builds a tiny graph.

    ``template({"x": Var(("example",), (4,), (2,), np.float32, np.nan)}, ["x"], {}, {})``"""
    arrays = {
        name: xr.Variable(
            v.dims, dask.array.zeros(v.shape, dtype=v.dtype, chunks=-1), attrs=v.attrs
        )
        for name, v in variables.items()
    }
    coords = {**coords, **{k: a for k, a in arrays.items() if k not in data}}
    ds = xr.Dataset({k: a for k, a in arrays.items() if k in data}, coords=coords, attrs=attrs)
    return ds, {name: v.encoding() for name, v in variables.items()}


def check_fields(fields: dict[str, FieldKind]) -> None:
    """Refuse dataset fields whose names clash with the store's own variables, dims and
    coordinates, or cannot be array names."""
    trailing = {d for s in SITES.values() for d in s.trailing_dims}
    taken = {"example", "layer", "position", *EXAMPLE_COORDS, *TOKEN_COORDS, *SITES, *trailing}
    problems = [
        Problem(f"dataset field {name!r}", "clashes with a name the store uses", "rename it")
        for name in fields
        if name in taken
    ]
    problems += [
        Problem(
            f"dataset field {name!r}",
            "is not usable as an array name",
            "a non-empty name without '/' that does not start with '.' or '_'",
        )
        for name in fields
        if not name or "/" in name or name.startswith((".", "_"))
    ]
    if problems:
        raise ValidationError(problems)


def to_disk(values: np.ndarray, dtype: str) -> np.ndarray:
    """Float32 activations (NaN padding) as stored: cast, or bfloat16 as uint16 bits."""
    if dtype == "bfloat16":
        return to_bfloat16(values)
    return values.astype(_STORAGE[dtype], copy=False)


def to_bfloat16(values: np.ndarray) -> np.ndarray:
    """Float32 -> bfloat16 bit patterns (uint16), rounded to nearest even as torch rounds
    (every NaN becomes :data:`BFLOAT16_NAN`), in numpy alone.

    ``to_bfloat16(np.float32([1.0]))`` is ``[0x3F80]``."""
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    rounded = (bits + (0x7FFF + ((bits >> 16) & 1))) >> 16  # carries into the exponent: exact
    out = rounded.astype(np.uint16)
    out[np.isnan(values)] = BFLOAT16_NAN
    return out


def from_bfloat16(bits: np.ndarray) -> np.ndarray:
    """bfloat16 bit patterns (uint16) -> float32, exactly."""
    return (bits.astype(np.uint32) << 16).view(np.float32)
