"""``ablate_heads``: replace attention heads' outputs by zero, a reference mean, or a source
run's values."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pydantic

from interlace.interventions.checks import Checks
from interlace.interventions.errors import Problem, field_error, join_path
from interlace.interventions.kinds.base import (
    Description,
    Edit,
    Index,
    Indices,
    InterventionBase,
    Prompt,
    Prompts,
    ReferenceRun,
    at,
)
from interlace.interventions.positions import Positions, covers_generated
from interlace.interventions.sites import ModelShape

_MODE_INPUTS = (  # (field, the one mode that takes it, what it must be)
    ("reference", "mean", "a list of prompts"),
    ("source", "patch", "a prompt, or a list of prompts with one per example"),
)
_WRITES = {"zero": "zero", "mean": "the reference mean", "patch": "the source run's values"}


class AblateHeads(InterventionBase):
    """Replace attention heads' outputs (``head_z``, before the output projection).

    ``zero`` writes zeros; ``mean`` writes the head's mean output over the ``reference`` prompts
    (all their positions, leaving position 0 out unless ``exclude_position_zero`` is false,
    because of massive activations there); ``patch`` writes the head's output from a run on
    ``source``, the k-th selected target position taking the source's k-th selected position.
    """

    kind: Literal["ablate_heads"] = "ablate_heads"
    layer: Index
    heads: Indices
    mode: Literal["zero", "mean", "patch"] = "zero"
    positions: Positions = "all"
    reference: Annotated[list[Prompt], pydantic.Field(min_length=1)] | None = None
    """Prompts whose mean head output is written (mode ``mean``)."""
    source: Prompts | None = None
    """Source prompt(s) for mode ``patch``: one shared by all examples, or one per example."""
    exclude_position_zero: bool = True
    """Leave position 0 out of the ``mean`` (massive activations)."""

    @pydantic.model_validator(mode="after")
    def _mode_inputs(self) -> AblateHeads:
        for field, mode, allowed in _MODE_INPUTS:
            given = getattr(self, field) is not None
            if self.mode == mode and not given:
                raise field_error(field, f"mode {self.mode!r} needs {field}", allowed)
            if self.mode != mode and given:
                raise field_error(
                    field, f"mode {self.mode!r} takes no {field}", f"only mode {mode!r}"
                )
        return self

    def sites(self) -> tuple[str, ...]:
        return ("head_z",)

    def check(self, checks: Checks, path: str) -> Iterator[Problem]:
        yield from checks.layer(self.layer, join_path(path, "layer"))
        yield from checks.indices(
            self.heads, checks.shape.n_heads, "head", join_path(path, "heads")
        )
        yield from checks.positions(self.positions, join_path(path, "positions"))
        if self.source is not None:
            yield from checks.source(self.source, join_path(path, "source"))

    def describe(self, shape: ModelShape) -> list[Description]:
        d = shape.head_dim
        return [
            (
                "head_z",
                self.layer,
                f"set heads {self.heads} (slices [h*{d}:(h+1)*{d}]) "
                f"to {_WRITES[self.mode]} {at(self.positions)}",
            )
        ]

    def acts_in_readout(self) -> bool:
        return self.mode != "patch" and self.positions == "all"

    def reference_run(self) -> ReferenceRun | None:
        if self.reference is not None:
            return ReferenceRun(
                "mean",
                "reference",
                self.reference,
                "head_z",
                self.layer,
                exclude_position_zero=self.exclude_position_zero,
            )
        if self.source is not None:
            return ReferenceRun(
                "source", "source", self.source, "head_z", self.layer, self.positions
            )
        return None

    def lower(
        self, shape: ModelShape, reference: Any = None, base_dir: str | Path | None = None
    ) -> list[Edit]:
        heads = {"heads": np.array(self.heads), "n_heads": shape.n_heads}
        if self.mode == "patch":  # the source's values at the patched positions
            return [
                Edit(
                    "head_z",
                    self.layer,
                    "patch_heads",
                    self.positions,
                    False,
                    {**heads, **reference},
                )
            ]
        replacement = np.zeros((), np.float32) if self.mode == "zero" else reference
        return [
            Edit(
                "head_z",
                self.layer,
                "set_heads",
                self.positions,
                covers_generated(self.positions),
                {**heads, "replacement": replacement},
            )
        ]
