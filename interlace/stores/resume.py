"""Opening a resumable store: this job's store is resumed, another job's refused, a new one
created, and one whose creation was interrupted (no completion flags yet) created again as it
was started. Shared by activation caches and study results; also their progress bar."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import zarr

from interlace.stores import progress as flags
from interlace.stores.location import exists
from interlace.stores.reader import check_safe


def open_or_create(
    store: Any,
    out: str,
    attrs: dict[str, Any],
    check: Callable[[dict[str, Any]], None],
    create: Callable[[zarr.Group, dict[str, Any]], int],
) -> tuple[zarr.Group, dict[str, Any] | None]:
    """The group of the store at ``out`` and the attributes it was found with (``None`` when
    new). ``check(found)`` raises ``StoreError`` if the store holds another job;
    ``create(root, attrs)`` writes the empty arrays and returns the number of batches."""
    found = None
    if exists(store):
        found = check_safe(store, out).get("attributes", {})
        check(found)
        root = zarr.open_group(store, mode="r+", zarr_format=3)
        if flags.flags(root) is not None:
            return root, found
        attrs = found  # an interrupted creation: create again, as it was started
    root = zarr.open_group(store, mode="a", zarr_format=3, attributes=attrs)
    for name in list(root.keys()):
        del root[name]
    flags.create(root, create(root, attrs))
    return root, found


def refusal(out: str, job: str, diffs: list[str]) -> str:
    """The message refusing a store that holds another ``job`` (its differences listed)."""
    return (
        f"{out} holds a different {job}, so it cannot be resumed or reused:\n"
        + "\n".join(f"  - {d}" for d in diffs)
        + "\nWrite to another out path, or delete this store to start over."
    )


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
