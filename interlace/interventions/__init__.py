"""The declarative layer: sites, intervention kinds, graphs, validation, JSON/YAML round trip
and content hashing. Data only: it imports neither torch nor nnsight (numpy for the arrays a
kind lowers to; safetensors only when a vector file is read), so a graph can be written,
checked, hashed and lowered without a model.
"""

from interlace.interventions import kinds
from interlace.interventions.errors import Problem, ValidationError
from interlace.interventions.graph import SCHEMA_VERSION, Graph, validate_graph
from interlace.interventions.kinds import *  # noqa: F403  (every kind, as registered there)
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
    *kinds.__all__,
    "RESIDUAL_SITES",
    "SCHEMA_VERSION",
    "SITES",
    "AfterMatch",
    "AtTokens",
    "Every",
    "ForkReadout",
    "Capture",
    "Generate",
    "Graph",
    "Layers",
    "ModelShape",
    "Positions",
    "Problem",
    "SiteInfo",
    "SiteName",
    "Slice",
    "StoreVector",
    "ValidationError",
    "VectorError",
    "VectorFile",
    "VectorRef",
    "load_vector",
    "resolve_positions",
    "validate_graph",
]
