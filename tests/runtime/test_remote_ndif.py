"""The NDIF backend against a real NDIF server on 127.0.0.1 (``tools/ndif/``, started once
per test session by the ``ndif_server`` fixture) serving the bundled model converted to a
safetensors directory.

The local reference loads the same directory. The remote client is built from that directory
without weights (``il.load(dir, remote=True)``), as for a model too large to hold here. Every
case of ``remote_cases`` equals the local run (logits and log-probabilities to 1e-4, identical
greedy tokens); a cache job writes the local store; faults give clear errors. The fault test
that stops the server runs last: it restarts it.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import remote_cases as rc
import zarr
from typer.testing import CliRunner

import interlace as il
from interlace.cli import app
from interlace.runtime.backend import Backend, errors, execute, ndif
from interlace.runtime.plan import compile_plan
from interlace.runtime.prompts import encode
from interlace.runtime.steps import forward_step
from interlace.stores import progress

pytestmark = pytest.mark.slow  # a real server: not in the fast lane

TOL = 1e-4
FAKE_KEY = "ndif-test-key-8d41b7c3e2"
DATA = [{"text": t} for t in (rc.P, rc.SIX, "Paris is the capital of", "Hi", "Once upon a time")]
JOB = {"sites": ["resid_post", "head_z"], "layers": [1, 7], "positions": "all", "progress": False}


@pytest.fixture(scope="module")
def local(ndif_server: Any) -> Any:
    return il.load(str(ndif_server.model_dir))


@pytest.fixture(scope="module")
def remote(ndif_server: Any) -> Any:
    return il.load(str(ndif_server.model_dir), remote=True)


@pytest.fixture
def backend(ndif_server: Any) -> Backend:
    return Backend("ndif", ndif_server.url)


def test_the_remote_model_holds_no_weights(remote: Any, local: Any) -> None:
    assert not remote.has_weights and local.has_weights
    assert remote.shape == local.shape


@pytest.mark.parametrize("name", list(rc.CASES))
def test_remote_equals_local(name: str, local: Any, remote: Any, backend: Backend) -> None:
    graph, prompts = rc.CASES[name](local)
    expected = il.run(local, graph, prompts)
    rc.assert_effect(local, graph, prompts, expected)
    got = il.run(remote, graph, prompts, backend=backend)
    diffs = rc.compare(expected, got, TOL)
    print(f"parity {name}: " + ", ".join(f"{k} {v:.2e}" for k, v in diffs.items()))


def test_remote_confidence_equals_local(local: Any, remote: Any, backend: Backend) -> None:
    kw = {
        "response": "91 is 7 times 13, so it is not prime. The answer is No.",
        "graph": il.Graph(interventions=[rc._steer(local)]),
    }
    expected = il.confidence(local, rc.QUESTION, rc.READOUT, **kw)
    got = il.confidence(remote, rc.QUESTION, rc.READOUT, backend=backend, **kw)
    assert len(expected.checkpoint) >= 4
    assert np.abs(got.logprob.values - expected.logprob.values).max() <= TOL


def store_arrays(path: Any) -> dict[str, np.ndarray]:
    ds = il.open_store(path)
    return {name: ds[name].values for name in ds.data_vars}


def assert_same_store(got: Any, expected: Any) -> None:
    a, b = store_arrays(expected), store_arrays(got)
    assert a.keys() == b.keys()
    for name, values in a.items():
        if values.dtype.kind == "f":
            scale = np.abs(np.nan_to_num(values)).max(axis=-1, keepdims=True)
            err = np.nan_to_num(np.abs(b[name] - values) / np.maximum(scale, 1e-12))
            assert err.max() <= TOL, name
            np.testing.assert_array_equal(np.isnan(b[name]), np.isnan(values))
        else:
            np.testing.assert_array_equal(b[name], values, err_msg=name)


def test_remote_cache_writes_the_local_store(
    local: Any, backend: Backend, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same model (weights here too) cached locally and through the server: the same
    store, identity included; the API key is nowhere in it."""
    monkeypatch.setenv("NDIF_API_KEY", FAKE_KEY)
    il.cache(local, DATA, tmp_path / "local", batch_size=2, **JOB)
    report = il.cache(local, DATA, tmp_path / "remote", batch_size=2, backend=backend, **JOB)
    assert report.status == "created" and report.units_written == 3
    assert_same_store(tmp_path / "remote", tmp_path / "local")
    attrs = [dict(zarr.open_group(tmp_path / p, mode="r").attrs) for p in ("local", "remote")]
    for a in attrs:
        a.pop("created")
    assert attrs[0] == attrs[1]
    stored = "".join(p.read_text(errors="ignore") for p in (tmp_path / "remote").rglob("*.json"))
    assert FAKE_KEY not in stored and "ndif-api-key" not in stored
    # the store is this job's: the local run of it finds nothing to do
    assert il.cache(local, DATA, tmp_path / "remote", batch_size=2, **JOB).status == "complete"


def test_cli_run_on_ndif_equals_local(ndif_server: Any, tmp_path: Any) -> None:
    graph = tmp_path / "steer.yaml"
    graph.write_text("interventions:\n  - {kind: ablate_heads, layer: 5, heads: [0, 2, 7]}\n")
    args = ["run", str(graph), "-p", rc.P, "--model", str(ndif_server.model_dir), "--json"]
    runner = CliRunner()
    expected = runner.invoke(app, args)
    got = runner.invoke(app, [*args, "--backend", "ndif", "--host", ndif_server.url])
    assert expected.exit_code == 0 and got.exit_code == 0, got.output
    a, b = json.loads(expected.stdout), json.loads(got.stdout)
    top_a, top_b = a["examples"][0]["top"], b["examples"][0]["top"]
    assert [t["token"] for t in top_a] == [t["token"] for t in top_b]
    assert max(abs(x["logprob"] - y["logprob"]) for x, y in zip(top_a, top_b, strict=True)) <= TOL


def test_a_job_that_raises_on_the_server_shows_its_traceback(
    remote: Any, backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NDIF_API_KEY", FAKE_KEY)
    graph = il.Graph(interventions=[rc._steer(remote)])
    batch = encode(remote.tokenizer, [rc.P])
    step = forward_step(
        remote, compile_plan(graph, remote.shape, batch, {}), batch.model_inputs(), False
    )
    step["ops"][0]["edits"][0]["op"] = "no_such_edit"
    with pytest.raises(errors.RemoteJobError) as info:
        execute(remote, [step], backend)
    message = str(info.value)
    assert f"the job failed on the NDIF server at {backend.host}" in message
    assert "Traceback" in message and "unknown edit 'no_such_edit'" in message
    assert "_apply" in message  # the server's frames, in interlace's shipped code
    assert FAKE_KEY not in message


def test_a_model_the_server_cannot_deploy(
    ndif_server: Any, backend: Backend, tmp_path: Any
) -> None:
    """A directory with a config and tokenizer but no weights: the client can build the model,
    the server cannot load it."""
    empty = tmp_path / "no-weights"
    empty.mkdir()
    for f in ndif_server.model_dir.iterdir():
        if f.suffix != ".safetensors":
            shutil.copy(f, empty / f.name)
    model = il.load(str(empty), remote=True)
    with pytest.raises(errors.ModelNotAvailable) as info:
        il.run(model, il.Graph(), rc.P, backend=Backend("ndif", backend.host, retries=0))
    assert str(empty) in str(info.value)


@contextlib.contextmanager
def stopped_before_session(
    n: int, ndif_server: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """The server is stopped just before the ``n``-th remote session inside the block, and
    started again when the block is left."""
    sessions = 0
    real = ndif.run_session

    def stop_before(*args: Any) -> Any:
        nonlocal sessions
        sessions += 1
        if sessions == n:
            ndif_server.stop()
        return real(*args)

    monkeypatch.setattr(ndif, "run_session", stop_before)
    try:
        yield
    finally:
        monkeypatch.undo()
        ndif_server.start()


def test_server_stopped_mid_job_is_a_clear_error_and_the_rerun_resumes(
    ndif_server: Any,
    local: Any,
    remote: Any,
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Runs last: stops the server before the third of five batches, then restarts it."""
    il.cache(local, DATA, tmp_path / "local", batch_size=1, **JOB)
    flaky = Backend("ndif", ndif_server.url, retries=1, backoff=0.2)
    out = tmp_path / "remote"
    with stopped_before_session(3, ndif_server, monkeypatch):
        with pytest.raises(errors.ServerUnavailable) as info:
            il.cache(remote, DATA, out, batch_size=1, backend=flaky, **JOB)
    assert f"cannot reach the NDIF server at {ndif_server.url}" in str(info.value)
    done = progress.done(zarr.open_group(out, mode="r"))
    assert done.tolist() == [True, True, False, False, False]
    report = il.cache(remote, DATA, out, batch_size=1, backend=flaky, **JOB)
    assert report.status == "resumed" and report.units_written == 3
    assert_same_store(out, tmp_path / "local")


FAULT_STUDY: dict[str, Any] = {
    "name": "remote-fault",
    "dataset": {"task": "arithmetic_verification", "n": 4, "seed": 3},
    "batch_size": 1,
    "conditions": {
        "baseline": {},
        "ablate": {"interventions": [{"kind": "ablate_heads", "layer": 5, "heads": [0, 2, 7]}]},
    },
    "readouts": [
        {"kind": "logits", "name": "answer", "tokens": [" Yes", " No"], "target": "answer"}
    ],
}


def test_server_stopped_mid_study_is_a_clear_error_and_the_rerun_resumes(
    ndif_server: Any, local: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Runs last: stops the server before the study's third session, then restarts it."""
    from interlace.studies.execute import open_results, run_study
    from interlace.studies.spec import Study

    study = Study.from_dict(FAULT_STUDY)
    run_study(study, model=local, out=tmp_path / "local", progress=False)
    out = tmp_path / "remote"
    remote_kw = {"model": local, "out": out, "backend": "ndif", "host": ndif_server.url}
    with stopped_before_session(3, ndif_server, monkeypatch):
        with pytest.raises(errors.ServerUnavailable) as info:
            run_study(study, progress=False, **remote_kw)
    assert f"cannot reach the NDIF server at {ndif_server.url}" in str(info.value)
    written = int(progress.done(zarr.open_group(out, mode="r")).sum())
    assert written == 2
    report = run_study(study, progress=False, **remote_kw)
    assert report.status == "resumed" and report.units_written == report.n_units - written
    expected, got = open_results(tmp_path / "local").load(), open_results(out).load()
    values = expected["answer_logprob"].values
    assert np.abs(got["answer_logprob"].values - values).max() <= TOL
    assert not np.allclose(values[0], values[1])  # the conditions differ: the check can fail
