"""Logit lens and tuned lens against independent computations.

The logit lens is checked against RMSNorm and the unembedding written out by hand from the raw
transformers modules, and its last layer against the model's own logits (a plain transformers
forward; for Gemma 2, through its final-logit softcap). The tuned lens is trained on a few
dozen sentences and must beat the logit lens on held-out sentences in the middle layers.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from matplotlib.image import imread
from tolerance import assert_close, assert_ranks_agree
from typer.testing import CliRunner

import interlace as il
from interlace.analyses import (
    TunedLens,
    UnembeddingMismatchWarning,
    compare_lenses,
    first_top1_layer,
    lens_kl,
    logit_lens,
    read_lens,
    train_tuned_lens,
    unembedding_hash,
)
from interlace.cli import app

P = "The Eiffel Tower is in the city of"

SENTENCES = [
    "The Eiffel Tower is in the city of Paris, which is the capital of France.",
    "My grandmother baked bread every Sunday morning before church.",
    "Photosynthesis converts sunlight, water and carbon dioxide into sugar and oxygen.",
    "The stock market fell sharply after the central bank raised interest rates.",
    "He opened the door slowly and saw that the room was completely empty.",
    "Python is a popular programming language for data science and machine learning.",
    "The river flows through the valley and into the sea near the old harbour.",
    "She won the chess tournament after a long and difficult final game.",
    "Mount Everest is the highest mountain on Earth, located in the Himalayas.",
    "The children played football in the park until it started to rain.",
    "Water boils at one hundred degrees Celsius at sea level.",
    "The committee will meet next Tuesday to discuss the new budget proposal.",
    "In 1969, astronauts landed on the Moon for the first time.",
    "Please remember to turn off the lights when you leave the office.",
    "The cat jumped onto the table and knocked over a glass of milk.",
    "Shakespeare wrote many plays, including Hamlet, Macbeth and Othello.",
    "A healthy diet includes fruits, vegetables, whole grains and lean protein.",
    "The train to London leaves from platform nine at half past seven.",
    "Scientists discovered a new species of frog in the rainforest of Brazil.",
    "The teacher asked the students to write an essay about their summer holidays.",
    "Tokyo is the largest city in Japan and one of the busiest in the world.",
    "After dinner, we walked along the beach and watched the sun set.",
    "The company reported record profits for the third quarter of the year.",
    "Bees collect nectar from flowers and turn it into honey.",
    # held out
    "The old castle on the hill has stood there for more than eight hundred years.",
    "To make tea, boil water and pour it over the leaves in a warm pot.",
    "The doctor said that he needed to rest for at least two weeks.",
    "Electric cars are becoming more common as battery prices fall.",
    "The library is open from nine in the morning until six in the evening.",
    "Lions live in groups called prides, usually on the African savanna.",
    "The recipe calls for two cups of flour, one egg and a pinch of salt.",
    "During the storm, several trees fell across the road and blocked traffic.",
]
N_TRAIN = 24
MIDDLE = [10, 15, 20]


def capture(model: Any, prompts: Any, positions: str = "all", layers: Any = "all") -> Any:
    graph = il.Graph(capture=[il.Capture(site="resid_post", layers=layers, positions=positions)])
    return il.run(model, graph, prompts).captured["resid_post"]


def manual_logprobs(hf: Any, resid: torch.Tensor) -> torch.Tensor:
    """RMSNorm and the unembedding written out from the raw Llama modules."""
    norm = hf.model.norm
    x = resid.double()
    with torch.inference_mode():
        normed = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + norm.variance_epsilon)
        logits = (normed * norm.weight.double()).float() @ hf.lm_head.weight.T
        return torch.log_softmax(logits.double(), -1)


@pytest.fixture(scope="module")
def eiffel(smollm2: Any) -> Any:
    return logit_lens(smollm2, P, [" Paris", " London"], top_k=5)


@pytest.mark.slow
def test_logit_lens_equals_manual_norm_and_unembedding(smollm2: Any, eiffel: Any) -> None:
    resid = torch.as_tensor(capture(smollm2, P).values[0])  # [layer, position, d_model]
    expected = manual_logprobs(smollm2.hf, resid)  # [layer, position, vocab]
    got = eiffel.isel(example=0)
    paris = smollm2.tokenizer(" Paris", add_special_tokens=False)["input_ids"][0]
    np.testing.assert_allclose(
        got["target_logprob"].sel(target=" Paris").values, expected[..., paris], atol=1e-4
    )
    assert_ranks_agree(np.arange(5), expected, got["top_id"].values, tol=1e-4)
    np.testing.assert_allclose(got["top_logprob"].values, expected.topk(5, -1).values, atol=1e-4)
    assert_ranks_agree(
        got["target_rank"].sel(target=" Paris").values[..., None], expected, paris, 1e-4
    )
    # the lens changes across layers (so the comparison above can fail)
    assert len(set(got["top_id"].isel(position=-1, k=0).values.tolist())) > 5
    # the last layer's lens is the model's own next-token distribution, at every position
    with torch.inference_mode():
        ids = torch.tensor([smollm2.tokenizer(P)["input_ids"]])
        model_lp = torch.log_softmax(smollm2.hf(ids).logits[0].double(), -1)
    np.testing.assert_allclose(
        got["top_logprob"].isel(layer=-1).values, model_lp.topk(5, -1).values, atol=1e-4
    )
    assert list(got["input_token"].values[:2]) == ["The", " E"]


@pytest.mark.parametrize("name", ["gemma-3-270m", "qwen2.5-coder-0.5b-instruct"])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_logit_lens_on_real_models_equals_the_norm_written_out(name: str, dtype: str) -> None:
    """Gemma 3's final RMSNorm scales by ``1 + w`` (its weights are stored minus one) and its
    unembedding is the embedding; Qwen's unembedding is its own matrix. Written out here from
    the raw modules, in float64; in bfloat16 the lens accumulates in float32 and stays within
    bfloat16's error of the float32 reference."""
    model = il.load(name, dtype=dtype)
    hf = model.hf
    resid = torch.as_tensor(
        capture(model, P, layers=[3, hf.config.num_hidden_layers - 1]).values[0]
    )
    norm, x = hf.model.norm, resid.double()
    scale = 1.0 + norm.weight.double() if "gemma" in name else norm.weight.double()
    eps = norm.eps if "gemma" in name else norm.variance_epsilon  # as each family spells it
    with torch.inference_mode():
        normed = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * scale
        expected = torch.log_softmax(normed @ hf.lm_head.weight.double().T, -1)
    got = logit_lens(model, P, [" Paris"], top_k=5, layers=[3, hf.config.num_hidden_layers - 1])
    got = got.isel(example=0)
    tol = 1e-4 if dtype == "float32" else 0.05 * float(expected.abs().max())
    np.testing.assert_allclose(got["top_logprob"].values, expected.topk(5, -1).values, atol=tol)
    if dtype == "float32":
        assert_ranks_agree(np.arange(5), expected, got["top_id"].values, tol=1e-4)
    if "qwen" in name:
        assert not torch.equal(hf.lm_head.weight, hf.model.embed_tokens.weight)
    else:
        assert hf.lm_head.weight.data_ptr() == hf.model.embed_tokens.weight.data_ptr()


@pytest.mark.slow
def test_paris_becomes_top1_in_the_last_quarter(eiffel: Any) -> None:
    first = first_top1_layer(eiffel).isel(example=0, position=-1)
    paris_first = int(first.sel(target=" Paris"))
    ranks = eiffel["target_rank"].isel(example=0, position=-1).sel(target=" Paris").values
    print(f"' Paris' first top-1 at layer {paris_first}; rank by layer {ranks.tolist()}")
    assert paris_first >= 0.75 * 30  # layers 23-29 are the last quarter of 30
    assert (ranks[paris_first:] == 0).all()
    assert ranks[15] > 100  # in the middle of the model it is far from the top
    assert int(first.sel(target=" London")) == -1


def test_lens_reads_through_the_softcap(tiny_wrapped: Any) -> None:
    """Gemma 2's final-logit softcap: the last layer's lens equals the model's logits."""
    model = tiny_wrapped("gemma2")
    ids = [5, 17, 300, 42]
    ds = read_lens(model, capture(model, [ids]), targets=[7], top_k=3)
    with torch.inference_mode():
        logits = model.hf(torch.tensor([ids])).logits[0]
    assert logits.abs().max() < model.adapter.logit_softcap  # the cap is in force
    lp = torch.log_softmax(logits.double(), -1)
    np.testing.assert_allclose(
        ds["target_logprob"].isel(example=0, layer=-1, target=0).values, lp[:, 7], atol=1e-4
    )


def test_lens_refuses_bad_input_before_running(
    smollm2: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the model ran")

    monkeypatch.setattr("interlace.analyses.lens.run", refuse)
    with pytest.raises(il.ValidationError, match="layer 40 of a 30-layer model"):
        logit_lens(smollm2, P, layers=[3, 40])
    with pytest.raises(il.ValidationError, match="' Parisian' is 2 tokens"):
        logit_lens(smollm2, P, [" Paris", " Parisian"])
    with pytest.raises(il.ValidationError, match="not a residual-stream site"):
        logit_lens(smollm2, P, site="head_z")
    import xarray as xr

    narrow = xr.DataArray(np.zeros((1, 2, 8)), dims=("example", "layer", "d_model"))
    with pytest.raises(il.ValidationError, match="width 8"):
        read_lens(smollm2, narrow)


@pytest.mark.slow
def test_lens_command_json_and_plot(smollm2: Any, tmp_path: Path) -> None:
    plot = tmp_path / "lens.png"
    args = ["lens", "--prompt", P, "--target", " Paris", "--json", "--plot", str(plot)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["tokens"][-1] == " of" and len(report["layers"]) == 30
    assert report["targets"][0]["first_top1_layer_at_last_position"] == 28
    last = report["layers"][-1]["positions"][-1]
    assert last["top"][0]["token"] == " Paris" and last["targets"][0]["rank"] == 0
    image = imread(plot)  # the plots themselves: test_analyses_plots.py
    assert image.shape[0] > 300 and image.shape[1] > 300 and image.std() > 0.01
    bad = CliRunner().invoke(app, ["lens", "--prompt", P, "--target", " Parisian"])
    assert bad.exit_code == 2 and "--target: ' Parisian' is 2 tokens" in bad.output


@pytest.fixture(scope="module")
def sentences(smollm2: Any) -> Any:
    return capture(smollm2, SENTENCES, layers=[*MIDDLE, 29])


@pytest.mark.slow
def test_tuned_lens_beats_the_logit_lens_on_held_out_text(
    smollm2: Any, sentences: Any, tmp_path: Path
) -> None:
    train = sentences.isel(example=slice(0, N_TRAIN))
    test = sentences.isel(example=slice(N_TRAIN, None))
    lens = train_tuned_lens(smollm2, train, steps=12, batch_size=128, seed=0)
    assert lens.layers == MIDDLE
    kl = compare_lenses(smollm2, test, lens)
    print("held-out KL(final || lens), nats:")
    for layer in MIDDLE:
        at = kl.sel(layer=layer)
        print(
            f"  layer {layer}: logit {float(at.logit_lens):.2f}, tuned {float(at.tuned_lens):.2f}"
        )
    assert (kl.tuned_lens < 0.7 * kl.logit_lens).all()
    # the last layer needs no translator: both lenses are the model there, KL 0
    assert float(lens_kl(smollm2, test, lens, layers=[29])[0]) < 1e-6

    # the lens reads like the logit lens; equal to translating by hand, then the readout
    ds = read_lens(smollm2, test.isel(example=[0]), targets=[" the"], lens=lens, layers=[15])
    h = torch.as_tensor(test.isel(example=0).sel(layer=15).values[1:3])
    by_hand = manual_logprobs(smollm2.hf, h + h @ lens.weights[15] + lens.biases[15])
    assert_ranks_agree(np.arange(5), by_hand, ds["top_id"].isel(example=0, layer=0)[1:3], 1e-4)

    # saved without pickle, read back identically, hash of the unembedding kept
    path = lens.save(tmp_path / "lens")
    assert sorted(p.name for p in path.iterdir()) == ["lens.json", "translators.safetensors"]
    meta = json.loads((path / "lens.json").read_text())
    assert meta["unembedding_sha256"] == unembedding_hash(smollm2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = TunedLens.load(path, smollm2)
    for layer in MIDDLE:
        assert torch.equal(again.weights[layer], lens.weights[layer])
        assert torch.equal(again.biases[layer], lens.biases[layer])


def test_tuned_lens_warns_on_another_unembedding(tiny_wrapped: Any, tmp_path: Path) -> None:
    llama, mistral = tiny_wrapped("llama"), tiny_wrapped("mistral")
    data = capture(llama, [[5, 6, 7, 8, 9, 10]])
    lens = train_tuned_lens(llama, data, steps=2, batch_size=4)
    path = lens.save(tmp_path / "tiny")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        TunedLens.load(path, llama)
    with pytest.warns(UnembeddingMismatchWarning, match="another unembedding"):
        TunedLens.load(path, mistral)
    empty = TunedLens({}, {}, n_layers=2, d_model=64, unembedding_sha256="")
    x = torch.ones(3, 64)
    assert empty.translate(1, x) is x  # the last layer: the identity
    with pytest.raises(il.ValidationError, match="no translator for layer 0"):
        empty.translate(0, x)


@pytest.mark.slow
def test_tuned_lens_refuses_data_without_the_last_layer(smollm2: Any, sentences: Any) -> None:
    with pytest.raises(il.ValidationError, match="lacks the model's last layer 29"):
        train_tuned_lens(smollm2, sentences.sel(layer=MIDDLE))
    with pytest.raises(il.ValidationError, match="layer 12 is not in the data"):
        train_tuned_lens(smollm2, sentences, layers=[12])


def test_analyses_read_a_store_as_they_read_a_capture(tiny_wrapped: Any, tmp_path: Path) -> None:
    """A store opens lazily (dask) with -1 in token_index for padding; the lens, its KL and a
    mean difference read from it equal those read from the same capture."""
    from interlace.analyses import mean_difference

    model = tiny_wrapped("llama")
    records = [{"text": t, "label": i % 2 == 0} for i, t in enumerate(SENTENCES[:6])]
    options = dict(sites="resid_post", positions="all", batch_size=4, progress=False)
    il.cache(model, records, tmp_path / "s.zarr", **options)
    stored = il.open_store(tmp_path / "s.zarr")["resid_post"]
    assert stored.chunks is not None  # lazy
    captured = capture(model, [r["text"] for r in records]).assign_coords(
        label=("example", [r["label"] for r in records])
    )
    a, b = read_lens(model, stored, targets=[9]), read_lens(model, captured, targets=[9])
    width = captured.sizes["position"]
    np.testing.assert_array_equal(a["top_id"].isel(position=slice(0, width)), b["top_id"])
    np.testing.assert_allclose(
        a["target_logprob"].isel(position=slice(0, width)), b["target_logprob"], atol=1e-5
    )
    assert_close(lens_kl(model, stored), lens_kl(model, captured), rtol=1e-5)
    assert_close(mean_difference(stored, "label"), mean_difference(captured, "label"), rtol=1e-5)
