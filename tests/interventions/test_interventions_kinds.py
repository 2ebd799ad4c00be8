"""Every registered intervention kind answers for itself: it checks, describes and lowers
itself, and lowers only to trace ops that exist, with the ops' one signature."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import interlace.interventions as iv
from interlace.interventions.checks import Checks
from interlace.runtime.edits import OPS

SHAPE = iv.ModelShape(
    family="llama", n_layers=4, d_model=8, n_heads=2, n_kv_heads=1, head_dim=4, d_mlp=16, vocab=50
)

#: One valid example of each kind (adding a kind without an example fails the test below).
EXAMPLES: dict[str, list[iv.InterventionBase]] = {
    "ablate_heads": [
        iv.AblateHeads(layer=1, heads=[0]),
        iv.AblateHeads(layer=1, heads=[1], mode="mean", reference=["a b"]),
        iv.AblateHeads(layer=2, heads=[0, 1], mode="patch", source="c", positions=[-1]),
    ],
    "scale_value_vectors": [iv.ScaleValueVectors(layer=0, indices=[3], factor=2.0)],
    "zero_value_vectors": [iv.ZeroValueVectors(layer=0, indices=[3])],
    "negate_value_vectors": [iv.NegateValueVectors(layer=3, indices=[15], positions="last")],
    "add_vector": [iv.AddVector(site="resid_pre", layers="all", vector=[1.0] * 8)],
    "steer_kv": [iv.SteerKV(layer=3, target="values", vector=[0.5] * 4)],
    "patch": [
        iv.Patch(site="embed", source="x", positions="last"),
        iv.Patch(site="head_z", layer=0, source=["x", "y"]),
    ],
}


def _reference(request: iv.ReferenceRun | None) -> object:
    """A stand-in for what the runtime computes for ``request`` (opaque to the kinds)."""
    if request is None:
        return None
    if request.kind == "mean":
        return np.zeros((SHAPE.n_heads, SHAPE.head_dim), np.float32)
    return {"index": np.zeros((2, 1), np.int64), "values": np.zeros((2, 1, 8), np.float32)}


def test_every_kind_has_an_example() -> None:
    assert set(EXAMPLES) == set(iv.INTERVENTION_KINDS)


@pytest.mark.parametrize("kind", sorted(iv.INTERVENTION_KINDS))
def test_a_kind_checks_describes_and_lowers_itself(kind: str) -> None:
    cls = iv.INTERVENTION_KINDS[kind]
    for method in ("check", "describe", "lower"):
        assert getattr(cls, method) is not getattr(iv.InterventionBase, method), method
    checks = Checks(SHAPE, shortest=3, n_examples=2, generates=True)
    for spec in EXAMPLES[kind]:
        assert list(spec.check(checks, "interventions[0]")) == []
        words = spec.describe(SHAPE)
        assert words and all(site in spec.sites() for site, _, _ in words)
        request = spec.reference_run()
        assert request is None or request.kind in ("mean", "source")
        edits = spec.lower(SHAPE, _reference(request))
        assert edits and all(e.op in OPS and e.site in spec.sites() for e in edits)
        assert isinstance(spec.acts_in_readout(), bool)


@pytest.mark.parametrize("name", sorted(OPS))
def test_every_op_takes_the_activation_and_the_mask_first(name: str) -> None:
    assert list(inspect.signature(OPS[name]).parameters)[:2] == ["x", "mask"]


def test_a_kind_names_its_problems_by_field() -> None:
    checks = Checks(SHAPE, shortest=2, n_examples=2)
    spec = iv.SteerKV(layer=9, heads=[1], vector=[1.0] * 3, positions=[5])
    paths = [p.path for p in spec.check(checks, "interventions[0]")]
    assert paths == [
        "interventions[0].layer",
        "interventions[0].heads[0]",
        "interventions[0].vector",
        "interventions[0].positions[0]",
    ]


def test_only_position_independent_edits_act_in_a_readout() -> None:
    acting = [s.kind for specs in EXAMPLES.values() for s in specs if s.acts_in_readout()]
    assert acting == [
        "ablate_heads",
        "ablate_heads",
        "scale_value_vectors",
        "zero_value_vectors",
        "add_vector",
    ]
