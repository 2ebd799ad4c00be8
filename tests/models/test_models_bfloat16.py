"""bfloat16 against float32 on a real model (Qwen2.5-Coder-0.5B-Instruct): the tolerances that
docs/models.md states hold for logits, captures, fork readouts; a short greedy answer is the same.

bfloat16 keeps 8 bits of mantissa, so a residual of norm 100 carries errors of ~0.5; what holds
is relative to magnitudes, measured here (2 cores): logits max |diff| 2.5% of the largest logit,
residual-stream captures 1.9% relative (Frobenius, position 0 left out), MLP activations 3.1%,
fork-readout log-odds 0.07. The bounds below leave about 2x headroom.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import interlace as il

pytestmark = pytest.mark.slow

QWEN = "qwen2.5-coder-0.5b-instruct"
PROMPTS = [
    "The Eiffel Tower is in the city of",
    "def fibonacci(n):\n    ",
    "Water boils at a temperature of",
]
LOGITS_REL = 0.05  # of the largest |logit| of the prompt
RESID_REL = 0.05  # relative Frobenius error, position 0 left out (massive activations)
MLP_REL = 0.08
LOG_ODDS_ABS = 0.25
TOP1_MARGIN = 0.5  # top-1 must agree where float32's top-1 leads the runner-up by this much


@pytest.fixture(scope="module")
def pair() -> tuple[Any, Any]:
    return il.load(QWEN), il.load(QWEN, dtype="bfloat16")


def rel(a: np.ndarray, b: np.ndarray) -> float:
    keep = ~np.isnan(a)
    return float(np.linalg.norm((a - b)[keep]) / np.linalg.norm(a[keep]))


def test_logits_and_captures_within_the_stated_tolerances(pair: tuple[Any, Any]) -> None:
    f32, b16 = pair
    assert f32.hf.dtype.itemsize == 4 and b16.hf.dtype.itemsize == 2
    graph = il.Graph(
        capture=[
            il.Capture(site="resid_post", layers="all", positions="all"),
            il.Capture(site="mlp_act", layers=[12], positions="last"),
        ]
    )
    a, b = (il.run(m, graph, PROMPTS) for m in pair)
    la, lb = a.logits.values, b.logits.values
    assert np.isfinite(lb).all()
    assert (np.abs(la - lb).max(-1) <= LOGITS_REL * np.abs(la).max(-1)).all()
    assert not np.array_equal(la, lb)  # the two really ran in different precisions
    top2 = np.sort(la, axis=-1)[:, -2:]
    sure = top2[:, 1] - top2[:, 0] > TOP1_MARGIN
    assert sure.any()
    assert (la.argmax(-1) == lb.argmax(-1))[sure].all()
    resid_a = a.captured["resid_post"].sel(position=slice(1, None)).values
    resid_b = b.captured["resid_post"].sel(position=slice(1, None)).values
    assert rel(resid_a, resid_b) < RESID_REL
    assert b.captured["resid_post"].attrs["dtype"] == "float32"
    assert rel(a.captured["mlp_act"].values, b.captured["mlp_act"].values) < MLP_REL


def test_interventions_act_alike_in_both_precisions(pair: tuple[Any, Any]) -> None:
    """An ablation moves the logits by much more than bfloat16's error, and by the same amount."""
    graph = il.Graph(
        interventions=[il.AblateHeads(layer=3, heads=list(range(14)))],
    )
    shifts = []
    for m in pair:
        clean = il.run(m, il.Graph(), PROMPTS[0]).logits.values[0]
        ablated = il.run(m, graph, PROMPTS[0]).logits.values[0]
        shifts.append(ablated - clean)
    scale = np.abs(shifts[0]).max()
    assert scale > 1.0
    assert np.abs(shifts[0] - shifts[1]).max() < 0.25 * scale


def test_fork_readout_and_greedy_answer(pair: tuple[Any, Any]) -> None:
    readout = il.ForkReadout(
        at=il.Every(every=4), suffix=" The final answer is", choices=[" Yes", " No"]
    )
    response = "Let me think. 91 = 7 * 13, so it is not prime. The answer is no."
    question = "Is 91 a prime number? Answer yes or no."
    a, b = (il.confidence(m, question, readout, response=response) for m in pair)
    assert a.log_odds.shape == b.log_odds.shape and a.log_odds.size >= 4
    assert np.abs(a.log_odds.values - b.log_odds.values).max() < LOG_ODDS_ABS
    answer = il.Graph(generate=il.Generate(max_new_tokens=12))
    chat = [il.ChatPrompt(user="What is the capital of France?")]
    texts = [il.run(m, answer, chat).generated_text[0] for m in pair]
    assert "Paris" in texts[0]
    assert texts[0] == texts[1]


def test_a_bfloat16_model_caches_into_a_bfloat16_store(pair: tuple[Any, Any], tmp_path) -> None:
    """The store holds exactly what the bfloat16 model computed (bfloat16 values are exact in
    the store's bfloat16), at the stated distance from float32."""
    f32, b16 = pair
    records = [{"text": p} for p in PROMPTS]
    il.cache(
        b16,
        records,
        tmp_path / "b16.zarr",
        sites="resid_post",
        layers=[6, 20],
        positions="last",
        dtype="bfloat16",
        batch_size=2,
        progress=False,
    )
    store = il.open_store(tmp_path / "b16.zarr").load()
    from interlace.stores import describe

    facts = describe(tmp_path / "b16.zarr")
    assert facts["sites"]["resid_post"]["dtype"] == "bfloat16", facts["sites"]
    graph = il.Graph(
        capture=[il.Capture(site="resid_post", layers=[6, 20], positions="last", dtype="bfloat16")]
    )
    expected = il.run(b16, graph, PROMPTS).captured["resid_post"].values
    np.testing.assert_array_equal(store["resid_post"].values, expected)
    reference = il.run(
        f32,
        graph.model_copy(
            update={"capture": [graph.capture[0].model_copy(update={"dtype": "float32"})]}
        ),
        PROMPTS,
    )
    assert rel(reference.captured["resid_post"].values, expected) < RESID_REL
