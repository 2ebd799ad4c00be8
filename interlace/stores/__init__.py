"""The activation store: captured activations streamed into zarr, read back as labelled xarray.

``cache`` (:mod:`.job`) writes a store, resumably; ``open_store`` (:mod:`.reader`) reads one
lazily. The layout is described in :mod:`.schema`, the resume protocol in :mod:`.job`.
"""

from interlace.stores.errors import StoreError
from interlace.stores.job import CacheReport, cache
from interlace.stores.reader import describe, open_store, real_tokens

__all__ = ["CacheReport", "StoreError", "cache", "describe", "open_store", "real_tokens"]
