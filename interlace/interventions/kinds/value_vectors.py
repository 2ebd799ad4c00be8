"""``scale_value_vectors``, ``zero_value_vectors``, ``negate_value_vectors``: multiply MLP
value vectors by a factor (given, 0 or -1)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np

from interlace.interventions.checks import Checks
from interlace.interventions.errors import Problem, join_path
from interlace.interventions.kinds.base import (
    Description,
    Edit,
    Index,
    Indices,
    InterventionBase,
    at,
)
from interlace.interventions.positions import Positions, covers_generated
from interlace.interventions.sites import ModelShape


class ValueVectorEdit(InterventionBase):
    """Multiply MLP value vectors (rows of ``W_out``) by a factor, by scaling their coefficients
    in ``mlp_act`` at the selected positions."""

    layer: Index
    indices: Indices
    """Value-vector (MLP neuron) indices, below ``d_mlp``."""
    positions: Positions = "all"

    def sites(self) -> tuple[str, ...]:
        return ("mlp_act",)

    def check(self, checks: Checks, path: str) -> Iterator[Problem]:
        yield from checks.layer(self.layer, join_path(path, "layer"))
        yield from checks.indices(
            self.indices, checks.shape.d_mlp, "value vector", join_path(path, "indices")
        )
        yield from checks.positions(self.positions, join_path(path, "positions"))

    def describe(self, shape: ModelShape) -> list[Description]:
        factor = self.factor  # type: ignore[attr-defined]  # each kind below gives it
        words = f"multiply neurons {self.indices} by {factor} {at(self.positions)}"
        return [("mlp_act", self.layer, words)]

    def acts_in_readout(self) -> bool:
        return self.positions == "all"

    def lower(
        self, shape: ModelShape, reference: Any = None, base_dir: str | Path | None = None
    ) -> list[Edit]:
        factor = float(self.factor)  # type: ignore[attr-defined]
        args = {"indices": np.array(self.indices), "factor": factor}
        gen = covers_generated(self.positions)
        return [Edit("mlp_act", self.layer, "scale_neurons", self.positions, gen, args)]


class ScaleValueVectors(ValueVectorEdit):
    """Multiply value vectors by ``factor``."""

    kind: Literal["scale_value_vectors"] = "scale_value_vectors"
    factor: float


class ZeroValueVectors(ValueVectorEdit):
    """Remove value vectors' contributions (``factor`` 0)."""

    kind: Literal["zero_value_vectors"] = "zero_value_vectors"

    @property
    def factor(self) -> float:
        return 0.0


class NegateValueVectors(ValueVectorEdit):
    """Flip value vectors' contributions (``factor`` -1)."""

    kind: Literal["negate_value_vectors"] = "negate_value_vectors"

    @property
    def factor(self) -> float:
        return -1.0
