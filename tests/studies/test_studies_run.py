"""Running studies: each condition's results equal ``il.run`` of that condition's graph, written
by hand here; a study SIGKILLed midway resumes without recomputing finished units and ends
equal to an uninterrupted run; a changed study is refused; the report is written.

Model: a tiny random Llama with SmolLM2's tokenizer (rebuilt from its seed in every process).
"""

from __future__ import annotations

import copy
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
import zarr

import interlace as il
from interlace import datasets
from interlace.models import loading
from interlace.stores import progress
from interlace.stores.errors import StoreError
from interlace.studies.execute import open_results, run_study
from interlace.studies.spec import Study

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
N, BATCH, NEW = 5, 2, 6
SUFFIX = " The answer is"

STUDY: dict[str, Any] = {
    "name": "tiny",
    "dataset": {"task": "arithmetic_verification", "n": N, "seed": 3},
    "batch_size": BATCH,
    "vectors": {"toward": {"unembed": " Yes"}, "rnd": {"random": 7, "like": "toward"}},
    "conditions": {
        "baseline": {},
        "ablate": {"interventions": [{"kind": "ablate_heads", "layer": 1, "heads": [0, 2]}]},
        "steer": {
            "interventions": [
                {"kind": "add_vector", "site": "resid_post", "layers": [0], "vector": "toward"}
            ]
        },
        "steer_random": {"extends": "steer", "set": {"interventions[0].vector": "rnd"}},
    },
    "sweep": {
        "conditions": ["steer", "steer_random"],
        "axes": {
            "coeff": {"field": "interventions[0].coeff", "values": [-3.0, 0.0, 3.0]},
            "at": {"field": "interventions[0].layers", "values": [0, 1]},
        },
    },
    "generate": {"max_new_tokens": NEW},
    "readouts": [
        {"kind": "logits", "name": "answer", "tokens": [" Yes", " No"], "target": "answer"},
        {"kind": "logits", "name": "next", "target": "answer"},
        {"kind": "generation", "name": "reply", "extract": "yes_no", "score": "exact_match",
         "target": "answer"},
        {"kind": "fork_readout", "at": {"every": 2}, "suffix": SUFFIX,
         "choices": [" Yes", " No"]},
        {"kind": "capture", "site": "resid_post", "layers": "all", "positions": "last"},
    ],
}  # fmt: skip


@pytest.fixture(scope="module")
def tiny(tiny_wrapped: Any) -> Any:
    return tiny_wrapped("llama")


@pytest.fixture(scope="module")
def store(tiny: Any, tmp_path_factory: Any) -> Path:
    out = tmp_path_factory.mktemp("study") / "results.zarr"
    report = run_study(Study.from_dict(STUDY), model=tiny, out=out, progress=False)
    assert report.status == "created" and report.units_written == (2 + 2 * 6) * 3
    return out


@pytest.fixture(scope="module")
def results(store: Path) -> Any:
    return open_results(store).load()


def _token(model: Any, text: str) -> int:
    return model.tokenizer(text, add_special_tokens=False)["input_ids"][0]


def _graph(model: Any, interventions: list) -> il.Graph:
    """The graph of a condition, written out by hand: its interventions and the readouts."""
    return il.Graph(
        interventions=interventions,
        capture=[il.Capture(site="resid_post", layers="all", positions="last")],
        generate=il.Generate(max_new_tokens=NEW),
        readouts=[il.ForkReadout(at=il.Every(every=2), suffix=SUFFIX, choices=[" Yes", " No"])],
    )


def _expected(model: Any, graph: il.Graph) -> dict[str, np.ndarray]:
    """What each readout must hold, from il.run of ``graph`` on the study's batches."""
    records = datasets.arithmetic_verification(N, seed=3)
    yes, no = _token(model, " Yes"), _token(model, " No")
    targets = np.array([_token(model, r["answer"]) for r in records])
    parts: dict[str, list] = {}
    for start in range(0, N, BATCH):
        batch = records[start : start + BATCH]
        result = il.run(model, graph, [r["text"] for r in batch])
        lp = result.logprobs().values
        rows = np.arange(len(batch))
        t = targets[start : start + BATCH]
        pick = np.where(lp[:, yes] >= lp[:, no], yes, no)
        said = [re.search(r"\b(yes|no)\b", text.lower()) for text in result.generated_text]
        said = [m[1].capitalize() if m else "" for m in said]
        values = {
            "answer_logprob": lp[:, [yes, no]],
            "answer_target_logprob": lp[rows, t],
            "answer_correct": (pick == t).astype(np.float32),
            "next_correct": (lp.argmax(-1) == t).astype(np.float32),
            "reply_text": np.array(result.generated_text),
            "reply_score": np.array(
                [float(s == r["answer"].strip()) for s, r in zip(said, batch, strict=True)]
            ),
            "resid_post": result.captured["resid_post"].values,
            "confidence_log_odds": np.array(
                [_pad(ex["confidence"]["log_odds"].values, NEW // 2) for ex in result.readouts]
            ),
        }
        for k, v in values.items():
            parts.setdefault(k, []).append(v)
    return {k: np.concatenate(v) for k, v in parts.items()}


def _pad(values: np.ndarray, n: int) -> np.ndarray:
    out = np.full(n, np.nan, dtype=np.float32)
    out[: len(values)] = values
    return out


def _check(results: Any, where: dict[str, Any], expected: dict[str, np.ndarray]) -> None:
    for name, want in expected.items():
        got = results[name].sel(where).values
        if got.dtype.kind in "fc":
            np.testing.assert_array_equal(got, want.astype(got.dtype), err_msg=f"{name} {where}")
        else:
            assert got.tolist() == want.tolist(), f"{name} {where}"


@pytest.mark.slow
def test_each_condition_equals_its_graph_run_alone(tiny: Any, results: Any) -> None:
    yes_row = tiny.weight("W_U")[_token(tiny, " Yes")].detach().double().numpy()
    baseline = _expected(tiny, _graph(tiny, []))
    ablate = _expected(tiny, _graph(tiny, [il.AblateHeads(layer=1, heads=[0, 2])]))
    # guard: the ablation changes the answer's log-probabilities
    assert np.abs(ablate["answer_logprob"] - baseline["answer_logprob"]).max() > 1e-3
    for coeff in (-3.0, 0.0, 3.0):
        for layer in (0, 1):
            where = {"condition": "baseline", "coeff": coeff, "at": layer}
            _check(results, where, baseline)  # unswept conditions fill every point
            _check(results, {**where, "condition": "ablate"}, ablate)
    steer = _expected(
        tiny, _graph(tiny, [il.AddVector(site="resid_post", layers=[1], vector=yes_row.tolist(),
                                         coeff=3.0)])
    )  # fmt: skip
    assert np.abs(steer["answer_logprob"] - baseline["answer_logprob"]).max() > 1e-2
    _check(results, {"condition": "steer", "coeff": 3.0, "at": 1}, steer)
    # coefficient 0 is the baseline
    _check(results, {"condition": "steer", "coeff": 0.0, "at": 0}, baseline)
    # the random direction: seeded, as long as the steering vector
    from interlace.analyses.vectors import random_directions

    rnd = random_directions(yes_row, 1, seed=7).values[0]
    assert np.isclose(np.linalg.norm(rnd), np.linalg.norm(yes_row))
    random_steer = _expected(
        tiny, _graph(tiny, [il.AddVector(site="resid_post", layers=[0], vector=rnd.tolist(),
                                         coeff=-3.0)])
    )  # fmt: skip
    _check(results, {"condition": "steer_random", "coeff": -3.0, "at": 0}, random_steer)


def test_batched_results_match_one_batch(tiny: Any, results: Any) -> None:
    """Left padding: the study's batches of 2 agree with all examples in one batch."""
    records = datasets.arithmetic_verification(N, seed=3)
    out = il.run(tiny, il.Graph(), [r["text"] for r in records])
    yes, no = _token(tiny, " Yes"), _token(tiny, " No")
    got = results["answer_logprob"].sel(condition="baseline", coeff=0.0, at=0).values
    np.testing.assert_allclose(got, out.logprobs().values[:, [yes, no]], rtol=1e-4, atol=1e-5)


def test_results_are_labelled(results: Any) -> None:
    assert results["condition"].values.tolist() == ["baseline", "ablate", "steer", "steer_random"]
    assert results["swept"].values.tolist() == [False, False, True, True]
    assert results["coeff"].values.tolist() == [-3.0, 0.0, 3.0]
    assert results["answer_token"].values.tolist() == [" Yes", " No"]
    records = datasets.arithmetic_verification(N, seed=3)
    assert results["statement"].values.tolist() == [r["statement"] for r in records]
    assert results["resid_post"].dims == ("condition", "coeff", "at", "example", "layer", "d_model")


def test_report_writes_markdown_and_plots(store: Path, results: Any, tmp_path: Path) -> None:
    from interlace.studies.report import write_report

    path = write_report(store, tmp_path)
    text = path.read_text()
    for name in ("answer_correct", "reply_score", "next_correct", "confidence"):
        assert f"## {name}" in text
    pngs = sorted(p.name for p in tmp_path.glob("*.png"))
    assert "answer_correct.png" in pngs and "confidence_curve.png" in pngs
    assert all((tmp_path / p).read_bytes()[:4] == b"\x89PNG" for p in pngs)
    # the table's baseline cell is the mean over examples
    mean = float(results["answer_correct"].sel(condition="baseline").isel(coeff=0, at=0).mean())
    assert f"| baseline | {mean:.3f} |" in text


CHILD = """
import sys
from transformers import AutoTokenizer
from interlace.models.loading import resolve_source
from interlace.models.model import Model
from interlace.models.tiny import tiny_model
from interlace.studies.execute import run_study

tokenizer = AutoTokenizer.from_pretrained(str(resolve_source("smollm2-135m")))
model = Model.wrap(tiny_model("llama", vocab_size=49152), tokenizer, name="tiny-llama")
print("ready", flush=True)
report = run_study(sys.argv[1], model=model, progress=False)
print(report.status, report.units_written, flush=True)
"""


def _kill_study() -> dict:
    data = copy.deepcopy(STUDY)
    data["dataset"]["n"] = 8
    data["generate"]["max_new_tokens"] = 8
    data["out"] = "results.zarr"
    return data


@pytest.mark.slow
def test_a_killed_study_resumes_to_the_same_result(tmp_path: Path) -> None:
    file = tmp_path / "study.yaml"
    file.write_text(yaml.safe_dump(_kill_study(), sort_keys=False))
    store = tmp_path / "results.zarr"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(file)], env=ENV, cwd=REPO, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    n_units = 14 * 4
    done_at_kill = 0
    deadline = time.time() + 300
    while time.time() < deadline and child.poll() is None:
        try:
            done_at_kill = int(progress.done(zarr.open_group(store, mode="r")).sum())
        except (FileNotFoundError, KeyError, ValueError):
            done_at_kill = 0
        if done_at_kill >= 3:
            child.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    child.wait()
    assert child.returncode == -signal.SIGKILL, child.stderr.read()
    done = progress.done(zarr.open_group(store, mode="r"))
    assert 3 <= done.sum() < n_units  # killed midway
    with pytest.raises(StoreError, match="incomplete"):
        open_results(store)
    partial = open_results(store, partial=True)
    assert partial.sizes["example"] == 8

    resumed = subprocess.run(
        [sys.executable, "-c", CHILD, str(file)], env=ENV, cwd=REPO, capture_output=True,
        text=True,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    status, written = resumed.stdout.split()[-2:]
    assert status == "resumed"
    assert int(written) == n_units - int(done.sum())  # finished units were not recomputed

    again = tmp_path / "again"
    again.mkdir()
    (again / "study.yaml").write_text(file.read_text())
    fresh = subprocess.run(
        [sys.executable, "-c", CHILD, str(again / "study.yaml")], env=ENV, cwd=REPO,
        capture_output=True, text=True,
    )  # fmt: skip
    assert fresh.returncode == 0, fresh.stderr
    a, b = open_results(store).load(), open_results(again / "results.zarr").load()
    assert set(a.data_vars) == set(b.data_vars)
    for name in a.data_vars:
        if a[name].dtype.kind in "fi":
            np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)
        else:
            assert a[name].values.tolist() == b[name].values.tolist(), name
    assert np.isfinite(a["answer_logprob"].values).all()


def test_a_changed_study_is_refused_and_a_complete_one_reused(tiny: Any, tmp_path: Path) -> None:
    data = copy.deepcopy(STUDY)
    data["dataset"]["n"] = 2
    data["generate"] = None
    data["readouts"] = [STUDY["readouts"][0]]
    data["sweep"]["axes"] = {"coeff": STUDY["sweep"]["axes"]["coeff"]}
    out = tmp_path / "r.zarr"
    first = run_study(Study.from_dict(data), model=tiny, out=out, progress=False)
    assert first.status == "created"
    again = run_study(Study.from_dict(data), model=tiny, out=out, progress=False)
    assert again.status == "complete" and again.units_written == 0
    data["conditions"]["ablate"]["interventions"][0]["heads"] = [1]
    with pytest.raises(StoreError, match="condition\\(s\\) ablate changed"):
        run_study(Study.from_dict(data), model=tiny, out=out, progress=False)
    data["batch_size"] = 1
    with pytest.raises(StoreError, match="batch size"):
        run_study(Study.from_dict(data), model=tiny, out=out, progress=False)


def test_the_backend_is_passed_to_every_run(tiny: Any, tmp_path: Path) -> None:
    """``backend: simulate`` (the remote path, in-process) gives the local results."""
    data = copy.deepcopy(STUDY)
    data["dataset"]["n"] = 2
    data["generate"] = None
    data["readouts"] = [STUDY["readouts"][0]]
    data["sweep"]["axes"] = {"coeff": {"field": "interventions[0].coeff", "values": [2.0]}}
    local = run_study(Study.from_dict(data), model=tiny, out=tmp_path / "l.zarr", progress=False)
    data["backend"] = "simulate"
    sim = run_study(Study.from_dict(data), model=tiny, out=tmp_path / "s.zarr", progress=False)
    a, b = open_results(local.path).load(), open_results(sim.path).load()
    np.testing.assert_allclose(a["answer_logprob"], b["answer_logprob"], rtol=1e-5, atol=1e-6)
    data["host"] = "not-a-url"
    with pytest.raises(il.ValidationError, match="host"):
        run_study(Study.from_dict(data), model=tiny, out=tmp_path / "h.zarr", progress=False)


@pytest.mark.parametrize(("vectors", "remote"), [({}, True), ({"v": {"unembed": " Yes"}}, False)])
def test_an_ndif_study_loads_no_weights_unless_a_vector_reads_them(
    tmp_path: Path, monkeypatch: Any, vectors: dict, remote: bool
) -> None:
    """On NDIF the study loads the model without weights (they stay on the server), except
    when a vector is read from them (``unembed``)."""
    loads: list[bool] = []

    class Loaded(Exception):
        pass

    def load(name: str, remote: bool = False, **kwargs: Any) -> Any:
        loads.append(remote)
        raise Loaded

    monkeypatch.setattr(loading, "load", load)
    data = {
        "name": "remote",
        "model": "smollm2-135m",
        "backend": "ndif",
        "host": "http://127.0.0.1:1",
        "dataset": {"task": "capitals", "n": 2},
        "vectors": vectors,
        "conditions": {"baseline": {}},
        "readouts": [{"kind": "logits", "name": "answer", "target": "answer"}],
    }
    with pytest.raises(Loaded):
        run_study(Study.from_dict(data), out=tmp_path / "r.zarr", progress=False)
    assert loads == [remote]
