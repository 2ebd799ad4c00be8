"""Runs that the remote path must reproduce, shared by the simulation tests
(``test_remote_simulate.py``, nnsight's ``remote="local"``) and the tests against a real local
NDIF (``test_remote_ndif.py``).

Each case is a function of the model giving ``(graph, prompts)`` for ``il.run``; together they
reach every trace body (forward with each intervention kind and captures, generation, fork
readouts). :func:`compare` checks a run on another backend against the local one: logits and
log-probabilities to an absolute ``tol``, captures to ``tol`` relative to each vector's largest
magnitude (SmolLM2's position 0 reaches ~25,000), identical generated tokens, readouts'
log-probabilities to ``tol``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import reference as ref
import torch

import interlace as il

P = "The Eiffel Tower is in the city of"
SIX = "One two three four five six"
QUESTION = il.ChatPrompt(user="Is 91 a prime number? Answer Yes or No.")
REASONED = il.ChatPrompt(user="Is 91 a prime number? Explain in one sentence, then answer.")
READOUT = il.ForkReadout(
    at=il.Every(every=3), suffix=" The final answer is", choices=[" Yes", " No"], steer="both"
)

Case = Callable[[Any], tuple[il.Graph, list]]


def vector(n: int, seed: int) -> list[float]:
    return torch.randn(n, generator=torch.Generator().manual_seed(seed)).tolist()


def _steer(m: Any) -> il.AddVector:
    return il.AddVector(
        site="resid_post",
        layers=[8],
        vector=vector(m.shape.d_model, 1),
        coeff=0.5,
        normalize="resid_norm",
    )


def _one(spec: Callable[[Any], Any]) -> Case:
    return lambda m: (il.Graph(interventions=[spec(m)]), [P, SIX])


INTERVENTIONS: dict[str, Case] = {
    "ablate_heads_zero": _one(lambda m: il.AblateHeads(layer=5, heads=[0, 2, 7])),
    "ablate_heads_mean": _one(
        lambda m: il.AblateHeads(layer=5, heads=[0, 2, 7], mode="mean", reference=[SIX, P])
    ),
    "ablate_heads_patch": _one(
        lambda m: il.AblateHeads(
            layer=5, heads=[0, 2, 7], mode="patch", source=SIX, positions=[1, -1]
        )
    ),
    "scale_value_vectors": _one(
        lambda m: il.ScaleValueVectors(layer=4, indices=list(range(0, 1536, 3)), factor=3.0)
    ),
    "zero_value_vectors": _one(
        lambda m: il.ZeroValueVectors(layer=4, indices=list(range(0, 1536, 2)), positions=[-1])
    ),
    "negate_value_vectors": _one(
        lambda m: il.NegateValueVectors(layer=4, indices=list(range(0, 1536, 4)))
    ),
    "add_vector": _one(_steer),
    "steer_kv": lambda m: (  # cached keys/values change what later tokens see: generate
        il.Graph(
            interventions=[
                il.SteerKV(layer=3, target="both", vector=vector(m.shape.head_dim, 2), coeff=8.0)
            ],
            generate=il.Generate(max_new_tokens=6),
        ),
        [P, SIX],
    ),
    "patch": _one(lambda m: il.Patch(site="resid_pre", layer=6, positions=[1, -1], source=SIX)),
}


def capture_case(m: Any) -> tuple[il.Graph, list]:
    """Every site, under an intervention, on a padded batch."""
    sites = ["embed", "resid_pre", "resid_post", "attn_out", "mlp_out", "head_z", "mlp_act"]
    capture = [il.Capture(site=s, layers=[2, 9], positions="all") for s in sites[1:]]
    capture += [
        il.Capture(site="embed", positions="last"),
        il.Capture(site="k", layers=[3], positions=[0, -1]),
        il.Capture(site="v", layers=[3], positions="all"),
        il.Capture(site="logits", positions="last"),
    ]
    return il.Graph(interventions=[_steer(m)], capture=capture), [P, SIX]


def generate_case(m: Any) -> tuple[il.Graph, list]:
    """Greedy generation steered at every step."""
    return il.Graph(interventions=[_steer(m)], generate=il.Generate(max_new_tokens=8)), [P, SIX]


def fork_case(m: Any) -> tuple[il.Graph, list]:
    """A steered generation read out along the way (a fork over the prefix cache)."""
    graph = il.Graph(
        interventions=[_steer(m)], generate=il.Generate(max_new_tokens=10), readouts=[READOUT]
    )
    return graph, [REASONED]


CASES: dict[str, Case] = {
    **INTERVENTIONS,
    "capture": capture_case,
    "generate": generate_case,
    "fork": fork_case,
}


def clean(graph: il.Graph) -> il.Graph:
    """The graph without its interventions (the effect-size guard's baseline)."""
    return graph.model_copy(update={"interventions": []})


def assert_effect(m: Any, graph: il.Graph, prompts: list, out: il.RunResult) -> None:
    """Guard: the case's interventions change what it compares (so the comparison can fail):
    the generated tokens (or, for a response they leave alone, the readouts of it), else the
    captures, else the logits at every position."""
    if graph.generate is not None:
        base = il.run(m, clean(graph), prompts)
        if base.generated_ids.values.tolist() != out.generated_ids.values.tolist():
            return
        assert out.readouts is not None, "the steering did not change the generated tokens"
        changed = [
            not np.allclose(ds.logprob.values, base.readouts[b][key].logprob.values, atol=1e-3)
            for b, example in enumerate(out.readouts)
            for key, ds in example.items()
        ]
        assert all(changed), "the steering changed neither the response nor its readouts"
    elif graph.capture:
        base = il.run(m, clean(graph), prompts)
        assert not np.allclose(
            out.captured["resid_post"].values, base.captured["resid_post"].values, equal_nan=True
        ), "the steering did not change the captures"
    else:
        base = il.run(m, clean(graph), prompts, logits="all")
        edited = il.run(m, graph, prompts, logits="all")
        ref.assert_effect(
            np.nan_to_num(edited.logits.values), np.nan_to_num(base.logits.values), 1e-3
        )


def compare(local: il.RunResult, other: il.RunResult, tol: float) -> dict[str, float]:
    """Assert ``other`` equals ``local`` (see the module docstring); the maximum differences."""
    diffs = {
        "logits": _max_abs(local.logits.values, other.logits.values),
        "logprobs": _max_abs(local.logprobs().values, other.logprobs().values),
    }
    assert diffs["logits"] <= tol and diffs["logprobs"] <= tol, diffs
    assert local.captured.keys() == other.captured.keys()
    for key, expected in local.captured.items():
        got = other.captured[key]
        assert got.dims == expected.dims and got.shape == expected.shape, key
        assert np.array_equal(np.isnan(got.values), np.isnan(expected.values)), key
        ref.assert_close_rel(
            np.nan_to_num(got.values), np.nan_to_num(expected.values), tol, what=key
        )
        scale = np.abs(np.nan_to_num(expected.values)).max(axis=-1, keepdims=True)
        rel = np.abs(np.nan_to_num(got.values - expected.values)) / np.maximum(scale, 1e-12)
        diffs["captures_rel"] = max(diffs.get("captures_rel", 0.0), float(rel.max()))
        np.testing.assert_array_equal(got.token_index.values, expected.token_index.values)
    if local.generated_ids is not None:
        assert other.generated_ids.values.tolist() == local.generated_ids.values.tolist()
        assert other.generated_text == local.generated_text
    if local.readouts is not None:
        for ex_local, ex_other in zip(local.readouts, other.readouts, strict=True):
            for key, ds in ex_local.items():
                d = _max_abs(ds.logprob.values, ex_other[key].logprob.values)
                diffs["readout_logprob"] = max(diffs.get("readout_logprob", 0.0), d)
                assert d <= tol, (key, d)
                top = _max_abs(ds.top_logprob.values, ex_other[key].top_logprob.values)
                assert top <= tol, (key, top)
                assert len(ds.checkpoint) > 0
    return diffs


def _max_abs(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape
    assert np.array_equal(np.isnan(a), np.isnan(b))
    return float(np.nanmax(np.abs(a - b))) if a.size else 0.0
