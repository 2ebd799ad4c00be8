"""Fork readouts against the slow way: a fresh forward of prompt + response[:t] + suffix
(+ a choice's earlier tokens) for every checkpoint t, in plain transformers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
import reference as ref
import torch
from tolerance import assert_close, assert_ranks_agree

import interlace as il
from interlace.runtime.prompts import encode

QUESTION = il.ChatPrompt(user="Is 91 a prime number? Answer Yes or No.")
RESPONSE = (
    "Let me think step by step. A prime number has no divisors other than 1 and itself. "
    "91 is odd, so it is not divisible by 2. The digits of 91 add up to 10, so it is not "
    "divisible by 3. It does not end in 0 or 5, so 5 is out. Now try 7: 7 times 13 is 91. "
    "So 91 has the divisors 7 and 13, which means it is not prime after all."
)
SUFFIX = " The final answer is"
CHOICES = [" Yes", " No", " not sure"]  # the last is three tokens


def ids(m: Any, text: str) -> list[int]:
    return m.tokenizer(text, add_special_tokens=False)["input_ids"]


def slow_logprobs(
    m: Any,
    prompt: list[int],
    response: list[int],
    checkpoints: Sequence[int],
    choices: Sequence[str],
    edits: Sequence = (),
) -> np.ndarray:
    """``[checkpoint, choice]`` summed log-probabilities: a fresh forward of
    prompt + response[:t] + suffix + the choice's tokens for every checkpoint and choice
    (single-token choices share one forward: their tokens are never fed)."""
    suffix = ids(m, SUFFIX)
    out = np.zeros((len(checkpoints), len(choices)))
    for c, t in enumerate(checkpoints):
        start = len(prompt) + t + len(suffix) - 1
        shared = torch.log_softmax(ref.logits(m.hf, prompt + response[:t] + suffix, edits), -1)
        for k, choice in enumerate(choices):
            tokens = ids(m, choice)
            lp = (
                shared
                if len(tokens) == 1
                else torch.log_softmax(
                    ref.logits(m.hf, prompt + response[:t] + suffix + tokens, edits), -1
                )
            )
            out[c, k] = sum(float(lp[start + i, tok]) for i, tok in enumerate(tokens))
    return out


@pytest.fixture(scope="module")
def prompt_ids(smollm2: Any) -> list[int]:
    return encode(smollm2.tokenizer, [QUESTION]).input_ids[0].tolist()


@pytest.mark.slow
def test_fork_equals_the_slow_way(smollm2: Any, prompt_ids: list[int]) -> None:
    m = smollm2
    response = ids(m, RESPONSE)
    assert 80 <= len(response) <= 120
    readout = il.ForkReadout(at=il.Every(every=10), suffix=SUFFIX, choices=CHOICES, chunk_size=4)
    ds = il.confidence(m, QUESTION, readout, response=RESPONSE)
    points = list(ds.token_index.values)
    assert points == list(range(10, len(response) + 1, 10))
    assert len(ids(m, CHOICES[2])) > 1
    slow = slow_logprobs(m, prompt_ids, response, points, CHOICES)
    assert np.abs(ds.logprob.values - slow).max() <= 1e-4
    # the readout moves along the response: it is not one number repeated
    assert np.ptp(ds.log_odds.values) > 0.5
    # derived quantities
    lp = ds.logprob.values
    np.testing.assert_allclose(ds.mass.values, np.exp(lp).sum(1), rtol=1e-6)
    np.testing.assert_allclose(ds.prob.values.sum(1), 1.0, rtol=1e-6)
    assert_close(ds.log_odds.values, lp[:, 0] - lp[:, 1], rtol=1e-6)
    assert (ds.low_mass.values == (ds.mass.values < readout.min_mass)).all()
    assert ds.text.values[0] == m.tokenizer.decode(response[:10])
    # top tokens after the suffix are the slow way's argmax
    seq = prompt_ids + response[: points[-1]] + ids(m, SUFFIX)
    assert_ranks_agree(0, ref.logits(m.hf, seq)[-1], ds.top_id.values[-1, :1], tol=1e-4)


@pytest.mark.slow
def test_chunking_does_not_change_the_numbers(smollm2: Any) -> None:
    small = il.ForkReadout(at=il.Every(every=7), suffix=SUFFIX, choices=CHOICES, chunk_size=2)
    whole = small.model_copy(update={"chunk_size": 100})
    a = il.confidence(smollm2, QUESTION, small, response=RESPONSE)
    b = il.confidence(smollm2, QUESTION, whole, response=RESPONSE)
    np.testing.assert_allclose(a.logprob.values, b.logprob.values, atol=1e-4)


@pytest.mark.slow
def test_checkpoints_after_each_match(smollm2: Any) -> None:
    m = smollm2
    readout = il.ForkReadout(
        at=il.AfterMatch(after="divisible by"), suffix=SUFFIX, choices=CHOICES[:2]
    )
    ds = il.confidence(m, QUESTION, readout, response=RESPONSE)
    response = ids(m, RESPONSE)
    assert len(ds.checkpoint) == RESPONSE.count("divisible by")
    for t in ds.token_index.values:
        assert m.tokenizer.decode(response[:t]).endswith("divisible by")
        assert not m.tokenizer.decode(response[: t - 1]).endswith("divisible by")


@pytest.mark.slow
@pytest.mark.parametrize("steer", ["generation", "both"])
def test_steered_generation_readout_equals_the_slow_way(
    smollm2: Any, prompt_ids: list[int], steer: str
) -> None:
    m, layer, coeff = smollm2, 8, 6.0
    g = torch.Generator().manual_seed(3)
    v = torch.randn(m.shape.d_model, generator=g)
    v = (v / v.norm()).tolist()
    readout = il.ForkReadout(at=il.Every(every=6), suffix=SUFFIX, choices=CHOICES[:2], steer=steer)
    steering = [
        il.AddVector(
            site="resid_post", layers=[layer], vector=v, coeff=coeff, normalize="resid_norm"
        )
    ]
    graph = il.Graph(
        interventions=steering, generate=il.Generate(max_new_tokens=24), readouts=[readout]
    )
    out = il.run(m, graph, [QUESTION])
    ds = out.readouts[0]["confidence"]
    response = [int(t) for t in out.generated_ids.values[0] if t >= 0]
    # the generation was steered: plain greedy decoding says something else
    clean = il.run(m, il.Graph(generate=il.Generate(max_new_tokens=24)), [QUESTION])
    assert clean.generated_ids.values[0].tolist() != out.generated_ids.values[0].tolist()
    if response[-1] == m.tokenizer.eos_token_id:
        response = response[:-1]
    hook = [("resid_post", layer, ref.add_vector(v, coeff, "resid_norm", None))]
    edits = hook if steer == "both" else []
    points = list(ds.token_index.values)
    slow = slow_logprobs(m, prompt_ids, response, points, CHOICES[:2], edits)
    assert np.abs(ds.logprob.values - slow).max() <= 1e-4
    if steer == "both":  # guard: reading with steering differs from reading without
        unsteered = slow_logprobs(m, prompt_ids, response, points, CHOICES[:2])
        assert np.abs(unsteered - slow).max() > 1e-2


@pytest.mark.slow
def test_batched_readouts_equal_single_ones(smollm2: Any) -> None:
    readout = il.ForkReadout(at=il.Every(every=4), suffix=SUFFIX, choices=CHOICES[:2])
    prompts = [
        il.ChatPrompt(user="Explain why the sky is blue."),
        il.ChatPrompt(user="Describe a cat in one long sentence."),
    ]
    graph = il.Graph(generate=il.Generate(max_new_tokens=12), readouts=[readout])
    together = il.run(smollm2, graph, prompts)
    assert all(len(r["confidence"].checkpoint) >= 2 for r in together.readouts)
    for b, p in enumerate(prompts):
        alone = il.run(smollm2, graph, [p])
        np.testing.assert_allclose(
            together.readouts[b]["confidence"].logprob.values,
            alone.readouts[0]["confidence"].logprob.values,
            atol=1e-4,
        )


@pytest.fixture
def forwards(smollm2: Any):
    calls = [0]
    handle = smollm2.hf.register_forward_pre_hook(lambda *a: calls.__setitem__(0, calls[0] + 1))
    yield calls
    handle.remove()


def test_bad_readouts_fail_before_any_forward(smollm2: Any, forwards: list[int]) -> None:
    with pytest.raises(il.ValidationError, match=r"choices.*at least 1"):
        il.Graph.from_dict(
            {"readouts": [{"kind": "fork_readout", "suffix": SUFFIX, "choices": []}]}
        )
    with pytest.raises(il.ValidationError, match=r"suffix"):
        il.Graph.from_dict(
            {"readouts": [{"kind": "fork_readout", "suffix": "", "choices": [" Yes"]}]}
        )
    beyond = il.ForkReadout(at=il.AtTokens(tokens=[5, 500]), suffix=SUFFIX, choices=[" Yes"])
    with pytest.raises(il.ValidationError, match=r"readout.at: checkpoint\(s\) \[500\] beyond"):
        il.confidence(smollm2, QUESTION, beyond, response=RESPONSE)
    # a readout in a graph that does not generate
    with pytest.raises(il.ValidationError, match="does not generate"):
        il.run(smollm2, il.Graph(readouts=[beyond]), [QUESTION])
    # steering the readout with a position-dependent edit
    last = il.AddVector(site="resid_post", layers=[3], vector=[0.0] * 576, positions="last")
    with pytest.raises(il.ValidationError, match=r"interventions\[0\].*fork readout"):
        il.run(
            smollm2,
            il.Graph(
                interventions=[last], generate=il.Generate(max_new_tokens=2), readouts=[beyond]
            ),
            [QUESTION],
        )
    assert forwards[0] == 0


def test_a_response_too_short_for_a_checkpoint_reads_nothing(smollm2: Any) -> None:
    r = il.ForkReadout(at=il.Every(every=50), suffix=SUFFIX, choices=[" Yes", " No"])
    ds = il.confidence(smollm2, QUESTION, r, response=" No.")
    assert ds.sizes["checkpoint"] == 0 and ds.sizes["choice"] == 2


def test_suffix_that_tokenizes_to_nothing(smollm2: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A tokenizer may drop a suffix entirely (e.g. only characters it normalises away)."""
    from interlace.runtime import fork

    real = fork.tokens_of
    monkeypatch.setattr(
        fork, "tokens_of", lambda tok, text: [] if text == "\u200b" else real(tok, text)
    )
    r = il.ForkReadout(suffix="\u200b", choices=[" Yes"])
    with pytest.raises(il.ValidationError, match="tokenizes to nothing"):
        il.confidence(smollm2, QUESTION, r, response=RESPONSE)
