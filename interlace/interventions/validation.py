"""Check a parsed graph against a model's shape before anything runs.

Parsing already guarantees a well-formed document; this finds what cannot work on *this* model
and *these* prompts: layers, heads or value vectors that do not exist, vectors of the wrong
width (file vectors are loaded to check; an unreadable file is a problem, not a crash), sites
the model does not provide, explicit positions outside the shortest prompt, ``"generated"``
positions without generation, and per-example source lists of the wrong length. Every problem
is collected, so one :class:`~.errors.ValidationError` lists them all.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from interlace.interventions.errors import Problem, ValidationError, join_path
from interlace.interventions.layers import Layers, allowed_layers, describe_out_of_range
from interlace.interventions.positions import Slice, prompt_index
from interlace.interventions.sites import ModelShape
from interlace.interventions.specs import Capture, InterventionBase, SteerKV
from interlace.interventions.vectors import VectorError, load_vector

if TYPE_CHECKING:
    from interlace.interventions.graph import Graph


def validate_graph(
    graph: Graph,
    shape: ModelShape,
    prompt_lengths: list[int] | None = None,
    base_dir: str | Path | None = None,
) -> None:
    """Raise one :class:`ValidationError` listing every way ``graph`` does not fit the model.

    ``prompt_lengths`` (real tokens per example), when given, lets explicit positions and
    per-example source lists be checked; ``base_dir`` resolves relative vector file paths.
    """
    checker = _Checker(
        shape=shape,
        shortest=min(prompt_lengths) if prompt_lengths else None,
        n_examples=len(prompt_lengths) if prompt_lengths else None,
        generates=graph.generate is not None,
        base_dir=base_dir,
    )
    problems: list[Problem] = []
    for section, specs in (("interventions", graph.interventions), ("capture", graph.capture)):
        for index, spec in enumerate(specs):
            problems.extend(checker.spec(spec, f"{section}[{index}]"))
    if problems:
        raise ValidationError(problems)


@dataclass(frozen=True)
class _Checker:
    """The checks of one validation, sharing the model's shape and the prompts' facts."""

    shape: ModelShape
    shortest: int | None
    n_examples: int | None
    generates: bool
    base_dir: str | Path | None

    def spec(self, spec: InterventionBase | Capture, path: str) -> Iterator[Problem]:
        """The problems of one spec, found by the fields it has."""
        yield from self.sites(spec, path)
        layer = getattr(spec, "layer", None)
        if layer is not None:
            yield from self.layer(layer, join_path(path, "layer"))
        layers = getattr(spec, "layers", None)
        if layers is not None:
            yield from self.layers(layers, join_path(path, "layers"))
        heads = getattr(spec, "heads", "all")
        if heads != "all":
            noun, limit = _head_limit(spec, self.shape)
            yield from _indices(heads, limit, noun, join_path(path, "heads"))
        indices = getattr(spec, "indices", None)
        if indices is not None:
            limit = self.shape.d_mlp
            yield from _indices(indices, limit, "value vector", join_path(path, "indices"))
        vector = getattr(spec, "vector", None)
        if vector is not None:
            yield from self.vector(
                vector, *_vector_width(spec, self.shape), join_path(path, "vector")
            )
        yield from self.positions(spec.positions, join_path(path, "positions"))
        source = getattr(spec, "source", None)
        if isinstance(source, list):
            yield from self.source(source, join_path(path, "source"))

    def sites(self, spec: InterventionBase | Capture, path: str) -> Iterator[Problem]:
        where = join_path(path, "site") if hasattr(spec, "site") else path
        for site in spec.sites():
            if site not in self.shape.sites:
                message = f"site {site!r} is not available for the {self.shape.family} family"
                yield Problem(where, message, ", ".join(self.shape.sites))

    def layer(self, layer: int, path: str) -> Iterator[Problem]:
        if layer >= self.shape.n_layers:
            message = describe_out_of_range([str(layer)], self.shape.n_layers)
            yield Problem(path, message, allowed_layers(self.shape.n_layers))

    def layers(self, layers: Layers, path: str) -> Iterator[Problem]:
        try:
            layers.resolve(self.shape.n_layers)
        except ValueError as exc:
            yield Problem(path, str(exc), allowed_layers(self.shape.n_layers))

    def vector(self, vector: Any, name: str, width: int, path: str) -> Iterator[Problem]:
        try:
            loaded = load_vector(vector, self.base_dir)
        except VectorError as exc:
            yield Problem(path, str(exc), f"a readable vector of width {width} ({name})")
            return
        if loaded.shape[0] != width:
            message = f"vector has width {loaded.shape[0]}"
            yield Problem(path, message, f"width {width} ({name})")

    def positions(self, positions: Any, path: str) -> Iterator[Problem]:
        if positions == "generated" and not self.generates:
            message = "'generated' positions need a generate section"
            yield Problem(
                path, message, "'all', 'prompt', 'last' or explicit positions; or add generate"
            )
        if self.shortest is None:
            return
        length = self.shortest
        allowed = f"{-length} to {length - 1}" if length else "none: a prompt is empty"
        if isinstance(positions, list):
            for k, position in enumerate(positions):
                if prompt_index(position, length) is None:
                    message = (
                        f"position {position} is outside the shortest prompt ({length} tokens)"
                    )
                    yield Problem(join_path(path, k), message, allowed)
        elif isinstance(positions, Slice) and not positions.indices(length):
            message = f"selects no position of the shortest prompt ({length} tokens)"
            yield Problem(path, message, f"a slice within {allowed}")

    def source(self, source: list[str], path: str) -> Iterator[Problem]:
        if self.n_examples is not None and len(source) != self.n_examples:
            message = f"{len(source)} source prompts for {self.n_examples} examples"
            allowed = f"one prompt shared by all examples, or {self.n_examples} (one per example)"
            yield Problem(path, message, allowed)


def _indices(values: list[int], limit: int, noun: str, path: str) -> Iterator[Problem]:
    """Index-out-of-range problems, one per offending entry of ``values``."""
    for k, value in enumerate(values):
        if value >= limit:
            message = f"{noun} {value} is out of range: the model has {limit} {noun}s"
            yield Problem(join_path(path, k), message, f"0-{limit - 1}")


def _head_limit(spec: InterventionBase | Capture, shape: ModelShape) -> tuple[str, int]:
    """What the ``heads`` of a spec index, and how many there are."""
    return ("KV head", shape.n_kv_heads) if isinstance(spec, SteerKV) else ("head", shape.n_heads)


def _vector_width(spec: InterventionBase | Capture, shape: ModelShape) -> tuple[str, int]:
    """The name and size of the dimension a spec's vector is added along."""
    return ("head_dim", shape.head_dim) if isinstance(spec, SteerKV) else ("d_model", shape.d_model)
