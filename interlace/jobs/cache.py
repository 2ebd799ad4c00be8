"""``interlace.cache``: run a model over a dataset and stream the captured activations into a
store, resumably -- a job of the engine (:mod:`interlace.jobs.engine`), whose protocol makes an
interrupted cache -- SIGKILL included -- continue where it stopped and end equal to an
uninterrupted run.

Everything is checked before any forward pass: what to capture against the model's shape, the
graph, and the whole dataset (one pass: fields, token counts, positions). A unit is one batch,
in dataset order; its chunks are its own (chunks are aligned with batches), so a store keeps
the batch size it was started with. The layout is :mod:`interlace.stores.schema`'s.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import xarray as xr

from interlace.interventions import (
    AblateHeads,
    Capture,
    Graph,
    ModelShape,
    Patch,
    Problem,
    ValidationError,
)
from interlace.interventions.sites import SITES
from interlace.jobs.dataset import Dataset, Example, Summary, example_arrays, scan
from interlace.jobs.engine import Job, JobReport, Region, Units, run_job
from interlace.jobs.model import MODEL_IDENTITY, loaded, max_tokens, model_attrs, shape_of
from interlace.models.model import Model
from interlace.runtime.backend import Backend, as_backend
from interlace.runtime.prompts import encode
from interlace.runtime.run import run
from interlace.stores.schema import (
    STRING,
    Batches,
    Layout,
    Selection,
    check_fields,
    parse_selection,
    to_disk,
)


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
) -> JobReport:
    """Run ``model`` over ``dataset`` and write the activations at ``sites`` to the store
    ``out`` (a path or fsspec URL), resuming it if this same job was interrupted.

    ``il.cache("smollm2-135m", "data.jsonl", "acts.zarr", sites="resid_post")``

    ``dataset`` is a JSONL file (path or URL) or a list of records (see
    :mod:`interlace.jobs.dataset`); ``layers``, ``positions`` and ``sites`` take the CLI's
    string forms or Python values; ``graph`` adds interventions (a :class:`Graph`, its dict,
    or a YAML/JSON file). ``backend``/``host`` say where the forwards run (see
    :func:`interlace.run`; a model named by string is then loaded without weights). Bad input
    raises :class:`interlace.ValidationError` before any model runs; a store holding another
    job raises :class:`StoreError`.
    """
    backend = as_backend(backend, host)
    data = Dataset(dataset, text_field)
    selection, graph, base_dir = _check_job(
        shape_of(model), sites, layers, positions, dtype, batch_size, graph, data
    )
    model = loaded(model, remote=backend.kind == "ndif")
    summary = scan(data, model.tokenizer, selection.positions, max_tokens(model))
    check_fields(summary.fields)
    job = CacheJob(model, graph, base_dir, data, selection, summary, batch_size, backend)
    return run_job(job, out, storage_options, progress)


def _check_job(
    shape: ModelShape,
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


IDENTITY = {
    **MODEL_IDENTITY,
    "graph_sha256": "graph",
    "dataset_sha256": "dataset",
    "text_field": "text field",
    "sites": "sites",
    "layers": "layers",
    "positions": "positions",
    "dtype": "dtype",
}
"""What identifies a cache job -> how a difference is named. Names and paths are provenance,
not identity: the bundled model loaded by alias or by directory is the same job."""


@dataclass
class CacheJob(Job):
    """One :func:`cache` call, checked: the engine's view of it."""

    noun: ClassVar[str] = "job"
    units_name: ClassVar[str] = "batches"
    store_name: ClassVar[str] = "an interlace activation store"
    identity: ClassVar[Mapping[str, str]] = IDENTITY
    kept: ClassVar[Mapping[str, tuple[str, str]]] = {
        "batch_size": ("batch size", "chunks are aligned with batches")
    }

    model: Model
    graph: Graph
    base_dir: Path | None
    data: Dataset
    selection: Selection
    summary: Summary
    batch_size: int
    backend: Backend

    def attrs(self) -> dict[str, Any]:
        sel, summary = self.selection, self.summary
        return {
            **model_attrs(self.model),
            "graph_sha256": self.graph.content_hash(self.base_dir),
            "dataset_sha256": summary.sha256,
            "text_field": self.data.text_field,
            "sites": list(sel.sites),
            "layers": list(sel.layers),
            "positions": sel.positions_json(),
            "dtype": sel.dtype,
            "graph": self.graph.to_dict(),
            "dataset": self.data.describe(),
            "fields": summary.fields,
            "max_selected": summary.max_selected,
            "batch_size": self.batch_size,
        }

    def units(self, attrs: Mapping[str, Any]) -> CacheUnits:
        batches = Batches(self.summary.n_examples, int(attrs["batch_size"]))
        layout = Layout(
            self.selection,
            self.model.shape,
            batches,
            self.summary.max_selected,
            self.summary.fields,
        )
        return CacheUnits(self, layout)


class CacheUnits(Units):
    """The batches of a cache job: each one forward pass, its captures and coordinates."""

    def __init__(self, job: CacheJob, layout: Layout) -> None:
        self.job, self.layout = job, layout
        self.n_units, self.n_examples = len(layout.batches), layout.n_examples
        sel = layout.selection
        self.graph = Graph(
            interventions=job.graph.interventions,
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
        self.tokens = TokenText(job.model.tokenizer)

    def template(self, attrs: dict[str, Any]) -> tuple[xr.Dataset, dict[str, dict[str, Any]]]:
        return self.layout.template(attrs)

    def arrays(self) -> list[str]:
        return list(self.layout.variables())

    def __iter__(self) -> Iterator[tuple[int, list[Example]]]:
        """The dataset's examples in batches, read as a stream."""
        batch: list[Example] = []
        index = 0
        for example in self.job.data.examples():
            batch.append(example)
            if len(batch) == self.layout.batches.size:
                yield index, batch
                batch, index = [], index + 1
        if batch:
            yield index, batch

    def compute(self, examples: list[Example]) -> dict[str, np.ndarray]:
        """One batch's forward pass, and every array the store holds for it."""
        job = self.job
        batch = encode(job.model.tokenizer, [ex.prompt for ex in examples])
        rows = [batch.input_ids[b, batch.pad(b) :].tolist() for b in range(batch.size)]
        result = run(job.model, self.graph, rows, job.backend, base_dir=job.base_dir)
        sites = self.layout.selection.sites
        token_index = result.captured[sites[0]].coords["token_index"].values.astype(np.int32)
        flat = token_index.reshape(len(rows), -1)
        ids = np.full(flat.shape, -1, dtype=np.int32)
        for b, row in enumerate(rows):
            real = flat[b] >= 0
            ids[b, real] = np.asarray(row, dtype=np.int32)[flat[b, real]]
        ids = ids.reshape(token_index.shape)
        return {
            **{site: result.captured[site].values for site in sites},
            **example_arrays(examples, self.layout.fields, batch),
            "token_index": token_index,
            "token_id": ids,
            "token_str": self.tokens(ids),
        }

    def regions(
        self, index: int, values: dict[str, np.ndarray]
    ) -> Iterator[tuple[str, Region, np.ndarray]]:
        """The batch's rows of every array; a site's positions up to the batch's longest
        selection (the rest stays padding), cast to the store's dtype."""
        start = self.layout.batches[index].start
        sel = self.layout.selection
        for name, array in values.items():
            if name in sel.sites:
                array = to_disk(array, sel.dtype)
            if 0 in array.shape:
                continue  # no position selected in this batch: all padding, nothing to write
            rows = slice(start, start + len(array))
            yield name, (rows, *(slice(0, n) for n in array.shape[1:])), array


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
