"""Generation with interventions against plain transformers: ``hf.generate`` with the same
forward hooks active at every step, and greedy decoding by hand with the KV cache edited the
way ``SteerKV`` declares (``tests/reference.py``). Every test first checks that the
intervention changes the generated tokens, so the comparison can fail."""

from __future__ import annotations

from typing import Any

import pytest
import reference as ref
import torch

import interlace as il

P = "The Eiffel Tower is in the city of"
HI = "Hi"
NEW = 12


def get_model(name: str, smollm2: Any, tiny_wrapped: Any) -> Any:
    return smollm2 if name == "smollm2" else tiny_wrapped(name)


def tokens(m: Any, text: str) -> list[int]:
    return m.tokenizer(text)["input_ids"]


def eos_ids(m: Any) -> list[int]:
    eos = m.hf.generation_config.eos_token_id
    return eos if isinstance(eos, list) else [eos]


def vec(n: int, seed: int) -> list[float]:
    return torch.randn(n, generator=torch.Generator().manual_seed(seed)).tolist()


def generated(m: Any, specs: list, prompts: Any, new: int = NEW) -> Any:
    graph = il.Graph(interventions=specs, generate=il.Generate(max_new_tokens=new))
    return il.run(m, graph, prompts)


def row(out: Any, b: int = 0) -> list[int]:
    """Example b's generated tokens up to its end-of-sequence token (-1 fills the rest)."""
    ids = out.generated_ids.values[b].tolist()
    return [t for t in ids if t >= 0]


def prompt_positions(positions: Any, n: int) -> tuple[list[int], bool]:
    """(prompt indices edited in the prompt's forward, whether each new token is edited)."""
    if positions == "all":
        return list(range(n)), True
    if positions == "prompt":
        return list(range(n)), False
    if positions == "generated":
        return [], True
    if positions == "last":
        return [n - 1], True
    return [p % n for p in positions], False


# ---- steering during generation ----------------------------------------------------------------

STEER_CASES = [
    ("smollm2", "all"),
    ("smollm2", "prompt"),
    ("smollm2", "generated"),
    ("smollm2", "last"),
    ("smollm2", [1, -1]),
    ("qwen2", "all"),
    ("qwen2", "generated"),
    ("gpt2", "all"),
    ("gpt2", "last"),
    ("gemma2", "all"),
    ("gpt_neox", "generated"),
]


@pytest.mark.parametrize(("name", "positions"), STEER_CASES)
def test_steering_matches_hooked_generate(
    name: str, positions: Any, smollm2: Any, tiny_wrapped: Any
) -> None:
    m = get_model(name, smollm2, tiny_wrapped)
    layer = min(10, m.shape.n_layers - 1)
    v, coeff = vec(m.shape.d_model, seed=0), 6.0
    ids = tokens(m, P)
    at_prompt, on_generated = prompt_positions(positions, len(ids))

    def make(pos: Any) -> ref.Edit:
        return ref.add_vector(v, coeff, "none", pos)

    hook = ref.PerCall(make, at_prompt, on_generated)
    expected = ref.cut_at_eos(
        ref.generate(m.hf, ids, NEW, [("resid_post", layer, hook)]), eos_ids(m)
    )
    assert hook.calls == len(expected)  # one call per forward
    clean = ref.cut_at_eos(ref.generate(m.hf, ids, NEW), eos_ids(m))
    assert expected != clean, "the steering does not change the generation"

    spec = il.AddVector(site="resid_post", layers=layer, vector=v, coeff=coeff, positions=positions)
    out = generated(m, [spec], P)
    assert row(out) == expected
    assert out.generated_text[0] == m.tokenizer.decode(expected)


@pytest.mark.slow
def test_unsteered_generation_matches_generate(smollm2: Any) -> None:
    """A chat prompt the instruct model answers briefly: the row ends at end-of-sequence, -1
    after it, exactly where ``generate`` stops."""
    m = smollm2
    prompt = il.ChatPrompt(user="Reply with one word: what color is the sky?")
    out = generated(m, [], prompt, new=16)
    text = m.tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt.user}], tokenize=False, add_generation_prompt=True
    )
    ids = m.tokenizer(text, add_special_tokens=False)["input_ids"]
    assert out.prompt_tokens[0] == ids
    expected = ref.cut_at_eos(ref.generate(m.hf, ids, 16), eos_ids(m))
    assert expected[-1] in eos_ids(m) and len(expected) < 16, "expected an early end"
    got = out.generated_ids.values[0].tolist()
    assert got[: len(expected)] == expected
    assert got[len(expected) :] == [-1] * (16 - len(expected))


def test_a_generation_reads_every_prompt_position_when_asked(smollm2: Any) -> None:
    """``logits="all"`` and a ``logits`` capture with generation: the prompt's forward
    unembeds every position (``generate`` alone keeps the last one only)."""
    prompts = ["The cat sat on the", "One two three"]
    plain = il.run(smollm2, il.Graph(capture=[il.Capture(site="logits", positions="all")]), prompts)
    graph = il.Graph(
        capture=[il.Capture(site="logits", positions="all")],
        generate=il.Generate(max_new_tokens=2),
    )
    out = il.run(smollm2, graph, prompts, logits="all")
    torch.testing.assert_close(
        torch.as_tensor(out.captured["logits"].values),
        torch.as_tensor(plain.captured["logits"].values),
        equal_nan=True,
    )
    forward = il.run(smollm2, il.Graph(), prompts, logits="all")
    torch.testing.assert_close(
        torch.as_tensor(out.logits.values), torch.as_tensor(forward.logits.values), equal_nan=True
    )


@pytest.mark.parametrize("steer", [False, True])
@pytest.mark.parametrize("name", ["smollm2", "gpt2"])
def test_batched_generation_equals_unbatched(
    name: str, steer: bool, smollm2: Any, tiny_wrapped: Any
) -> None:
    m = get_model(name, smollm2, tiny_wrapped)
    layer = min(10, m.shape.n_layers - 1)
    specs = (
        [
            il.AddVector(
                site="resid_post",
                layers=layer,
                vector=vec(m.shape.d_model, 1),
                coeff=0.3,
                normalize="resid_norm",
            )
        ]
        if steer
        else []
    )
    prompts = [P, HI]
    together = generated(m, specs, prompts, new=8)
    if steer:
        plain = generated(m, [], prompts, new=8)
        assert [row(together, b) for b in (0, 1)] != [row(plain, b) for b in (0, 1)]
    for b, prompt in enumerate(prompts):
        alone = generated(m, specs, prompt, new=8)
        assert row(together, b) == row(alone), f"example {b}"
        assert together.generated_text[b] == alone.generated_text[0]
        ref.assert_close_rel(together.logits.values[b], alone.logits.values[0], 1e-4)


# ---- KV-cache steering -------------------------------------------------------------------------

KV_CASES = {  # name -> (target, heads, positions, coeff)
    "keys_all_heads_prompt": ("keys", "all", "prompt", 40.0),
    "values_one_head_listed": ("values", [1], [0, -1], 12.0),
    "both_one_head_all": ("both", [0], "all", 6.0),
    "values_last": ("values", "all", "last", 12.0),
}


@pytest.mark.parametrize("case", list(KV_CASES))
@pytest.mark.parametrize("name", ["smollm2", "qwen2", "gpt2", "gemma2", "gpt_neox"])
def test_steer_kv_matches_cache_edit(name: str, case: str, smollm2: Any, tiny_wrapped: Any) -> None:
    m = get_model(name, smollm2, tiny_wrapped)
    target, heads, positions, coeff = KV_CASES[case]
    layer, new = min(3, m.shape.n_layers - 1), 8
    v = vec(m.shape.head_dim, seed=2)
    ids = tokens(m, P)
    at_prompt, on_generated = prompt_positions(positions, len(ids))
    kv_heads = list(range(m.shape.n_kv_heads)) if heads == "all" else heads
    expected = ref.generate_steering_kv(
        m.hf, ids, new, layer, kv_heads, target, v, coeff, at_prompt, on_generated
    )
    clean = ref.generate_steering_kv(m.hf, ids, new, layer, kv_heads, target, v, 0.0, [], False)
    eos = eos_ids(m)
    # the hand-written decoding loop is right
    assert ref.cut_at_eos(clean, eos) == ref.cut_at_eos(ref.generate(m.hf, ids, new), eos)
    assert expected[0] == clean[0]  # the edit comes after the prompt's forward...
    assert expected != clean, "the KV edit does not change the generation"  # ...and matters

    spec = il.SteerKV(
        layer=layer, heads=heads, target=target, vector=v, coeff=coeff, positions=positions
    )
    out = generated(m, [spec], P, new=new)
    assert row(out) == ref.cut_at_eos(expected, eos_ids(m))
    # the prompt's own logits do not see the edit
    plain = il.run(m, il.Graph(), P)
    ref.assert_close_rel(out.logits.values[0], plain.logits.values[0], 1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("positions", ["prompt", "all", [0]])
def test_batched_steer_kv_equals_unbatched(positions: Any, smollm2: Any) -> None:
    m = smollm2
    spec = il.SteerKV(
        layer=2,
        heads=[0, 2],
        target="both",
        vector=vec(m.shape.head_dim, 3),
        coeff=8.0,
        positions=positions,
    )
    prompts = [P, HI]
    together = generated(m, [spec], prompts, new=8)
    plain = generated(m, [], prompts, new=8)
    assert row(together, 0) != row(plain, 0) or row(together, 1) != row(plain, 1)
    for b, prompt in enumerate(prompts):
        alone = generated(m, [spec], prompt, new=8)
        assert row(together, b) == row(alone), f"example {b}"
