"""The declarative layer: specs, graphs, round trips, content hashes, validation, vector files."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydantic
import pytest
from safetensors.numpy import save_file

from interlace.interventions import (
    INTERVENTION_KINDS,
    AblateHeads,
    AddVector,
    Capture,
    Generate,
    Graph,
    Layers,
    ModelShape,
    NegateValueVectors,
    Patch,
    ScaleValueVectors,
    Slice,
    SteerKV,
    StoreVector,
    ValidationError,
    VectorError,
    VectorFile,
    ZeroValueVectors,
    load_vector,
    resolve_positions,
    validate_graph,
)

REPO = Path(__file__).resolve().parents[2]
SHAPE = ModelShape(
    family="llama",
    n_layers=30,
    d_model=64,
    n_heads=8,
    n_kv_heads=2,
    head_dim=8,
    d_mlp=128,
    vocab=100,
)


def every_spec() -> list:
    """One of each spec, with non-default settings where there are any."""
    return [
        AblateHeads(layer=10, heads=[0, 3]),
        AblateHeads(layer=1, heads=[2], mode="mean", reference=["a b", "c"], positions="prompt"),
        AblateHeads(layer=2, heads=[1], mode="patch", source=["x", "y"], positions=[0, -1]),
        ScaleValueVectors(layer=3, indices=[5, 7], factor=2.5, positions={"start": 1, "step": 2}),
        ZeroValueVectors(layer=4, indices=[1]),
        NegateValueVectors(layer=5, indices=[127], positions="last"),
        AddVector(site="resid_post", layers="0-3,8", vector=[0.1] * 64, coeff=4.0),
        AddVector(site="mlp_out", layers=[1, 2], vector=[1.0] * 64, normalize="resid_norm"),
        SteerKV(layer=6, heads=[1], target="keys", vector=[0.5] * 8, coeff=-2.0),
        SteerKV(layer=7, vector=[1e-3] * 8, positions="generated"),
        Patch(site="resid_pre", layer=9, source="the source", positions=[-2, -1]),
        Patch(site="embed", source=["s1", "s2"]),
        Capture(site="resid_post", layers="all"),
        Capture(site="logits", name="final"),
        Capture(site="head_z", layers=[3], positions="all", dtype="bfloat16", name="z3"),
        Generate(max_new_tokens=8, do_sample=True, temperature=0.7, top_p=0.9, top_k=20, seed=1),
        Generate(max_new_tokens=1, stop=["\n\n", " The end"]),
    ]


def full_graph() -> Graph:
    specs = every_spec()
    return Graph(
        interventions=[s for s in specs if not isinstance(s, (Capture, Generate))],
        capture=[s for s in specs if isinstance(s, Capture)],
        generate=Generate(max_new_tokens=4, seed=0),
    )


def problems_of(call) -> list:
    with pytest.raises(ValidationError) as info:
        call()
    return info.value.problems


def paths_of(call) -> list[str]:
    return [p.path for p in problems_of(call)]


# --- construction -------------------------------------------------------------------------------


def test_every_intervention_kind_is_exercised():
    kinds = {s.kind for s in every_spec()}
    assert set(INTERVENTION_KINDS) <= kinds
    assert {"capture", "generate"} <= kinds


def test_kind_defaults_so_python_and_yaml_spell_the_same_thing():
    spec = AblateHeads(layer=10, heads=[0, 3])
    assert spec.kind == "ablate_heads" and spec.mode == "zero" and spec.positions == "all"
    assert Graph.from_yaml(
        "interventions:\n- {kind: ablate_heads, layer: 10, heads: [0, 3]}\n"
    ) == (Graph(interventions=[spec]))


def test_value_vector_edits_have_their_factor():
    assert ZeroValueVectors(layer=0, indices=[1]).factor == 0.0
    assert NegateValueVectors(layer=0, indices=[1]).factor == -1.0
    assert ScaleValueVectors(layer=0, indices=[1], factor=3).factor == 3.0


def test_sites_touched():
    assert AblateHeads(layer=0, heads=[0]).sites() == ("head_z",)
    assert ZeroValueVectors(layer=0, indices=[0]).sites() == ("mlp_act",)
    assert SteerKV(layer=0, vector=[1.0], target="values").sites() == ("v",)
    assert SteerKV(layer=0, vector=[1.0]).sites() == ("k", "v")
    assert AddVector(site="attn_out", layers=1, vector=[1.0]).sites() == ("attn_out",)


def test_specs_are_immutable():
    spec = AblateHeads(layer=10, heads=[0])
    with pytest.raises(pydantic.ValidationError):
        spec.layer = 3  # type: ignore[misc]


def test_vector_accepts_numpy_array_and_stores_plain_floats():
    v = np.linspace(-1, 1, 64, dtype=np.float32)
    spec = AddVector(site="resid_pre", layers=0, vector=v)
    assert isinstance(spec.vector, list) and spec.vector == v.tolist()
    np.testing.assert_array_equal(load_vector(spec.vector), v)


def test_capture_layers_default_to_all_for_per_layer_sites():
    assert Capture(site="resid_post") == Capture(site="resid_post", layers="all")
    assert Capture(site="embed").layers is None
    paths = paths_of(lambda: Graph.from_dict({"capture": [{"site": "logits", "layers": 3}]}))
    assert paths == ["capture[0].layers"]


def test_capture_keys_must_be_distinct():
    doc = {"capture": [{"site": "resid_post"}, {"site": "resid_post", "positions": "all"}]}
    [problem] = problems_of(lambda: Graph.from_dict(doc))
    assert problem.path == "capture[1].name" and "capture[0]" in problem.message
    named = {"capture": [{"site": "resid_post"}, {"site": "resid_post", "name": "every"}]}
    assert [c.key for c in Graph.from_dict(named).capture] == ["resid_post", "every"]


@pytest.mark.parametrize(
    ("fields", "path"),
    [
        ({"mode": "mean"}, "interventions[0].reference"),
        ({"mode": "patch"}, "interventions[0].source"),
        ({"mode": "zero", "source": "x"}, "interventions[0].source"),
        ({"mode": "zero", "reference": ["x"]}, "interventions[0].reference"),
        ({"mode": "mean", "reference": ["x"], "source": "y"}, "interventions[0].source"),
    ],
)
def test_ablation_mode_needs_its_inputs(fields, path):
    doc = {"interventions": [{"kind": "ablate_heads", "layer": 0, "heads": [0], **fields}]}
    [problem] = problems_of(lambda: Graph.from_dict(doc))
    assert problem.path == path and problem.allowed


def test_patch_layer_matches_site():
    assert paths_of(lambda: Patch.from_dict({"site": "resid_post", "source": "x"})) == ["layer"]
    assert paths_of(lambda: Patch.from_dict({"site": "embed", "layer": 1, "source": "x"})) == [
        "layer"
    ]


def test_layers_forms():
    assert Layers(5).resolve(30) == [5]
    assert Layers([12, 8, 8]).resolve(30) == [8, 12]
    assert Layers("all").resolve(4) == [0, 1, 2, 3]
    assert Layers("0-3, 8,10-11").resolve(30) == [0, 1, 2, 3, 8, 10, 11]
    with pytest.raises(ValueError, match="layer 40 of a 30-layer model"):
        Layers(40).resolve(30)
    with pytest.raises(ValueError, match="layers 28-99 of a 30-layer model"):
        Layers("0-3,28-99").resolve(30)
    for bad in ["3-1", "1-", "x", "", -1, [], [True], True, 1.5, "0-99999999999999999999x"]:
        with pytest.raises(pydantic.ValidationError):
            Layers(bad)
    # kept as written, so the document round-trips unchanged
    assert AddVector(site="resid_pre", layers="8,12,16", vector=[1.0]).to_dict()["layers"] == (
        "8,12,16"
    )


def test_huge_layer_range_is_not_expanded():
    spec = AddVector(site="resid_pre", layers="0-999999999999", vector=[1.0])
    with pytest.raises(ValueError, match="0-999999999999"):
        spec.layers.resolve(30)


def test_positions_resolve_on_real_tokens():
    assert resolve_positions("all", 4, 2) == [0, 1, 2, 3, 4, 5]
    assert resolve_positions("prompt", 4, 2) == [0, 1, 2, 3]
    assert resolve_positions("generated", 4, 2) == [4, 5]
    assert resolve_positions("last", 4) == [3]
    assert resolve_positions([0, -1, 1], 4) == [0, 3, 1]
    assert resolve_positions(Slice(start=1, stop=-1), 5) == [1, 2, 3]
    with pytest.raises(IndexError):
        resolve_positions([4], 4)
    with pytest.raises(pydantic.ValidationError):
        Slice(step=0)


# --- round trips and hashing ----------------------------------------------------------------------


@pytest.mark.parametrize("spec", every_spec(), ids=lambda s: s.kind)
def test_every_spec_round_trips(spec):
    cls = type(spec)
    for copy in (cls.from_yaml(spec.to_yaml()), cls.from_json(spec.to_json())):
        assert copy == spec
        assert copy.content_hash() == spec.content_hash()
        assert copy.to_dict() == spec.to_dict()


def test_full_graph_round_trips(tmp_path):
    graph = full_graph()
    for name in ("g.yaml", "g.yml", "g.json"):
        graph.save(tmp_path / name)
        loaded = Graph.load(tmp_path / name)
        assert loaded == graph and loaded.content_hash() == graph.content_hash()
    assert Graph.from_yaml(graph.to_yaml()) == graph
    assert Graph.from_json(graph.to_json()) == graph
    assert Graph.from_dict(graph.to_dict()) == graph


def test_yaml_is_readable():
    text = Graph(interventions=[AblateHeads(layer=10, heads=[0, 3])]).to_yaml()
    assert "heads: [0, 3]" in text and "kind: ablate_heads" in text
    assert "null" not in text  # absent optional fields are left out


def test_floats_round_trip_bit_exactly():
    awkward = [0.1, 1 / 3, -0.0, 5e-324, 1e16, 1.7976931348623157e308, 2.0**-1074 * 3, 1e-7]
    awkward += np.random.default_rng(0).standard_normal(8).astype(np.float32).tolist()
    graph = Graph(interventions=[AddVector(site="resid_pre", layers=0, vector=awkward)])

    def bits(g: Graph) -> bytes:
        return struct.pack(f"{len(awkward)}d", *g.interventions[0].vector)

    for copy in (Graph.from_yaml(graph.to_yaml()), Graph.from_json(graph.to_json())):
        assert bits(copy) == bits(graph)
        assert copy.content_hash() == graph.content_hash()


def test_hash_ignores_key_order_and_spelled_out_defaults():
    terse = {"interventions": [{"kind": "ablate_heads", "layer": 10, "heads": [0, 3]}]}
    spelled = {
        "generate": None,
        "capture": [],
        "interventions": [
            {
                "exclude_position_zero": True,
                "positions": "all",
                "mode": "zero",
                "heads": [0, 3],
                "layer": 10,
                "kind": "ablate_heads",
            }
        ],
        "schema_version": 1,
    }
    assert Graph.from_dict(terse).content_hash() == Graph.from_dict(spelled).content_hash()


def test_hash_changes_with_meaning():
    base = full_graph()
    changed = Graph(interventions=[AblateHeads(layer=10, heads=[0, 4])])
    assert len({base.content_hash(), changed.content_hash(), Graph().content_hash()}) == 3
    one = Graph(interventions=[AddVector(site="resid_pre", layers=0, vector=[1.0], coeff=1.0)])
    two = Graph(interventions=[AddVector(site="resid_pre", layers=0, vector=[1.0], coeff=1.5)])
    assert one.content_hash() != two.content_hash()


def _reverse_keys(value):
    if isinstance(value, dict):
        return {k: _reverse_keys(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [_reverse_keys(v) for v in value]
    return value


def test_hash_is_stable_across_processes(tmp_path):
    graph = full_graph()
    document = tmp_path / "reordered.json"
    document.write_text(json.dumps(_reverse_keys(graph.to_dict())))
    code = (
        "import sys; from interlace.interventions import Graph; "
        "print(Graph.load(sys.argv[1]).content_hash())"
    )
    hashes = set()
    for seed in ("1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(REPO)}
        out = subprocess.run(
            [sys.executable, "-c", code, str(document)], env=env, capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr
        hashes.add(out.stdout.strip())
    assert hashes == {graph.content_hash()}


def test_hash_follows_vector_file_content(tmp_path):
    np.save(tmp_path / "v.npy", np.ones(64, dtype=np.float32))
    graph = Graph(
        interventions=[AddVector(site="resid_pre", layers=0, vector=VectorFile(path="v.npy"))]
    )
    before = graph.content_hash(base_dir=tmp_path)
    assert before == graph.content_hash(base_dir=tmp_path)
    np.save(tmp_path / "v.npy", np.full(64, 2.0, dtype=np.float32))
    after = graph.content_hash(base_dir=tmp_path)
    assert after != before
    assert "sha256" not in graph.to_yaml()  # the document itself is unchanged
    # a missing file hashes as the document alone
    assert graph.content_hash(base_dir=tmp_path / "nowhere") not in {before, after}


# --- vector files ---------------------------------------------------------------------------------


def test_npy_and_safetensors_vectors_load(tmp_path):
    v = np.arange(8, dtype=np.float32)
    np.save(tmp_path / "v.npy", v)
    save_file({"only": v * 2}, str(tmp_path / "one.safetensors"))
    save_file({"a": v, "b": v * 3}, str(tmp_path / "two.safetensors"))
    np.testing.assert_array_equal(load_vector(VectorFile(path="v.npy"), tmp_path), v)
    np.testing.assert_array_equal(load_vector(VectorFile(path=str(tmp_path / "v.npy"))), v)
    np.testing.assert_array_equal(load_vector(VectorFile(path="one.safetensors"), tmp_path), v * 2)
    two = VectorFile(path="two.safetensors", key="b")
    np.testing.assert_array_equal(load_vector(two, tmp_path), v * 3)
    assert load_vector(two, tmp_path).dtype == np.float32
    with pytest.raises(VectorError, match="name one with 'key'"):
        load_vector(VectorFile(path="two.safetensors"), tmp_path)
    with pytest.raises(VectorError, match="no tensor 'c'"):
        load_vector(VectorFile(path="two.safetensors", key="c"), tmp_path)


def test_vector_file_path_accepts_pathlike_and_checks_suffix(tmp_path):
    assert VectorFile(path=tmp_path / "v.npy").path == str(tmp_path / "v.npy")
    assert paths_of(lambda: VectorFile.from_dict({"path": "v.pt"})) == ["path"]


class _Tripwire:
    """Unpickling this creates a file: proof that something was unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_pickled_npy_is_refused(tmp_path):
    marker = tmp_path / "unpickled"
    np.save(tmp_path / "evil.npy", np.array([_Tripwire(marker)], dtype=object), allow_pickle=True)
    with pytest.raises(VectorError, match="evil.npy"):
        load_vector(VectorFile(path="evil.npy"), tmp_path)
    assert not marker.exists()
    np.load(tmp_path / "evil.npy", allow_pickle=True)  # the tripwire works: it was armed
    assert marker.exists()


@pytest.mark.parametrize(
    ("array", "match"),
    [
        (np.ones((2, 8), dtype=np.float32), "1-D"),
        (np.array([1.0, np.nan]), "NaN"),
        (np.array([True, False]), "real numbers"),
        (np.array(["a", "b"]), "real numbers"),
    ],
)
def test_bad_vector_content_is_refused(tmp_path, array, match):
    np.save(tmp_path / "bad.npy", array)
    with pytest.raises(VectorError, match=match):
        load_vector(VectorFile(path="bad.npy"), tmp_path)


def test_store_vectors_parse_but_do_not_load_yet():
    ref = StoreVector(store="runs/a.zarr", variable="resid_post", sel={"layer": 3, "cond": "x"})
    spec = AddVector(site="resid_pre", layers=0, vector=ref)
    assert AddVector.from_yaml(spec.to_yaml()) == spec
    with pytest.raises(VectorError, match="store"):
        load_vector(ref)


# --- validation against a model -------------------------------------------------------------------


def single_problem(graph: Graph, **kwargs):
    problems = problems_of(lambda: validate_graph(graph, SHAPE, **kwargs))
    assert len(problems) == 1, problems
    return problems[0]


def test_full_graph_is_valid():
    validate_graph(full_graph(), SHAPE, prompt_lengths=[5, 7])
    full_graph().validate(SHAPE)


def test_layer_out_of_range():
    p = single_problem(Graph(interventions=[AblateHeads(layer=40, heads=[0])]))
    assert p.path == "interventions[0].layer"
    assert p.message == "layer 40 of a 30-layer model" and p.allowed == "0-29"
    p = single_problem(Graph(capture=[Capture(site="mlp_out", layers="28-31")]))
    assert (p.path, p.allowed) == ("capture[0].layers", "0-29") and "28-31" in p.message


def test_head_indices_out_of_range():
    p = single_problem(Graph(interventions=[AblateHeads(layer=1, heads=[0, 8])]))
    assert (p.path, p.allowed) == ("interventions[0].heads[1]", "0-7")
    p = single_problem(Graph(interventions=[SteerKV(layer=1, heads=[2], vector=[1.0] * 8)]))
    assert (p.path, p.allowed) == ("interventions[0].heads[0]", "0-1") and "KV head" in p.message


def test_value_vector_index_out_of_range():
    p = single_problem(Graph(interventions=[ZeroValueVectors(layer=1, indices=[3, 128])]))
    assert (p.path, p.allowed) == ("interventions[0].indices[1]", "0-127")


def test_vector_widths():
    p = single_problem(Graph(interventions=[AddVector(site="resid_pre", layers=0, vector=[1.0])]))
    assert p.path == "interventions[0].vector" and p.allowed == "width 64 (d_model)"
    p = single_problem(Graph(interventions=[SteerKV(layer=0, vector=[1.0] * 64)]))
    assert p.path == "interventions[0].vector" and p.allowed == "width 8 (head_dim)"


def test_vector_files_are_loaded_to_check(tmp_path):
    np.save(tmp_path / "wide.npy", np.ones(65, dtype=np.float32))
    (tmp_path / "junk.npy").write_bytes(b"not an array")
    specs = [
        AddVector(site="resid_pre", layers=0, vector=VectorFile(path=name))
        for name in ("wide.npy", "junk.npy", "missing.npy")
    ]
    problems = problems_of(lambda: Graph(interventions=specs).validate(SHAPE, base_dir=tmp_path))
    assert [p.path for p in problems] == [f"interventions[{i}].vector" for i in range(3)]
    assert "width 65" in problems[0].message
    assert "cannot read" in problems[1].message
    assert "no such file" in problems[2].message


def test_store_vector_is_a_problem_not_a_crash():
    ref = StoreVector(store="s.zarr", variable="v")
    p = single_problem(Graph(interventions=[AddVector(site="resid_pre", layers=0, vector=ref)]))
    assert "store" in p.message


def test_sites_missing_from_the_model():
    shape = ModelShape(**{**SHAPE.to_dict(), "sites": ("embed", "resid_pre", "logits")})
    graph = Graph(
        interventions=[
            AblateHeads(layer=0, heads=[0]),
            AddVector(site="resid_post", layers=0, vector=[1.0] * 64),
        ],
        capture=[Capture(site="resid_pre"), Capture(site="mlp_act")],
    )
    problems = problems_of(lambda: validate_graph(graph, shape))
    assert [p.path for p in problems] == [
        "interventions[0]",
        "interventions[1].site",
        "capture[1].site",
    ]
    assert all(p.allowed == "embed, resid_pre, logits" for p in problems)
    assert "head_z" in problems[0].message


def test_explicit_positions_outside_the_shortest_prompt():
    graph = Graph(interventions=[AblateHeads(layer=0, heads=[0], positions=[0, 5, -5, -6])])
    validate_graph(graph, SHAPE)  # without prompt lengths nothing to check
    problems = problems_of(lambda: validate_graph(graph, SHAPE, prompt_lengths=[9, 5]))
    assert [p.path for p in problems] == [
        "interventions[0].positions[1]",
        "interventions[0].positions[3]",
    ]
    assert problems[0].allowed == "-5 to 4" and "5 tokens" in problems[0].message
    empty = Graph(capture=[Capture(site="embed", positions=Slice(start=6))])
    assert single_problem(empty, prompt_lengths=[5]).path == "capture[0].positions"


def test_generated_positions_need_generate():
    spec = SteerKV(layer=0, vector=[1.0] * 8, positions="generated")
    p = single_problem(Graph(interventions=[spec]))
    assert p.path == "interventions[0].positions" and "generate" in p.allowed
    validate_graph(Graph(interventions=[spec], generate=Generate(max_new_tokens=2)), SHAPE)


def test_source_lists_match_the_examples():
    graph = Graph(interventions=[Patch(site="resid_pre", layer=0, source=["a", "b", "c"])])
    validate_graph(graph, SHAPE, prompt_lengths=[4, 4, 4])
    p = single_problem(graph, prompt_lengths=[4, 4])
    assert p.path == "interventions[0].source" and "one per example" in p.allowed


def test_every_problem_is_listed_at_once():
    graph = Graph(
        interventions=[
            AblateHeads(layer=40, heads=[9]),
            ScaleValueVectors(layer=1, indices=[200], factor=2.0),
            AddVector(site="resid_pre", layers=[1, 31], vector=[1.0, 2.0]),
        ],
        capture=[Capture(site="resid_post", positions="generated")],
    )
    with pytest.raises(ValidationError) as info:
        graph.validate(SHAPE)
    paths = [p.path for p in info.value.problems]
    assert paths == [
        "interventions[0].layer",
        "interventions[0].heads[0]",
        "interventions[1].indices[0]",
        "interventions[2].layers",
        "interventions[2].vector",
        "capture[0].positions",
    ]
    text = str(info.value)
    assert text.startswith("6 problems:")
    assert "interventions[0].layer: layer 40 of a 30-layer model (allowed: 0-29)" in text
    assert all(path in text for path in paths)


# --- bad documents --------------------------------------------------------------------------------


def test_unknown_kind_lists_the_valid_kinds():
    [p] = problems_of(lambda: Graph.from_yaml("interventions:\n- kind: ablate_head\n  layer: 1\n"))
    assert p.path == "interventions[0].kind" and "ablate_head" in p.message
    assert all(kind in p.allowed for kind in INTERVENTION_KINDS)
    [p] = problems_of(lambda: Graph.from_dict({"interventions": [{"layer": 1}]}))
    assert p.path == "interventions[0].kind" and "steer_kv" in p.allowed


def test_unknown_field_is_rejected_with_the_allowed_fields():
    doc = {"interventions": [{"kind": "ablate_heads", "layer": 1, "heads": [0], "hedas": [1]}]}
    [p] = problems_of(lambda: Graph.from_dict(doc))
    assert p.path == "interventions[0].hedas" and "heads" in p.allowed
    [p] = problems_of(lambda: Graph.from_dict({"captures": []}))
    assert p.path == "captures" and "capture" in p.allowed


def test_wrong_types_give_paths():
    doc = {
        "interventions": [
            {"kind": "ablate_heads", "layer": "10", "heads": [0, -1, True]},
            {"kind": "add_vector", "site": "embed", "layers": 0, "vector": [1.0, "x"]},
            {"kind": "patch", "site": "resid_pre", "layer": 0, "source": 5},
            {"kind": "steer_kv", "layer": 0, "vector": {"key": "a"}, "positions": "first"},
        ],
        "generate": {"max_new_tokens": 0},
        "schema_version": 2,
    }
    problems = problems_of(lambda: Graph.from_dict(doc))
    assert [p.path for p in problems] == [
        "schema_version",
        "interventions[0].layer",
        "interventions[0].heads[1]",
        "interventions[0].heads[2]",
        "interventions[1].site",
        "interventions[1].vector[1]",
        "interventions[2].source",
        "interventions[3].vector",
        "interventions[3].positions",
        "generate.max_new_tokens",
    ]
    by_path = {p.path: p for p in problems}
    assert "resid_pre" in by_path["interventions[1].site"].allowed
    assert "string" in by_path["interventions[2].source"].allowed  # one problem for the union
    assert "path" in by_path["interventions[3].vector"].allowed
    assert "'last'" in by_path["interventions[3].positions"].allowed


def test_missing_required_fields():
    problems = problems_of(lambda: Graph.from_dict({"interventions": [{"kind": "ablate_heads"}]}))
    assert [p.path for p in problems] == ["interventions[0].layer", "interventions[0].heads"]
    assert all("missing" in p.message for p in problems)


@pytest.mark.parametrize(
    "text",
    [
        "interventions: [",
        "- 1\n- 2\n",
        "interventions: 2001-13-01\n",
        "null",
        "a: !!python/name:os.system ''",
    ],
)
def test_unparseable_yaml_is_a_validation_error(text):
    with pytest.raises(ValidationError):
        Graph.from_yaml(text)


def test_bad_json_and_unknown_extension(tmp_path):
    with pytest.raises(ValidationError, match="not valid JSON"):
        Graph.from_json("{")
    with pytest.raises(ValidationError, match=".toml"):
        Graph().save(tmp_path / "g.toml")
    with pytest.raises(ValueError):
        Graph.from_json('{"interventions": [{"kind": "patch", "site": "embed", "source": NaN}]}')
