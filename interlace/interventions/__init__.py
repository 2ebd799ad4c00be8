"""The declarative layer: sites, intervention kinds, graphs, validation, JSON/YAML round trip
and content hashing. Data only: it imports neither torch nor nnsight (numpy for the arrays a
kind lowers to; safetensors only when a vector file is read), so a graph can be written,
checked, hashed and lowered without a model.
"""

from interlace.interventions.errors import Problem, ValidationError
from interlace.interventions.graph import SCHEMA_VERSION, Graph, validate_graph
from interlace.interventions.kinds import (
    INTERVENTION_KINDS,
    AblateHeads,
    AddVector,
    Edit,
    Intervention,
    InterventionBase,
    NegateValueVectors,
    Patch,
    ReferenceRun,
    ScaleValueVectors,
    SteerKV,
    ValueVectorEdit,
    ZeroValueVectors,
)
from interlace.interventions.layers import Layers
from interlace.interventions.positions import Positions, Slice, resolve_positions
from interlace.interventions.readouts import AfterMatch, AtTokens, Every, ForkReadout
from interlace.interventions.sites import RESIDUAL_SITES, SITES, ModelShape, SiteInfo, SiteName
from interlace.interventions.specs import Capture, Generate
from interlace.interventions.vectors import (
    StoreVector,
    VectorError,
    VectorFile,
    VectorRef,
    load_vector,
)

__all__ = [
    "INTERVENTION_KINDS",
    "RESIDUAL_SITES",
    "SCHEMA_VERSION",
    "SITES",
    "AblateHeads",
    "AddVector",
    "AfterMatch",
    "AtTokens",
    "Edit",
    "Every",
    "ForkReadout",
    "Capture",
    "Generate",
    "Graph",
    "Intervention",
    "InterventionBase",
    "Layers",
    "ModelShape",
    "NegateValueVectors",
    "Patch",
    "Positions",
    "Problem",
    "ReferenceRun",
    "ScaleValueVectors",
    "SiteInfo",
    "SiteName",
    "Slice",
    "SteerKV",
    "StoreVector",
    "ValidationError",
    "ValueVectorEdit",
    "VectorError",
    "VectorFile",
    "VectorRef",
    "ZeroValueVectors",
    "load_vector",
    "resolve_positions",
    "validate_graph",
]
