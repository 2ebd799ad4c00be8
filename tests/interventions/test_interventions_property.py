"""Properties of the declarative layer: arbitrary documents are either accepted or rejected with a
ValidationError (never another exception), and valid graphs round-trip exactly with a stable hash.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.numpy import save_file

from interlace.interventions import (
    INTERVENTION_KINDS,
    SITES,
    AblateHeads,
    AddVector,
    Capture,
    Generate,
    Graph,
    ModelShape,
    NegateValueVectors,
    Patch,
    ScaleValueVectors,
    Slice,
    SteerKV,
    ValidationError,
    VectorFile,
    ZeroValueVectors,
    validate_graph,
)

SHAPE = ModelShape(
    family="llama", n_layers=6, d_model=16, n_heads=4, n_kv_heads=2, head_dim=4, d_mlp=32, vocab=50
)
SETTINGS = settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
VECTOR_FILES = ["good.npy", "head.npy", "evil.npy", "junk.npy", "empty.npy", "two.safetensors"]
VECTOR_FILES += ["missing.npy", "missing.safetensors", "../x.npy", "~nobody/x.npy", "a.txt"]


@pytest.fixture(scope="module")
def vector_dir(tmp_path_factory):
    """Vector files good and bad, for documents to point at."""
    root = tmp_path_factory.mktemp("vectors")
    np.save(root / "good.npy", np.ones(16, dtype=np.float32))
    np.save(root / "head.npy", np.ones(4, dtype=np.float32))
    np.save(root / "evil.npy", np.array([object()], dtype=object), allow_pickle=True)
    (root / "junk.npy").write_bytes(b"\x93NUMPY garbage")
    (root / "empty.npy").write_bytes(b"")
    ones = np.ones(4, dtype=np.float32)
    save_file({"a": ones, "b": np.ones((2, 2), dtype=np.float32)}, str(root / "two.safetensors"))
    return root


# --- valid graphs ---------------------------------------------------------------------------------

floats = st.floats(allow_nan=False, allow_infinity=False)
texts = st.text(min_size=1, max_size=12)
some_layers = st.integers(0, 5) | st.lists(st.integers(0, 5), min_size=1, max_size=3)
some_layers |= st.sampled_from(["all", "0-3", "1,3", "0-1,4"])
heads = st.lists(st.integers(0, 3), min_size=1, max_size=3)
valid_positions = (
    st.sampled_from(["all", "prompt", "generated", "last"])
    | st.lists(st.integers(-3, 2), min_size=1, max_size=3)
    | st.builds(
        Slice,
        start=st.none() | st.integers(-3, 3),
        stop=st.none() | st.integers(-3, 3),
        step=st.none() | st.integers(1, 2),
    )
)
inline = st.sampled_from([1, 4, 16]).flatmap(lambda n: st.lists(floats, min_size=n, max_size=n))
vector_files = st.builds(
    VectorFile,
    path=st.sampled_from([f for f in VECTOR_FILES if "." in f[-12:] and not f.endswith(".txt")]),
)
sources = texts | st.lists(texts, min_size=1, max_size=3)

interventions = st.one_of(
    st.builds(AblateHeads, layer=st.integers(0, 5), heads=heads, positions=valid_positions),
    st.builds(
        AblateHeads,
        layer=st.integers(0, 5),
        heads=heads,
        mode=st.just("mean"),
        reference=st.lists(texts, min_size=1, max_size=2),
        exclude_position_zero=st.booleans(),
    ),
    st.builds(
        AblateHeads, layer=st.integers(0, 5), heads=heads, mode=st.just("patch"), source=sources
    ),
    st.builds(
        ScaleValueVectors,
        layer=st.integers(0, 5),
        indices=heads,
        factor=floats,
        positions=valid_positions,
    ),
    st.builds(ZeroValueVectors, layer=st.integers(0, 5), indices=heads),
    st.builds(NegateValueVectors, layer=st.integers(0, 5), indices=heads),
    st.builds(
        AddVector,
        site=st.sampled_from(["resid_pre", "resid_post", "attn_out", "mlp_out"]),
        layers=some_layers,
        vector=inline | vector_files,
        coeff=floats,
        positions=valid_positions,
        normalize=st.sampled_from(["none", "unit", "resid_norm"]),
    ),
    st.builds(
        SteerKV,
        layer=st.integers(0, 5),
        heads=st.just("all") | heads,
        target=st.sampled_from(["keys", "values", "both"]),
        vector=inline | vector_files,
        coeff=floats,
    ),
    st.builds(Patch, site=st.just("embed"), source=sources, positions=valid_positions),
    st.builds(Patch, site=st.just("head_z"), layer=st.integers(0, 5), source=sources),
)
captures = st.builds(
    Capture,
    site=st.sampled_from(list(SITES)),
    positions=valid_positions,
    dtype=st.sampled_from(["float32", "float16", "bfloat16"]),
    name=st.uuids().map(str),
)
generates = st.none() | st.builds(
    Generate,
    max_new_tokens=st.integers(1, 64),
    do_sample=st.booleans(),
    temperature=st.floats(0.01, 5),
    top_p=st.none() | st.floats(0.01, 1),
    top_k=st.none() | st.integers(1, 50),
    seed=st.none() | st.integers(0, 2**63),
    stop=st.lists(texts, max_size=2),
)
graphs = st.builds(
    Graph,
    interventions=st.lists(interventions, max_size=4),
    capture=st.lists(captures, max_size=3),
    generate=generates,
)


# --- arbitrary documents --------------------------------------------------------------------------

FIELDS = sorted(
    {
        name
        for cls in [*INTERVENTION_KINDS.values(), Capture, Generate, Graph, Slice, VectorFile]
        for name in cls.model_fields
    }
    | {"store", "variable", "sel"}
)
WORDS = [
    *FIELDS,
    *INTERVENTION_KINDS,
    *SITES,
    "all",
    "prompt",
    "generated",
    "last",
    "0-3",
    "capture",
]

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-10, 40)
    | st.integers()
    | st.floats()
    | st.text(max_size=8)
    | st.sampled_from(WORDS)
)
junk = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=5), inner, max_size=5)
    ),
    max_leaves=15,
)


def maybe(valid: st.SearchStrategy) -> st.SearchStrategy:
    """Mostly well-formed values, sometimes junk."""
    return st.one_of(valid, valid, junk)


layer = maybe(st.integers(-2, 8))
indices = maybe(st.lists(st.integers(-1, 40), max_size=4))
positions = maybe(
    st.sampled_from(["all", "prompt", "generated", "last"])
    | st.lists(st.integers(-8, 8), max_size=3)
    | st.fixed_dictionaries(
        {}, optional={k: st.none() | st.integers(-6, 6) for k in ("start", "stop", "step")}
    )
)
vector = maybe(
    st.lists(st.floats(-4, 4), min_size=1, max_size=20)
    | st.fixed_dictionaries(
        {"path": st.sampled_from(VECTOR_FILES)}, optional={"key": st.sampled_from(["a", "b", "c"])}
    )
    | st.fixed_dictionaries({"store": st.text(max_size=4), "variable": st.text(max_size=4)})
)
prompts = maybe(st.text(max_size=6) | st.lists(st.text(max_size=6), max_size=3))
FIELD_VALUES = {
    "layer": layer,
    "layers": maybe(layer | st.lists(st.integers(-1, 8), max_size=3) | st.sampled_from(WORDS)),
    "heads": maybe(indices | st.just("all")),
    "indices": indices,
    "mode": maybe(st.sampled_from(["zero", "mean", "patch"])),
    "positions": positions,
    "reference": prompts,
    "source": prompts,
    "factor": maybe(st.floats()),
    "coeff": maybe(st.floats()),
    "site": maybe(st.sampled_from(list(SITES))),
    "vector": vector,
    "target": maybe(st.sampled_from(["keys", "values", "both"])),
    "normalize": maybe(st.sampled_from(["none", "unit", "resid_norm"])),
    "name": maybe(st.sampled_from(["a", "b", ""])),
    "dtype": maybe(st.sampled_from(["float32", "bfloat16"])),
}


def spec_like(kinds: list[str]) -> st.SearchStrategy:
    """A dict with a kind and any fields, each mostly well-formed: rarely a valid spec."""
    return st.fixed_dictionaries(
        {"kind": maybe(st.sampled_from(kinds))},
        optional={**FIELD_VALUES, "bogus": junk},
    )


@st.composite
def mutated(draw: st.DrawFn, specs: st.SearchStrategy) -> dict:
    """A valid spec's document with up to two fields replaced, removed or added."""
    document = draw(specs).to_dict()
    for _ in range(draw(st.sampled_from([0, 0, 1, 2]))):
        field = draw(st.sampled_from([*document, *FIELD_VALUES]))
        if draw(st.booleans()):
            document.pop(field, None)
        else:
            document[field] = draw(FIELD_VALUES.get(field, junk))
    return document


generate_like = st.fixed_dictionaries(
    {},
    optional={
        "max_new_tokens": maybe(st.integers(-1, 5)),
        "do_sample": maybe(st.booleans()),
        "temperature": maybe(st.floats()),
        "top_p": maybe(st.floats()),
        "top_k": maybe(st.integers(-1, 5)),
        "seed": maybe(st.integers(-1, 5)),
        "stop": maybe(st.lists(st.text(max_size=3), max_size=2)),
    },
)
documents = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "interventions": maybe(
                st.lists(
                    st.one_of(
                        mutated(interventions),
                        mutated(interventions),
                        mutated(interventions),
                        spec_like(list(INTERVENTION_KINDS)),
                        junk,
                    ),
                    max_size=4,
                )
            ),
            "capture": maybe(
                st.lists(
                    st.one_of(mutated(captures), mutated(captures), spec_like(["capture"]), junk),
                    max_size=3,
                )
            ),
            "generate": maybe(st.none() | mutated(generates.filter(bool)) | generate_like),
            "schema_version": maybe(st.just(1)),
        },
    ),
    junk,
)


@SETTINGS
@given(document=documents, lengths=st.none() | st.lists(st.integers(0, 10), max_size=3))
def test_any_document_is_accepted_or_rejected_cleanly(vector_dir, document, lengths):
    try:
        graph = Graph.from_dict(document)
        validate_graph(graph, SHAPE, prompt_lengths=lengths, base_dir=vector_dir)
    except ValidationError as exc:
        assert exc.problems
        assert all(isinstance(p.path, str) and p.message for p in exc.problems)
        str(exc)


@SETTINGS
@given(text=st.text(max_size=60) | documents.map(json.dumps) | graphs.map(Graph.to_yaml))
def test_any_text_is_accepted_or_rejected_cleanly(text):
    for parse in (Graph.from_yaml, Graph.from_json):
        try:
            parse(text)
        except ValidationError:
            pass


def _reverse_keys(value):
    if isinstance(value, dict):
        return {k: _reverse_keys(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [_reverse_keys(v) for v in value]
    return value


@SETTINGS
@given(graph=graphs)
def test_valid_graphs_round_trip_with_a_stable_hash(graph):
    digest = graph.content_hash()
    text = graph.to_json()
    for copy in (
        Graph.from_yaml(graph.to_yaml()),
        Graph.from_json(text),
        Graph.from_dict(_reverse_keys(graph.to_dict())),
    ):
        assert copy == graph
        assert copy.to_json() == text  # float reprs identical: bit-exact
        assert copy.content_hash() == digest
