"""The intervention specs, plus the capture and generation specs a graph is made of.

Each spec is data only: what to do, at which site, layer and positions. The runtime compiles it
to an nnsight trace body. Every spec has a ``kind`` field with a default, so Python code writes
``AblateHeads(layer=10, heads=[0, 3])`` and a YAML document writes ``kind: ablate_heads``.

Field names are part of the public API (they are the document format); heads, value vectors and
layers are 0-based; positions follow :mod:`interlace.interventions.positions`.
"""

from __future__ import annotations

import typing
from typing import Annotated, Literal

import pydantic

from interlace.interventions.base import Spec
from interlace.interventions.errors import field_error
from interlace.interventions.layers import Layers
from interlace.interventions.positions import Positions
from interlace.interventions.sites import SITES, SiteName
from interlace.interventions.vectors import VectorRef

Index = Annotated[int, pydantic.Field(ge=0)]
Indices = Annotated[list[Index], pydantic.Field(min_length=1)]
Prompt = Annotated[str, pydantic.Field(min_length=1)]
Prompts = Prompt | Annotated[list[Prompt], pydantic.Field(min_length=1)]

AddVectorSite = Literal["resid_pre", "resid_post", "attn_out", "mlp_out"]
PatchSite = Literal["embed", "resid_pre", "resid_post", "attn_out", "mlp_out", "head_z", "mlp_act"]


class InterventionBase(Spec):
    """What every intervention has: a ``kind``, and the sites it reads or writes."""

    kind: str

    def sites(self) -> tuple[str, ...]:
        """The sites this intervention touches (checked against the model's sites)."""
        return (self.site,)  # type: ignore[attr-defined]  # subclasses without a site override


_MODE_INPUTS = (  # (field, the one mode that takes it, what it must be)
    ("reference", "mean", "a list of prompts"),
    ("source", "patch", "a prompt, or a list of prompts with one per example"),
)


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


class ValueVectorEdit(InterventionBase):
    """Multiply MLP value vectors (rows of ``W_out``) by a factor, by scaling their coefficients
    in ``mlp_act`` at the selected positions."""

    layer: Index
    indices: Indices
    """Value-vector (MLP neuron) indices, below ``d_mlp``."""
    positions: Positions = "all"

    def sites(self) -> tuple[str, ...]:
        return ("mlp_act",)


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
        return {"keys": ("k",), "values": ("v",), "both": ("k", "v")}[self.target]


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


def check_layered(site: str, layer: object, field: str) -> None:
    """Per-layer sites need a layer; ``embed`` and ``logits`` take none."""
    if SITES[site].per_layer and layer is None:
        raise field_error(field, f"site {site!r} needs {field}", "layer indices")
    if not SITES[site].per_layer and layer is not None:
        raise field_error(field, f"site {site!r} has no layers", "leave it out")


Intervention = Annotated[
    AblateHeads
    | ScaleValueVectors
    | ZeroValueVectors
    | NegateValueVectors
    | AddVector
    | SteerKV
    | Patch,
    pydantic.Field(discriminator="kind"),
]
"""Any intervention spec, told apart by ``kind``."""

INTERVENTION_KINDS: dict[str, type[InterventionBase]] = {
    spec.model_fields["kind"].default: spec
    for spec in typing.get_args(typing.get_args(Intervention)[0])
}
"""Each intervention class by its ``kind``."""
