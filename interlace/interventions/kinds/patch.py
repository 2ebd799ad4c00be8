"""``patch``: write a site's activations from a run on other prompts into this run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pydantic

from interlace.interventions.checks import Checks
from interlace.interventions.errors import Problem, join_path
from interlace.interventions.kinds.base import (
    Description,
    Edit,
    Index,
    InterventionBase,
    Prompts,
    ReferenceRun,
    at,
)
from interlace.interventions.positions import Positions
from interlace.interventions.sites import ModelShape, check_layered

PatchSite = Literal["embed", "resid_pre", "resid_post", "attn_out", "mlp_out", "head_z", "mlp_act"]


class Patch(InterventionBase):
    """Write a site's activations from a run on ``source`` into this run.

    Positions are resolved in each run on its own; the k-th selected target position takes the
    source's k-th selected position, so both must select as many (checked at run time).
    """

    kind: Literal["patch"] = "patch"
    site: PatchSite
    layer: Index | None = None
    """Required for per-layer sites; absent for ``embed``."""
    positions: Positions = "all"
    source: Prompts
    """One source prompt shared by all examples, or one per example."""

    @pydantic.model_validator(mode="after")
    def _layer_matches_site(self) -> Patch:
        check_layered(self.site, self.layer, "layer")
        return self

    def check(self, checks: Checks, path: str) -> Iterator[Problem]:
        if self.layer is not None:
            yield from checks.layer(self.layer, join_path(path, "layer"))
        yield from checks.positions(self.positions, join_path(path, "positions"))
        yield from checks.source(self.source, join_path(path, "source"))

    def describe(self, shape: ModelShape) -> list[Description]:
        return [(self.site, self.layer, f"replace {at(self.positions)} by the source run's values")]

    def reference_run(self) -> ReferenceRun:
        return ReferenceRun("source", "source", self.source, self.site, self.layer, self.positions)

    def lower(
        self, shape: ModelShape, reference: Any = None, base_dir: str | Path | None = None
    ) -> list[Edit]:
        return [Edit(self.site, self.layer, "scatter_positions", self.positions, False, reference)]
