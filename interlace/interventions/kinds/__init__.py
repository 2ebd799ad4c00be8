"""The intervention kinds, one module each. A kind's module owns its fields, validation,
explanation, readout rule, reference runs and lowering (see :mod:`.base`); registering a kind
is its line in :data:`Intervention` below."""

from __future__ import annotations

import typing
from typing import Annotated

import pydantic

from interlace.interventions.kinds.ablate_heads import AblateHeads
from interlace.interventions.kinds.add_vector import AddVector
from interlace.interventions.kinds.base import Edit, InterventionBase, ReferenceRun
from interlace.interventions.kinds.patch import Patch
from interlace.interventions.kinds.steer_kv import SteerKV
from interlace.interventions.kinds.value_vectors import (
    NegateValueVectors,
    ScaleValueVectors,
    ValueVectorEdit,
    ZeroValueVectors,
)

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

__all__ = [
    "INTERVENTION_KINDS",
    "AblateHeads",
    "AddVector",
    "Edit",
    "Intervention",
    "InterventionBase",
    "NegateValueVectors",
    "Patch",
    "ReferenceRun",
    "ScaleValueVectors",
    "SteerKV",
    "ValueVectorEdit",
    "ZeroValueVectors",
]
