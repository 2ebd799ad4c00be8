"""Shared fixtures."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

FAST_LANE_TIMEOUT = 180  # s, fixtures included (the first load converts the bundled model)


@pytest.hookimpl(tryfirst=True)  # before -m "not slow" deselects
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The lanes: a test run on the bundled model by a ``"smollm2"`` parameter is slow (its tiny
    random families run the same code in the fast lane); tests not marked slow (the fast lane,
    ``-m "not slow"``) get a tighter timeout."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and any(
            v == "smollm2" for v in callspec.params.values() if isinstance(v, str)
        ):
            item.add_marker(pytest.mark.slow)
        if item.get_closest_marker("slow") is None and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(FAST_LANE_TIMEOUT))


@pytest.fixture(scope="session")
def smollm2() -> Any:
    """The bundled SmolLM2-135M, loaded once per session."""
    import interlace as il

    return il.load()


@pytest.fixture(scope="session")
def tiny_wrapped(smollm2: Any) -> Callable[[str], Any]:
    """``tiny_wrapped(family)``: the tiny random model of ``family`` (SmolLM2's vocabulary and
    tokenizer), wrapped as an interlace ``Model``; built once per session and family."""
    from interlace.models.model import Model
    from interlace.models.tiny import tiny_model

    built: dict[str, Any] = {}

    def get(family: str) -> Any:
        if family not in built:
            hf = tiny_model(family, vocab_size=smollm2.shape.vocab)
            built[family] = Model.wrap(hf, smollm2.tokenizer, name=f"tiny-{family}")
        return built[family]

    return get


@pytest.fixture(scope="module")
def ndif_server() -> Iterator[Any]:
    """The local NDIF on 127.0.0.1 (``tests/ndif_server.py``): one already running is reused,
    else it is set up and started for the module that uses it and stopped after it (an idle
    Ray cluster would slow the rest of the suite). If it cannot be had, the tests that use it
    fail saying why."""
    import ndif_server

    server = ndif_server.acquire()
    yield server
    if server.started_here:
        server.stop()
