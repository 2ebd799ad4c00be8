"""The background writer: units' values go into the store on a thread of their own, so that
compressing and writing one unit overlaps the computing of the next.

The queue holds at most ``depth`` units, so memory is bounded by ``depth + 2`` units (one
being computed, ``depth`` waiting, one being written) whatever the job's size. Each unit
writes its regions of the store's arrays (:meth:`interlace.jobs.engine.Units.regions`), then
its completion flag (:mod:`interlace.stores.progress`).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING

import numpy as np
import zarr

from interlace.stores import progress
from interlace.stores.errors import StoreError

if TYPE_CHECKING:
    from interlace.jobs.engine import Units

_DONE = object()


class UnitWriter:
    """Writes units' values into an open store on a background thread; a context manager
    (leaving it waits for the queued units). ``on_written(index)`` is called after each.

    ``with UnitWriter(root, units, print) as writer: writer.submit(0, units.compute(inputs))``
    """

    def __init__(
        self,
        root: zarr.Group,
        units: Units,
        on_written: Callable[[int], None],
        depth: int = 1,
    ) -> None:
        self.units = units
        # Every chunk a unit writes holds some of its data (a region ends where its values
        # end), so zarr's check for chunks of fill values only costs a pass.
        self.arrays = {
            name: root[name].with_config({"write_empty_chunks": True}) for name in units.arrays()
        }
        self.flags = progress.flags(root)
        self.on_written = on_written
        self.queue: queue.Queue = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="interlace-store-writer")
        self.thread.start()

    def submit(self, index: int, values: dict[str, np.ndarray]) -> None:
        """Queue unit ``index``'s values (array name -> values); blocks while the queue is
        full. Raises if writing has failed."""
        while True:
            self._raise_if_failed()
            try:
                self.queue.put((index, values), timeout=0.1)
                return
            except queue.Full:
                continue

    def __enter__(self) -> UnitWriter:
        return self

    def __exit__(
        self, kind: type | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Write what is queued (after an error in the compute loop too: those units are
        computed) and stop the thread; raise a write error unless another error is on its way."""
        self.queue.put(_DONE)
        self.thread.join()
        if exc is None:
            self._raise_if_failed()

    def _raise_if_failed(self) -> None:
        if self.error is not None:
            raise StoreError(f"writing to the store failed: {self.error}") from self.error

    def _run(self) -> None:
        while (item := self.queue.get()) is not _DONE:
            if self.error is not None:
                continue  # drain, so that submit and close never block on a dead writer
            index, values = item
            try:
                for name, region, data in self.units.regions(index, values):
                    self.arrays[name][region] = data
                progress.mark(self.flags, index)
                self.on_written(index)
            except BaseException as err:  # noqa: BLE001  (re-raised in the caller's thread)
                self.error = err
