"""Remote failures that need no NDIF: an unreachable server, an overloaded one (a stub on
127.0.0.1 answering 503), version skew, a result too large, the API key kept out of messages,
and the one place interlace touches nnsight's private model-id cache."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.metadata import version
from typing import Any

import pytest
import remote_cases as rc

import interlace as il
from interlace.runtime.backend import Backend, errors, ndif

FAKE_KEY = "ndif-test-key-5f2c9e0a71"


class Stub:
    """An HTTP server on 127.0.0.1 that reports ``nnsight_version`` at ``/env`` and answers
    everything else with 503 (an overloaded server); it counts the requests it refused."""

    def __init__(self, nnsight_version: str) -> None:
        stub = self
        self.refused = 0

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                if self.path == "/env":
                    body = json.dumps({"packages": {"nnsight": nnsight_version}}).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                else:
                    self.refuse()

            def do_POST(self) -> None:  # noqa: N802
                self.refuse()

            def refuse(self) -> None:
                stub.refused += 1
                self.send_response(503)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stub() -> Iterator[Stub]:
    s = Stub(version("nnsight"))
    yield s
    s.close()


@pytest.fixture
def fake_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("NDIF_API_KEY", FAKE_KEY)
    return FAKE_KEY


def closed_port() -> str:
    """A 127.0.0.1 URL nothing listens on."""
    s = Stub("x")
    url = s.url
    s.close()
    return url


def test_unreachable_server_is_a_clear_error(smollm2: Any, fake_key: str) -> None:
    host = closed_port()
    backend = Backend("ndif", host, retries=2, backoff=0.05)
    started = time.perf_counter()
    with pytest.raises(errors.ServerUnavailable) as info:
        il.run(smollm2, il.Graph(), rc.P, backend=backend)
    message = str(info.value)
    assert f"cannot reach the NDIF server at {host}" in message
    assert "NDIF_HOST" in message and "docs/remote.md" in message
    assert fake_key not in message and fake_key not in repr(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__
    assert time.perf_counter() - started >= 0.05 + 0.1  # it waited between the retries


def test_overloaded_server_is_retried_with_backoff(smollm2: Any, stub: Stub, fake_key: str) -> None:
    backend = Backend("ndif", stub.url, retries=2, backoff=0.05)
    with pytest.raises(errors.ServerUnavailable) as info:
        il.run(smollm2, il.Graph(), rc.P, backend=backend)
    assert stub.refused == 3  # the first try and two retries
    assert stub.url in str(info.value)
    assert fake_key not in str(info.value)


def test_version_skew_is_refused_before_the_request(smollm2: Any) -> None:
    s = Stub("0.0.1")
    try:
        with pytest.raises(errors.VersionSkew) as info:
            il.run(smollm2, il.Graph(), rc.P, backend=Backend("ndif", s.url, retries=0))
        assert s.refused == 0  # no job was sent
    finally:
        s.close()
    message = str(info.value)
    assert "0.0.1" in message and version("nnsight") in message
    assert "pip install nnsight==0.0.1" in message


def test_result_too_large_is_refused_before_anything_is_sent(smollm2: Any, stub: Stub) -> None:
    graph = il.Graph(capture=[il.Capture(site="mlp_act", layers="all", positions="all")])
    backend = Backend("ndif", stub.url, max_result_bytes=2**20)
    with pytest.raises(errors.ResultTooLarge) as info:
        il.run(smollm2, graph, [rc.P, rc.SIX], backend=backend)
    assert stub.refused == 0
    assert "MiB" in str(info.value) and "fewer layers or positions" in str(info.value)


def test_server_messages_are_scrubbed_of_the_api_key(smollm2: Any, fake_key: str) -> None:
    from nnsight.intervention.backends.remote import RemoteError

    err = RemoteError(f"Traceback ...\nKeyError: header ndif-api-key={fake_key}")
    out = ndif.classify(err, "http://127.0.0.1:8001", smollm2)
    assert isinstance(out, errors.RemoteJobError)
    assert fake_key not in str(out) and "***" in str(out)
    assert "the server's traceback" in str(out)


def test_local_model_ids_skip_the_hub(smollm2: Any) -> None:
    """nnsight names a model by canonicalising its id on the Hub, which a local directory is
    not; seeding the id cache names it by its path."""
    from nnsight.modeling import huggingface

    path = smollm2.nnsight.repo_id
    huggingface._ID_CACHE.pop(path, None)
    with pytest.raises(Exception):  # noqa: B017 - whatever the Hub client raises for a path
        smollm2.nnsight.to_model_key()
    ndif.seed_local_model_id(path)
    assert json.loads(smollm2.nnsight.to_model_key().split(":", 1)[1])["repo_id"] == path
