"""Which batches of a store are complete: one flag per batch in the array ``_progress/batches``.

A batch's flag is set only after every one of its chunks is stored, and each key is replaced
atomically (see :mod:`interlace.stores.location`), so a flag never claims a partial batch: a
process killed at any point leaves each batch either flagged and whole, or unflagged and
rewritten in full on resume. The array lives in a subgroup so that xarray does not show it
as a variable of the Dataset; its presence also marks the end of a store's creation.
"""

from __future__ import annotations

import numpy as np
import zarr

GROUP = "_progress"
NAME = "batches"
FLAGS_PER_CHUNK = 4096


def create(root: zarr.Group, n_batches: int) -> zarr.Array:
    group = root.require_group(GROUP)
    return group.create_array(
        NAME,
        shape=(n_batches,),
        chunks=(min(n_batches, FLAGS_PER_CHUNK),),
        dtype="uint8",
        fill_value=0,
        overwrite=True,
    )


def flags(root: zarr.Group) -> zarr.Array | None:
    """The flags array, or None while the store is still being created."""
    try:
        return root[f"{GROUP}/{NAME}"]
    except KeyError:
        return None


def done(root: zarr.Group) -> np.ndarray:
    """A bool per batch: complete or not (none while the store is still being created)."""
    array = flags(root)
    if array is None:
        return np.zeros(root.attrs["n_batches"], dtype=bool)
    return array[:].astype(bool)


def mark(array: zarr.Array, batch: int) -> None:
    array[batch] = 1
