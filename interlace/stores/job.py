"""``interlace.cache``: run a model over a dataset and stream the captured activations into a
store, resumably.

The protocol, which makes an interrupted job -- SIGKILL included -- continue where it stopped
and end equal to an uninterrupted run:

1. Everything is checked before any forward pass: what to capture against the model's shape,
   the graph, and the whole dataset (one pass: fields, token counts, positions).
2. The job's identity (:mod:`interlace.stores.identity`) is compared with the store's: a store
   of another job is refused; a complete store of this job is left alone ("nothing to do").
3. A new store is created in an order a kill cannot confuse: the root group with the job's
   attributes (one atomic write), then the arrays, then the progress flags, whose presence
   means "created". A store found without them is this job's interrupted creation and is
   created again (with the batch size it was started with).
4. Batches run in dataset order; each incomplete one is computed and handed to the background
   writer, which writes its chunks, then its flag (:mod:`interlace.stores.progress`). A
   resumed job skips flagged batches and rewrites any other one in full. Batch size is the
   store's: chunks are aligned with batches.
"""

from __future__ import annotations

import datetime
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import zarr

from interlace.interventions import (
    AblateHeads,
    Capture,
    Graph,
    Patch,
    Problem,
    ValidationError,
)
from interlace.interventions.sites import SITES
from interlace.models.model import Model
from interlace.runtime.backend import Backend, as_backend
from interlace.runtime.prompts import encode
from interlace.runtime.run import run
from interlace.stores import progress as flags
from interlace.stores.dataset import STRING, Dataset, Example, Summary, field_arrays, scan
from interlace.stores.errors import StoreError
from interlace.stores.identity import (
    differences,
    identity,
    model_weights_id,
    tokenizer_hash,
    versions,
)
from interlace.stores.location import remove_partial_files, zarr_store
from interlace.stores.reader import FORMAT, FORMAT_ATTR
from interlace.stores.resume import open_or_create, progress_bar, refusal
from interlace.stores.schema import Layout, Selection, check_fields, parse_selection
from interlace.stores.writer import BatchData, StoreWriter


@dataclass(frozen=True)
class CacheReport:
    """What a :func:`cache` call did: ``created`` a store, ``resumed`` one, or found it
    ``complete`` already (no forward pass)."""

    path: str
    status: Literal["created", "resumed", "complete"]
    n_examples: int
    n_batches: int
    batches_written: int
    seconds: float
    notes: tuple[str, ...] = ()

    def message(self) -> str:
        if self.status == "complete":
            head = (
                f"{self.path} is already complete for this job "
                f"({self.n_examples} examples): nothing to do"
            )
        else:
            verb = "cached" if self.status == "created" else "resumed: cached"
            head = (
                f"{verb} {self.batches_written} of {self.n_batches} batches "
                f"({self.n_examples} examples) into {self.path} in {self.seconds:.1f} s"
            )
        return "\n".join([head, *self.notes])


def cache(
    model: Model | str,
    dataset: str | os.PathLike | Sequence[Mapping[str, Any]],
    out: str | os.PathLike,
    *,
    sites: str | Sequence[str],
    layers: Any = "all",
    positions: Any = "last",
    batch_size: int = 8,
    dtype: str = "float32",
    graph: Graph | dict | str | os.PathLike | None = None,
    text_field: str | None = None,
    storage_options: dict[str, Any] | None = None,
    progress: bool = True,
    backend: str | Backend = "local",
    host: str | None = None,
) -> CacheReport:
    """Run ``model`` over ``dataset`` and write the activations at ``sites`` to the store
    ``out`` (a path or fsspec URL), resuming it if this same job was interrupted.

    ``dataset`` is a JSONL file (path or URL) or a list of records (see
    :mod:`interlace.stores.dataset`); ``layers``, ``positions`` and ``sites`` take the CLI's
    string forms or Python values; ``graph`` adds interventions (a :class:`Graph`, its dict,
    or a YAML/JSON file). ``backend``/``host`` say where the forwards run (see
    :func:`interlace.run`; a model named by string is then loaded without weights). Bad input
    raises :class:`interlace.ValidationError` before any model runs; a store holding another
    job raises :class:`StoreError`.
    """
    started = time.perf_counter()
    backend = as_backend(backend, host)
    shape = model.shape if isinstance(model, Model) else _config_shape(model)
    data = Dataset(dataset, text_field)
    selection, graph, base_dir = _check_job(
        shape, sites, layers, positions, dtype, batch_size, graph, data
    )
    if not isinstance(model, Model):
        from interlace.models.loading import load

        model = load(model, remote=backend.kind == "ndif")
    summary = scan(data, model.tokenizer, selection.positions, _max_tokens(model))
    check_fields(summary.fields)
    attrs = _attrs(model, graph, base_dir, data, selection, summary, batch_size)
    store = zarr_store(out, storage_options)
    root, notes = _open_or_create(store, out, attrs, selection, summary, model)
    layout = _layout(root.attrs, selection, summary, model)
    done = flags.done(root)
    status, written = "complete", 0
    if not done.all():
        status = "resumed" if done.any() else "created"
        if status == "resumed" and remove_partial_files(store):
            notes.append("removed temporary files an interrupted write left behind")
        written = _run_batches(model, graph, base_dir, data, layout, root, done, progress, backend)
    seconds = time.perf_counter() - started
    return CacheReport(
        str(out), status, layout.n_examples, layout.n_batches, written, seconds, tuple(notes)
    )


def _check_job(
    shape: Any,
    sites: Any,
    layers: Any,
    positions: Any,
    dtype: str,
    batch_size: Any,
    graph: Graph | dict | str | os.PathLike | None,
    data: Dataset,
) -> tuple[Selection, Graph, Path | None]:
    """Check what can be checked before the weights load (all but the dataset's records);
    one ``ValidationError`` with every problem."""
    problems: list[Problem] = [p for p in [data.missing()] if p is not None]
    selection = graph_ = base_dir = None
    try:
        selection = parse_selection(sites, layers, positions, dtype, shape)
    except ValidationError as err:
        problems += err.problems
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        problems.append(Problem("batch_size", f"{batch_size!r} is not a batch size", ">= 1"))
    try:
        graph_, base_dir = _graph(graph)
        graph_.validate(shape, base_dir=base_dir)
    except ValidationError as err:
        problems += [Problem(f"graph.{p.path}", p.message, p.allowed) for p in err.problems]
    if problems:
        raise ValidationError(problems)
    return selection, graph_, base_dir


def _graph(graph: Graph | dict | str | os.PathLike | None) -> tuple[Graph, Path | None]:
    """The graph whose interventions apply while caching, and the directory of its file."""
    base_dir = None
    if graph is None:
        graph = Graph()
    elif isinstance(graph, dict):
        graph = Graph.from_dict(graph)
    elif not isinstance(graph, Graph):
        base_dir = Path(graph).parent
        graph = Graph.load(graph)
    plain = Graph(interventions=graph.interventions)
    problems = [
        Problem(
            name,
            "caching applies a graph's interventions only (captures are "
            "sites, layers and positions; the pass is the prompt's forward)",
            "a graph with interventions only",
        )
        for name in type(graph).model_fields
        if getattr(graph, name) != getattr(plain, name)
    ]
    for i, spec in enumerate(graph.interventions):
        patches = isinstance(spec, Patch) or (
            isinstance(spec, AblateHeads) and spec.mode == "patch"
        )
        if patches and isinstance(spec.source, list):
            problems.append(
                Problem(
                    f"interventions[{i}].source",
                    "one source per example cannot follow a dataset's batches",
                    "one source prompt for every example",
                )
            )
    if problems:
        raise ValidationError(problems)
    return graph, base_dir


def _config_shape(name: str) -> Any:
    """A model's shape from its config alone, to check a job before loading weights."""
    from transformers import AutoConfig

    from interlace.models.adapters import adapter_for
    from interlace.models.loading import resolve_source

    return adapter_for(AutoConfig.from_pretrained(str(resolve_source(name)))).shape


def _max_tokens(model: Model) -> int | None:
    return getattr(model.hf.config, "max_position_embeddings", None)


def _attrs(
    model: Model,
    graph: Graph,
    base_dir: Path | None,
    data: Dataset,
    selection: Selection,
    summary: Summary,
    batch_size: int,
) -> dict[str, Any]:
    """The store's attributes: the job's identity, then provenance."""
    n_batches = -(-summary.n_examples // batch_size)
    return {
        FORMAT_ATTR: FORMAT,
        "model_weights_sha256": model_weights_id(model),
        "tokenizer_sha256": tokenizer_hash(model.tokenizer),
        "adapter_family": model.adapter.family,
        "graph_sha256": graph.content_hash(base_dir),
        "dataset_sha256": summary.sha256,
        "text_field": data.text_field,
        "sites": list(selection.sites),
        "layers": list(selection.layers),
        "positions": selection.positions_json(),
        "dtype": selection.dtype,
        "model": model.name,
        "model_source": model.source,
        "model_shape": model.shape.to_dict(),
        "graph": graph.to_dict(),
        "dataset": data.describe(),
        "fields": summary.fields,
        "n_examples": summary.n_examples,
        "max_selected": summary.max_selected,
        "batch_size": batch_size,
        "n_batches": n_batches,
        "versions": versions(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def _layout(
    attrs: Mapping[str, Any], selection: Selection, summary: Summary, model: Model
) -> Layout:
    return Layout(
        selection,
        model.shape,
        summary.n_examples,
        int(attrs["batch_size"]),
        summary.max_selected,
        summary.fields,
    )


def _open_or_create(
    store: Any,
    out: str | os.PathLike,
    attrs: dict[str, Any],
    selection: Selection,
    summary: Summary,
    model: Model,
) -> tuple[zarr.Group, list[str]]:
    """Open this job's store (refusing another's), creating it if new or half-created."""

    def check(found: dict[str, Any]) -> None:
        if found.get(FORMAT_ATTR) != FORMAT:
            raise StoreError(
                f"{out} exists and is not an interlace store: choose another --out path"
            )
        diffs = differences(identity(found), identity(attrs))
        if diffs:
            raise StoreError(refusal(str(out), "job", diffs))

    def create(root: zarr.Group, attrs: dict[str, Any]) -> int:
        layout = _layout(attrs, selection, summary, model)
        template, encoding = layout.template(attrs)
        template.to_zarr(
            store, mode="a", compute=False, consolidated=False, zarr_format=3, encoding=encoding
        )
        return layout.n_batches

    root, found = open_or_create(store, str(out), attrs, check, create)
    notes = []
    if found is not None and found["batch_size"] != attrs["batch_size"]:
        notes.append(
            f"the store was started with batch size {found['batch_size']}; it keeps it "
            f"(chunks are aligned with batches), not {attrs['batch_size']}"
        )
    return root, notes


def _run_batches(
    model: Model,
    graph: Graph,
    base_dir: Path | None,
    data: Dataset,
    layout: Layout,
    root: zarr.Group,
    done: np.ndarray,
    show: bool,
    backend: Backend,
) -> int:
    """Compute every incomplete batch and write it in the background; returns how many."""
    sel = layout.selection
    captures = Graph(
        interventions=graph.interventions,
        capture=[
            Capture(
                site=site,
                layers=list(sel.layers) if SITES[site].per_layer else None,
                positions=sel.positions,
                dtype=sel.dtype,
            )
            for site in sel.sites
        ],
    )
    tokens = TokenText(model.tokenizer)
    bar = progress_bar(show)
    written = 0
    with bar:
        task = bar.add_task("caching batches", total=layout.n_batches, completed=int(done.sum()))

        def on_written(index: int) -> None:
            nonlocal written
            written += 1
            bar.advance(task)

        with StoreWriter(root, layout, on_written) as writer:
            for index, examples in _batches(data, layout.batch_size):
                if not done[index]:
                    arrays = _capture(model, captures, base_dir, examples, layout, tokens, backend)
                    writer.submit(BatchData(index, arrays))
    return written


def _batches(data: Dataset, size: int) -> Iterator[tuple[int, list[Example]]]:
    batch: list[Example] = []
    index = 0
    for example in data.examples():
        batch.append(example)
        if len(batch) == size:
            yield index, batch
            batch, index = [], index + 1
    if batch:
        yield index, batch


def _capture(
    model: Model,
    graph: Graph,
    base_dir: Path | None,
    examples: list[Example],
    layout: Layout,
    tokens: TokenText,
    backend: Backend,
) -> dict[str, np.ndarray]:
    """One batch's forward pass, and every array the store holds for it."""
    batch = encode(model.tokenizer, [ex.prompt for ex in examples])
    rows = [batch.input_ids[b, batch.pad(b) :].tolist() for b in range(batch.size)]
    result = run(model, graph, rows, backend, base_dir=base_dir)
    sites = layout.selection.sites
    token_index = result.captured[sites[0]].coords["token_index"].values.astype(np.int32)
    flat = token_index.reshape(len(rows), -1)
    ids = np.full(flat.shape, -1, dtype=np.int32)
    for b, row in enumerate(rows):
        real = flat[b] >= 0
        ids[b, real] = np.asarray(row, dtype=np.int32)[flat[b, real]]
    ids = ids.reshape(token_index.shape)
    return {
        **{site: result.captured[site].values for site in sites},
        **field_arrays(examples, layout.fields),
        "prompt": np.array(batch.texts, dtype=STRING),
        "n_tokens": np.array(batch.lengths, dtype=np.int32),
        "token_index": token_index,
        "token_id": ids,
        "token_str": tokens(ids),
    }


class TokenText:
    """Token ids -> their text (``decode([id])``), memoised: a vocabulary is finite, so
    decoding each distinct token once keeps batches cheap."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.known: dict[int, str] = {-1: ""}

    def __call__(self, ids: np.ndarray) -> np.ndarray:
        for i in np.unique(ids).tolist():
            if i not in self.known:
                self.known[i] = self.tokenizer.decode([i])
        return np.array([self.known[i] for i in ids.ravel().tolist()], dtype=STRING).reshape(
            ids.shape
        )
