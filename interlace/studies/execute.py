"""``run_study``: every (condition, sweep point) graph over every batch of the dataset, into one
results store, resumably.

Each unit of work -- one run (condition x point) on one batch -- is one ``il.run`` call of the
run's graph on the batch's prompts, with the study's backend, and its readouts are read from
that call's result (:mod:`interlace.studies.readouts`). The store follows the activation
store's protocol (:mod:`interlace.stores.job`), reusing its parts: the root group with the
job's identity is written first, then the arrays, then one completion flag per unit
(:mod:`interlace.stores.progress`), whose presence means "created"; each unit's chunks are
its own (chunks are one condition, one point and one batch wide), written on the background
writer (:class:`~interlace.stores.writer.StoreWriter`) before its flag. A rerun of the same
study skips flagged units, so a study killed at any point -- SIGKILL included -- resumes and
ends equal to an uninterrupted run; a store of a different study is refused, naming what
differs.
"""

from __future__ import annotations

import datetime
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import dask.array
import numpy as np
import xarray as xr
import zarr

from interlace.interventions import Capture, Problem, ValidationError
from interlace.stores import progress as flags
from interlace.stores.dataset import Dataset, Summary, field_arrays, scan
from interlace.stores.errors import StoreError
from interlace.stores.identity import model_weights_id, tokenizer_hash, versions
from interlace.stores.location import remove_partial_files, zarr_store
from interlace.stores.reader import FORMAT, FORMAT_ATTR, open_root
from interlace.stores.resume import open_or_create, progress_bar, refusal
from interlace.stores.writer import BatchData, StoreWriter
from interlace.studies.conditions import build_graph
from interlace.studies.plan import STRING, Plan, Run, plan_study
from interlace.studies.readouts import TokenIds, batch_arrays, token_ids
from interlace.studies.spec import FileDataset, Study
from interlace.studies.vectors import needs_weights, resolve_vectors

KIND_ATTR = "interlace_kind"
KIND = "study"
IDENTITY = {  # identity attribute -> how a difference is named to the user
    "model_weights_sha256": "model weights",
    "tokenizer_sha256": "tokenizer",
    "adapter_family": "model family",
    "dataset_sha256": "dataset",
    "batch_size": "batch size (chunks follow batches: keep it, or write elsewhere)",
    "run_graphs": "conditions and sweep",
    "readouts": "readouts",
}


@dataclass(frozen=True)
class StudyReport:
    """What :func:`run_study` did: ``created`` the store, ``resumed`` it, or found it
    ``complete`` (no forward pass)."""

    path: str
    status: Literal["created", "resumed", "complete"]
    n_units: int
    units_written: int
    seconds: float
    notes: tuple[str, ...] = ()

    def message(self) -> str:
        if self.status == "complete":
            head = f"{self.path} is already complete for this study: nothing to do"
        else:
            verb = "ran" if self.status == "created" else "resumed: ran"
            head = (
                f"{verb} {self.units_written} of {self.n_units} units into {self.path} "
                f"in {self.seconds:.1f} s"
            )
        return "\n".join([head, *self.notes])


def load_study(path: str | Path) -> tuple[Study, Path]:
    """A study file and the directory its relative paths are resolved against."""
    return Study.load(path), Path(path).resolve().parent


def plan_for(study: Study, base_dir: Path, model: Any = None) -> Plan:
    """Check and plan ``study`` against ``model``'s shape, or its config (no weights)."""
    from interlace.stores.job import _config_shape

    shape = model.shape if model is not None else _config_shape(study.model)
    return plan_study(study, shape, base_dir)


def run_study(
    study: Study | str | Path,
    model: Any = None,
    out: str | Path | None = None,
    backend: str | None = None,
    host: str | None = None,
    progress: bool = True,
) -> StudyReport:
    """Run a study (a :class:`Study` or its file) into its results store.

    ``model``: a loaded :class:`~interlace.Model` to use instead of loading ``study.model``;
    ``out``, ``backend`` and ``host`` override the study's. Every problem is raised, as one
    :class:`~interlace.ValidationError`, before any weights load; a store of another study
    raises :class:`~interlace.StoreError`.
    """
    started = time.perf_counter()
    if isinstance(study, Study):
        base_dir = Path.cwd()
    else:
        study, base_dir = load_study(study)
    overrides = {k: v for k, v in (("backend", backend), ("host", host)) if v is not None}
    study = study.model_copy(update=overrides) if overrides else study
    target = out if out is not None else study.out
    if target is None:
        raise ValidationError([Problem("out", "no results store given", "out: PATH, or --out")])
    target = str(target) if out is not None or "://" in str(target) else str(base_dir / target)
    _check_backend(study)
    plan = plan_for(study, base_dir, model)
    if model is None:
        import interlace as il

        # on NDIF the weights stay on the server, unless a vector is read from them
        remote = study.backend == "ndif" and not needs_weights(study)
        model = il.load(study.model, remote=remote)
    runs, ids, summary = _prepare(plan, model)
    attrs = _attrs(plan, model, runs, summary.sha256)
    store = zarr_store(target)
    root, notes = _open_or_create(store, target, plan, attrs), []
    done = flags.done(root)
    status, written = "complete", 0
    if not done.all():
        status = "resumed" if done.any() else "created"
        if status == "resumed" and remove_partial_files(store):
            notes.append("removed temporary files an interrupted write left behind")
        written = _run_units(plan, model, runs, ids, summary, root, done, progress)
    units = len(plan.units)
    return StudyReport(target, status, units, written, time.perf_counter() - started, tuple(notes))


def _check_backend(study: Study) -> None:
    """The backend and host, as ``il.run`` will take them, before anything loads."""
    from interlace.runtime.backend import as_backend

    try:
        as_backend(study.backend, study.host)
    except ValueError as err:
        raise ValidationError([Problem("host", str(err))]) from None


def _prepare(plan: Plan, model: Any) -> tuple[list[Run], TokenIds, Summary]:
    """The runs' graphs with the named vectors resolved, checked against the model and its
    tokenizer, and the readouts' token ids: everything before the first forward."""
    from interlace.studies.conditions import locate

    vectors = resolve_vectors(plan.study, model, plan.base_dir)
    runs, problems = [], []
    for run in plan.runs:
        point = plan.points.points[run.point] if run.point is not None else {}
        graph = build_graph(plan.study, run.condition, point, vectors)
        try:
            graph.validate(model.shape, base_dir=plan.base_dir)
        except ValidationError as err:
            problems += locate(err.problems, plan.study, run.condition, point)
        runs.append(Run(run.condition, run.point, graph))
    if problems:
        raise ValidationError(problems)
    positions = next((r.positions for r in plan.study.readouts if isinstance(r, Capture)), "last")
    max_tokens = getattr(model.hf.config, "max_position_embeddings", None)
    summary = scan(_dataset(plan), model.tokenizer, positions, max_tokens)  # every prompt
    return runs, token_ids(plan, model.tokenizer), summary


def _dataset(plan: Plan) -> Dataset:
    d = plan.study.dataset
    return Dataset(plan.records, d.text_field if isinstance(d, FileDataset) else None)


def _attrs(plan: Plan, model: Any, runs: list[Run], dataset_sha256: str) -> dict[str, Any]:
    """The store's attributes: the study's identity, then provenance."""
    study = plan.study
    graphs = [[r.condition, r.point, r.graph.content_hash(plan.base_dir)] for r in runs]
    readouts = [r.to_dict() for r in study.readouts]
    return {
        FORMAT_ATTR: FORMAT,
        KIND_ATTR: KIND,
        "model_weights_sha256": model_weights_id(model),
        "tokenizer_sha256": tokenizer_hash(model.tokenizer),
        "adapter_family": model.adapter.family,
        "dataset_sha256": dataset_sha256,
        "batch_size": plan.batch_size,
        "run_graphs": graphs,
        "readouts": readouts,
        "study": study.to_dict(),
        "graphs": {f"{r.condition}@{r.point}": r.graph.to_dict() for r in runs},
        "model": model.name,
        "model_source": model.source,
        "model_shape": model.shape.to_dict(),
        "backend": study.backend,
        "n_examples": plan.n_examples,
        "n_batches": len(plan.units),
        "sweep_dims": list(plan.points.dims),
        "versions": versions(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def differences(stored: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """How the study in a store differs from this one, one line per difference; for the runs,
    which conditions changed."""
    lines = []
    for key, what in IDENTITY.items():
        a, b = stored.get(key), wanted.get(key)
        if a == b:
            continue
        if key == "run_graphs":
            old = {(c, p): h for c, p, h in a or []}
            new = {(c, p): h for c, p, h in b or []}
            changed = sorted({k[0] for k in old.keys() | new.keys() if old.get(k) != new.get(k)})
            detail = f"condition(s) {', '.join(changed)} changed" if changed else "order changed"
            lines.append(f"{what}: {detail}")
        elif isinstance(a, str) and len(a) == 64:
            lines.append(f"{what}: the store has sha256 {a[:12]}, this study {str(b)[:12]}")
        else:
            lines.append(f"{what}: the store has {a}, this study {b}")
    return lines


def _open_or_create(store: Any, out: str, plan: Plan, attrs: dict[str, Any]) -> zarr.Group:
    """Open this study's store (refusing another's), creating it if new or half-created."""

    def check(found: dict[str, Any]) -> None:
        if found.get(FORMAT_ATTR) != FORMAT or found.get(KIND_ATTR) != KIND:
            raise StoreError(f"{out} exists and is not a study's results store: choose another out")
        diffs = differences(found, attrs)
        if diffs:
            raise StoreError(refusal(out, "study", diffs))

    def create(root: zarr.Group, attrs: dict[str, Any]) -> int:
        template, encoding = _template(plan, attrs)
        template.to_zarr(
            store, mode="a", compute=False, consolidated=False, zarr_format=3, encoding=encoding
        )
        return len(plan.units)

    return open_or_create(store, out, attrs, check, create)[0]


def _coord(values: list[Any]) -> np.ndarray:
    """Coordinate labels as an array zarr stores safely (strings as variable-width text)."""
    if values and all(isinstance(v, str) for v in values):
        return np.array(values, dtype=STRING)
    return np.array(values)


def _template(plan: Plan, attrs: dict[str, Any]) -> tuple[xr.Dataset, dict[str, dict]]:
    """An empty Dataset of the store's shape and its zarr encoding: one chunk per condition,
    point and batch (so each unit writes chunks no other unit touches)."""
    n_prefix = len(plan.prefix_dims())
    arrays, encoding = {}, {}
    for name, v in plan.arrays.items():
        lead = (plan.batch_size,) if v.example_only else (1,) * (n_prefix - 1) + (plan.batch_size,)
        chunks = lead + v.shape[len(lead) :]
        arrays[name] = xr.Variable(v.dims, dask.array.zeros(v.shape, dtype=v.dtype, chunks=-1))
        encoding[name] = {"chunks": chunks, "fill_value": v.fill}
    coords: dict[str, Any] = {
        name: xr.Variable(dims, _coord(values)) for name, (dims, values) in plan.coords.items()
    }
    coords.update({k: a for k, a in arrays.items() if plan.arrays[k].example_only})
    data = {k: a for k, a in arrays.items() if not plan.arrays[k].example_only}
    return xr.Dataset(data, coords=coords, attrs=attrs), encoding


class _UnitWriter(StoreWriter):
    """The background writer, writing each unit into its region: its condition, its point
    (every point for an unswept condition) and its batch."""

    def __init__(self, root: zarr.Group, plan: Plan, runs: list[Run], on_written: Any) -> None:
        self.plan, self.runs = plan, runs
        super().__init__(root, plan, on_written)  # type: ignore[arg-type]

    def _write(self, batch: BatchData) -> None:
        plan = self.plan
        run_index, b = plan.units[batch.index]
        run = self.runs[run_index]
        rows = plan.batch_slice(b)
        condition = list(plan.study.conditions).index(run.condition)
        if run.point is None:  # unswept: the same values at every point
            point: tuple[Any, ...] = tuple(slice(None) for _ in plan.points.dims)
            lead = plan.prefix_shape()[1:-1]
        else:
            point, lead = plan.points.index[run.point], ()
        for name, values in batch.arrays.items():
            if plan.arrays[name].example_only:
                self.arrays[name][rows] = values
            else:
                region = (condition, *point, rows)
                self.arrays[name][region] = np.broadcast_to(values, lead + values.shape)
        flags.mark(self.flags, batch.index)


def _run_units(
    plan: Plan,
    model: Any,
    runs: list[Run],
    ids: TokenIds,
    summary: Summary,
    root: zarr.Group,
    done: np.ndarray,
    show: bool,
) -> int:
    """Compute every incomplete unit and write it in the background; returns how many."""
    import interlace as il
    from interlace.runtime.prompts import encode

    study = plan.study
    examples = list(_dataset(plan).examples())
    fields = {k: v for k, v in summary.fields.items() if k in plan.arrays}
    special = list(getattr(model.tokenizer, "all_special_tokens", []))
    kwargs: dict[str, Any] = {"backend": study.backend}
    if study.host is not None:
        kwargs["host"] = study.host
    bar = progress_bar(show)
    written = 0
    with bar:
        task = bar.add_task("study units", total=len(plan.units), completed=int(done.sum()))

        def on_written(index: int) -> None:
            nonlocal written
            written += 1
            bar.advance(task)

        with _UnitWriter(root, plan, runs, on_written) as writer:
            for index, (run_index, b) in enumerate(plan.units):
                if done[index]:
                    continue
                rows = plan.batch_slice(b)
                batch = examples[rows]
                prompts = [ex.prompt for ex in batch]
                result = il.run(
                    model, runs[run_index].graph, prompts, base_dir=plan.base_dir, **kwargs
                )
                arrays = batch_arrays(plan, result, rows, ids, special)
                arrays.update(field_arrays(batch, fields))
                encoded = encode(model.tokenizer, prompts)
                arrays["prompt"] = np.array(encoded.texts, dtype=STRING)
                arrays["n_tokens"] = np.array(encoded.lengths, dtype=np.int32)
                writer.submit(BatchData(index, arrays))
    return written


def open_results(path: str | Path, partial: bool = False) -> xr.Dataset:
    """A study's results store as a lazy xarray Dataset. An incomplete store is refused unless
    ``partial`` (its units not yet run hold fill values: NaN, -1 or "")."""
    root = open_root(path)
    if root.attrs.get(KIND_ATTR) != KIND:
        raise StoreError(f"{path} is not a study's results store (open it with il.open_store)")
    done = flags.done(root)
    if not done.all() and not partial:
        raise StoreError(
            f"{path} is incomplete: {int(done.sum())} of {len(done)} units are written. Rerun "
            "the same `interlace study` command to finish it, or open_results(path, "
            "partial=True)."
        )
    return xr.open_zarr(root.store, consolidated=False, chunks={}, zarr_format=3)
