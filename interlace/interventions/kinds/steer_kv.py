"""``steer_kv``: add ``coeff * vector`` to cached keys and/or values of KV heads."""

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
from interlace.interventions.vectors import VectorRef, load_vector

_SITES = {"keys": ("k",), "values": ("v",), "both": ("k", "v")}


class SteerKV(InterventionBase):
    """Add ``coeff * vector`` to cached keys and/or values of KV heads at one layer.

    It edits the KV cache after the prompt's forward pass (keys as cached, i.e. after rotary
    embedding), so it changes what *later* tokens attend to, not the prompt's own outputs.
    """

    kind: Literal["steer_kv"] = "steer_kv"
    layer: Index
    heads: Indices | Literal["all"] = "all"
    """KV-head indices, below ``n_kv_heads``."""
    target: Literal["keys", "values", "both"] = "both"
    vector: VectorRef
    """Width ``head_dim``."""
    coeff: float = 1.0
    positions: Positions = "all"

    def sites(self) -> tuple[str, ...]:
        return _SITES[self.target]

    def check(self, checks: Checks, path: str) -> Iterator[Problem]:
        yield from checks.layer(self.layer, join_path(path, "layer"))
        if self.heads != "all":
            limit = checks.shape.n_kv_heads
            yield from checks.indices(self.heads, limit, "KV head", join_path(path, "heads"))
        width = checks.shape.head_dim
        yield from checks.vector(self.vector, "head_dim", width, join_path(path, "vector"))
        yield from checks.positions(self.positions, join_path(path, "positions"))

    def describe(self, shape: ModelShape) -> list[Description]:
        words = (
            f"after each forward, add coeff={self.coeff}·v to kv heads "
            f"{self.heads} of the cached entries {at(self.positions)}"
        )
        return [(site, self.layer, words) for site in self.sites()]

    def lower(
        self, shape: ModelShape, reference: Any = None, base_dir: str | Path | None = None
    ) -> list[Edit]:
        heads = range(shape.n_kv_heads) if self.heads == "all" else self.heads
        args = {
            "heads": np.array(list(heads)),
            "vector": load_vector(self.vector, base_dir),
            "coeff": self.coeff,
        }
        gen = covers_generated(self.positions)
        return [
            Edit(site, self.layer, "add_to_cache", self.positions, gen, args)
            for site in self.sites()
        ]
