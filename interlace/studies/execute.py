"""``run_study``: every (condition, sweep point) graph over every batch of the dataset, into one
results store, resumably -- a job of the engine (:mod:`interlace.jobs.engine`), so a study
killed at any point -- SIGKILL included -- resumes and ends equal to an uninterrupted run, and
a store of a different study is refused, naming what differs.

A unit of work is one run (condition x point) on one batch: one ``run`` call of the run's
graph on the batch's prompts, with the study's backend; its readouts are read from that
call's result (:mod:`interlace.studies.readouts`). Its chunks are its own (one condition, one
point and one batch wide: :mod:`interlace.studies.plan`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from interlace.interventions import Capture, Problem, ValidationError
from interlace.jobs.dataset import Dataset, Example, example_arrays, scan
from interlace.jobs.engine import Job, JobReport, Region, Units, run_job
from interlace.jobs.model import MODEL_IDENTITY, loaded, max_tokens, model_attrs, shape_of
from interlace.models.model import Model
from interlace.runtime.backend import Backend, as_backend
from interlace.runtime.prompts import encode
from interlace.runtime.run import run
from interlace.stores import progress as flags
from interlace.stores.errors import StoreError
from interlace.stores.reader import KIND_ATTR, open_root
from interlace.stores.schema import STRING, FieldKind, template
from interlace.studies.conditions import build_graph, locate
from interlace.studies.plan import Plan, Run, plan_study
from interlace.studies.readouts import TokenIds, batch_arrays, token_ids
from interlace.studies.spec import FileDataset, Study
from interlace.studies.vectors import needs_weights, resolve_vectors

KIND = "study"
IDENTITY = {  # identity attribute -> how a difference is named to the user
    **MODEL_IDENTITY,
    "dataset_sha256": "dataset",
    "batch_size": "batch size (chunks follow batches: keep it, or write elsewhere)",
    "run_graphs": "conditions and sweep",
    "readouts": "readouts",
}


def load_study(path: str | Path) -> tuple[Study, Path]:
    """A study file and the directory its relative paths are resolved against.

    ``study, base_dir = load_study("study.yaml")``"""
    return Study.load(path), Path(path).resolve().parent


def plan_for(study: Study, base_dir: Path, model: Model | None = None) -> Plan:
    """Check and plan ``study`` against ``model``'s shape, or its config (no weights).

    ``print("\\n".join(plan_for(*load_study("study.yaml")).describe()))``"""
    return plan_study(study, shape_of(model if model is not None else study.model), base_dir)


def run_study(
    study: Study | str | Path,
    model: Model | None = None,
    out: str | Path | None = None,
    backend: str | None = None,
    host: str | None = None,
    progress: bool = True,
) -> JobReport:
    """Run a study (a :class:`Study` or its file) into its results store.

    ``run_study("study.yaml", out="results.zarr").message()``

    ``model``: a loaded :class:`~interlace.Model` to use instead of loading ``study.model``;
    ``out``, ``backend`` and ``host`` override the study's. Every problem is raised, as one
    :class:`~interlace.ValidationError`, before any weights load; a store of another study
    raises :class:`~interlace.StoreError`.
    """
    if isinstance(study, Study):
        base_dir = Path.cwd()
    else:
        study, base_dir = load_study(study)
    overrides = {k: v for k, v in (("backend", backend), ("host", host)) if v is not None}
    study = study.model_copy(update=overrides) if overrides else study
    target = out if out is not None else study.out
    if target is None:
        raise ValidationError([Problem("out", "no results store given", "a path or URL")])
    target = str(target) if out is not None or "://" in str(target) else str(base_dir / target)
    try:
        backend_ = as_backend(study.backend, study.host)
    except ValueError as err:
        raise ValidationError([Problem("host", str(err))]) from None
    plan = plan_for(study, base_dir, model)
    # on NDIF the weights stay on the server, unless a vector is read from them
    remote = study.backend == "ndif" and not needs_weights(study)
    job = StudyJob(plan, loaded(model if model is not None else study.model, remote), backend_)
    return run_job(job, target, progress=progress)


class StudyJob(Job, Units):
    """A planned study and its model, checked: the engine's view of it. Its units do not
    depend on the store (its batch size is identity), so it is its own :class:`Units`."""

    noun = "study"
    units_name = "units"
    kind = KIND
    store_name = "a study's results store"
    identity = IDENTITY

    def __init__(self, plan: Plan, model: Model, backend: Backend) -> None:
        """Everything before the first forward: the runs' graphs with the named vectors
        resolved, checked against the model; the readouts' token ids; every prompt scanned."""
        vectors = resolve_vectors(plan.study, model, plan.base_dir)
        runs, problems = [], []
        for r in plan.runs:
            point = plan.points.points[r.point] if r.point is not None else {}
            graph = build_graph(plan.study, r.condition, point, vectors)
            try:
                graph.validate(model.shape, base_dir=plan.base_dir)
            except ValidationError as err:
                problems += locate(err.problems, plan.study, r.condition, point)
            runs.append(Run(r.condition, r.point, graph))
        if problems:
            raise ValidationError(problems)
        readouts = plan.study.readouts
        positions = next((r.positions for r in readouts if isinstance(r, Capture)), "last")
        data = _dataset(plan)
        summary = scan(data, model.tokenizer, positions, max_tokens(model))
        self.plan, self.model, self.runs, self.backend = plan, model, runs, backend
        self.ids: TokenIds = token_ids(plan, model.tokenizer)
        self.dataset_sha256 = summary.sha256
        self.fields: dict[str, FieldKind] = {
            k: v for k, v in summary.fields.items() if k in plan.arrays
        }
        self.examples = list(data.examples())
        self.special = list(getattr(model.tokenizer, "all_special_tokens", []))
        self.n_units, self.n_examples = len(plan.units), plan.n_examples

    def attrs(self) -> dict[str, Any]:
        plan, study = self.plan, self.plan.study
        graphs = [[r.condition, r.point, r.graph.content_hash(plan.base_dir)] for r in self.runs]
        return {
            **model_attrs(self.model),
            "dataset_sha256": self.dataset_sha256,
            "batch_size": plan.batch_size,
            "run_graphs": graphs,
            "readouts": [r.to_dict() for r in study.readouts],
            "study": study.to_dict(),
            "graphs": {f"{r.condition}@{r.point}": r.graph.to_dict() for r in self.runs},
            "backend": study.backend,
            "sweep_dims": list(plan.points.dims),
        }

    def difference(self, key: str, stored: Any, wanted: Any) -> str:
        """For the runs, which conditions changed."""
        if key != "run_graphs":
            return super().difference(key, stored, wanted)
        old = {(c, p): h for c, p, h in stored or []}
        new = {(c, p): h for c, p, h in wanted or []}
        changed = sorted({k[0] for k in old.keys() | new.keys() if old.get(k) != new.get(k)})
        detail = f"condition(s) {', '.join(changed)} changed" if changed else "order changed"
        return f"{self.identity[key]}: {detail}"

    def units(self, attrs: Mapping[str, Any]) -> StudyJob:
        return self

    def template(self, attrs: dict[str, Any]) -> tuple[xr.Dataset, dict[str, dict[str, Any]]]:
        plan = self.plan
        coords = {
            name: xr.Variable(dims, _coord(values)) for name, (dims, values) in plan.coords.items()
        }
        data = [name for name in plan.arrays if not plan.per_example(name)]
        return template(plan.arrays, data, coords, attrs)

    def arrays(self) -> list[str]:
        return list(self.plan.arrays)

    def __iter__(self) -> Iterator[tuple[int, tuple[Run, slice, list[Example]]]]:
        plan = self.plan
        for index, (run_index, b) in enumerate(plan.units):
            rows = plan.batches[b]
            yield index, (self.runs[run_index], rows, self.examples[rows])

    def compute(self, inputs: tuple[Run, slice, list[Example]]) -> dict[str, np.ndarray]:
        """One run's graph on one batch: its readouts and the examples' coordinates."""
        run_, rows, examples = inputs
        prompts = [ex.prompt for ex in examples]
        result = run(self.model, run_.graph, prompts, self.backend, base_dir=self.plan.base_dir)
        encoded = encode(self.model.tokenizer, prompts)
        return {
            **batch_arrays(self.plan, result, rows, self.ids, self.special),
            **example_arrays(examples, self.fields, encoded),
        }

    def regions(
        self, index: int, values: dict[str, np.ndarray]
    ) -> Iterator[tuple[str, Region, np.ndarray]]:
        """A unit's condition, point (every point for an unswept condition) and batch."""
        plan = self.plan
        run_index, b = plan.units[index]
        run_ = self.runs[run_index]
        rows = plan.batches[b]
        condition = list(plan.study.conditions).index(run_.condition)
        if run_.point is None:  # unswept: the same values at every point
            point: tuple[Any, ...] = tuple(slice(None) for _ in plan.points.dims)
            lead = plan.prefix_shape()[1:-1]
        else:
            point, lead = plan.points.index[run_.point], ()
        for name, array in values.items():
            if plan.per_example(name):
                yield name, (rows,), array
            else:
                yield name, (condition, *point, rows), np.broadcast_to(array, lead + array.shape)


def _dataset(plan: Plan) -> Dataset:
    d = plan.study.dataset
    return Dataset(plan.records, d.text_field if isinstance(d, FileDataset) else None)


def _coord(values: list[Any]) -> np.ndarray:
    """Coordinate labels as an array zarr stores safely (strings as variable-width text)."""
    if values and all(isinstance(v, str) for v in values):
        return np.array(values, dtype=STRING)
    return np.array(values)


def open_results(path: str | Path, partial: bool = False) -> xr.Dataset:
    """A study's results store as a lazy xarray Dataset. An incomplete store is refused unless
    ``partial`` (its units not yet run hold fill values: NaN, -1 or "")."""
    root = open_root(path)
    if root.attrs.get(KIND_ATTR) != KIND:
        raise StoreError(f"{path} is not a study's results store (open it with il.open_store)")
    done = flags.done(root)
    if not done.all() and not partial:
        raise StoreError(
            f"{path} is incomplete: {int(done.sum())} of {len(done)} units are written. Run "
            "the same study again to finish it, or open_results(path, partial=True)."
        )
    return xr.open_zarr(root.store, consolidated=False, chunks={}, zarr_format=3)
