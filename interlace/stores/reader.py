"""Reading a store: ``open_store`` (lazy, dask-backed) and ``describe`` (what ``interlace store
info`` prints).

Opening runs no code and unpickles nothing: before xarray sees the store, every array's
metadata is checked against :data:`SAFE_DATA_TYPES` and :data:`SAFE_CODECS` (numbers and
strings; plain byte, compression and checksum codecs), so a doctored ``zarr.json`` naming, say,
a pickle codec is refused instead of decoded. Attributes are JSON.
"""

from __future__ import annotations

import json
import os
from typing import Any

import dask.array
import numpy as np
import xarray as xr
import zarr
from zarr.abc.store import Store
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync

from interlace.stores import progress
from interlace.stores.errors import StoreError
from interlace.stores.location import exists, stored_bytes, zarr_store
from interlace.stores.schema import DTYPE_ATTR, from_bfloat16

FORMAT = 1
FORMAT_ATTR = "interlace_store"
KIND_ATTR = "interlace_kind"
"""What a store holds beside activations (``study``: a study's results); absent in an
activation store."""
SAFE_DATA_TYPES = {
    "bool",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "float16",
    "float32",
    "float64",
    "string",
}
SAFE_CODECS = {"bytes", "blosc", "zstd", "gzip", "vlen-utf8", "crc32c", "transpose"}


def open_root(
    path: str | os.PathLike, storage_options: dict[str, Any] | None = None, mode: str = "r"
) -> zarr.Group:
    """The store's root group, after :func:`check_safe`."""
    store = zarr_store(path, storage_options, read_only=mode == "r")
    if not exists(store):
        raise StoreError(f"no store at {path}")
    root_meta = check_safe(store, path)
    if root_meta.get("attributes", {}).get(FORMAT_ATTR) != FORMAT:
        raise StoreError(f"{path} is not an interlace store (its attributes do not say so)")
    return zarr.open_group(store, mode=mode, zarr_format=3)


def check_safe(store: Store, path: str | os.PathLike) -> dict[str, Any]:
    """Read every node's ``zarr.json`` as plain JSON -- before zarr builds any codec -- and
    refuse any array whose data type or codecs are not plain numbers, strings and known
    compressors (a pickle codec would run code; a plugin codec would need one). Returns the
    root group's metadata."""
    nodes = sync(_metadata(store, ""))
    if "" not in nodes or nodes[""].get("node_type") != "group":
        raise StoreError(f"{path} is not a zarr v3 store (no root group metadata)")
    for key, meta in nodes.items():
        if meta.get("node_type") != "array":
            continue
        dtype = meta.get("data_type")
        dtype_name = dtype if isinstance(dtype, str) else (dtype or {}).get("name")
        codecs = {c["name"] if isinstance(c, dict) else c for c in meta.get("codecs", [])}
        if dtype_name not in SAFE_DATA_TYPES or codecs - SAFE_CODECS:
            raise StoreError(
                f"{path}: array {key!r} has data type {dtype_name!r} and codecs "
                f"{sorted(codecs)}; interlace reads only {sorted(SAFE_DATA_TYPES)} with codecs "
                f"{sorted(SAFE_CODECS)}"
            )
    return nodes[""]


async def _metadata(store: Store, prefix: str) -> dict[str, dict[str, Any]]:
    """``zarr.json`` of the node at ``prefix`` and, for a group, of everything under it (arrays'
    chunk directories are not listed)."""
    buffer = await store.get(f"{prefix}zarr.json", prototype=default_buffer_prototype())
    if buffer is None:
        return {}
    meta = json.loads(buffer.to_bytes())
    nodes = {prefix.rstrip("/"): meta}
    if meta.get("node_type") == "group":
        async for child in store.list_dir(prefix.rstrip("/")):
            if child != "zarr.json":
                nodes.update(await _metadata(store, f"{prefix}{child}/"))
    return nodes


def completeness(root: zarr.Group) -> dict[str, Any]:
    """Batches and examples complete, out of how many."""
    flags = progress.done(root)
    attrs = root.attrs
    n, b = attrs["n_examples"], attrs["batch_size"]
    done_examples = sum(min(b, n - i * b) for i in np.flatnonzero(flags))
    return {
        "complete": bool(flags.all()),
        "batches_done": int(flags.sum()),
        "n_batches": int(attrs["n_batches"]),
        "examples_done": int(done_examples),
        "n_examples": int(n),
    }


def open_store(
    path: str | os.PathLike,
    partial: bool = False,
    storage_options: dict[str, Any] | None = None,
) -> xr.Dataset:
    """Open a store as a lazy xarray Dataset (dask arrays; nothing is read until asked).

    An incomplete store (a job still running or interrupted) is refused unless ``partial``,
    which gives only the examples of complete batches. bfloat16 variables come back as float32.
    """
    root = open_root(path, storage_options)
    status = completeness(root)
    if not status["complete"] and not partial:
        raise StoreError(
            f"{path} is incomplete: {status['batches_done']} of {status['n_batches']} batches "
            "are written. Run the same cache job again to finish it, or "
            "open_store(path, partial=True) to read the complete batches."
        )
    ds = xr.open_zarr(root.store, consolidated=False, chunks={}, zarr_format=3, decode_times=False)
    for name, var in ds.data_vars.items():
        if var.attrs.get(DTYPE_ATTR) == "bfloat16":
            decoded = var.copy(
                data=dask.array.map_blocks(from_bfloat16, var.data, dtype=np.float32)
            )
            decoded.encoding = {}  # the uint16 encoding no longer describes these values
            decoded.attrs = {k: v for k, v in var.attrs.items() if k != DTYPE_ATTR}
            decoded.attrs["stored_as"] = "bfloat16"
            ds[name] = decoded
    if not status["complete"]:
        per_example = np.repeat(progress.done(root), root.attrs["batch_size"])
        ds = ds.isel(example=np.flatnonzero(per_example[: status["n_examples"]]))
    return ds


def real_tokens(values: xr.DataArray) -> xr.DataArray:
    """A site's values with one row per real token, padding dropped: dims ``(token, ...)``,
    with ``example``, ``position``, ``token_index``, ``token_id``, ``token_str`` and the
    example's fields as coordinates along ``token``. Lazy: only the mask is read."""
    if "position" not in values.dims:
        raise ValueError("these values have no position dim (positions 'last'): one per example")
    keep = np.flatnonzero((values["token_index"] >= 0).values.ravel())
    stacked = values.stack(token=("example", "position"))
    return stacked.isel(token=keep).transpose("token", ...)


def describe(path: str | os.PathLike, storage_options: dict[str, Any] | None = None) -> dict:
    """Sites, dims, sizes, provenance and completeness of a store, as plain data."""
    root = open_root(path, storage_options)
    ds = xr.open_zarr(root.store, consolidated=False, chunks=None, zarr_format=3)
    sites = {}
    raw = 0
    for name, var in ds.data_vars.items():
        array = root[name]
        nbytes = int(np.prod(array.shape)) * array.dtype.itemsize
        raw += nbytes
        sites[name] = {
            "dims": dict(zip(var.dims, array.shape, strict=True)),
            "dtype": var.attrs.get(DTYPE_ATTR, str(array.dtype)),
            "chunks": list(array.chunks),
            "compressors": [c.to_dict() for c in array.compressors],
            "raw_bytes": nbytes,
        }
    attrs = dict(root.attrs)
    return {
        "path": str(path),
        "sites": sites,
        "dims": {k: int(v) for k, v in ds.sizes.items()},
        "coords": {k: list(c.dims) for k, c in ds.coords.items()},
        "completeness": completeness(root),
        "bytes_on_disk": stored_bytes(root.store),
        "raw_bytes": raw,
        "provenance": attrs,
    }
