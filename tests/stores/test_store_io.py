"""Reading and checking stores: lazy labelled reading, fsspec URLs, safety of what is written
and read, the CLI, and bad input refused before any forward pass."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dask.array
import numpy as np
import pytest
from test_store_resume import Forwards
from typer.testing import CliRunner

import interlace as il
from interlace.cli import app
from interlace.stores import describe, real_tokens
from interlace.stores.reader import SAFE_CODECS, SAFE_DATA_TYPES

runner = CliRunner()
DATA = [
    {
        "text": "The Eiffel Tower is in",
        "label": 1,
        "score": 0.5,
        "tag": "a",
        "ok": True,
        "meta": {"src": "x"},
    },
    {"text": "Hello", "label": 0, "score": None, "ok": False, "meta": [1, 2]},
    {"text": "One two three", "label": 1, "score": 2, "tag": "c", "ok": True, "meta": "plain"},
]
JOB = dict(sites="resid_post,head_z", layers="1", positions="all", batch_size=2, progress=False)


@pytest.fixture
def model(tiny_wrapped: Any) -> Any:
    return tiny_wrapped("llama")


@pytest.fixture
def store(model: Any, tmp_path: Path) -> Path:
    il.cache(model, DATA, tmp_path / "s.zarr", **JOB)
    return tmp_path / "s.zarr"


def test_open_store_is_lazy_and_labelled(store: Path, model: Any) -> None:
    ds = il.open_store(store)
    lazy = [name for name, v in ds.variables.items() if isinstance(v.data, dask.array.Array)]
    assert sorted(lazy) == sorted(set(ds.variables) - set(ds.indexes))  # all but the indexes
    assert ds["resid_post"].dims == ("example", "layer", "position", "d_model")
    assert ds["head_z"].dims == ("example", "layer", "position", "head", "head_dim")
    assert ds["layer"].values.tolist() == [1]
    x = ds["resid_post"].sel(layer=1)
    assert x.dims == ("example", "position", "d_model") and x.chunks is not None
    # dataset fields as typed coordinates (see interlace.jobs.dataset)
    assert ds["label"].dtype == np.int64 and ds["label"].values.tolist() == [1, 0, 1]
    assert ds["ok"].dtype == bool and ds["ok"].values.tolist() == [True, False, True]
    score = ds["score"].values
    assert score.dtype == np.float64 and score[0] == 0.5 and np.isnan(score[1]) and score[2] == 2
    assert ds["tag"].values.tolist() == ["a", "", "c"]
    assert ds["meta"].values.tolist() == ['{"src": "x"}', "[1, 2]", "plain"]
    # the mask: real tokens flattened to one row each, labels along
    real = real_tokens(x)
    assert real.dims == ("token", "d_model") and isinstance(real.data, dask.array.Array)
    n = ds["n_tokens"].values
    assert real["example"].values.tolist() == np.repeat([0, 1, 2], n).tolist()
    assert real["token_index"].values.tolist() == [i for k in n for i in range(k)]
    assert real["label"].values.tolist() == np.repeat([1, 0, 1], n).tolist()
    assert not np.isnan(real.values).any()


def test_fsspec_memory_url_equals_a_local_store(store: Path, model: Any) -> None:
    url = "memory://interlace-tests/s.zarr"
    report = il.cache(model, DATA, url, **JOB)
    assert report.status == "created"
    a, b = il.open_store(url).load(), il.open_store(store).load()
    for name in [*b.data_vars, "token_id", "token_str", "score"]:
        np.testing.assert_array_equal(a[name].values, b[name].values)
    assert il.cache(model, DATA, url, **JOB).status == "complete"
    assert describe(url)["bytes_on_disk"] > 0


def test_everything_written_is_numbers_strings_or_json(store: Path) -> None:
    metas = list(store.rglob("zarr.json"))
    assert len(metas) > 10
    for path in metas:
        meta = json.loads(path.read_text())  # attributes are plain JSON
        if meta["node_type"] != "array":
            continue
        dtype = (
            meta["data_type"] if isinstance(meta["data_type"], str) else meta["data_type"]["name"]
        )
        assert dtype in SAFE_DATA_TYPES, path
        assert {c["name"] for c in meta["codecs"]} <= SAFE_CODECS, path
    others = [p for p in store.rglob("*") if p.is_file() and p.name != "zarr.json"]
    assert others and all("c" in p.relative_to(store).parts for p in others)  # chunks only


def test_a_store_naming_a_pickle_codec_is_refused_unread(store: Path) -> None:
    meta_path = store / "resid_post" / "zarr.json"
    meta = json.loads(meta_path.read_text())
    meta["codecs"].append({"name": "numcodecs.pickle", "configuration": {}})
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(il.StoreError, match="numcodecs.pickle"):
        il.open_store(store)
    result = runner.invoke(app, ["store", "info", str(store)])
    assert result.exit_code == 2 and "numcodecs.pickle" in result.output


def test_store_info_cli(store: Path, model: Any) -> None:
    result = runner.invoke(app, ["store", "info", str(store), "--json"])
    assert result.exit_code == 0, result.output
    facts = json.loads(result.output)
    assert facts["completeness"] == {
        "complete": True,
        "batches_done": 2,
        "n_batches": 2,
        "examples_done": 3,
        "n_examples": 3,
    }
    width = max(len(model.tokenizer(d["text"])["input_ids"]) for d in DATA)
    assert facts["sites"]["resid_post"]["dims"] == {
        "example": 3,
        "layer": 1,
        "position": width,
        "d_model": 64,
    }
    p = facts["provenance"]
    assert p["model"] == "tiny-llama" and p["adapter_family"] == "llama"
    assert len(p["model_weights_sha256"]) == 64 and len(p["dataset_sha256"]) == 64
    assert set(p["versions"]) >= {"interlace", "nnsight", "transformers", "torch"}
    assert json.loads(json.dumps(p["graph"])) == il.Graph().to_dict()
    assert 0 < facts["bytes_on_disk"]
    text = runner.invoke(app, ["store", "info", str(store)])
    assert text.exit_code == 0 and "complete" in text.output and "resid_post" in text.output
    missing = runner.invoke(app, ["store", "info", str(store.parent / "none.zarr")])
    assert missing.exit_code == 2 and "no store" in missing.output


BAD = [
    ({"sites": "resid_post,resid_middle"}, "sites", "resid_middle"),
    ({"layers": "0-7"}, "layers", "2-layer model"),
    ({"layers": "most"}, "layers", "not a layer selection"),
    ({"positions": "generated"}, "positions", "prompt's forward"),
    ({"positions": "0,9"}, "dataset[1]", "outside its 1-token prompt"),
    ({"dtype": "int8"}, "dtype", "unknown dtype"),
    ({"batch_size": 0}, "batch_size", ">= 1"),
    ({"text_field": "prompt"}, "dataset[0]", "no 'prompt' field"),
    ({"dataset": "no/such/data.jsonl"}, "dataset", "no such file"),
    ({"dataset": [{"txt": "a"}]}, "dataset[0]", "no 'text' or 'messages' field"),
    ({"dataset": [{"text": ""}]}, "dataset[0]", "no tokens"),
    ({"dataset": [{"text": 5}]}, "dataset[0].text", "cannot make a prompt"),
    ({"dataset": [{"messages": [{"role": "user", "content": "a"}] * 2}]}, "dataset[0]", "roles"),
    ({"dataset": [{"text": "a", "layer": 3}]}, "dataset field 'layer'", "clashes"),
    ({"graph": {"capture": [{"site": "embed"}]}}, "graph.capture", "interventions only"),
    (
        {"graph": {"interventions": [{"kind": "ablate_heads", "layer": 9, "heads": [0]}]}},
        "interventions[0].layer",
        "2-layer model",
    ),
    (
        {
            "graph": {
                "interventions": [
                    {"kind": "patch", "site": "resid_post", "layer": 0, "source": ["a", "b"]}
                ]
            }
        },
        "source",
        "one source prompt",
    ),
]


@pytest.mark.parametrize(("change", "where", "message"), BAD, ids=[b[1] + ":" + b[2] for b in BAD])
def test_bad_input_is_refused_before_any_forward(
    change: dict, where: str, message: str, model: Any, tmp_path: Path
) -> None:
    job = {**JOB, "dataset": DATA, **change}
    dataset = job.pop("dataset")
    with Forwards(model) as forwards, pytest.raises(il.ValidationError) as err:
        il.cache(model, dataset, tmp_path / "s.zarr", **job)
    text = str(err.value)
    assert where in text and message in text, text
    assert forwards.n == 0 and not (tmp_path / "s.zarr").exists()


def test_a_bad_jsonl_line_is_named(model: Any, tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text('{"text": "a"}\n\n{"text": "b"\n')
    with pytest.raises(il.ValidationError, match="dataset line 3: not valid JSON"):
        il.cache(model, str(data), tmp_path / "s.zarr", **JOB)


@pytest.mark.slow
def test_cache_cli_on_the_bundled_model(smollm2: Any, tmp_path: Path) -> None:
    """The command line end to end: create, rerun (nothing to do), another graph (refused);
    the values equal il.run's capture of the same prompts."""
    data = tmp_path / "d.jsonl"
    prompts = ["The Eiffel Tower is in the city of", "Hi there", "One two three"]
    data.write_text("".join(json.dumps({"text": p, "i": i}) + "\n" for i, p in enumerate(prompts)))
    out = tmp_path / "s.zarr"
    args = [
        "cache",
        "--model",
        "smollm2-135m",
        "--dataset",
        str(data),
        "--sites",
        "resid_post",
        "--layers",
        "0-2",
        "--positions",
        "last",
        "--out",
        str(out),
        "--batch-size",
        "2",
    ]
    first = runner.invoke(app, [*args, "--json"])
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["status"] == "created"
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and "nothing to do" in " ".join(again.output.split())
    graph = tmp_path / "g.yaml"
    graph.write_text("interventions:\n  - {kind: ablate_heads, layer: 1, heads: [0]}\n")
    refused = runner.invoke(app, [*args, "--graph", str(graph)])
    assert refused.exit_code == 2
    words = " ".join(refused.output.split())  # as printed, wrapped where the path length puts it
    assert "holds a different job" in words and "graph:" in words

    stored = il.open_store(out)["resid_post"].values
    g = il.Graph(capture=[il.Capture(site="resid_post", layers="0-2", positions="last")])
    expected = il.run(smollm2, g, prompts).captured["resid_post"].values
    np.testing.assert_allclose(stored, expected, rtol=1e-5, atol=1e-4)
