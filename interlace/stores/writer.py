"""The background writer: batches go into the store on a thread of their own, so that
compressing and writing one batch overlaps the forward pass of the next.

The queue holds at most ``depth`` batches, so memory is bounded by ``depth + 2`` batches (one
being computed, ``depth`` waiting, one being written) whatever the dataset's size. Each batch
writes its region of every array, then its completion flag (:mod:`interlace.stores.progress`).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

import numpy as np
import zarr

from interlace.stores import progress
from interlace.stores.errors import StoreError
from interlace.stores.schema import Layout, to_disk

_DONE = object()


@dataclass
class BatchData:
    """One batch's values for every array of the store, leading dim ``example``. Sites are
    float32 with NaN padding (cast to the store's dtype by the writer); a position dim may be
    shorter than the store's (the rest stays padding)."""

    index: int
    arrays: dict[str, np.ndarray]


class StoreWriter:
    """Writes :class:`BatchData` into an open store on a background thread; a context manager
    (leaving it waits for the queued batches). ``on_written(index)`` is called after each."""

    def __init__(
        self,
        root: zarr.Group,
        layout: Layout,
        on_written: Callable[[int], None],
        depth: int = 1,
    ) -> None:
        self.layout = layout
        # Every chunk a batch writes holds some of its data (a region ends at the batch's
        # longest selection), so zarr's check for chunks of fill values only costs a pass.
        self.arrays = {
            name: root[name].with_config({"write_empty_chunks": True})
            for name in layout.variables()
        }
        self.flags = progress.flags(root)
        self.on_written = on_written
        self.queue: queue.Queue = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="interlace-store-writer")
        self.thread.start()

    def submit(self, batch: BatchData) -> None:
        """Queue a batch; blocks while the queue is full. Raises if writing has failed."""
        while True:
            self._raise_if_failed()
            try:
                self.queue.put(batch, timeout=0.1)
                return
            except queue.Full:
                continue

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(
        self, kind: type | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Write what is queued (after an error in the forward loop too: those batches are
        computed) and stop the thread; raise a write error unless another error is on its way."""
        self.queue.put(_DONE)
        self.thread.join()
        if exc is None:
            self._raise_if_failed()

    def _raise_if_failed(self) -> None:
        if self.error is not None:
            raise StoreError(f"writing to the store failed: {self.error}") from self.error

    def _run(self) -> None:
        while (batch := self.queue.get()) is not _DONE:
            if self.error is not None:
                continue  # drain, so that submit and close never block on a dead writer
            try:
                self._write(batch)
                self.on_written(batch.index)
            except BaseException as err:  # noqa: BLE001  (re-raised in the caller's thread)
                self.error = err

    def _write(self, batch: BatchData) -> None:
        start = self.layout.batch_slice(batch.index).start
        sites = self.layout.selection.sites
        for name, values in batch.arrays.items():
            if name in sites:
                values = to_disk(values, self.layout.selection.dtype)
            if 0 in values.shape:
                continue  # no position selected in this batch: all padding, nothing to write
            region = (slice(start, start + len(values)),) + tuple(
                slice(0, n) for n in values.shape[1:]
            )
            self.arrays[name][region] = values
        progress.mark(self.flags, batch.index)
