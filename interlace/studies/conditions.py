"""From a study's conditions to graphs: ``extends``, ``set``, a sweep point and named vectors,
applied in that order to plain data, which then parses as a :class:`~interlace.Graph`.

Each (condition, sweep point) gives one graph: the condition's interventions plus the study's
captures, generation and fork readouts. That graph is exactly what the study runs for it, so
``il.run(model, graph, prompts)`` alone gives the same numbers.

A problem in such a graph is reported at the place in the *study file* that caused it: an
intervention inherited through ``extends`` at the condition that wrote it, a value a ``set`` or
a sweep axis put there at that entry (``sweep.axes.layer.values[2]``), a capture at its readout.
Torch-free.
"""

from __future__ import annotations

import copy
import itertools
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from interlace.interventions import Capture, ForkReadout, Graph, Problem, ValidationError
from interlace.interventions.errors import join_path
from interlace.studies.spec import Label, Study

_STEP = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]|(\.)")


def parse_path(path: str) -> list[str | int]:
    """``interventions[0].coeff`` -> ``["interventions", 0, "coeff"]``; ValueError if malformed."""
    steps: list[str | int] = []
    pos, expect_name = 0, True
    while pos < len(path):
        m = _STEP.match(path, pos)
        if m is None or (m[3] and expect_name) or (m[1] and not expect_name):
            raise ValueError(f"malformed field path {path!r} at character {pos}")
        if m[1]:
            steps.append(m[1])
        elif m[2]:
            steps.append(int(m[2]))
        expect_name = bool(m[3])
        pos = m.end()
    if not steps or expect_name:
        raise ValueError(f"malformed field path {path!r}")
    return steps


def set_path(data: dict[str, Any], path: str, value: Any) -> None:
    """Set ``path`` in ``data`` (lists and dicts, in place). Every step but the last must exist;
    the last may add a field. ValueError says which step is missing."""
    steps = parse_path(path)
    node: Any = data
    for i, step in enumerate(steps):
        last = i == len(steps) - 1
        where = _show(steps[:i]) or "the condition"
        if isinstance(step, int):
            if not isinstance(node, list) or not 0 <= step < len(node):
                size = f"has {len(node)} entries" if isinstance(node, list) else "is not a list"
                raise ValueError(f"{where} {size}: no [{step}]")
        elif not isinstance(node, dict) or (not last and step not in node):
            raise ValueError(f"{where} has no field {step!r}")
        if last:
            node[step] = copy.deepcopy(value)
        else:
            node = node[step]


def _show(steps: list[str | int]) -> str:
    return "".join(
        f"[{s}]" if isinstance(s, int) else (f".{s}" if i else s) for i, s in enumerate(steps)
    )


@dataclass(frozen=True)
class Points:
    """The sweep's points: ``dims`` (axis names for a product; ``("point",)`` for a zip),
    ``coords`` (the labels along each dim, and for a zip each axis along ``point``) and
    every point as ``{axis: value}``, in store order."""

    dims: tuple[str, ...]
    coords: dict[str, tuple[tuple[str, ...], list[Label]]]
    points: list[dict[str, Label]]
    index: list[tuple[int, ...]]
    """Each point's position along ``dims``."""


def sweep_points(study: Study) -> Points:
    """The points of the study's sweep (one empty point without a sweep)."""
    sweep = study.sweep
    if sweep is None:
        return Points((), {}, [{}], [()])
    names = list(sweep.axes)
    values = [sweep.axes[n].values for n in names]
    if sweep.mode == "zip":
        points = [dict(zip(names, combo, strict=True)) for combo in zip(*values, strict=True)]
        coords = {n: (("point",), list(v)) for n, v in zip(names, values, strict=True)}
        coords["point"] = (("point",), list(range(len(points))))
        return Points(("point",), coords, points, [(i,) for i in range(len(points))])
    index = list(itertools.product(*(range(len(v)) for v in values)))
    points = [
        {n: values[a][i] for a, (n, i) in enumerate(zip(names, idx, strict=True))} for idx in index
    ]
    coords = {n: ((n,), list(v)) for n, v in zip(names, values, strict=True)}
    return Points(tuple(names), coords, points, index)


@dataclass
class _Origins:
    """Where each part of a built condition came from in the study file."""

    interventions: list[str] = field(default_factory=list)
    """Study path of each intervention (``conditions.steer.interventions[0]``)."""
    fields: dict[str, str] = field(default_factory=dict)
    """Graph path of a field set by ``set`` or a sweep axis -> the study path that set it."""


def chain(study: Study, name: str) -> list[str]:
    """``name`` and the conditions it extends, root first; ValueError on a cycle or an unknown
    parent."""
    seen = [name]
    while (parent := study.conditions[seen[-1]].extends) is not None:
        if parent not in study.conditions:
            raise ValueError(f"extends unknown condition {parent!r}")
        if parent in seen:
            raise ValueError(f"extends in a cycle: {' -> '.join([*seen, parent])}")
        seen.append(parent)
    return seen[::-1]


def swept(study: Study, name: str) -> bool:
    return study.sweep is not None and name in study.sweep.conditions


def _interventions(study: Study, name: str, point: Mapping[str, Label]) -> tuple[dict, _Origins]:
    """The condition's interventions as plain data after ``extends``, ``set`` and ``point``."""
    data: dict[str, Any] = {"interventions": []}
    origins = _Origins()
    problems: list[Problem] = []
    try:
        lineage = chain(study, name)
    except ValueError as err:
        raise ValidationError([Problem(f"conditions.{name}.extends", str(err))]) from None
    for cond in lineage:
        own = study.conditions[cond].interventions
        data["interventions"] += copy.deepcopy(own)
        origins.interventions += [f"conditions.{cond}.interventions[{i}]" for i in range(len(own))]
    for cond in lineage:
        for path, value in study.conditions[cond].set.items():
            where = f'conditions.{cond}.set["{path}"]'
            problems += _assign(data, path, value, where, origins)
    if study.sweep is not None and name in study.sweep.conditions:
        for axis_name, value in point.items():
            axis = study.sweep.axes[axis_name]
            path = axis.field if isinstance(axis.field, str) else axis.field.get(name)
            index = axis.values.index(value)
            if path is None:
                problems.append(
                    Problem(
                        f"sweep.axes.{axis_name}.field",
                        f"names no field for swept condition {name!r}",
                        "one field for all swept conditions, or one per condition",
                    )
                )
                continue
            where = f"sweep.axes.{axis_name}.values[{index}]"
            field_where = f"sweep.axes.{axis_name}.field"
            for p in _assign(data, path, value, where, origins):
                problems.append(Problem(field_where, f"condition {name!r}: {p.message}"))
    if problems:
        raise ValidationError(problems)
    return data, origins


def _assign(data: dict, path: str, value: Any, where: str, origins: _Origins) -> list[Problem]:
    try:
        set_path(data, path, value)
    except ValueError as err:
        return [Problem(where, str(err))]
    origins.fields[_show(parse_path(path))] = where
    return []


def _named_vectors(data: dict, vectors: Mapping[str, Any], origins: _Origins) -> list[Problem]:
    """Replace each intervention's ``vector: NAME`` by the named vector's data (in place)."""
    problems = []
    for i, spec in enumerate(data["interventions"]):
        if isinstance(spec, dict) and isinstance(spec.get("vector"), str):
            name = spec["vector"]
            if name in vectors:
                spec["vector"] = copy.deepcopy(vectors[name])
            else:
                path = _study_path(f"interventions[{i}].vector", origins)
                defined = ", ".join(vectors) or "none defined"
                problems.append(Problem(path, f"no vector named {name!r}", f"vectors: {defined}"))
    return problems


def _study_path(graph_path: str, origins: _Origins) -> str:
    """The study-file path of a problem found at ``graph_path`` of a built graph."""
    for set_path_, where in sorted(origins.fields.items(), key=lambda kv: -len(kv[0])):
        if graph_path == set_path_ or graph_path.startswith((set_path_ + ".", set_path_ + "[")):
            rest = graph_path[len(set_path_) :]
            return where if not rest else f"{where} (at {graph_path})"
    m = re.match(r"interventions\[(\d+)\](.*)", graph_path)
    if m and int(m[1]) < len(origins.interventions):
        return origins.interventions[int(m[1])] + m[2]
    return f"conditions.{graph_path}" if graph_path.startswith("interventions") else graph_path


def readout_parts(study: Study) -> dict[str, Any]:
    """The graph fields every condition shares: captures, generation and fork readouts."""
    return {
        "capture": [r for r in study.readouts if isinstance(r, Capture)],
        "generate": study.generate,
        "readouts": [r for r in study.readouts if isinstance(r, ForkReadout)],
    }


def _readout_path(graph_path: str, study: Study) -> str:
    """``capture[1].layers`` -> ``readouts[3].layers`` (the readout it was built from)."""
    m = re.match(r"(capture|readouts)\[(\d+)\](.*)", graph_path)
    if not m:
        return graph_path
    kind = Capture if m[1] == "capture" else ForkReadout
    indices = [i for i, r in enumerate(study.readouts) if isinstance(r, kind)]
    return f"readouts[{indices[int(m[2])]}]{m[3]}"


def build_graph(
    study: Study, name: str, point: Mapping[str, Label], vectors: Mapping[str, Any]
) -> Graph:
    """The graph condition ``name`` runs at sweep ``point`` (``{}`` for an unswept condition),
    with named vectors replaced by ``vectors[name]`` (a list of floats or a vector file's
    data). Problems raise one :class:`ValidationError` with study-file paths."""
    data, origins = _interventions(study, name, point if swept(study, name) else {})
    problems = _named_vectors(data, vectors, origins)
    if problems:
        raise ValidationError(problems)
    try:
        interventions = Graph.from_dict(data).interventions
    except ValidationError as err:
        raise ValidationError(
            [Problem(_study_path(p.path, origins), p.message, p.allowed) for p in err.problems]
        ) from None
    return Graph(interventions=interventions, **readout_parts(study))


def locate(
    problems: list[Problem], study: Study, name: str, point: Mapping[str, Label]
) -> list[Problem]:
    """Problems found checking ``build_graph(study, name, point, ...)`` against a model, at
    their study-file paths."""
    _, origins = _interventions(study, name, point if swept(study, name) else {})
    out = []
    for p in problems:
        path = p.path
        path = (
            _study_path(path, origins)
            if path.startswith("interventions")
            else _readout_path(path, study)
        )
        out.append(Problem(path, p.message, p.allowed))
    return out


def condition_points(study: Study) -> Iterator[tuple[str, int | None, dict[str, Label]]]:
    """Every (condition, point index or None when unswept, point) the study runs, in order."""
    points = sweep_points(study).points
    for name in study.conditions:
        if swept(study, name):
            for i, point in enumerate(points):
                yield name, i, point
        else:
            yield name, None, {}


__all__ = [
    "Points",
    "build_graph",
    "chain",
    "condition_points",
    "join_path",
    "locate",
    "parse_path",
    "readout_parts",
    "set_path",
    "sweep_points",
    "swept",
]
