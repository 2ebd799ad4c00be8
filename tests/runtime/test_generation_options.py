"""Generation options: greedy answers, seeded sampling, stop strings, end-of-sequence cuts."""

from __future__ import annotations

import pytest
import torch

import interlace as il
from interlace.runtime.prompts import render

QUESTION = il.ChatPrompt(user="What is the capital of France?")


@pytest.fixture(scope="module")
def smol() -> il.Model:
    return il.load()


@pytest.mark.slow
def test_greedy_chat_answer_stops_at_end_of_sequence(smol: il.Model) -> None:
    out = il.run(smol, il.Graph(generate=il.Generate(max_new_tokens=16)), [QUESTION])
    assert out.generated_text[0] == "The capital of France is Paris.<|im_end|>"
    ids = out.generated_ids.values[0]
    end = list(ids).index(smol.tokenizer.eos_token_id)
    assert (ids[end + 1 :] == -1).all()
    # the same tokens as plain transformers generate, which stops there by itself
    enc = smol.tokenizer(render(smol.tokenizer, QUESTION)[0],
                         add_special_tokens=False, return_tensors="pt")
    with torch.inference_mode():
        ref = smol.hf.generate(**enc, max_new_tokens=16, do_sample=False)
    assert ids[: end + 1].tolist() == ref[0, enc.input_ids.shape[1]:].tolist()


@pytest.mark.slow
def test_seeded_sampling_repeats_and_seeds_differ(smol: il.Model) -> None:
    def sample(seed: int) -> list[int]:
        g = il.Graph(generate=il.Generate(max_new_tokens=12, do_sample=True, temperature=1.5,
                                          seed=seed))
        return il.run(smol, g, ["Once upon a time"]).generated_ids.values[0].tolist()

    first = sample(1)
    assert sample(1) == first
    assert any(sample(s) != first for s in (2, 3, 4))


@pytest.mark.slow
def test_stop_string_cuts_the_text(smol: il.Model) -> None:
    g = il.Graph(generate=il.Generate(max_new_tokens=16, stop=[" France"]))
    out = il.run(smol, g, [QUESTION])
    assert out.generated_text[0] == "The capital of France"
    n = int((out.generated_ids.values[0] >= 0).sum())
    assert smol.tokenizer.decode(out.generated_ids.values[0][:n]) == "The capital of France"
