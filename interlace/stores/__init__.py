"""The store format: captured activations (or a study's results) in zarr, read back as
labelled xarray. Reading a store imports neither torch nor nnsight.

The layout is :mod:`.schema`, the completion flags :mod:`.progress`, where a store lives
:mod:`.location`, the hashes that identify what made it :mod:`.identity`; ``open_store`` and
``describe`` (:mod:`.reader`) read one lazily. Stores are written by the jobs of
:mod:`interlace.jobs` (``il.cache``, studies). Names are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "StoreError": "interlace.stores.errors",
    "describe": "interlace.stores.reader",
    "open_store": "interlace.stores.reader",
    "real_tokens": "interlace.stores.reader",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'interlace.stores' has no attribute {name!r}")
