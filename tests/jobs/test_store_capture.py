"""What a store holds equals an independent capture: plain PyTorch forward hooks on the raw
transformers model, one unbatched forward per prompt (``tests/reference.py``).

Prompts of different lengths in batches of two put padding inside every batch (left-padded
forwards, NaN-padded positions in the store); the last batch is short. Models: the bundled
SmolLM2 and a tiny random GPT-2 (another family's module layout).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import reference as ref
import torch

import interlace as il

PROMPTS = [
    "The Eiffel Tower is in the city of",
    "Hi",
    "One two three four five six",
    "A cat",
    "Paris is the capital of France, and Rome is",
]
SITES = ("resid_post", "mlp_act", "head_z")


def records() -> list[dict[str, Any]]:
    return [{"text": p, "id": f"ex{i}", "label": i % 2} for i, p in enumerate(PROMPTS)]


def hooked_capture(hf: Any, ids: list[int], layers: list[int]) -> dict[tuple[str, int], Any]:
    """Every (site, layer) of one unbatched forward, ``[seq, width]``, recorded by hooks."""
    seen: dict[tuple[str, int], list] = {(s, layer): [] for s in SITES for layer in layers}
    ref.forward(hf, ids, [(s, layer, ref.record(seen[s, layer])) for s, layer in seen])
    return {key: v[0][0] for key, v in seen.items()}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["smollm2", "gpt2"])
def test_store_equals_hooks_last_and_all_positions(
    name: str, smollm2: Any, tiny_wrapped: Any, tmp_path: Path
) -> None:
    model = smollm2 if name == "smollm2" else tiny_wrapped(name)
    layers = [0, model.shape.n_layers - 1]
    common = dict(sites=SITES, layers=layers, batch_size=2, progress=False)
    il.cache(model, records(), tmp_path / "last.zarr", positions="last", **common)
    il.cache(model, records(), tmp_path / "all.zarr", positions="all", **common)
    last = il.open_store(tmp_path / "last.zarr").load()
    every = il.open_store(tmp_path / "all.zarr").load()
    width = max(len(model.tokenizer(p)["input_ids"]) for p in PROMPTS)
    assert every.sizes["position"] == width and "position" not in last.dims

    for e, prompt in enumerate(PROMPTS):
        ids = model.tokenizer(prompt)["input_ids"]
        n = len(ids)
        expected = hooked_capture(model.hf, ids, layers)
        for site in SITES:
            for layer in layers:
                want = expected[site, layer]  # [n, width]
                what = f"{name} {site}[{layer}] example {e}"
                got_all = every[site].sel(layer=layer).isel(example=e).values
                got_all = got_all.reshape(got_all.shape[0], -1)
                ref.assert_close_rel(got_all[:n], want, 1e-5, what=f"{what} all")
                assert np.isnan(got_all[n:]).all(), f"{what}: padding is not NaN"
                got_last = last[site].sel(layer=layer).isel(example=e).values.reshape(-1)
                ref.assert_close_rel(got_last, want[n - 1], 1e-5, what=f"{what} last")
        # the labels of each example and of each position
        ex = every.isel(example=e)
        assert str(ex["id"].values) == f"ex{e}" and int(ex["label"]) == e % 2
        assert str(ex["prompt"].values) == prompt and int(ex["n_tokens"]) == n
        assert ex["token_index"].values.tolist() == list(range(n)) + [-1] * (width - n)
        assert ex["token_id"].values[:n].tolist() == ids
        assert (ex["token_id"].values[n:] == -1).all()
        assert ex["token_str"].values[:n].tolist() == [model.tokenizer.decode([i]) for i in ids]
        lx = last.isel(example=e)
        assert int(lx["token_index"]) == n - 1 and int(lx["token_id"]) == ids[-1]


def test_chat_messages_and_token_ids(tiny_wrapped: Any, tmp_path: Path) -> None:
    """Chat messages are rendered with the template (assistant prefix appended); token-id
    prompts are used as they are; both equal the hooks on those tokens."""
    model = tiny_wrapped("qwen2")
    tok = model.tokenizer
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Capital of France?"},
        {"role": "assistant", "content": "The capital is"},
    ]
    rendered = (
        tok.apply_chat_template(messages[:2], tokenize=False, add_generation_prompt=True)
        + "The capital is"
    )
    chat_ids = tok(rendered, add_special_tokens=False)["input_ids"]
    token_ids = [17, 4000, 99, 1234]
    data = [{"messages": messages, "kind": "chat"}, {"text": token_ids, "kind": "ids"}]
    il.cache(
        model,
        data,
        tmp_path / "s.zarr",
        sites="resid_post",
        layers=[1],
        positions="all",
        batch_size=2,
        progress=False,
    )
    ds = il.open_store(tmp_path / "s.zarr").load()
    assert str(ds["prompt"].values[0]) == rendered
    for e, ids in enumerate([chat_ids, token_ids]):
        n = len(ids)
        assert ds["token_id"].values[e, :n].tolist() == ids
        want = ref.capture(model.hf, ids, "resid_post", 1)
        got = ds["resid_post"].sel(layer=1).values[e, :n]
        ref.assert_close_rel(got, want, 1e-5, what=f"example {e}")


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_stores_the_float32_values_rounded(
    dtype: str, tiny_wrapped: Any, tmp_path: Path
) -> None:
    """float16 and bfloat16 stores hold exactly the float32 capture rounded to that dtype
    (bfloat16 kept as its bits, decoded to float32 by open_store), padding still NaN."""
    model = tiny_wrapped("llama")
    common = dict(sites="resid_post", positions="all", batch_size=2, progress=False)
    il.cache(model, records(), tmp_path / "f32.zarr", **common)
    il.cache(model, records(), tmp_path / "half.zarr", dtype=dtype, **common)
    full = il.open_store(tmp_path / "f32.zarr")["resid_post"].values
    half = il.open_store(tmp_path / "half.zarr")["resid_post"]
    assert half.dtype == (np.float16 if dtype == "float16" else np.float32)
    rounded = torch.from_numpy(full).to(getattr(torch, dtype)).float().numpy()
    np.testing.assert_array_equal(half.values.astype(np.float32), rounded)
    assert np.isnan(full).any() and not np.array_equal(rounded, full, equal_nan=True)


def test_bfloat16_rounding_is_torchs_bit_for_bit() -> None:
    """The store rounds to bfloat16 in numpy (reading and writing need no torch): every
    float32 rounding case -- ties both ways, carries into the exponent, subnormals, overflow
    to infinity -- gives torch's bits; NaN gives the store's one NaN, its fill value."""
    from interlace.stores.schema import BFLOAT16_NAN, from_bfloat16, to_bfloat16

    high = np.arange(1 << 16, dtype=np.uint32) << 16
    low = [0x0000, 0x0001, 0x7FFF, 0x8000, 0x8001, 0xFFFF]
    values = np.concatenate([(high | b).view(np.float32) for b in low])
    nan = np.isnan(values)
    want = torch.from_numpy(values).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    got = to_bfloat16(values)
    np.testing.assert_array_equal(got[~nan], want[~nan])
    assert (got[nan] == BFLOAT16_NAN).all() and np.isnan(from_bfloat16(got[nan])).all()


def test_interventions_from_a_graph_apply_while_caching(tiny_wrapped: Any, tmp_path: Path) -> None:
    """A steering vector added at layer 0 shows in layer 1's residual, as the same addition
    made by a forward hook does."""
    model = tiny_wrapped("gpt2")
    vector = torch.randn(64, generator=torch.Generator().manual_seed(0)).tolist()
    graph = il.Graph(
        interventions=[il.AddVector(site="resid_post", layers=[0], vector=vector, coeff=3.0)]
    )
    il.cache(
        model,
        records(),
        tmp_path / "s.zarr",
        sites="resid_post",
        layers=[1],
        positions="all",
        batch_size=2,
        graph=graph,
        progress=False,
    )
    ds = il.open_store(tmp_path / "s.zarr")
    assert ds.attrs["graph_sha256"] == graph.content_hash()
    for e, prompt in enumerate(PROMPTS):
        ids = model.tokenizer(prompt)["input_ids"]
        edit = ("resid_post", 0, ref.add_vector(vector, 3.0, "none", None))
        want = ref.capture(model.hf, ids, "resid_post", 1, edits=[edit])
        ref.assert_effect(want, ref.capture(model.hf, ids, "resid_post", 1), what=prompt)
        got = ds["resid_post"].sel(layer=1).values[e, : len(ids)]
        ref.assert_close_rel(got, want, 1e-5, what=f"example {e}")
