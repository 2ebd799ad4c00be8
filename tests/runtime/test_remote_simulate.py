"""The remote path without a server: nnsight's ``remote="local"`` simulation (``backend=
"simulate"``) serializes each session as a real request would, deserializes it with interlace
hidden (as on an NDIF server, which cannot import it) and runs it. Every trace body runs here
in every test run: forward with each intervention kind and captures, generation, fork readouts,
and a cache job's batches; each equals the local run."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import remote_cases as rc
from nnsight.intervention.serialization import dumps

import interlace as il
from interlace.runtime.backend import Backend, as_backend
from interlace.runtime.backend.session import share_tensors
from interlace.runtime.plan import compile_plan
from interlace.runtime.prompts import encode
from interlace.runtime.steps import forward_step


@pytest.mark.slow
@pytest.mark.parametrize("name", list(rc.CASES))
def test_simulated_remote_equals_local(name: str, smollm2: Any) -> None:
    graph, prompts = rc.CASES[name](smollm2)
    local = il.run(smollm2, graph, prompts)
    rc.assert_effect(smollm2, graph, prompts, local)
    simulated = il.run(smollm2, graph, prompts, backend="simulate")
    rc.compare(local, simulated, tol=1e-6)


@pytest.mark.slow
def test_simulated_confidence_equals_local(smollm2: Any) -> None:
    response = "91 is 7 times 13, so it is not prime."
    kw = {"response": response, "graph": il.Graph(interventions=[rc._steer(smollm2)])}
    local = il.confidence(smollm2, rc.QUESTION, rc.READOUT, **kw)
    simulated = il.confidence(smollm2, rc.QUESTION, rc.READOUT, backend="simulate", **kw)
    assert len(local.checkpoint) >= 3
    np.testing.assert_allclose(simulated.logprob.values, local.logprob.values, atol=1e-6)


def test_simulated_cache_job_writes_the_local_store(smollm2: Any, tmp_path: Any) -> None:
    data = [{"text": t} for t in (rc.P, rc.SIX, "Paris is the capital of", "Hi")]
    kw = {
        "sites": ["resid_post", "head_z"],
        "layers": [1, 7],
        "positions": "all",
        "batch_size": 3,
        "progress": False,
    }
    il.cache(smollm2, data, tmp_path / "local", **kw)
    il.cache(smollm2, data, tmp_path / "sim", backend="simulate", **kw)
    a, b = il.open_store(tmp_path / "local"), il.open_store(tmp_path / "sim")
    for site in ("resid_post", "head_z"):
        np.testing.assert_allclose(b[site].values, a[site].values, atol=1e-6, equal_nan=True)
    np.testing.assert_array_equal(b["token_id"].values, a["token_id"].values)


def test_a_session_sends_each_tensor_once(smollm2: Any) -> None:
    """Two traces using one steering vector (compiled twice: two tensor objects) cost one
    vector in the payload."""
    graph = il.Graph(interventions=[rc._steer(smollm2)])
    batch = encode(smollm2.tokenizer, [rc.P])

    def step() -> dict:
        plan = compile_plan(graph, smollm2.shape, batch, {})
        return forward_step(smollm2, plan, batch.model_inputs(), all_logits=False)

    one = len(dumps(share_tensors([step()])))
    two = len(dumps(share_tensors([step(), step()])))
    unshared = len(dumps([step(), step()]))
    vector_bytes = smollm2.shape.d_model * 4
    assert unshared - one > vector_bytes  # the guard: without sharing, the vector goes twice
    assert two - one < vector_bytes / 2


def test_backend_names_and_hosts_are_checked() -> None:
    assert as_backend("ndif", "http://127.0.0.1:8001") == Backend("ndif", "http://127.0.0.1:8001")
    with pytest.raises(ValueError, match="unknown backend 'gpu'"):
        as_backend("gpu")
    with pytest.raises(ValueError, match="http"):
        as_backend("ndif", "127.0.0.1:8001")
    with pytest.raises(ValueError, match="a host is for the ndif backend"):
        as_backend("local", "http://127.0.0.1:8001")


def test_trace_bodies_import_only_torch_and_nnsight() -> None:
    """The modules shipped by value import nothing of interlace but each other."""
    import ast
    import inspect

    from interlace.runtime import edits, execute

    for module in (edits, execute):
        tree = ast.parse(inspect.getsource(module))
        imported = {
            alias.name.split(".")[0] if isinstance(node, ast.Import) else node.module
            for node in ast.walk(tree)
            if isinstance(node, ast.Import | ast.ImportFrom)
            for alias in node.names
        }
        allowed = {
            "__future__",
            "typing",
            "sys",
            "torch",
            "nnsight",
            "interlace.runtime",
            "interlace.runtime.edits",
        }
        assert imported <= allowed, imported - allowed


def test_the_simulation_hides_interlace(smollm2: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Guard: unregister the trace bodies and the simulation fails as a server would (so the
    tests above show the registered code is all a server needs)."""
    from cloudpickle.cloudpickle import _PICKLE_BY_VALUE_MODULES

    monkeypatch.setattr(
        "cloudpickle.cloudpickle._PICKLE_BY_VALUE_MODULES",
        _PICKLE_BY_VALUE_MODULES - {"interlace.runtime.execute", "interlace.runtime.edits"},
    )
    with pytest.raises(Exception, match="interlace"):
        il.run(smollm2, il.Graph(), rc.P, backend="simulate")
