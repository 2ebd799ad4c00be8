"""Shared fixtures."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

FAST_LANE_TIMEOUT = 180  # s, fixtures included (the first load converts the bundled model)

#: The real models a test may be parametrized over: the bundled one and the two named models the
#: set-up installs (tools/dev.sh). A test run on one of them is slow.
REAL_MODELS = ("smollm2", "gemma-3-270m", "qwen2.5-coder-0.5b-instruct")


@pytest.hookimpl(tryfirst=True)  # before -m "not slow" deselects
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The lanes: a test run on a real model by a parameter naming it (:data:`REAL_MODELS`) is
    slow (its tiny random families run the same code in the fast lane); tests not marked slow
    (the fast lane, ``-m "not slow"``) get a tighter timeout."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and any(
            v in REAL_MODELS for v in callspec.params.values() if isinstance(v, str)
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
def named_model(smollm2: Any) -> Callable[[str], Any]:
    """``named_model(name)``: a real model of :data:`REAL_MODELS` in float32, loaded once per
    session; one that is not installed fails with the install command."""
    import interlace as il

    loaded: dict[str, Any] = {"smollm2": smollm2}

    def get(name: str) -> Any:
        if name not in loaded:
            loaded[name] = il.load(name)
        return loaded[name]

    return get


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
