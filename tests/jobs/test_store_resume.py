"""Resuming: a job killed at seeded moments (SIGKILL) and resumed ends equal to an uninterrupted
run; a complete store is reused without a forward pass; a store of another job is refused.

Model: a tiny random Llama with SmolLM2's tokenizer, rebuilt from its seed in every process, so
the job's identity (weights hash included) must agree across processes for a resume to happen.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr
import zarr

import interlace as il
from interlace.stores import progress

N_EXAMPLES = 240
BATCH = 4
JOB = dict(sites="resid_post,mlp_act", positions="all", batch_size=BATCH, progress=False)
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu".split()

CHILD = """
import sys
from transformers import AutoTokenizer
import interlace as il
from interlace.models.loading import resolve_source
from interlace.models.model import Model
from interlace.models.tiny import tiny_model

tokenizer = AutoTokenizer.from_pretrained(str(resolve_source("smollm2-135m")))
model = Model.wrap(tiny_model("llama", vocab_size=49152), tokenizer, name="tiny-llama")
print("ready", flush=True)
report = il.cache(model, sys.argv[1], sys.argv[2], **{job})
print(report.status, flush=True)
"""


def write_dataset(path: Path, n: int = N_EXAMPLES) -> Path:
    rng = random.Random(0)
    with path.open("w") as f:
        for i in range(n):
            text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 12)))
            f.write(json.dumps({"text": text, "id": i, "topic": WORDS[i % 3]}) + "\n")
    return path


def tiny(seed: int = 0) -> Any:
    """The model the child builds (same seed -> same weights)."""
    from transformers import AutoTokenizer

    from interlace.models.loading import resolve_source
    from interlace.models.model import Model
    from interlace.models.tiny import tiny_model

    tokenizer = AutoTokenizer.from_pretrained(str(resolve_source("smollm2-135m")))
    return Model.wrap(tiny_model("llama", seed=seed, vocab_size=49152), tokenizer, "tiny-llama")


@pytest.fixture(scope="module")
def model() -> Any:
    return tiny()


class Forwards:
    """Counts forward passes of a model."""

    def __init__(self, model: Any) -> None:
        self.n = 0
        self.handle = model.hf.register_forward_pre_hook(self._count)

    def _count(self, *args: Any) -> None:
        self.n += 1

    def __enter__(self) -> Forwards:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.handle.remove()


def done_batches(path: Path) -> np.ndarray:
    try:
        return progress.done(
            zarr.open_group(zarr.storage.LocalStore(path, read_only=True), mode="r")
        )
    except (FileNotFoundError, KeyError, ValueError):  # not created yet
        return np.zeros(0, dtype=bool)


def assert_same_examples(got: xr.Dataset, want: xr.Dataset, examples: Any) -> None:
    """Every variable and coordinate equal, example by example."""
    for name in [*want.data_vars, *want.coords]:
        if "example" not in want[name].dims:
            continue
        a = got[name].sel(example=examples).values
        b = want[name].sel(example=examples).values
        for k, e in enumerate(np.atleast_1d(examples)):
            assert np.array_equal(a[k], b[k], equal_nan=a.dtype.kind == "f"), f"{name}, example {e}"


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume_equals_uninterrupted(
    model: Any, tmp_path: Path
) -> None:
    """A child process caching 240 examples is killed with SIGKILL three times -- once during
    creation or the first batches, twice at random batches plus a random delay -- and resumed
    each time by the same command. After every kill the batches flagged complete equal the
    reference exactly (a partial batch is never visible as complete) and their count never
    falls; the finished store equals the uninterrupted one example by example."""
    data = write_dataset(tmp_path / "data.jsonl")
    il.cache(model, str(data), tmp_path / "reference.zarr", **JOB)
    want = il.open_store(tmp_path / "reference.zarr").load()
    n_batches = -(-N_EXAMPLES // BATCH)

    out = tmp_path / "killed.zarr"
    command = [sys.executable, "-c", CHILD.format(job=JOB), str(data), str(out)]
    seed = 3  # fixed: the same kill points on every run (batches 0, 20, 42; the delays)
    rng = random.Random(seed)
    why = f"(random seed {seed})"
    errors = tmp_path / "child.err"
    seen = 0
    for target in [0, *sorted(rng.sample(range(5, n_batches - 5), 2))]:
        with errors.open("w") as err:
            child = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=err, text=True, env=ENV
            )
            ready = child.stdout.readline().strip()
            assert ready == "ready", errors.read_text()
            deadline = time.monotonic() + 60
            while done_batches(out).sum() < target and time.monotonic() < deadline:
                if child.poll() is not None:
                    pytest.fail(f"the child ended before being killed {why}: {errors.read_text()}")
                time.sleep(0.005)
            time.sleep(rng.uniform(0, 0.3 if target == 0 else 0.03))
            child.send_signal(signal.SIGKILL)
            child.wait()
            child.stdout.close()
        done = done_batches(out)
        assert done.sum() >= seen, f"complete batches went from {seen} to {done.sum()} {why}"
        seen = int(done.sum())
        if 0 < seen < n_batches:
            with pytest.raises(il.StoreError, match="incomplete"):
                il.open_store(out)
            complete = il.open_store(out, partial=True).load()
            expected = np.flatnonzero(np.repeat(done, BATCH)[:N_EXAMPLES])
            assert complete["example"].values.tolist() == expected.tolist()
            assert_same_examples(complete, want, expected)
    assert 0 < seen < n_batches, f"no kill interrupted the job midway {why}"

    finished = subprocess.run(command, capture_output=True, text=True, timeout=120, env=ENV)
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.split()[-1] == "resumed"
    got = il.open_store(out).load()
    assert_same_examples(got, want, want["example"].values)
    assert got.attrs["model_weights_sha256"] == want.attrs["model_weights_sha256"]
    assert not list(out.rglob("*.partial"))


def test_interrupted_in_process_resumes_and_equals_uninterrupted(
    model: Any, tmp_path: Path
) -> None:
    """An exception in the forward loop (here the 4th forward) stops the job; the batches
    already computed are written, and the rerun writes only the rest."""
    data = write_dataset(tmp_path / "data.jsonl", n=20)
    il.cache(model, str(data), tmp_path / "reference.zarr", **JOB)

    calls = 0

    def fail_on_fourth(*args: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 4:
            raise RuntimeError("interrupted")

    handle = model.hf.register_forward_pre_hook(fail_on_fourth)
    out = tmp_path / "s.zarr"
    try:
        with pytest.raises(RuntimeError, match="interrupted"):
            il.cache(model, str(data), out, **JOB)
    finally:
        handle.remove()
    assert done_batches(out).tolist() == [True] * 3 + [False] * 2
    with Forwards(model) as forwards:
        report = il.cache(model, str(data), out, **JOB)
    assert (report.status, report.units_written, forwards.n) == ("resumed", 2, 2)
    want = il.open_store(tmp_path / "reference.zarr").load()
    assert_same_examples(il.open_store(out).load(), want, want["example"].values)


def test_an_interrupted_creation_is_created_again(
    model: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed after the arrays were made but before the progress flags: the rerun sees its own
    job half-created and creates it again, with the batch size it was started with."""
    data = write_dataset(tmp_path / "data.jsonl", n=10)
    out = tmp_path / "s.zarr"

    def killed(*args: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(progress, "create", killed)
    with pytest.raises(KeyboardInterrupt):
        il.cache(model, str(data), out, **JOB)
    monkeypatch.undo()
    assert (out / "resid_post" / "zarr.json").exists() and not (out / "_progress").exists()
    with pytest.raises(il.StoreError, match="incomplete: 0 of 3 batches"):
        il.open_store(out)
    assert il.open_store(out, partial=True).sizes["example"] == 0
    report = il.cache(model, str(data), out, **{**JOB, "batch_size": 3})
    assert report.status == "created" and report.n_units == 3
    assert "batch size 4" in report.message()
    il.cache(model, str(data), tmp_path / "reference.zarr", **JOB)
    want = il.open_store(tmp_path / "reference.zarr").load()
    assert_same_examples(il.open_store(out).load(), want, want["example"].values)


def test_the_same_job_twice_runs_no_forward(model: Any, tmp_path: Path) -> None:
    data = write_dataset(tmp_path / "data.jsonl", n=6)
    out = tmp_path / "s.zarr"
    with Forwards(model) as forwards:
        first = il.cache(model, str(data), out, **JOB)
    assert first.status == "created" and forwards.n == 2
    with Forwards(model) as forwards:
        again = il.cache(model, str(data), out, **{**JOB, "batch_size": 3})
    assert forwards.n == 0
    assert again.status == "complete" and "nothing to do" in again.message()
    assert "batch size 4" in again.message()


def test_another_job_into_the_same_path_is_refused(model: Any, tmp_path: Path) -> None:
    data = write_dataset(tmp_path / "data.jsonl", n=6)
    out = tmp_path / "s.zarr"
    il.cache(model, str(data), out, **JOB)
    other_data = write_dataset(tmp_path / "other.jsonl", n=7)
    ablate = il.Graph(interventions=[il.AblateHeads(layer=1, heads=[0])])
    cases = [
        ({"graph": ablate}, "graph: the store has sha256"),
        ({"dtype": "float16"}, 'dtype: the store has "float32", this job "float16"'),
        ({"sites": "resid_post"}, "sites:"),
        ({"positions": "last"}, "positions:"),
    ]
    with Forwards(model) as forwards:
        for change, message in cases:
            with pytest.raises(il.StoreError, match="holds a different job") as err:
                il.cache(model, str(data), out, **{**JOB, **change})
            assert message in str(err.value)
        with pytest.raises(il.StoreError, match="dataset: the store has sha256"):
            il.cache(model, str(other_data), out, **JOB)
        with pytest.raises(il.StoreError, match="model weights: the store has sha256"):
            il.cache(tiny(seed=1), str(data), out, **JOB)
    assert forwards.n == 0
    assert il.open_store(out).attrs["graph"] == il.Graph().to_dict()


def test_a_path_holding_something_else_is_refused(model: Any, tmp_path: Path) -> None:
    data = write_dataset(tmp_path / "data.jsonl", n=2)
    foreign = tmp_path / "foreign.zarr"
    xr.Dataset({"x": ("a", np.arange(3))}).to_zarr(foreign, zarr_format=3, consolidated=False)
    with pytest.raises(il.StoreError, match="not an interlace activation store"):
        il.cache(model, str(data), foreign, **JOB)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "mine.txt").write_text("keep me")
    with pytest.raises(il.StoreError, match="not a zarr v3 store"):
        il.cache(model, str(data), tmp_path / "notes", **JOB)
    assert (tmp_path / "notes" / "mine.txt").read_text() == "keep me"
