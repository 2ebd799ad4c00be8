"""Weight-only analyses: head rankings from OV circuits (against the raw projection weights,
grouped-query attention included) and model comparison (a model against itself and against a
perturbed copy)."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
import torch

import interlace as il
from interlace.analyses import (
    ablation_spec,
    changed_matrices,
    compare_weights,
    direction_scores,
    embedding_distance_correlation,
    ov_circuit,
    rank_heads,
    value_vector_scores,
)
from interlace.models.model import Model


def raw_ov(hf: Any, layer: int, head: int) -> torch.Tensor:
    """A Llama-layout head's OV circuit from the raw v_proj / o_proj weights."""
    attn = hf.model.layers[layer].self_attn
    cfg = hf.config
    hd = (
        cfg.head_dim
        if getattr(cfg, "head_dim", None)
        else cfg.hidden_size // cfg.num_attention_heads
    )
    kv = head // (cfg.num_attention_heads // cfg.num_key_value_heads)
    w_v = attn.v_proj.weight[kv * hd : (kv + 1) * hd]  # [hd, d_model]
    w_o = attn.o_proj.weight[:, head * hd : (head + 1) * hd]  # [d_model, hd]
    return (w_v.T @ w_o.T).detach().double()


@pytest.mark.parametrize("name", ["smollm2", "qwen2"])
def test_ov_circuits_and_scores_equal_the_raw_weights(
    name: str, smollm2: Any, tiny_wrapped: Any
) -> None:
    model = smollm2 if name == "smollm2" else tiny_wrapped(name)
    s = model.shape
    assert s.n_kv_heads < s.n_heads  # grouped-query attention: kv(h) matters
    d = torch.randn(s.d_model, generator=torch.Generator().manual_seed(0))
    scores = direction_scores(model, d)
    assert scores.dims == ("layer", "head") and scores.shape == (s.n_layers, s.n_heads)
    unit = d.double() / d.double().norm()
    for layer in {0, s.n_layers - 1}:
        for head in range(s.n_heads):
            ov = raw_ov(model.hf, layer, head)
            np.testing.assert_allclose(ov_circuit(model, layer, head), ov, rtol=1e-4, atol=1e-6)
            assert float(scores.sel(layer=layer, head=head)) == pytest.approx(
                float((ov @ unit).norm()), rel=1e-4
            )
    assert scores.std() > 0.1 * scores.mean()  # the heads differ


def test_the_score_is_the_largest_write_over_unit_inputs(smollm2: Any) -> None:
    d = smollm2.weight("W_U")[7042].detach()  # " Paris"
    score = float(direction_scores(smollm2, d, layers=[20]).sel(layer=20, head=4))
    ov = ov_circuit(smollm2, 20, 4).double()
    t = d.double() / d.double().norm()
    x = torch.randn(2000, 576, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    x = x / x.norm(dim=-1, keepdim=True)
    assert (x @ ov @ t).abs().max() <= score * (1 + 1e-6)
    best = ov @ t / (ov @ t).norm()  # the maximising input
    assert float(best @ ov @ t) == pytest.approx(score, rel=1e-5)


def test_a_planted_head_ranks_first_and_becomes_an_ablation(tiny_wrapped: Any) -> None:
    base = tiny_wrapped("llama")
    planted = Model.wrap(copy.deepcopy(base.hf), base.tokenizer, name="planted")
    d = torch.zeros(planted.shape.d_model)
    d[5] = 1.0
    with torch.no_grad():  # head 3 of layer 1 writes strongly along d
        planted.hf.model.layers[1].self_attn.o_proj.weight[5, 3 * 16 : 4 * 16] += 20.0
    ranking = rank_heads(direction_scores(planted, d), k=3)
    assert (int(ranking["layer"][0]), int(ranking["head"][0])) == (1, 3)
    assert (np.diff(ranking["score"].values) <= 0).all()
    specs = ablation_spec(ranking, k=3)
    assert all(isinstance(s, il.AblateHeads) for s in specs)
    assert [s.layer for s in specs] == sorted({s.layer for s in specs})  # one spec per layer
    assert sorted((s.layer, h) for s in specs for h in s.heads) == sorted(
        zip(ranking["layer"].values.tolist(), ranking["head"].values.tolist(), strict=True)
    )
    graph = il.Graph(interventions=specs)
    graph.validate(planted.shape)
    clean = il.run(planted, il.Graph(), [[5, 6, 7, 8]]).logits.values
    ablated = il.run(planted, graph, [[5, 6, 7, 8]]).logits.values
    assert np.abs(ablated - clean).max() > 1e-3
    with pytest.raises(il.ValidationError, match="k"):
        ablation_spec(ranking, k=4)


def test_value_vector_scores(smollm2: Any) -> None:
    chosen = [(12, 100), (12, 900), (20, 5)]
    scores = value_vector_scores(smollm2, chosen)
    assert np.isnan(scores.sel(layer=slice(21, None))).all()  # heads after every neuron
    assert not np.isnan(scores.sel(layer=slice(0, 20))).any()
    w_in = {key: smollm2.weight("W_in", key[0])[key[1]].detach().double() for key in chosen}
    for layer, head in [(3, 2), (12, 8), (15, 0), (20, 1)]:
        ov = raw_ov(smollm2.hf, layer, head)
        fed = torch.stack([r for (lay, _), r in w_in.items() if lay >= layer])
        expected = float((ov @ fed.T).norm())  # Frobenius over the fed neurons
        assert float(scores.sel(layer=layer, head=head)) == pytest.approx(expected, rel=1e-4)
    relative = value_vector_scores(smollm2, chosen, relative=True)
    ov = raw_ov(smollm2.hf, 3, 2)
    assert float(relative.sel(layer=3, head=2)) == pytest.approx(
        float(scores.sel(layer=3, head=2)) / float(ov.norm()), rel=1e-4
    )
    ranked = rank_heads(scores)
    assert ranked.sizes["rank"] == 21 * 9 and int(ranked["layer"].max()) <= 20
    with pytest.raises(il.ValidationError, match="value_vectors\\[1\\]"):
        value_vector_scores(smollm2, [(3, 1), (3, 5000)])
    with pytest.raises(il.ValidationError, match="width 2"):
        direction_scores(smollm2, [1.0, 2.0])


@pytest.mark.slow
def test_a_model_against_itself_is_identical(smollm2: Any) -> None:
    same = compare_weights(smollm2, smollm2)
    assert same.sizes["matrix"] == 2 + 7 * 30
    np.testing.assert_allclose(same["cosine"], 1.0, atol=1e-12)
    np.testing.assert_allclose(same["norm_ratio"], 1.0, atol=1e-12)
    assert changed_matrices(same) == []
    assert embedding_distance_correlation(smollm2, smollm2, n_tokens=300) == pytest.approx(1.0)


def test_a_perturbed_copy_flags_the_perturbed_matrices(tiny_wrapped: Any) -> None:
    base = tiny_wrapped("llama")
    tuned = Model.wrap(copy.deepcopy(base.hf), base.tokenizer, name="perturbed")
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        q = tuned.hf.model.layers[1].self_attn.q_proj.weight
        q += 0.05 * torch.randn(q.shape, generator=gen)
        tuned.hf.model.layers[0].mlp.down_proj.weight.mul_(1.5)
    comparison = compare_weights(base, tuned)
    assert changed_matrices(comparison) == ["W_Q.1", "W_out.0"]
    assert float(comparison["norm_ratio"].sel(matrix="W_out.0")) == pytest.approx(1.5)
    assert float(comparison["cosine"].sel(matrix="W_out.0")) == pytest.approx(1.0)
    assert 0.9 < float(comparison["cosine"].sel(matrix="W_Q.1")) < 0.9999
    with pytest.raises(il.ValidationError, match="b.n_kv_heads: 4 here, 2 in a"):
        compare_weights(base, tiny_wrapped("gpt2"))


def test_embedding_distance_correlation_equals_scipy(smollm2: Any, tiny_wrapped: Any) -> None:
    from scipy.spatial.distance import pdist
    from scipy.stats import pearsonr

    from interlace.analyses import shared_tokens

    tiny = tiny_wrapped("gpt2")  # another width (64), same tokenizer
    r = embedding_distance_correlation(smollm2, tiny, n_tokens=200, seed=5)
    shared = shared_tokens(smollm2.tokenizer, tiny.tokenizer)
    pick = torch.randperm(len(shared), generator=torch.Generator().manual_seed(5))[:200]
    ids = [shared[i][1] for i in sorted(pick.tolist())]
    ea = smollm2.weight("W_E").detach().double()[ids].numpy()
    eb = tiny.weight("W_E").detach().double()[ids].numpy()
    expected = pearsonr(pdist(ea, "cosine"), pdist(eb, "cosine")).statistic
    assert r == pytest.approx(expected, abs=1e-9)
    assert abs(r) < 0.1  # random embeddings share nothing with trained ones
    assert embedding_distance_correlation(smollm2, smollm2, n_tokens=50, metric="euclidean") == (
        pytest.approx(1.0)
    )
