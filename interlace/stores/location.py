"""Where a store lives: a local path or an fsspec URL (``memory://``, ``s3://`` when configured),
opened as a zarr store.

Local paths use zarr's ``LocalStore``, which writes every key to a temporary file and renames it
into place, so a process killed mid-write never leaves a torn chunk, only a stray ``*.partial``
file (removed when a job resumes). Object stores replace a key atomically by themselves.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import zarr
from zarr.abc.store import Store
from zarr.core.sync import sync

from interlace.stores.errors import StoreError


def is_url(path: str | os.PathLike) -> bool:
    return "://" in str(path) and not str(path).startswith("file://")


def local_path(path: str | os.PathLike) -> Path:
    return Path(str(path).removeprefix("file://")).expanduser()


def zarr_store(
    path: str | os.PathLike, storage_options: dict[str, Any] | None = None, read_only: bool = False
) -> Store:
    """A zarr store for ``path`` (a local path, ``file://`` URL or any fsspec URL)."""
    if is_url(path):
        return zarr.storage.FsspecStore.from_url(
            str(path), storage_options=storage_options, read_only=read_only
        )
    return zarr.storage.LocalStore(local_path(path), read_only=read_only)


def exists(store: Store) -> bool:
    """Whether anything is stored under the store's root (a local file is refused)."""
    if isinstance(store, zarr.storage.LocalStore) and Path(store.root).is_file():
        raise StoreError(f"{store.root} is a file, not a store")
    return not sync(store.is_empty(""))


def stored_bytes(store: Store) -> int:
    """Bytes on disk (or in the object store) of everything under the root."""
    return sync(store.getsize_prefix(""))


def remove_partial_files(store: Store) -> int:
    """Delete the temporary files a killed writer left behind (local stores only)."""
    if not isinstance(store, zarr.storage.LocalStore):
        return 0
    stray = list(Path(store.root).rglob("*.partial"))
    for f in stray:
        f.unlink(missing_ok=True)
    return len(stray)


def human_bytes(n: float) -> str:
    """A size in binary units, for people: ``human_bytes(3 << 20)`` is ``"3.0 MiB"``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable: GiB ends the loop")
