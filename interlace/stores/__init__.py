"""The activation store: captured activations streamed into zarr, read back as labelled xarray.

``cache`` (:mod:`.job`) writes a store, resumably; ``open_store`` (:mod:`.reader`) reads one
lazily. The layout is described in :mod:`.schema`, the resume protocol in :mod:`.job`.
Names are imported on first use, so that the command line starts without torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "StoreError": "interlace.stores.errors",
    "CacheReport": "interlace.stores.job",
    "cache": "interlace.stores.job",
    "describe": "interlace.stores.reader",
    "open_store": "interlace.stores.reader",
    "real_tokens": "interlace.stores.reader",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'interlace.stores' has no attribute {name!r}")
