"""Planning a study before any weights load: read the dataset, check everything against the
model's shape, and lay out the results store.

:func:`plan_study` collects every problem of a study file -- dataset, conditions, sweep,
readouts and each (condition, sweep point) graph checked against the model -- and raises them
together as one :class:`~interlace.ValidationError` with their paths in the file. A valid study
becomes a :class:`Plan`: the runs (condition x sweep point), the units of work (run x batch,
one completion flag each), and every array of the store with its dims, shape and dtype, which
is also what ``--dry-run`` prints.

The store's arrays, with ``P = (condition, *sweep dims, example)``:

================================  ===================================================
``{name}_logprob``                ``P + ({name}_token,)``: logits readout, its tokens
``{name}_target_logprob``         ``P``: the record's target token
``{name}_correct``                ``P``: 1.0 if the target wins, else 0.0
``{name}_text``, ``_answer``      ``P``: generation readout (strings)
``{name}_score``                  ``P``: 1.0 or 0.0
``{key}_log_odds``, ``_mass``     ``P + ({key}_checkpoint,)``: fork readout
``{key}_logprob``                 ``P + ({key}_checkpoint, {key}_choice)``
``{key}_token_index``             ``P + ({key}_checkpoint,)``: response tokens read, -1 = none
``{key}``                         ``P + ([layer], [position], *site dims)``: capture
================================  ===================================================

Unswept conditions run once per batch and their values fill every sweep point.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from interlace.datasets import TASKS
from interlace.interventions import (
    AfterMatch,
    AtTokens,
    Capture,
    Every,
    ForkReadout,
    Graph,
    ModelShape,
    Problem,
    ValidationError,
    VectorFile,
)
from interlace.interventions.sites import SITES
from interlace.stores.location import human_bytes
from interlace.stores.schema import STRING, Batches, FieldKind, Var, example_vars
from interlace.studies.conditions import (
    Points,
    build_graph,
    condition_points,
    locate,
    sweep_points,
)
from interlace.studies.spec import (
    FileDataset,
    GenerationReadout,
    LogitsReadout,
    RandomVector,
    Study,
    UnembedVector,
)

_TEXT_BYTES = 64  # a guess at a stored string's size, for the dry run's estimate


@dataclass(frozen=True)
class Run:
    """One (condition, sweep point) graph: ``point`` is None for an unswept condition."""

    condition: str
    point: int | None
    graph: Graph


@dataclass
class Plan:
    """A checked study, ready to run (see the module docstring)."""

    study: Study
    base_dir: Path
    shape: ModelShape
    records: list[dict[str, Any]]
    points: Points
    runs: list[Run]
    arrays: dict[str, Var]
    coords: dict[str, tuple[tuple[str, ...], list[Any]]]

    @property
    def n_examples(self) -> int:
        return len(self.records)

    @property
    def batch_size(self) -> int:
        return self.study.batch_size

    @property
    def batches(self) -> Batches:
        return Batches(self.n_examples, self.batch_size)

    @property
    def n_batches(self) -> int:
        return len(self.batches)

    def per_example(self, name: str) -> bool:
        """Whether an array is along ``example`` only (a coordinate: the same for every
        condition and point), not a result."""
        return self.arrays[name].dims == ("example",)

    @property
    def units(self) -> list[tuple[int, int]]:
        """(run index, batch index) of every unit of work, in order; a unit's index is its
        completion flag's."""
        return [(r, b) for r in range(len(self.runs)) for b in range(self.n_batches)]

    def forward_passes(self) -> int:
        """Model forward passes the study makes: each unit's prompt forward, one per further
        generated token, and per example each fork readout's prefix and packed chunks."""
        study, per_unit = self.study, 1
        if study.generate is not None:
            per_unit = study.generate.max_new_tokens
        per_example = sum(
            1 + math.ceil(max_checkpoints(r, study) / r.chunk_size)
            for r in study.readouts
            if isinstance(r, ForkReadout)
        )
        n_units = len(self.units)
        return n_units * per_unit + len(self.runs) * self.n_examples * per_example

    def store_bytes(self) -> int:
        """The store's size before compression (strings estimated)."""
        return sum(
            math.prod(v.shape) * (_TEXT_BYTES if v.dtype is STRING else np.dtype(v.dtype).itemsize)
            for v in self.arrays.values()
        )

    def describe(self) -> list[str]:
        """The plan in words, for ``--dry-run``."""
        study = self.study
        dims = ", ".join(
            f"{d}={n}" for d, n in zip(self.prefix_dims(), self.prefix_shape(), strict=True)
        )
        swept = [r.condition for r in self.runs if r.point is not None]
        lines = [
            f"study {study.name or '(unnamed)'}: model {study.model}, backend {study.backend}"
            + (f" at {study.host}" if study.host else ""),
            f"dataset: {self.n_examples} examples ({_dataset_name(study)}), "
            f"batch size {self.batch_size} -> {self.n_batches} batches",
            f"conditions: {', '.join(study.conditions)}",
        ]
        if study.sweep is not None:
            axes = "; ".join(f"{n} = {a.values}" for n, a in study.sweep.axes.items())
            lines.append(
                f"sweep ({study.sweep.mode}, {len(self.points.points)} points) over "
                f"{', '.join(sorted(set(swept)))}: {axes}"
            )
        lines += [
            f"runs (condition x point): {len(self.runs)}; units (run x batch): {len(self.units)}",
            f"forward passes: {self.forward_passes()}",
            f"results dims: ({dims})",
            "arrays:",
        ]
        for name, var in self.arrays.items():
            if not self.per_example(name):
                shape = " x ".join(map(str, var.shape))
                lines.append(f"  {name} {var.dims} [{shape}] {np.dtype(var.dtype)}")
        lines.append(f"expected store size: {human_bytes(self.store_bytes())} before compression")
        out = study.out or "(none: give out)"
        lines.append(f"store: {out}")
        return lines

    def prefix_dims(self) -> tuple[str, ...]:
        return ("condition", *self.points.dims, "example")

    def prefix_shape(self) -> tuple[int, ...]:
        sizes = [len(self.points.coords[d][1]) for d in self.points.dims]
        return (len(self.study.conditions), *sizes, self.n_examples)


def _dataset_name(study: Study) -> str:
    d = study.dataset
    return d.path if isinstance(d, FileDataset) else f"task {d.task}, seed {d.seed}"


def max_checkpoints(readout: ForkReadout, study: Study) -> int:
    """The most checkpoints a fork readout can read along a generation."""
    at, n = readout.at, study.generate.max_new_tokens if study.generate else 0
    if at == "end":
        return 1
    if isinstance(at, Every):
        return max(1, n // at.every)
    if isinstance(at, AtTokens):
        return len(at.tokens)
    assert isinstance(at, AfterMatch)
    return max(1, n)


def load_records(study: Study, base_dir: Path) -> list[dict[str, Any]]:
    """The study's dataset as records: generated, or read from its JSONL file."""
    from interlace.jobs.dataset import Dataset

    d = study.dataset
    if isinstance(d, FileDataset):
        path = d.path if "://" in d.path else str(base_dir / d.path)
        data = Dataset(path, d.text_field)
        missing = data.missing()
        if missing is not None:
            raise ValidationError([Problem("dataset.path", missing.message, missing.allowed)])
        records = [rec for _, rec in data.records()]
    else:
        if d.task not in TASKS:
            raise ValidationError(
                [Problem("dataset.task", f"unknown task {d.task!r}", ", ".join(TASKS))]
            )
        generator = TASKS[d.task]
        allowed = [p for p in inspect.signature(generator).parameters if p not in ("n", "seed")]
        unknown = [k for k in d.options if k not in allowed]
        if unknown:
            raise ValidationError(
                [
                    Problem(
                        f"dataset.options.{k}",
                        f"{d.task} takes no option {k!r}",
                        ", ".join(allowed),
                    )
                    for k in unknown
                ]
            )
        try:
            records = generator(d.n, d.seed, **d.options)
        except (TypeError, ValueError) as err:
            raise ValidationError([Problem("dataset", str(err))]) from None
    if not records:
        raise ValidationError([Problem("dataset", "has no records")])
    return records


def plan_study(study: Study, shape: ModelShape, base_dir: str | Path = ".") -> Plan:
    """Check ``study`` against a model's ``shape`` and lay out its store; one
    :class:`ValidationError` with every problem found. Loads no weights."""
    from interlace.jobs.dataset import Dataset, FieldKinds

    base_dir = Path(base_dir)
    problems: list[Problem] = []
    records: list[dict[str, Any]] = []
    fields: dict[str, FieldKind] = {}
    try:
        records = load_records(study, base_dir)
        text_field = study.dataset.text_field if isinstance(study.dataset, FileDataset) else None
        kinds = FieldKinds()
        for _, _, example in Dataset(records, text_field).parsed():
            kinds.add(example.fields)
        fields = kinds.result()
    except ValidationError as err:
        problems += err.problems
    problems += _readout_problems(study, records, fields)
    points = sweep_points(study)
    problems += _sweep_problems(study)
    runs: list[Run] = []
    if not any(p.path.startswith("sweep") for p in problems):
        placeholders, vector_problems = _placeholders(study, shape)
        problems += vector_problems
        seen = {(p.path, p.message) for p in problems}
        for name, index, point in condition_points(study):
            try:
                graph = build_graph(study, name, point, placeholders)
                try:
                    graph.validate(shape, base_dir=base_dir)
                except ValidationError as err:
                    raise ValidationError(locate(err.problems, study, name, point)) from None
                runs.append(Run(name, index, graph))
            except ValidationError as err:
                for p in err.problems:
                    if (p.path, p.message) not in seen:
                        seen.add((p.path, p.message))
                        problems.append(p)
    if problems:
        raise ValidationError(problems)
    plan = Plan(study, base_dir, shape, records, points, runs, {}, {})
    plan.arrays, plan.coords = _layout(plan, fields)
    taken = {n for n in plan.arrays if not plan.per_example(n)} | set(plan.coords)
    taken |= {"prompt", "n_tokens"}
    clashes = sorted(taken & set(fields))
    if clashes:
        raise ValidationError(
            [
                Problem(
                    f"dataset field {n!r}",
                    "clashes with a name the results store uses",
                    "rename the field or the readout",
                )
                for n in clashes
            ]
        )
    return plan


def _sweep_problems(study: Study) -> list[Problem]:
    sweep = study.sweep
    if sweep is None:
        return []
    problems = [
        Problem(f"sweep.conditions[{i}]", f"no condition {c!r}", ", ".join(study.conditions))
        for i, c in enumerate(sweep.conditions)
        if c not in study.conditions
    ]
    for name, axis in sweep.axes.items():
        if isinstance(axis.field, dict):
            problems += [
                Problem(
                    f"sweep.axes.{name}.field.{c}",
                    f"{c!r} is not a swept condition",
                    ", ".join(sweep.conditions),
                )
                for c in axis.field
                if c not in sweep.conditions
            ]
    taken = {"condition", "example", "point"}
    for r in study.readouts:
        if isinstance(r, Capture):
            taken |= {"layer"} if SITES[r.site].per_layer else set()
            taken |= {"position"} if isinstance(r.positions, list) else set()
    problems += [
        Problem(
            f"sweep.axes.{n}",
            f"the axis name {n!r} is a dim the results use already",
            f"a name other than {', '.join(sorted(taken))}",
        )
        for n in sweep.axes
        if n in taken
    ]
    return problems


def _placeholders(study: Study, shape: ModelShape) -> tuple[dict[str, Any], list[Problem]]:
    """Stand-ins for the named vectors, of the right width, to check graphs before the weights
    load: files and lists as they are (so their widths are checked), ``unembed`` as zeros of
    ``d_model``, ``random`` like its ``like`` vector."""
    out: dict[str, Any] = {}
    problems: list[Problem] = []
    for name, vec in study.vectors.items():
        if isinstance(vec, RandomVector) and vec.like is not None and vec.like not in study.vectors:
            problems.append(
                Problem(
                    f"vectors.{name}.like",
                    f"no vector named {vec.like!r}",
                    ", ".join(study.vectors),
                )
            )
    if problems:
        return out, problems

    def stand_in(name: str, depth: int = 0) -> Any:
        vec = study.vectors[name]
        if isinstance(vec, list):
            return vec
        if isinstance(vec, VectorFile):
            return vec.to_dict()
        if isinstance(vec, UnembedVector):
            return [0.0] * shape.d_model
        if vec.width is not None:
            return [0.0] * vec.width
        if vec.like is not None and depth < len(study.vectors):
            return stand_in(vec.like, depth + 1)
        return [0.0] * shape.d_model

    return {name: stand_in(name) for name in study.vectors}, problems


def _readout_problems(
    study: Study, records: list[dict[str, Any]], fields: Mapping[str, FieldKind]
) -> list[Problem]:
    problems: list[Problem] = []
    keys: dict[str, int] = {}
    layer_sets: dict[str, int] = {}
    for i, r in enumerate(study.readouts):
        path = f"readouts[{i}]"
        key = study.readout_key(i)
        if key in keys:
            problems.append(
                Problem(f"{path}.name", f"{key!r} is already the name of readouts[{keys[key]}]")
            )
        keys[key] = i
        needs_generation = isinstance(r, (GenerationReadout, ForkReadout))
        if needs_generation and study.generate is None:
            problems.append(
                Problem(f"{path}.kind", f"a {r.kind} readout reads a generation", "add generate")
            )
        target = getattr(r, "target", None)
        if target is not None and records:
            lacking = [j for j, rec in enumerate(records) if target not in rec]
            if lacking:
                problems.append(
                    Problem(
                        f"{path}.target",
                        f"records {lacking[:5]} have no field {target!r}",
                        ", ".join(fields) or "no fields",
                    )
                )
        if isinstance(r, GenerationReadout) and r.score == "countdown" and records:
            if not all("numbers" in rec and "target" in rec for rec in records):
                problems.append(
                    Problem(f"{path}.score", "countdown scores records with numbers and target")
                )
        if isinstance(r, LogitsReadout) and r.tokens and len(set(r.tokens)) != len(r.tokens):
            problems.append(Problem(f"{path}.tokens", "tokens must be distinct"))
        if isinstance(r, Capture):
            if r.positions != "last" and not isinstance(r.positions, list):
                problems.append(
                    Problem(
                        f"{path}.positions",
                        f"a study captures a fixed number of positions, not {r.positions!r}",
                        "'last' or a list of positions (il.cache stores ragged positions)",
                    )
                )
            if SITES[r.site].per_layer:
                layer_sets[str(r.layers.root)] = i
    if len(layer_sets) > 1:
        problems.append(
            Problem(
                "readouts",
                f"captures select different layers ({', '.join(layer_sets)}); they share "
                "the store's layer dim",
                "the same layers for every capture",
            )
        )
    positions = {str(r.positions) for r in study.readouts if isinstance(r, Capture)}
    if len(positions) > 1:
        problems.append(
            Problem(
                "readouts",
                f"captures select different positions ({', '.join(positions)})",
                "the same positions for every capture",
            )
        )
    return problems


def _layout(
    plan: Plan, fields: Mapping[str, FieldKind]
) -> tuple[dict[str, Var], dict[str, tuple[tuple[str, ...], list[Any]]]]:
    """Every array of the store, and the coordinates that label its dims. A chunk is one
    condition, one point and one batch wide, so each unit writes chunks no other unit
    touches."""
    study, shape = plan.study, plan.shape
    dims, size = plan.prefix_dims(), plan.prefix_shape()
    lead = (1,) * (len(dims) - 1) + (plan.batch_size,)
    f32 = np.float32
    variables: dict[str, Var] = {}
    coords: dict[str, tuple[tuple[str, ...], list[Any]]] = {
        "condition": (("condition",), list(study.conditions)),
        "swept": (
            ("condition",),
            [study.sweep is not None and c in study.sweep.conditions for c in study.conditions],
        ),
        **plan.points.coords,
        "example": (("example",), list(range(plan.n_examples))),
    }

    def add(name: str, extra: tuple[tuple[str, int], ...], dtype: Any, fill: Any) -> None:
        sizes = tuple(n for _, n in extra)
        variables[name] = Var(
            dims + tuple(d for d, _ in extra), size + sizes, lead + sizes, dtype, fill
        )

    for i, r in enumerate(study.readouts):
        key = study.readout_key(i)
        if isinstance(r, LogitsReadout):
            if r.tokens:
                add(f"{key}_logprob", ((f"{key}_token", len(r.tokens)),), f32, np.nan)
                coords[f"{key}_token"] = ((f"{key}_token",), list(r.tokens))
            if r.target:
                add(f"{key}_target_logprob", (), f32, np.nan)
                add(f"{key}_correct", (), f32, np.nan)
        elif isinstance(r, GenerationReadout):
            add(f"{key}_text", (), STRING, "")
            add(f"{key}_answer", (), STRING, "")
            if r.score:
                add(f"{key}_score", (), f32, np.nan)
        elif isinstance(r, ForkReadout):
            n = max_checkpoints(r, study)
            cp = (f"{key}_checkpoint", n)
            add(f"{key}_log_odds", (cp,), f32, np.nan)
            add(f"{key}_mass", (cp,), f32, np.nan)
            add(f"{key}_logprob", (cp, (f"{key}_choice", len(r.choices))), f32, np.nan)
            add(f"{key}_token_index", (cp,), np.int32, -1)
            coords[f"{key}_checkpoint"] = ((f"{key}_checkpoint",), list(range(n)))
            coords[f"{key}_choice"] = ((f"{key}_choice",), list(r.choices))
        else:
            extra: list[tuple[str, int]] = []
            if SITES[r.site].per_layer:
                layers = r.layers.resolve(shape.n_layers)
                extra.append(("layer", len(layers)))
                coords["layer"] = (("layer",), layers)
            if isinstance(r.positions, list):
                extra.append(("position", len(r.positions)))
                coords["position"] = (("position",), list(r.positions))
            trailing = SITES[r.site].trailing_dims
            extra += list(zip(trailing, shape.site_width(r.site), strict=True))
            add(key, tuple(extra), f32, np.nan)
    variables.update(example_vars(fields, plan.batches))
    return variables, coords
