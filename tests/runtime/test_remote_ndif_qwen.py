"""Remote equals local on a second real model, Qwen2.5-Coder-0.5B-Instruct (qwen2: grouped-query
attention, q/k/v biases, untied unembedding), served by the same local NDIF from its installed
directory: every case of ``remote_cases`` (each intervention kind, captures, steered generation,
a fork readout) and a confidence curve.

Qwen's logits are larger than SmolLM2's (up to ~30) and the server's attention kernel (SDPA)
sums in another order than the local eager one; the differences stay near 2e-5, as on SmolLM2
(measured: see the test output, ``-s``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import remote_cases as rc

import interlace as il
from interlace.models import catalog
from interlace.runtime.backend import Backend

pytestmark = pytest.mark.slow

QWEN = "qwen2.5-coder-0.5b-instruct"
TOL = 1e-4


@pytest.fixture(scope="module")
def qwen_dir() -> str:
    return str(catalog.installed_directory(QWEN))


@pytest.fixture(scope="module")
def local(qwen_dir: str) -> Any:
    return il.load(qwen_dir)


@pytest.fixture(scope="module")
def remote(ndif_server: Any, qwen_dir: str) -> Any:
    return il.load(qwen_dir, remote=True)


@pytest.fixture
def backend(ndif_server: Any) -> Backend:
    return Backend("ndif", ndif_server.url)


def test_the_remote_qwen_holds_no_weights(remote: Any, local: Any) -> None:
    assert not remote.has_weights and local.has_weights
    assert remote.shape == local.shape and remote.shape.family == "qwen2"


@pytest.mark.parametrize("name", list(rc.CASES))
def test_remote_equals_local(name: str, local: Any, remote: Any, backend: Backend) -> None:
    graph, prompts = rc.CASES[name](local)
    expected = il.run(local, graph, prompts)
    rc.assert_effect(local, graph, prompts, expected)
    got = il.run(remote, graph, prompts, backend=backend)
    diffs = rc.compare(expected, got, TOL)
    print(f"qwen parity {name}: " + ", ".join(f"{k} {v:.2e}" for k, v in diffs.items()))


def test_remote_confidence_equals_local(local: Any, remote: Any, backend: Backend) -> None:
    kw = {
        "response": "91 is 7 times 13, so it is not prime. The answer is No.",
        "graph": il.Graph(interventions=[rc._steer(local)]),
    }
    expected = il.confidence(local, rc.QUESTION, rc.READOUT, **kw)
    got = il.confidence(remote, rc.QUESTION, rc.READOUT, backend=backend, **kw)
    assert len(expected.checkpoint) >= 4
    diff = np.abs(got.logprob.values - expected.logprob.values).max()
    print(f"qwen confidence: logprob {diff:.2e}")
    assert diff <= TOL
