"""The checks that intervention kinds and captures share, on one validation's facts.

A kind's :meth:`~.kinds.base.InterventionBase.check` composes these: ``yield from
checks.layer(self.layer, join_path(path, "layer"))``. Each yields :class:`~.errors.Problem`
values (never raises), so one validation reports every problem at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from interlace.interventions.errors import Problem, join_path
from interlace.interventions.layers import Layers, allowed_layers, describe_out_of_range
from interlace.interventions.positions import Positions, Slice, prompt_index
from interlace.interventions.sites import ModelShape
from interlace.interventions.vectors import VectorError, VectorRef, load_vector


@dataclass(frozen=True)
class Checks:
    """The facts one validation checks against: the model's shape, the prompts' lengths
    (``shortest``/``n_examples`` are None when the prompts are not known yet), whether the
    graph generates, and where relative vector files live."""

    shape: ModelShape
    shortest: int | None = None
    n_examples: int | None = None
    generates: bool = False
    base_dir: str | Path | None = None

    def sites(self, sites: tuple[str, ...], path: str) -> Iterator[Problem]:
        """Sites the model's family does not provide."""
        for site in sites:
            if site not in self.shape.sites:
                message = f"site {site!r} is not available for the {self.shape.family} family"
                yield Problem(path, message, ", ".join(self.shape.sites))

    def layer(self, layer: int, path: str) -> Iterator[Problem]:
        """A layer index beyond the model's layers."""
        if layer >= self.shape.n_layers:
            message = describe_out_of_range([str(layer)], self.shape.n_layers)
            yield Problem(path, message, allowed_layers(self.shape.n_layers))

    def layers(self, layers: Layers, path: str) -> Iterator[Problem]:
        """A layer selection that does not resolve on this model."""
        try:
            layers.resolve(self.shape.n_layers)
        except ValueError as exc:
            yield Problem(path, str(exc), allowed_layers(self.shape.n_layers))

    def indices(self, values: list[int], limit: int, noun: str, path: str) -> Iterator[Problem]:
        """One problem per entry of ``values`` at or beyond ``limit`` (``noun``: what they
        index, e.g. ``"head"``)."""
        for k, value in enumerate(values):
            if value >= limit:
                message = f"{noun} {value} is out of range: the model has {limit} {noun}s"
                yield Problem(join_path(path, k), message, f"0-{limit - 1}")

    def vector(self, vector: VectorRef, name: str, width: int, path: str) -> Iterator[Problem]:
        """A vector that cannot be loaded, or whose width is not ``width`` (the size of the
        dimension ``name`` it is added along)."""
        try:
            loaded = load_vector(vector, self.base_dir)
        except VectorError as exc:
            yield Problem(path, str(exc), f"a readable vector of width {width} ({name})")
            return
        if loaded.shape[0] != width:
            message = f"vector has width {loaded.shape[0]}"
            yield Problem(path, message, f"width {width} ({name})")

    def positions(self, positions: Positions, path: str) -> Iterator[Problem]:
        """``"generated"`` without generation; explicit positions outside the shortest prompt."""
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

    def source(self, source: str | list[str], path: str) -> Iterator[Problem]:
        """A per-example source list whose length is not the number of examples."""
        if isinstance(source, list) and self.n_examples is not None:
            if len(source) != self.n_examples:
                message = f"{len(source)} source prompts for {self.n_examples} examples"
                allowed = (
                    f"one prompt shared by all examples, or {self.n_examples} (one per example)"
                )
                yield Problem(path, message, allowed)
