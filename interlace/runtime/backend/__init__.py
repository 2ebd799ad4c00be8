"""Backends: where the trace bodies of a run execute, one module each.

- ``local`` (:mod:`.local`): in this process, on the model's own weights.
- ``ndif`` (:mod:`.ndif`): on an NDIF server (the public one or your own), through nnsight's
  remote execution; the model there is named by its key, its weights never travel.
- ``simulate`` (:mod:`.simulate`): nnsight's ``remote="local"``, the remote path in this
  process without a server, to check that a run would work remotely.

Every backend runs the same steps through the same bodies (:mod:`interlace.runtime.execute`),
so a remote result differs from a local one only by the server's arithmetic. A backend is a
function ``run(model, steps, backend) -> results`` registered in :data:`RUNNERS`; its
settings are a :class:`Backend` value.
"""

from __future__ import annotations

from collections.abc import Callable

from interlace.models.model import Model
from interlace.runtime.backend import local, ndif, simulate
from interlace.runtime.backend.base import BACKENDS, LOCAL, MAX_RESULT_BYTES, Backend
from interlace.runtime.backend.errors import (
    ModelNotAvailable,
    NDIFError,
    RemoteJobError,
    ResultTooLarge,
    ServerUnavailable,
    VersionSkew,
)

Runner = Callable[[Model, list[dict], Backend], list[dict]]

RUNNERS: dict[str, Runner] = {"local": local.run, "ndif": ndif.run, "simulate": simulate.run}
"""Each backend's runner, by the name in :data:`BACKENDS`."""


def as_backend(backend: str | Backend, host: str | None = None) -> Backend:
    """``"local"``/``"ndif"``/``"simulate"`` (with an optional ``host``) or a
    :class:`Backend` -> a :class:`Backend`; a bad name raises ``ValueError`` before anything
    runs.

    >>> as_backend("ndif", "http://127.0.0.1:8001").host
    'http://127.0.0.1:8001'
    """
    if isinstance(backend, Backend):
        if host is not None and host != backend.host:
            raise ValueError("give the host either in the Backend or as host=, not both")
        return backend
    return Backend(kind=backend, host=host)


def execute(model: Model, steps: list[dict], backend: Backend = LOCAL) -> list[dict]:
    """Run ``steps`` (:mod:`interlace.runtime.steps`) on ``model`` with ``backend``; several
    steps share one remote session (one request, one payload, tensors sent once)."""
    return RUNNERS[backend.kind](model, steps, backend)


__all__ = [
    "BACKENDS",
    "LOCAL",
    "MAX_RESULT_BYTES",
    "RUNNERS",
    "Backend",
    "ModelNotAvailable",
    "NDIFError",
    "RemoteJobError",
    "ResultTooLarge",
    "ServerUnavailable",
    "VersionSkew",
    "as_backend",
    "execute",
]
