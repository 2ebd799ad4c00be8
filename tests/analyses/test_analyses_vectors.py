"""Vector extraction and vocabulary projection against hand computations, and a steering check:
the French-minus-English mean difference of the bundled model's residual stream makes French
words likelier, far beyond random directions of the same norm."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
import xarray as xr
from tolerance import assert_close, assert_ranks_agree

import interlace as il
from interlace.analyses import (
    aligned_value_vectors,
    difference_pca,
    mean_difference,
    paired_differences,
    position_difference,
    project,
    random_directions,
    steering_effect,
    unembed,
    value_vector,
)

FRENCH = [
    "Je suis allé au marché ce matin",
    "Le chat dort sur le canapé",
    "Nous avons mangé une pizza hier soir",
    "Il fait très beau aujourd'hui",
    "Elle lit un livre dans le jardin",
    "Les enfants jouent dans le parc",
]
ENGLISH = [
    "I went to the market this morning",
    "The cat is sleeping on the sofa",
    "We ate a pizza last night",
    "The weather is very nice today",
    "She is reading a book in the garden",
    "The children are playing in the park",
]
LAYER = 12


@pytest.fixture(scope="module")
def languages(smollm2: Any) -> xr.DataArray:
    """resid_post at every position of French and English sentences, labelled by language."""
    graph = il.Graph(capture=[il.Capture(site="resid_post", layers=[4, LAYER], positions="all")])
    captured = il.run(smollm2, graph, FRENCH + ENGLISH).captured["resid_post"]
    return captured.assign_coords(language=("example", ["fr"] * 6 + ["en"] * 6))


def _real_tokens(data: xr.DataArray, layer: int, examples: slice) -> np.ndarray:
    """The rows of real tokens after position 0, written out with numpy."""
    x = data.sel(layer=layer).values[examples]
    index = data["token_index"].values[examples]
    return x[(index > 0) & ~np.isnan(x).any(-1)]


def test_mean_difference_equals_a_hand_computation(languages: xr.DataArray) -> None:
    v = mean_difference(languages, "language", groups=("fr", "en"))
    assert v.dims == ("layer", "d_model") and list(v["layer"].values) == [4, LAYER]
    for layer in (4, LAYER):
        fr = _real_tokens(languages, layer, slice(0, 6)).astype(np.float64)
        en = _real_tokens(languages, layer, slice(6, 12)).astype(np.float64)
        assert_close(v.sel(layer=layer), fr.mean(0) - en.mean(0), rtol=1e-6)
    unit = mean_difference(languages, "language", groups=("fr", "en"), normalize=True)
    np.testing.assert_allclose(np.linalg.norm(unit.values, axis=-1), 1.0, rtol=1e-6)
    # the default order puts the larger value first: "fr" > "en"
    np.testing.assert_allclose(mean_difference(languages, "language"), v)
    # without a position dim (the last token), and for one layer
    n_tokens = (languages["token_index"] >= 0).sum("position")
    last = languages.isel(position=n_tokens - 1).sel(layer=LAYER)
    one = mean_difference(last, "language", groups=("fr", "en"))
    x = last.values.astype(np.float64)
    assert_close(one, x[:6].mean(0) - x[6:].mean(0), rtol=1e-6)


def test_position_difference_pairs_positions_example_by_example(
    languages: xr.DataArray,
) -> None:
    n_tokens = (languages["token_index"].values >= 0).sum(1)
    first, last = np.ones(12, dtype=int), n_tokens - 1  # per example: token 1 and the last
    diffs = paired_differences(languages, first, last, layers=[LAYER])
    x = languages.sel(layer=LAYER).values
    by_hand = np.stack([x[e, 1] - x[e, last[e]] for e in range(12)])
    np.testing.assert_allclose(diffs.sel(layer=LAYER).values, by_hand, rtol=1e-6)
    mean = position_difference(languages, first, last, layers=[LAYER])
    assert_close(mean.sel(layer=LAYER), by_hand.mean(0), rtol=1e-5)
    with pytest.raises(il.ValidationError, match="padding at a chosen position"):
        paired_differences(languages, 0, int(n_tokens.max()) - 1)
    with pytest.raises(il.ValidationError, match="position 99 is not in the data"):
        paired_differences(languages, 0, 99)

    pca = difference_pca(diffs, n_components=3).sel(layer=LAYER)
    centred = by_hand - by_hand.mean(0)
    _, s, vt = np.linalg.svd(centred.astype(np.float64), full_matrices=False)
    np.testing.assert_allclose(np.abs(pca["components"].values), np.abs(vt[:3]), atol=1e-4)
    np.testing.assert_allclose(pca["explained_variance_ratio"], (s**2 / (s**2).sum())[:3], 1e-4)
    assert (pca["cosine_to_mean"] >= 0).all()


def test_random_directions_match_the_norm() -> None:
    v = xr.DataArray(np.arange(12.0).reshape(2, 6) + 1, dims=("layer", "d_model"))
    r = random_directions(v, 5, seed=3)
    assert r.dims == ("sample", "layer", "d_model") and r.shape == (5, 2, 6)
    norms = np.linalg.norm(r.values, axis=-1)
    np.testing.assert_allclose(norms, np.tile(np.linalg.norm(v.values, axis=-1), (5, 1)))
    np.testing.assert_array_equal(r, random_directions(v, 5, seed=3))
    assert not np.allclose(r, random_directions(v, 5, seed=4))


@pytest.mark.slow
def test_steering_with_the_mean_difference_beats_random_directions(
    smollm2: Any, languages: xr.DataArray
) -> None:
    v = mean_difference(languages, "language", groups=("fr", "en"))
    prompts = ["My brother and I", "Yesterday the teacher said that", "In the morning we"]
    effect = steering_effect(
        smollm2, v, LAYER, prompts, [" le", " la", " de"], n_random=6, seed=0, positions="all"
    )
    mean = effect["delta"].mean(("example", "target"))
    vector, randoms = float(mean.sel(condition="vector")), mean.values[1:]
    shown = [round(float(r), 2) for r in randoms]
    print(f"French words' log p: vector {vector:+.2f}, random {shown}")
    assert vector > 2.0 and vector > randoms.max() + 1.5
    assert (effect["delta"].sel(condition="vector") > 0).all()
    # the opposite direction moves them the other way
    back = steering_effect(smollm2, -v, LAYER, prompts, [" le"], n_random=0, positions="all")
    assert float(back["delta"].mean()) < 0


def test_steering_refuses_bad_input_before_running(
    smollm2: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the model ran")

    monkeypatch.setattr("interlace.analyses.vectors.run", refuse)
    with pytest.raises(il.ValidationError, match="width 5"):
        steering_effect(smollm2, np.ones(5), 3, ["Hi"], [" le"])
    with pytest.raises(il.ValidationError, match="layer 30 of a 30-layer model"):
        steering_effect(smollm2, np.ones(576), 30, ["Hi"], [" le"])
    with pytest.raises(il.ValidationError, match="' Parisian' is 2 tokens"):
        steering_effect(smollm2, np.ones(576), 3, ["Hi"], [" Parisian"])


def test_an_unembedding_row_projects_to_its_own_token(smollm2: Any) -> None:
    w_u = smollm2.weight("W_U").detach()
    tokens = torch.randint(
        0, smollm2.shape.vocab, (300,), generator=torch.Generator().manual_seed(0)
    )
    proj = project(smollm2, w_u[tokens], k=5)
    assert (proj["token_id"].sel(side="top", rank=0).values == tokens.numpy()).all()
    np.testing.assert_allclose(proj["score"].sel(side="top", rank=0), 1.0, atol=1e-5)
    paris = smollm2.tokenizer(" Paris", add_special_tokens=False)["input_ids"][0]
    one = project(smollm2, w_u[paris], k=5)
    assert one["token"].sel(side="top").values[0] == " Paris"
    # a raw dot product does not rank " Paris" first: large-norm tokens dominate it
    assert project(smollm2, w_u[paris], score="logit")["token_id"].values[0, 0] != paris


def test_projection_scores_equal_hand_computations(smollm2: Any) -> None:
    w_u = smollm2.weight("W_U").detach().double()
    d = value_vector(smollm2, 20, 7)
    np.testing.assert_array_equal(
        d, smollm2.hf.model.layers[20].mlp.down_proj.weight[:, 7].detach()
    )
    logit = project(smollm2, d, k=10, score="logit")
    expected = w_u @ d.double()
    top, ties = expected.topk(10), 1e-4 * float(expected.abs().max())
    assert_ranks_agree(np.arange(10), expected, logit["token_id"].sel(side="top"), ties)
    np.testing.assert_allclose(logit["score"].sel(side="top"), top.values, rtol=1e-4)
    assert_ranks_agree(np.arange(10), -expected, logit["token_id"].sel(side="bottom"), ties)
    # the antipode: the bottom tokens of d are the top tokens of -d
    anti = project(smollm2, -d, k=10, score="logit")
    assert_ranks_agree(np.arange(10), -expected, anti["token_id"].sel(side="top"), ties)
    cosine = project(smollm2, d, k=10)
    cos = expected / (w_u.norm(dim=-1) * d.double().norm())
    cos_ties = 1e-4 * float(cos.abs().max())
    assert_ranks_agree(np.arange(10), cos, cosine["token_id"].sel(side="top"), cos_ties)
    # through the final norm, "logit" scores are the logit lens's logits of a residual = d
    with torch.inference_mode():
        lens = unembed(smollm2, d[None])[0]
    normed = project(smollm2, d, k=10, score="logit", final_norm=True)
    np.testing.assert_allclose(normed["score"].sel(side="top"), lens.topk(10).values, rtol=1e-5)
    # several directions at once keep their leading dims
    stack = xr.DataArray(torch.stack([d, -d]).numpy(), dims=("sign", "d_model"))
    stack = stack.assign_coords(sign=["+", "-"])
    both = project(smollm2, stack, k=10)
    assert both["token_id"].dims == ("sign", "side", "rank")
    assert_ranks_agree(np.arange(10), cos, both["token_id"].sel(sign="+", side="top"), cos_ties)
    with pytest.raises(il.ValidationError, match="width 3"):
        project(smollm2, [1.0, 2.0, 3.0])


def test_aligned_value_vectors(smollm2: Any) -> None:
    d = value_vector(smollm2, 11, 321)
    found = aligned_value_vectors(smollm2, d, k=5)
    assert (int(found["layer"][0]), int(found["neuron"][0])) == (11, 321)
    assert float(found["cosine"][0]) == pytest.approx(1.0, abs=1e-5)
    # every cosine is what numpy says, and they come in descending order
    columns = (found["layer"].values, found["neuron"].values, found["cosine"].values)
    for layer, neuron, cos in zip(*columns, strict=True):
        w = smollm2.weight("W_out", int(layer))[int(neuron)].detach().double().numpy()
        dd = d.double().numpy()
        assert cos == pytest.approx(w @ dd / np.linalg.norm(w) / np.linalg.norm(dd), abs=1e-5)
    assert (np.diff(found["cosine"].values) <= 0).all()
    # the antipode counts with absolute=True
    flipped = aligned_value_vectors(smollm2, -d, layers=[11], k=1, absolute=True)
    assert int(flipped["neuron"][0]) == 321 and float(flipped["cosine"][0]) < -0.99
    # a token's unembedding: the value vectors that most promote it
    success = smollm2.tokenizer(" success", add_special_tokens=False)["input_ids"][0]
    behind = aligned_value_vectors(smollm2, smollm2.weight("W_U")[success], k=3)
    best = value_vector(smollm2, int(behind["layer"][0]), int(behind["neuron"][0]))
    promoted = project(smollm2, best, k=20)
    assert success in promoted["token_id"].sel(side="top").values
