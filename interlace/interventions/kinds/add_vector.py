"""``add_vector``: residual-stream steering, ``coeff * vector`` added at each selected layer
and position."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pydantic

from interlace.interventions.checks import Checks
from interlace.interventions.errors import Problem, join_path
from interlace.interventions.kinds.base import Description, Edit, InterventionBase, at
from interlace.interventions.layers import Layers
from interlace.interventions.positions import Positions, covers_generated
from interlace.interventions.sites import ModelShape
from interlace.interventions.vectors import VectorRef, load_vector

AddVectorSite = Literal["resid_pre", "resid_post", "attn_out", "mlp_out"]
_ADDS = {"none": "coeff·v", "unit": "coeff·v/‖v‖", "resid_norm": "coeff·‖h‖·v/‖v‖"}


class AddVector(InterventionBase):
    """Add ``coeff * vector`` to a residual-stream site at each selected layer and position.

    ``normalize``: ``none`` adds the vector as given; ``unit`` rescales it to unit norm first;
    ``resid_norm`` rescales it to the norm of the residual it is added to, so ``coeff`` is a
    fraction of that norm. ``embed`` is not a site here: it has no layer; add at
    ``resid_pre`` of layer 0 instead (for GPT-2 that is after the position embedding).
    ``layer=12`` is accepted as a spelling of ``layers=[12]``.
    """

    kind: Literal["add_vector"] = "add_vector"
    site: AddVectorSite
    layers: Layers
    vector: VectorRef
    """Width ``d_model``."""
    coeff: float = 1.0
    positions: Positions = "all"
    normalize: Literal["none", "unit", "resid_norm"] = "none"

    @pydantic.model_validator(mode="before")
    @classmethod
    def _layer_is_one_layer(cls, data: object) -> object:
        if isinstance(data, dict) and "layer" in data and "layers" not in data:
            data = dict(data)
            layer = data.pop("layer")
            data["layers"] = (
                [layer] if isinstance(layer, int) and not isinstance(layer, bool) else layer
            )
        return data

    def check(self, checks: Checks, path: str) -> Iterator[Problem]:
        yield from checks.layers(self.layers, join_path(path, "layers"))
        width = checks.shape.d_model
        yield from checks.vector(self.vector, "d_model", width, join_path(path, "vector"))
        yield from checks.positions(self.positions, join_path(path, "positions"))

    def describe(self, shape: ModelShape) -> list[Description]:
        words = f"add {_ADDS[self.normalize]} with coeff={self.coeff} {at(self.positions)}"
        return [(self.site, layer, words) for layer in self.layers.resolve(shape.n_layers)]

    def acts_in_readout(self) -> bool:
        return self.positions == "all"

    def lower(
        self, shape: ModelShape, reference: Any = None, base_dir: str | Path | None = None
    ) -> list[Edit]:
        args = {
            "vector": load_vector(self.vector, base_dir),
            "coeff": self.coeff,
            "normalize": self.normalize,
        }
        gen = covers_generated(self.positions)
        return [
            Edit(self.site, layer, "add_vector", self.positions, gen, args)
            for layer in self.layers.resolve(shape.n_layers)
        ]
