"""The capture and generation specs of a graph (the interventions are in
:mod:`interlace.interventions.kinds`).

Field names are part of the public API (they are the document format); layers are 0-based;
positions follow :mod:`interlace.interventions.positions`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Literal

import pydantic

from interlace.interventions.base import Spec
from interlace.interventions.checks import Checks
from interlace.interventions.errors import Problem, join_path
from interlace.interventions.layers import Layers
from interlace.interventions.positions import Positions
from interlace.interventions.sites import SITES, SiteName, check_layered


class Capture(Spec):
    """Record a site's activations at the selected layers and positions.

    ``layers`` is absent for the sites without a layer (``embed``, ``logits``); for the others
    leaving it out means ``"all"`` (and parses to exactly that). ``name`` keys the result;
    it defaults to the site's name, and keys must be distinct within a graph.
    """

    kind: Literal["capture"] = "capture"
    site: SiteName
    layers: Layers | None = None
    positions: Positions = "last"
    dtype: Literal["float32", "float16", "bfloat16"] = "float32"
    name: Annotated[str, pydantic.Field(min_length=1)] | None = None

    @pydantic.model_validator(mode="before")
    @classmethod
    def _all_layers_by_default(cls, data: object) -> object:
        if isinstance(data, dict) and data.get("layers") is None:
            site = data.get("site")
            if isinstance(site, str) and site in SITES and SITES[site].per_layer:
                return {**data, "layers": "all"}
        return data

    @pydantic.model_validator(mode="after")
    def _layers_match_site(self) -> Capture:
        check_layered(self.site, self.layers, "layers")
        return self

    def sites(self) -> tuple[str, ...]:
        return (self.site,)

    def check(self, checks: Checks, path: str) -> Iterator[Problem]:
        """The problems of this capture (its site is checked by the caller)."""
        if self.layers is not None:
            yield from checks.layers(self.layers, join_path(path, "layers"))
        yield from checks.positions(self.positions, join_path(path, "positions"))

    @property
    def key(self) -> str:
        """The name the captured activations are stored under."""
        return self.name or self.site


class Generate(Spec):
    """Generate up to ``max_new_tokens`` after the prompt; interventions apply at every step."""

    kind: Literal["generate"] = "generate"
    max_new_tokens: Annotated[int, pydantic.Field(ge=1)]
    do_sample: bool = False
    temperature: Annotated[float, pydantic.Field(gt=0)] = 1.0
    top_p: Annotated[float, pydantic.Field(gt=0, le=1)] | None = None
    top_k: Annotated[int, pydantic.Field(ge=1)] | None = None
    seed: Annotated[int, pydantic.Field(ge=0)] | None = None
    stop: list[Annotated[str, pydantic.Field(min_length=1)]] = pydantic.Field(default_factory=list)
    """Stop generating an example once its text ends with one of these."""
