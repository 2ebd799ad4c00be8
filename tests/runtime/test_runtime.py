"""``il.run`` against independent plain-PyTorch implementations (``tests/reference.py``).

Every intervention test first checks that the intervention moves the logits by a clear margin
(so the comparison can fail), then that ``il.run`` equals hooks on the raw transformers modules,
or algebra on the weights, to a relative 1e-5. Models: the bundled SmolLM2 (Llama), the real
Gemma 3 270M (norms after each block, q/k norms, scaled embeddings, a BOS) and
Qwen2.5-Coder-0.5B (grouped-query attention, q/k/v biases, untied unembedding), and tiny random
models of GPT-2, Qwen2, Gemma 2 (a final-logit softcap) and GPT-NeoX (parallel residual).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import reference as ref
import torch

import interlace as il

P = "The Eiffel Tower is in the city of"
HI = "Hi"
SIX = "One two three four five six"
MODELS = [
    "smollm2",
    "gemma-3-270m",
    "qwen2.5-coder-0.5b-instruct",
    "gpt2",
    "qwen2",
    "gemma2",
    "gpt_neox",
]
REAL = ("smollm2", "gemma-3-270m", "qwen2.5-coder-0.5b-instruct")
SITES = (
    "embed",
    "resid_pre",
    "resid_post",
    "attn_out",
    "mlp_out",
    "head_z",
    "mlp_act",
    "k",
    "v",
    "logits",
)


@pytest.fixture(params=MODELS)
def model(request: pytest.FixtureRequest, named_model: Any, tiny_wrapped: Any) -> Any:
    name = request.param
    return named_model(name) if name in REAL else tiny_wrapped(name)


def get_model(name: str, smollm2: Any, tiny_wrapped: Any) -> Any:
    return smollm2 if name == "smollm2" else tiny_wrapped(name)


def tokens(m: Any, text: str) -> list[int]:
    return m.tokenizer(text)["input_ids"]


def mid(m: Any) -> int:
    """A layer in the middle of the model (the last one of a tiny model)."""
    return min(5, m.shape.n_layers - 1)


def vec(n: int, seed: int) -> list[float]:
    return torch.randn(n, generator=torch.Generator().manual_seed(seed)).tolist()


def resolve(positions: Any, n: int) -> list[int]:
    """Real prompt indices of a positions spec, written out independently of interlace."""
    if positions in ("all", "prompt"):
        return list(range(n))
    if positions == "last":
        return [n - 1]
    if isinstance(positions, dict):
        return list(range(n))[
            slice(positions.get("start"), positions.get("stop"), positions.get("step"))
        ]
    return [p % n for p in positions]


def run_logits(m: Any, spec_or_specs: Any, prompt: str = P) -> torch.Tensor:
    """``il.run`` logits at every position of one prompt, ``[seq, vocab]``."""
    specs = spec_or_specs if isinstance(spec_or_specs, list) else [spec_or_specs]
    out = il.run(m, il.Graph(interventions=specs), prompt, logits="all")
    assert out.prompt_tokens[0] == tokens(m, prompt)
    values = torch.as_tensor(out.logits.values[0])
    assert not torch.isnan(values).any()
    return values


def check(m: Any, spec: Any, edits: list, min_rel: float = 1e-3) -> None:
    """The guard (the hooks' edit changes the logits by at least ``min_rel`` of their scale,
    100x the comparison's tolerance: two heads of fourteen move Qwen's logits by 0.8%), then
    ``il.run`` equals the hooks."""
    ids = tokens(m, P)
    clean = ref.logits(m.hf, ids)
    expected = ref.logits(m.hf, ids, edits)
    ref.assert_effect(expected, clean, min_rel, what=str(spec))
    ref.assert_close_rel(run_logits(m, spec), expected, 1e-5, what=str(spec))


# ---- 1. each intervention against hooks --------------------------------------------------------


@pytest.mark.parametrize("mode", ["zero", "mean", "patch"])
def test_ablate_heads_matches_hooks(model: Any, mode: str) -> None:
    hf, layer, heads = model.hf, mid(model), [0, 2]
    n = ref.n_heads(hf)
    length = len(tokens(model, P))
    if mode == "zero":
        spec = il.AblateHeads(layer=layer, heads=heads)
        edit = ref.set_heads(heads, n, None, 0.0)
    elif mode == "mean":
        reference = [SIX, "Hello there, how are you today?"]
        positions = [1, 3, -1]
        spec = il.AblateHeads(
            layer=layer, heads=heads, mode="mean", reference=reference, positions=positions
        )
        mean = ref.mean_head_z(hf, layer, [tokens(model, r) for r in reference])
        edit = ref.set_heads(heads, n, resolve(positions, length), mean)
    else:
        positions = [0, 2, -1]
        spec = il.AblateHeads(
            layer=layer, heads=heads, mode="patch", source=SIX, positions=positions
        )
        src = tokens(model, SIX)
        z = ref.capture(hf, src, "head_z", layer)[resolve(positions, len(src))]
        edit = ref.set_heads(heads, n, resolve(positions, length), z.reshape(len(z), n, -1))
    check(model, spec, [("head_z", layer, edit)])


def test_mean_ablation_can_include_position_zero(smollm2: Any) -> None:
    m, layer, heads = smollm2, 3, [1, 4]
    reference = [SIX]
    spec = il.AblateHeads(
        layer=layer, heads=heads, mode="mean", reference=reference, exclude_position_zero=False
    )
    mean = ref.mean_head_z(m.hf, layer, [tokens(m, SIX)], skip_first=False)
    check(m, spec, [("head_z", layer, ref.set_heads(heads, ref.n_heads(m.hf), None, mean))])


VALUE_VECTOR_CASES = {
    "scale": (lambda **kw: il.ScaleValueVectors(factor=4.0, **kw), 4.0, "all"),
    "zero": (lambda **kw: il.ZeroValueVectors(**kw), 0.0, [1, -1]),
    "negate": (lambda **kw: il.NegateValueVectors(**kw), -1.0, {"start": 1, "stop": -1}),
}


@pytest.mark.parametrize("kind", list(VALUE_VECTOR_CASES))
def test_value_vectors_match_hooks(model: Any, kind: str) -> None:
    make, factor, positions = VALUE_VECTOR_CASES[kind]
    layer, length = mid(model), len(tokens(model, P))
    indices = [i for i in range(model.shape.d_mlp) if i % 5 in (0, 3)]
    spec = make(layer=layer, indices=indices, positions=positions)
    edit = ref.scale_neurons(indices, factor, resolve(positions, length))
    check(model, spec, [("mlp_act", layer, edit)])


ADD_CASES = {  # normalize -> (coeff, positions)
    "none": (3.0, "all"),
    "unit": (40.0, [1, -2]),
    "resid_norm": (0.5, {"start": 1, "step": 2}),
}


@pytest.mark.parametrize("normalize", list(ADD_CASES))
@pytest.mark.parametrize("site", ["resid_pre", "resid_post", "attn_out", "mlp_out"])
def test_add_vector_matches_hooks(model: Any, site: str, normalize: str) -> None:
    coeff, positions = ADD_CASES[normalize]
    layer, length = mid(model), len(tokens(model, P))
    v = vec(model.shape.d_model, seed=1)
    spec = il.AddVector(
        site=site, layers=layer, vector=v, coeff=coeff, positions=positions, normalize=normalize
    )
    edit = ref.add_vector(v, coeff, normalize, resolve(positions, length))
    check(model, spec, [(site, layer, edit)])


@pytest.mark.parametrize(
    "positions", ["all", "prompt", "last", [2, -1], [-3], {"start": 1, "stop": -1, "step": 3}]
)
@pytest.mark.parametrize("name", ["smollm2", "gpt2"])
def test_add_vector_positions(name: str, positions: Any, smollm2: Any, tiny_wrapped: Any) -> None:
    m = get_model(name, smollm2, tiny_wrapped)
    v = vec(m.shape.d_model, seed=2)
    spec = il.AddVector(site="resid_pre", layers=[0, 1], vector=v, coeff=2.0, positions=positions)
    edit = ref.add_vector(v, 2.0, "none", resolve(positions, len(tokens(m, P))))
    check(m, spec, [("resid_pre", 0, edit), ("resid_pre", 1, edit)])


@pytest.mark.parametrize(
    "site", ["embed", "resid_pre", "resid_post", "attn_out", "mlp_out", "head_z", "mlp_act"]
)
def test_patch_matches_hooks(model: Any, site: str) -> None:
    layer = None if site == "embed" else mid(model)
    positions = [1, -1, 0]
    spec = il.Patch(site=site, layer=layer, positions=positions, source=SIX)
    src = tokens(model, SIX)
    values = ref.capture(model.hf, src, site, layer)[resolve(positions, len(src))]
    edit = ref.replace_positions(resolve(positions, len(tokens(model, P))), values)
    check(model, spec, [(site, layer, edit)], min_rel=1e-3)


# ---- 2. head ablation by algebra on W_O --------------------------------------------------------


@pytest.mark.parametrize("name", ["smollm2", "gpt2", "qwen2", "gpt_neox"])
def test_head_ablation_by_algebra(name: str, smollm2: Any, tiny_wrapped: Any) -> None:
    """Zeroing heads removes exactly ``z_h @ W_O[h]`` from the attention output of the layer
    (families whose attention output is the output projection's, no norm after it)."""
    m = get_model(name, smollm2, tiny_wrapped)
    layer, heads = mid(m), [0, 3]

    def capture(site: str) -> il.Capture:
        return il.Capture(site=site, layers=[layer], positions="all")

    clean = il.run(m, il.Graph(capture=[capture("head_z"), capture("attn_out")]), P)
    z = torch.as_tensor(clean.captured["head_z"].sel(layer=layer).values[0])  # [pos, h, hd]
    attn = torch.as_tensor(clean.captured["attn_out"].sel(layer=layer).values[0])
    ablated = il.run(
        m,
        il.Graph(
            interventions=[il.AblateHeads(layer=layer, heads=heads)], capture=[capture("attn_out")]
        ),
        P,
    )
    got = torch.as_tensor(ablated.captured["attn_out"].sel(layer=layer).values[0])
    with torch.no_grad():
        w_o = m.adapter.weight(m.hf, "W_O", layer).double()  # [n_heads, head_dim, d_model]
        expected = attn.double() - sum(z[:, h].double() @ w_o[h] for h in heads)
    ref.assert_effect(got, attn, what="attn_out")
    ref.assert_close_rel(got, expected, 1e-5, what="attn_out after ablation")


# ---- 3. zeroing value vectors is zeroing rows of W_out -----------------------------------------


@pytest.mark.parametrize("name", ["smollm2", "gpt2", "gpt_neox"])
def test_zero_value_vectors_equals_zeroed_weights(
    name: str, smollm2: Any, tiny_wrapped: Any
) -> None:
    m = get_model(name, smollm2, tiny_wrapped)
    layer = mid(m)
    indices = list(range(3, m.shape.d_mlp, 3))
    got = run_logits(m, il.ZeroValueVectors(layer=layer, indices=indices))
    ids = tokens(m, P)
    clean = ref.logits(m.hf, ids)
    down = ref.decoder_layer(m.hf, layer).get_submodule(ref.modules(m.hf).down)
    # nn.Linear stores [d_model, d_mlp]; GPT-2's Conv1D stores [d_mlp, d_model]
    weight = down.weight if isinstance(down, torch.nn.Linear) else down.weight.T
    saved = weight[:, indices].clone()
    try:
        with torch.no_grad():
            weight[:, indices] = 0.0
        expected = ref.logits(m.hf, ids)
    finally:
        with torch.no_grad():
            weight[:, indices] = saved
    torch.testing.assert_close(ref.logits(m.hf, ids), clean, rtol=0, atol=0)  # restored
    ref.assert_effect(expected, clean)
    ref.assert_close_rel(got, expected, 1e-5, what="zeroed value vectors")


# ---- 4. captures -------------------------------------------------------------------------------


def _reference_site(m: Any, ids: list[int], site: str, layer: int | None) -> torch.Tensor:
    """``[seq, *site dims]`` of one site, read with hooks or from the returned KV cache."""
    if site in ("k", "v"):
        return ref.cached_kv(m.hf, ids, layer)["kv".index(site)]
    if site == "logits":  # the model's final logits (after Gemma 2's softcap)
        return ref.logits(m.hf, ids)
    x = ref.capture(m.hf, ids, site, layer)
    return x.reshape(len(ids), ref.n_heads(m.hf), -1) if site == "head_z" else x


def test_captures_match_hooks(model: Any) -> None:
    layers = sorted({0, mid(model), model.shape.n_layers - 1})
    graph = il.Graph(
        capture=[
            il.Capture(site=s, layers=None if s in ("embed", "logits") else layers, positions="all")
            for s in SITES
        ]
    )
    out = il.run(model, graph, P, logits="all")
    ids = tokens(model, P)
    for site in SITES:
        got = out.captured[site]
        assert list(got.coords["position"].values) == list(range(len(ids)))
        for layer in layers if "layer" in got.dims else [None]:
            sel = got if layer is None else got.sel(layer=layer)
            expected = _reference_site(model, ids, site, layer)
            values = torch.as_tensor(sel.values[0])
            if site == "head_z":  # [pos, head, head_dim]: compare per position
                values, expected = values.flatten(1), expected.flatten(1)
            ref.assert_close_rel(values, expected, 1e-5, what=f"{site}[{layer}]")
    final = ref.logits(model.hf, ids)
    ref.assert_close_rel(torch.as_tensor(out.logits.values[0]), final, 1e-5, what="logits")


def test_capture_dims_and_positions(smollm2: Any) -> None:
    m, ids = smollm2, tokens(smollm2, P)
    graph = il.Graph(
        capture=[
            il.Capture(site="resid_post", layers=[2, 4], positions="last", name="last"),
            il.Capture(site="mlp_act", layers=[4], positions=[-1, 0, 2], name="listed"),
            il.Capture(
                site="head_z",
                layers=[4],
                positions={"start": 2, "stop": 7, "step": 2},
                name="sliced",
            ),
        ]
    )
    out = il.run(m, graph, P)
    last = out.captured["last"]
    assert last.dims == ("example", "layer", "d_model")
    assert list(last.coords["layer"].values) == [2, 4]
    for layer in (2, 4):
        ref.assert_close_rel(
            last.sel(layer=layer).values[0], ref.capture(m.hf, ids, "resid_post", layer)[-1], 1e-5
        )
    listed = out.captured["listed"]
    assert listed.dims == ("example", "layer", "position", "neuron")
    assert list(listed.coords["position"].values) == [-1, 0, 2]
    assert listed.coords["token_index"].values.tolist() == [[len(ids) - 1, 0, 2]]
    act = ref.capture(m.hf, ids, "mlp_act", 4)
    ref.assert_close_rel(listed.values[0, 0], act[[len(ids) - 1, 0, 2]], 1e-5)
    sliced = out.captured["sliced"]
    assert sliced.dims == ("example", "layer", "position", "head", "head_dim")
    assert sliced.coords["token_index"].values.tolist() == [[2, 4, 6]]
    z = ref.capture(m.hf, ids, "head_z", 4)[[2, 4, 6]]
    ref.assert_close_rel(sliced.values[0, 0].reshape(3, -1), z, 1e-5)


# ---- 5. batched ragged prompts equal unbatched runs --------------------------------------------

RAGGED = [P, HI, SIX]
SAME_LENGTHS = ["The city of Rome is in the country of", "Hello", "Six five four three two one"]


def _batch_cases(m: Any) -> dict[str, list]:
    layer, heads = mid(m), [0, 2]
    v = vec(m.shape.d_model, seed=3)
    indices = list(range(0, m.shape.d_mlp, 2))
    return {
        "clean": [],
        "ablate_zero": [il.AblateHeads(layer=layer, heads=heads, positions=[0, -1])],
        "ablate_mean": [
            il.AblateHeads(layer=layer, heads=heads, mode="mean", reference=[SIX, "Hello there"])
        ],
        "ablate_patch": [
            il.AblateHeads(layer=layer, heads=heads, mode="patch", source=SIX, positions="last")
        ],
        "scale_value_vectors": [il.ScaleValueVectors(layer=layer, indices=indices, factor=-2.0)],
        "add_vector": [
            il.AddVector(
                site="resid_post", layers=[0, layer], vector=v, coeff=0.3, normalize="resid_norm"
            )
        ],
        "add_vector_positions": [
            il.AddVector(site="attn_out", layers=layer, vector=v, coeff=3.0, positions=[0, -1])
        ],
        "patch": [
            il.Patch(
                site="resid_pre",
                layer=layer,
                positions="last",
                source=[SIX, "Hello there", "Paris"],
            )
        ],
        # every position, from sources as long as each example
        "ablate_patch_all": [
            il.AblateHeads(layer=layer, heads=heads, mode="patch", source=SAME_LENGTHS)
        ],
        "patch_all": [il.Patch(site="mlp_out", layer=layer, source=SAME_LENGTHS)],
    }


def _graph(m: Any, specs: list) -> il.Graph:
    layer = mid(m)
    return il.Graph(
        interventions=specs,
        capture=[
            il.Capture(site="resid_post", layers=[layer], positions="all"),
            il.Capture(site="head_z", layers=[layer], positions="all"),
            il.Capture(site="k", layers=[layer], positions="all"),
            il.Capture(site="mlp_act", layers=[0], positions="last"),
            il.Capture(site="embed", positions=[0, -1]),
        ],
    )


BATCH_CASES = [
    "clean",
    "ablate_zero",
    "ablate_mean",
    "ablate_patch",
    "scale_value_vectors",
    "add_vector",
    "add_vector_positions",
    "patch",
    "ablate_patch_all",
    "patch_all",
]


@pytest.mark.parametrize("case", BATCH_CASES)
@pytest.mark.parametrize("name", ["smollm2", "gpt2", "qwen2"])
def test_batched_equals_unbatched(name: str, case: str, smollm2: Any, tiny_wrapped: Any) -> None:
    m = get_model(name, smollm2, tiny_wrapped)
    specs = _batch_cases(m)[case]
    alone_specs = [
        [  # one source per example: each unbatched run takes its own
            s.model_copy(update={"source": s.source[b]})
            if isinstance(getattr(s, "source", None), list)
            else s
            for s in specs
        ]
        for b in range(len(RAGGED))
    ]
    together = il.run(m, _graph(m, specs), RAGGED, logits="all")
    lengths = [len(tokens(m, p)) for p in RAGGED]
    assert lengths[0] > lengths[2] > lengths[1] == 1
    assert [len(tokens(m, p)) for p in SAME_LENGTHS] == lengths
    assert together.prompt_tokens == [tokens(m, p) for p in RAGGED]
    for b, (prompt, alone_spec) in enumerate(zip(RAGGED, alone_specs, strict=True)):
        alone = il.run(m, _graph(m, alone_spec), prompt, logits="all")
        n = lengths[b]
        ref.assert_close_rel(
            together.logits.values[b, :n],
            alone.logits.values[0],
            1e-4,
            what=f"logits of example {b}",
        )
        assert np.isnan(together.logits.values[b, n:]).all()
        for key, got in together.captured.items():
            row, index = got.values[b], got.coords["token_index"].values[b]
            want = alone.captured[key]
            if key in ("resid_post", "head_z", "k"):  # positions "all": NaN past the prompt
                assert np.isnan(row[:, n:]).all(), key
                assert (index[n:] == -1).all(), key
                row, index = row[:, :n], index[:n]
            np.testing.assert_array_equal(index, want.coords["token_index"].values[0])
            want = want.values[0]
            if key in ("head_z", "k"):  # compare each position's heads together
                row, want = row.reshape(*row.shape[:2], -1), want.reshape(*want.shape[:2], -1)
            ref.assert_close_rel(row, want, 1e-4, what=f"{key} of example {b} ({case})")


# ---- 6. several interventions in one graph -----------------------------------------------------


@pytest.mark.parametrize("name", ["smollm2", "gpt2"])
def test_two_interventions_match_hooks(name: str, smollm2: Any, tiny_wrapped: Any) -> None:
    m = get_model(name, smollm2, tiny_wrapped)
    first, second = (3, 5) if m.shape.n_layers > 5 else (0, 1)
    v = vec(m.shape.d_model, seed=4)
    indices = list(range(1, m.shape.d_mlp, 4))
    specs = [
        il.AddVector(site="resid_post", layers=first, vector=v, coeff=2.0),
        il.ZeroValueVectors(layer=second, indices=indices),
    ]
    edits = [
        ("resid_post", first, ref.add_vector(v, 2.0, "none", None)),
        ("mlp_act", second, ref.scale_neurons(indices, 0.0, None)),
    ]
    ids = tokens(m, P)
    clean = ref.logits(m.hf, ids)
    expected = ref.logits(m.hf, ids, edits)
    for one in edits:  # each edit matters on its own
        ref.assert_effect(expected, ref.logits(m.hf, ids, [one]), 1e-3)
    ref.assert_effect(expected, clean)
    ref.assert_close_rel(run_logits(m, specs), expected, 1e-5, what="two interventions")


@pytest.mark.parametrize("name", ["smollm2", "qwen2"])
def test_edits_on_one_site_apply_in_declaration_order(
    name: str, smollm2: Any, tiny_wrapped: Any
) -> None:
    m = get_model(name, smollm2, tiny_wrapped)
    layer = mid(m)
    v, w = vec(m.shape.d_model, seed=5), vec(m.shape.d_model, seed=6)
    plain = il.AddVector(site="resid_post", layers=layer, vector=v, coeff=4.0)
    scaled = il.AddVector(
        site="resid_post",
        layers=layer,
        vector=w,
        coeff=0.5,
        normalize="resid_norm",
        positions={"start": 1},
    )
    e_plain = ("resid_post", layer, ref.add_vector(v, 4.0, "none", None))
    e_scaled = (
        "resid_post",
        layer,
        ref.add_vector(w, 0.5, "resid_norm", list(range(1, len(tokens(m, P))))),
    )
    ids = tokens(m, P)
    forward = ref.logits(m.hf, ids, [e_plain, e_scaled])
    backward = ref.logits(m.hf, ids, [e_scaled, e_plain])
    ref.assert_effect(forward, backward, 1e-3, what="order")  # the order matters here
    ref.assert_close_rel(run_logits(m, [plain, scaled]), forward, 1e-5, what="plain, scaled")
    ref.assert_close_rel(run_logits(m, [scaled, plain]), backward, 1e-5, what="scaled, plain")


def test_head_edits_on_one_layer_compose(smollm2: Any) -> None:
    m, layer = smollm2, 4
    n = ref.n_heads(m.hf)
    reference = [SIX]
    mean = ref.mean_head_z(m.hf, layer, [tokens(m, SIX)])
    specs = [
        il.AblateHeads(layer=layer, heads=[1], positions=[-1]),
        il.AblateHeads(layer=layer, heads=[1, 5, 7], mode="mean", reference=reference),
        il.AblateHeads(layer=layer, heads=[7], positions=[2, 4]),
    ]
    length = len(tokens(m, P))
    edits = [
        ("head_z", layer, ref.set_heads([1], n, [length - 1], 0.0)),
        ("head_z", layer, ref.set_heads([1, 5, 7], n, None, mean)),
        ("head_z", layer, ref.set_heads([7], n, [2, 4], 0.0)),
    ]
    ids = tokens(m, P)
    expected = ref.logits(m.hf, ids, edits)
    ref.assert_effect(expected, ref.logits(m.hf, ids, edits[1:2]), 1e-3)
    ref.assert_close_rel(run_logits(m, specs), expected, 1e-5, what="three head edits")


# ---- 8. bad input fails validation before any forward ------------------------------------------


@pytest.fixture
def forwards(smollm2: Any) -> Any:
    """Counts forward passes of the bundled model while the test runs."""
    calls = [0]
    handle = smollm2.hf.register_forward_pre_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    yield calls
    handle.remove()


BAD = {  # name -> (spec, field path, words the message must contain)
    "layer": (
        lambda: il.AblateHeads(layer=40, heads=[0]),
        "interventions[0].layer",
        ["40", "30-layer", "0-29"],
    ),
    "head": (
        lambda: il.AblateHeads(layer=3, heads=[1, 12]),
        "interventions[0].heads[1]",
        ["head 12", "9 heads", "0-8"],
    ),
    "vector_width": (
        lambda: il.AddVector(site="resid_post", layers=3, vector=[1.0] * 100),
        "interventions[0].vector",
        ["width 100", "576", "d_model"],
    ),
    "kv_vector_width": (
        lambda: il.SteerKV(layer=3, vector=[1.0] * 576),
        "interventions[0].vector",
        ["width 576", "64", "head_dim"],
    ),
    "kv_head": (
        lambda: il.SteerKV(layer=3, heads=[3], vector=[1.0] * 64),
        "interventions[0].heads[0]",
        ["KV head 3", "0-2"],
    ),
    "value_vector": (
        lambda: il.ZeroValueVectors(layer=3, indices=[5, 2000]),
        "interventions[0].indices[1]",
        ["2000", "1536", "0-1535"],
    ),
    "position": (
        lambda: il.ScaleValueVectors(layer=3, indices=[5], factor=2.0, positions=[0, 50]),
        "interventions[0].positions[1]",
        ["position 50", "6 tokens", "-6 to 5"],
    ),
    "patch_position": (
        lambda: il.Patch(site="resid_pre", layer=2, positions=[-7], source=P),
        "interventions[0].positions[0]",
        ["position -7", "-6 to 5"],
    ),
    "mean_layer": (
        lambda: il.AblateHeads(layer=31, heads=[0], mode="mean", reference=[P]),
        "interventions[0].layer",
        ["31", "0-29"],
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_fails_before_any_forward(case: str, smollm2: Any, forwards: Any) -> None:
    make, path, words = BAD[case]
    with pytest.raises(il.ValidationError) as info:
        il.run(smollm2, il.Graph(interventions=[make()]), SIX)
    assert forwards[0] == 0
    [problem] = info.value.problems
    assert problem.path == path
    text = str(info.value)
    for word in words:
        assert word in text, f"{word!r} not in {text!r}"


def test_every_problem_is_reported_at_once(smollm2: Any, forwards: Any) -> None:
    graph = il.Graph(
        interventions=[make() for make, _, _ in BAD.values()],
        capture=[il.Capture(site="resid_post", layers=[29, 30], positions=[9])],
    )
    with pytest.raises(il.ValidationError) as info:
        il.run(smollm2, graph, [SIX, P])
    assert forwards[0] == 0
    paths = [p.path for p in info.value.problems]
    for i, (_, path, _) in enumerate(BAD.values()):
        assert path.replace("[0]", f"[{i}]", 1) in paths
    assert "capture[0].layers" in paths and "capture[0].positions[0]" in paths
    # the counter does count: a valid run is one forward
    il.run(smollm2, il.Graph(), SIX)
    assert forwards[0] == 1


# ---- inputs that must fail before any forward, or work -----------------------------------------

SOURCE_PROBLEMS = {  # name -> (spec, field path); the prompt is SIX (6 tokens)
    # the source "Hi" has one token: position 5 does not exist in it
    "patch_position_beyond_source": (
        lambda: il.Patch(site="resid_pre", layer=2, positions=[5], source=HI),
        "interventions[0].positions[0]",
    ),
    # "all" selects 1 source position but 6 target positions
    "patch_count_mismatch": (
        lambda: il.Patch(site="resid_pre", layer=2, positions="all", source=HI),
        "interventions[0].source",
    ),
    # a one-token reference leaves nothing to average once position 0 is excluded
    "mean_of_nothing": (
        lambda: il.AblateHeads(layer=2, heads=[0], mode="mean", reference=[HI]),
        "interventions[0].reference",
    ),
}


@pytest.mark.parametrize("case", list(SOURCE_PROBLEMS))
def test_source_problems_fail_before_any_forward(case: str, smollm2: Any, forwards: Any) -> None:
    make, path = SOURCE_PROBLEMS[case]
    with pytest.raises(il.ValidationError) as info:
        il.run(smollm2, il.Graph(interventions=[make()]), SIX)
    assert forwards[0] == 0
    assert [p.path for p in info.value.problems] == [path]


def test_token_id_prompts(smollm2: Any) -> None:
    m = smollm2
    ids, six = tokens(m, P), tokens(m, SIX)
    together = il.run(m, il.Graph(), [ids, six])
    assert together.prompt_tokens == [ids, six]
    ref.assert_close_rel(together.logits.values[0], ref.logits(m.hf, ids)[-1], 1e-4)


def test_one_token_id_prompt(smollm2: Any) -> None:
    ids = tokens(smollm2, P)
    out = il.run(smollm2, il.Graph(), ids)
    assert out.prompt_tokens == [ids]


def test_kv_capture_sees_steer_kv(smollm2: Any) -> None:
    m, layer, heads, coeff = smollm2, 3, [0, 2], 5.0
    v = vec(m.shape.head_dim, seed=7)
    graph = il.Graph(
        interventions=[
            il.SteerKV(
                layer=layer, heads=heads, target="keys", vector=v, coeff=coeff, positions=[1, -1]
            )
        ],
        capture=[il.Capture(site="k", layers=[layer], positions="all")],
    )
    got = torch.as_tensor(il.run(m, graph, P).captured["k"].sel(layer=layer).values[0])
    ids = tokens(m, P)
    expected = ref.cached_kv(m.hf, ids, layer)[0].clone()  # [seq, kv_heads, head_dim]
    for h in heads:
        for p in (1, len(ids) - 1):
            expected[p, h] += coeff * torch.tensor(v)
    ref.assert_close_rel(got.flatten(1), expected.flatten(1), 1e-5, what="steered keys")
