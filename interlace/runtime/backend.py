"""Backends: where the trace bodies of a run execute.

- ``local``: in this process, on the model's own weights.
- ``ndif``: on an NDIF server (the public one or your own), through nnsight's remote
  execution; the model there is named by its key, its weights never travel.
- ``simulate``: nnsight's ``remote="local"``: the remote path (serialize with interlace's code
  by value, deserialize with interlace hidden, run) in this process, without a server. It
  checks that a run would work remotely; the tests exercise every trace body this way.

Every backend runs the same steps through the same bodies (:mod:`interlace.runtime.execute`),
so a remote result differs from a local one only by the server's arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from interlace.runtime import execute as bodies

#: The backends a user can name (``simulate`` is the in-process check of the remote path).
BACKENDS = ("local", "ndif", "simulate")

#: Default upper bound of what one remote session may send back.
MAX_RESULT_BYTES = 2 * 1024**3


@dataclass(frozen=True)
class Backend:
    """A backend and its settings.

    ``host``: the NDIF server's URL (default: ``NDIF_HOST`` or nnsight's configured host,
    the public NDIF). ``retries``/``backoff``: transient failures (server unreachable,
    overloaded) are retried ``retries`` times, waiting ``backoff·2^i`` seconds.
    ``max_result_bytes``: a session whose results could exceed this is refused before it is
    sent. The API key is never held here: it is read from ``NDIF_API_KEY`` or nnsight's
    config when a request is made.
    """

    kind: str = "local"
    host: str | None = None
    retries: int = 3
    backoff: float = 1.0
    max_result_bytes: int = MAX_RESULT_BYTES

    def __post_init__(self) -> None:
        if self.kind not in BACKENDS:
            raise ValueError(f"unknown backend {self.kind!r}; available: {', '.join(BACKENDS)}")
        if self.host is not None and self.kind != "ndif":
            raise ValueError(f"a host is for the ndif backend, not {self.kind!r}")
        if self.host is not None and not self.host.startswith(("http://", "https://")):
            raise ValueError(f"the NDIF host must be an http:// or https:// URL, not {self.host!r}")

    @property
    def remote(self) -> bool:
        return self.kind != "local"


LOCAL = Backend()


def as_backend(backend: str | Backend, host: str | None = None) -> Backend:
    """``"local"``/``"ndif"``/``"simulate"`` (with an optional ``host``) or a
    :class:`Backend` -> a :class:`Backend`; a bad name raises ``ValueError`` before anything
    runs."""
    if isinstance(backend, Backend):
        if host is not None and host != backend.host:
            raise ValueError("give the host either in the Backend or as host=, not both")
        return backend
    return Backend(kind=backend, host=host)


def execute(model: Any, steps: list[dict], backend: Backend = LOCAL) -> list[dict]:
    """Run ``steps`` (:mod:`interlace.runtime.steps`) on ``model`` with ``backend``; several
    steps share one remote session (one request, one payload, tensors sent once)."""
    if not backend.remote:
        return bodies.execute(model.nnsight, steps)
    from interlace.runtime.ndif import run_session

    return run_session(model, steps, backend)
