"""The resumable-job engine: a job's units of work run into one store, and a job interrupted at
any point -- SIGKILL included -- continues where it stopped and ends equal to an uninterrupted
run. ``il.cache`` (:mod:`interlace.jobs.cache`) and studies (:mod:`interlace.studies.execute`)
are its users: each declares a :class:`Job` and calls :func:`run_job`.

The protocol:

1. A job is identified by the store attributes that decide its numbers (:attr:`Job.identity`).
   An existing store's are compared with the job's before any unit runs: a store of another
   job is refused, naming each difference; a complete store of this job is left alone (no
   unit runs, "nothing to do").
2. A new store is created in an order a kill cannot confuse: the root group with the job's
   attributes (one atomic write), then the empty arrays, then the completion flags
   (:mod:`interlace.stores.progress`), whose presence means "created". A store found without
   them is this job's interrupted creation and is created again, as it was started.
3. Units run in order; each incomplete one is computed and handed to the background writer
   (:mod:`interlace.jobs.writer`), which writes its regions, then its flag. A resumed job
   skips flagged units and rewrites any other one in full.

Units are independent: a unit's values come from its own inputs, and its regions are chunks
no other unit touches, so units could run in any order, or on other machines, with the same
store as the result.
"""

from __future__ import annotations

import datetime
import json
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import xarray as xr
import zarr

from interlace.jobs.writer import UnitWriter
from interlace.stores import progress as flags
from interlace.stores.errors import StoreError
from interlace.stores.identity import versions
from interlace.stores.location import exists, remove_partial_files, zarr_store
from interlace.stores.reader import FORMAT, FORMAT_ATTR, KIND_ATTR, check_safe

Region = tuple[slice | int, ...]


class Units(ABC):
    """A job's units of work, for a store laid out by given attributes: what each computes and
    where its values go."""

    n_units: int
    n_examples: int

    @abstractmethod
    def template(self, attrs: dict[str, Any]) -> tuple[xr.Dataset, dict[str, dict[str, Any]]]:
        """The empty store (see :func:`interlace.stores.schema.template`)."""

    @abstractmethod
    def arrays(self) -> Collection[str]:
        """The arrays written unit by unit."""

    @abstractmethod
    def __iter__(self) -> Iterator[tuple[int, Any]]:
        """``(index, inputs)`` of every unit, in order; ``inputs`` is what :meth:`compute`
        takes."""

    @abstractmethod
    def compute(self, inputs: Any) -> dict[str, np.ndarray]:
        """One unit's values: array name -> values (forward passes happen here)."""

    @abstractmethod
    def regions(
        self, index: int, values: dict[str, np.ndarray]
    ) -> Iterator[tuple[str, Region, np.ndarray]]:
        """Where unit ``index``'s values go: ``(array, region, values)``, its chunks only.
        Runs on the writer's thread, so casting for the disk belongs here."""


class Job(ABC):
    """A resumable job, as the engine sees it: its words, its identity and its units."""

    noun: ClassVar[str]
    """How messages name the job: "a different {noun}"."""
    units_name: ClassVar[str]
    """How messages name its units, plural."""
    kind: ClassVar[str | None] = None
    """The store's ``interlace_kind`` attribute (None: absent)."""
    store_name: ClassVar[str]
    """What the store is, for the message refusing a path that holds something else."""
    identity: ClassVar[Mapping[str, str]]
    """Attribute -> how a difference in it is named."""
    kept: ClassVar[Mapping[str, tuple[str, str]]] = {}
    """Attributes a store keeps as it was started, not identity: -> (their name, why)."""

    @abstractmethod
    def attrs(self) -> dict[str, Any]:
        """A new store's attributes: the identity, then provenance (the engine adds the format,
        counts, library versions and time)."""

    @abstractmethod
    def units(self, attrs: Mapping[str, Any]) -> Units:
        """The units of work, for a store with ``attrs`` (those it was started with)."""

    def difference(self, key: str, stored: Any, wanted: Any) -> str:
        """One identity attribute's difference, in words."""
        what, noun = self.identity[key], self.noun
        return f"{what}: the store has {_short(stored)}, this {noun} {_short(wanted)}"


@dataclass(frozen=True)
class JobReport:
    """What :func:`run_job` did: ``created`` the store, ``resumed`` it, or found it ``complete``
    already (no unit ran)."""

    path: str
    status: Literal["created", "resumed", "complete"]
    job: str
    """What ran, as :attr:`Job.noun` names it."""
    units_name: str
    n_units: int
    units_written: int
    n_examples: int
    seconds: float
    notes: tuple[str, ...] = ()

    def message(self) -> str:
        """The report in words: ``print(il.cache(...).message())``."""
        if self.status == "complete":
            head = (
                f"{self.path} is already complete for this {self.job} "
                f"({self.n_examples} examples): nothing to do"
            )
        else:
            verb = "ran" if self.status == "created" else "resumed: ran"
            head = (
                f"{verb} {self.units_written} of {self.n_units} {self.units_name} "
                f"({self.n_examples} examples) into {self.path} in {self.seconds:.1f} s"
            )
        return "\n".join([head, *self.notes])


def run_job(
    job: Job,
    out: str | os.PathLike,
    storage_options: dict[str, Any] | None = None,
    progress: bool = True,
) -> JobReport:
    """Run ``job`` into the store ``out`` (a path or fsspec URL): create it, resume it, or find
    it complete. A store holding anything else raises :class:`StoreError`.

    ``report = run_job(CacheJob(...), "acts.zarr")``"""
    started = time.perf_counter()
    kind = {KIND_ATTR: job.kind} if job.kind is not None else {}
    wanted = {FORMAT_ATTR: FORMAT, **kind, **job.attrs()}
    store = zarr_store(out, storage_options)
    root, units, found = _open_or_create(store, str(out), job, wanted)
    notes = [
        f"the store was started with {what} {found[key]}; it keeps it ({why}), not {wanted[key]}"
        for key, (what, why) in job.kept.items()
        if found is not None and found.get(key) != wanted.get(key)
    ]
    done = flags.done(root)
    status, written = "complete", 0
    if not done.all():
        status = "resumed" if done.any() else "created"
        if status == "resumed" and remove_partial_files(store):
            notes.append("removed temporary files an interrupted write left behind")
        written = _run_units(job, units, root, done, progress)
    return JobReport(
        str(out),
        status,
        job.noun,
        job.units_name,
        units.n_units,
        written,
        units.n_examples,
        time.perf_counter() - started,
        tuple(notes),
    )


def differences(job: Job, stored: Mapping[str, Any], wanted: Mapping[str, Any]) -> list[str]:
    """How the job in a store differs from the one asked for, one line per difference."""
    return [
        job.difference(key, stored.get(key), wanted.get(key))
        for key in job.identity
        if stored.get(key) != wanted.get(key)
    ]


def _open_or_create(
    store: Any, out: str, job: Job, wanted: dict[str, Any]
) -> tuple[zarr.Group, Units, dict[str, Any] | None]:
    """The store's root group (this job's: another's is refused), its units, and the
    attributes it was found with (None when new). A new or half-created store is created."""
    found = None
    if exists(store):
        found = check_safe(store, out).get("attributes", {})
        if found.get(FORMAT_ATTR) != FORMAT or found.get(KIND_ATTR) != job.kind:
            raise StoreError(f"{out} exists and is not {job.store_name}: write to another out")
        diffs = differences(job, found, wanted)
        if diffs:
            raise StoreError(
                f"{out} holds a different {job.noun}, so it cannot be resumed or reused:\n"
                + "\n".join(f"  - {d}" for d in diffs)
                + "\nWrite to another out path, or delete this store to start over."
            )
        root = zarr.open_group(store, mode="r+", zarr_format=3)
        if flags.flags(root) is not None:
            return root, job.units(found), found
    if found is not None:  # an interrupted creation: create it again, as it was started
        attrs, units = found, job.units(found)
    else:
        units = job.units(wanted)
        attrs = {
            **wanted,
            "n_examples": units.n_examples,
            "n_batches": units.n_units,
            "versions": versions(),
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        }
    root = zarr.open_group(store, mode="a", zarr_format=3, attributes=attrs)
    for name in list(root.keys()):
        del root[name]
    template, encoding = units.template(attrs)
    template.to_zarr(
        store, mode="a", compute=False, consolidated=False, zarr_format=3, encoding=encoding
    )
    flags.create(root, units.n_units)
    return root, units, found


def _run_units(job: Job, units: Units, root: zarr.Group, done: np.ndarray, show: bool) -> int:
    """Compute every incomplete unit and write it in the background; returns how many."""
    bar = progress_bar(show)
    written = 0
    with bar:
        task = bar.add_task(job.units_name, total=units.n_units, completed=int(done.sum()))

        def on_written(index: int) -> None:
            nonlocal written
            written += 1
            bar.advance(task)

        with UnitWriter(root, units, on_written) as writer:
            for index, inputs in units:
                if not done[index]:
                    writer.submit(index, units.compute(inputs))
    return written


def progress_bar(show: bool) -> Any:
    """A rich progress bar on stderr: description, bar, done/total, time remaining."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=not show,
    )


def _short(value: Any) -> str:
    """A stored value in a line: a hash by its first 12 digits, long JSON cut."""
    if isinstance(value, str) and len(value) == 64:
        return f"sha256 {value[:12]}"
    text = json.dumps(value)
    return text if len(text) <= 80 else text[:77] + "..."
