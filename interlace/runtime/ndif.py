"""The NDIF backend: steps shipped to an NDIF server in one nnsight session.

One call of :func:`run_session` is one remote job: a session whose body runs
:func:`interlace.runtime.execute.execute` on the server's model. The body's code travels by
value (registered with ``nnsight.register``), the steps' tensors travel once however many
traces use them, and what comes back is only what the bodies saved.

Failures become :class:`NDIFError` subclasses that say what happened and what to do:
the server unreachable (after retries with backoff), the model unknown or not deployed there,
the job raising on the server (with the server's traceback), a client/server nnsight version
skew, a result too large. The API key (``NDIF_API_KEY`` or nnsight's config) is sent in a
header only; it is scrubbed from every message interlace raises.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import os
import sys
import time
from typing import Any

import torch

from interlace.runtime.backend import Backend
from interlace.runtime.execute import execute


class NDIFError(RuntimeError):
    """A remote run failed; the message says why and what to do."""


class ServerUnavailable(NDIFError):
    """The server could not be reached (or stayed overloaded) through every retry."""


class ModelNotAvailable(NDIFError):
    """The server does not know the model or cannot deploy it."""


class RemoteJobError(NDIFError):
    """The job raised on the server; the message holds the server's traceback."""


class VersionSkew(NDIFError):
    """The client's and the server's nnsight differ, so trace code may not run the same."""


class ResultTooLarge(NDIFError):
    """The results would exceed the backend's ``max_result_bytes``."""


def api_key() -> str | None:
    """The NDIF API key: ``NDIF_API_KEY``, else nnsight's configured key."""
    from nnsight import CONFIG

    return os.environ.get("NDIF_API_KEY") or CONFIG.API.APIKEY or None


def host_of(backend: Backend) -> str:
    """The server URL: the backend's, else ``NDIF_HOST``, else nnsight's configured host."""
    from nnsight import CONFIG

    return (backend.host or os.environ.get("NDIF_HOST") or CONFIG.API.HOST).rstrip("/")


def scrub(text: str) -> str:
    """``text`` with the API key, if any, masked."""
    key = api_key()
    return text.replace(key, "***") if key else text


def seed_local_model_id(path: str) -> None:
    """Let nnsight name a model by a local directory.

    nnsight canonicalises a model's id on the Hugging Face Hub before a remote request, which
    fails for a local path (a self-hosted NDIF serves models from local directories). Seeding
    its id cache with the path itself skips the lookup. This is a private nnsight API
    (``nnsight.modeling.huggingface._ID_CACHE``), used here and nowhere else.
    """
    from nnsight.modeling import huggingface

    huggingface._ID_CACHE[path] = path


# ---- payload ---------------------------------------------------------------------------


def share_tensors(obj: Any, seen: dict | None = None) -> Any:
    """``obj`` (nested dicts, lists, tuples) with equal tensors replaced by one object, so the
    serializer's memo sends each distinct tensor (a steering vector, a mask) once per session."""
    seen = {} if seen is None else seen
    if isinstance(obj, torch.Tensor):
        raw = obj.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy()
        key = (obj.dtype, tuple(obj.shape), hashlib.sha1(raw).digest())
        return seen.setdefault(key, obj)
    if isinstance(obj, dict):
        return {k: share_tensors(v, seen) for k, v in obj.items()}
    if isinstance(obj, list):
        return [share_tensors(v, seen) for v in obj]
    if isinstance(obj, tuple):
        return tuple(share_tensors(v, seen) for v in obj)
    return obj


def _check_size(steps: list[dict], backend: Backend) -> None:
    size = sum(step["result_bytes"] for step in steps)
    if size > backend.max_result_bytes:
        raise ResultTooLarge(
            f"this run could send back {size / 2**20:.1f} MiB from the server, more than the "
            f"limit of {backend.max_result_bytes / 2**20:.1f} MiB: capture fewer layers or "
            "positions, use logits='last', or run fewer prompts at a time (smaller batches); "
            "or raise Backend(max_result_bytes=...)"
        )


# ---- the session -----------------------------------------------------------------------


def _session(nm: Any, steps: list[dict], remote: Any) -> list[dict]:
    """One nnsight session whose body runs ``steps``; ``remote`` is nnsight's backend."""
    import nnsight

    with nm.session(backend=remote):
        results = nnsight.save(execute(nm, steps))
    return results


class _NoInterlace(importlib.abc.MetaPathFinder):
    """Makes ``import interlace`` fail, as on a server that does not have it."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name == "interlace" or name.startswith("interlace."):
            raise ModuleNotFoundError(f"No module named {name!r} (simulated NDIF server)")


#: The test runner's modules. nnsight's simulation takes every module a server lacks out of
#: ``sys.modules`` while it deserializes; pytest's import hook (on ``sys.meta_path``) then
#: re-imports parts of pytest mid-test, and the suite saw ``_pytest`` without ``main``
#: afterwards. Trace code never uses them, so they stay.
_RUNNER_MODULES = {"_pytest", "pytest", "pluggy", "iniconfig", "hypothesis"}


def _simulation(nm: Any) -> Any:
    """nnsight's ``remote="local"`` backend, made strict: it hides modules found on
    ``sys.path`` while it deserializes, but an editable install's import hook would still find
    interlace; this one cannot."""
    from nnsight.intervention.backends.local import LocalSimulationBackend

    class StrictSimulation(LocalSimulationBackend):
        def _hide_local_modules(self) -> dict:
            hidden = super()._hide_local_modules()
            modules = hidden["modules"]
            for name in [n for n in modules if n.split(".")[0] in _RUNNER_MODULES]:
                sys.modules[name] = modules.pop(name)
            sys.meta_path.insert(0, _NO_INTERLACE)
            return hidden

        def _restore(self, hidden: dict) -> None:
            sys.meta_path.remove(_NO_INTERLACE)
            super()._restore(hidden)

    return StrictSimulation(nm)


_NO_INTERLACE = _NoInterlace()


def _nnsight_backend(model: Any, backend: Backend) -> Any:
    if backend.kind == "simulate":
        return _simulation(model.nnsight)
    from nnsight.intervention.backends.display import StatusDisplay
    from nnsight.intervention.backends.remote import RemoteBackend

    remote = RemoteBackend(
        _model_key(model), host=host_of(backend), api_key=api_key(), blocking=True
    )
    remote.display = StatusDisplay(enabled=False)  # no status lines on stdout (--json)
    return remote


def _model_key(model: Any) -> str:
    repo = model.nnsight.repo_id
    if repo and os.path.isdir(repo):
        seed_local_model_id(repo)
    return model.nnsight.to_model_key()


def run_session(model: Any, steps: list[dict], backend: Backend) -> list[dict]:
    """Run ``steps`` in one remote session (``ndif`` or ``simulate``), retrying transient
    failures; one dict of results per step."""
    _check_size(steps, backend)
    steps = share_tensors(steps)
    if backend.kind == "simulate":
        return _session(model.nnsight, steps, _nnsight_backend(model, backend))
    host = host_of(backend)
    for attempt in range(backend.retries + 1):
        try:
            check_versions(host)
            return _session(model.nnsight, steps, _nnsight_backend(model, backend))
        except Exception as err:  # noqa: BLE001 - classified below, re-raised as NDIFError
            error = classify(err, host, model)
        if not isinstance(error, ServerUnavailable) or attempt == backend.retries:
            raise error from None
        time.sleep(backend.backoff * 2**attempt)
    raise AssertionError("unreachable")  # pragma: no cover


# ---- errors ----------------------------------------------------------------------------

# what NDIF answers when it cannot bring a model up (unknown, or failing to load)
_DEPLOY_FAILURES = ("Error starting model", "Error provisioning model")
_TRANSIENT_HTTP = ("502", "503", "504", "Bad Gateway", "Service Unavailable", "Gateway Timeout")


def classify(err: BaseException, host: str, model: Any) -> NDIFError:
    """The :class:`NDIFError` that explains ``err`` (the API key scrubbed)."""
    from nnsight.intervention.backends.remote import RemoteError

    text = scrub(f"{err}")
    if isinstance(err, NDIFError):
        return type(err)(text)
    if isinstance(err, RemoteError):
        if text.startswith("Failed to send request") and not any(
            t in text for t in _TRANSIENT_HTTP
        ):
            return _refused(text, host, model)
        if text.startswith("Failed to send request"):
            return ServerUnavailable(f"the NDIF server at {host} is unavailable: {text}")
        if text.startswith(_DEPLOY_FAILURES):
            return _model_unavailable(text, host, model)
        return RemoteJobError(
            f"the job failed on the NDIF server at {host}; the server's traceback:\n{text}"
        )
    if _is_connection_error(err):
        return ServerUnavailable(
            f"cannot reach the NDIF server at {host} ({type(err).__name__}: {text}). Is it "
            "running, and is the host right? (--host / NDIF_HOST; a local server: "
            "bash tools/ndif/start.sh)"
        )
    return RemoteJobError(f"the remote run on {host} failed: {type(err).__name__}: {text}")


def _refused(text: str, host: str, model: Any) -> NDIFError:
    lowered = text.lower()
    if "version" in lowered:
        return VersionSkew(f"the NDIF server at {host} refused this client: {text}")
    if "model" in lowered or "deploy" in lowered:
        return _model_unavailable(text, host, model)
    return NDIFError(f"the NDIF server at {host} refused the request: {text}")


def _model_unavailable(text: str, host: str, model: Any) -> ModelNotAvailable:
    return ModelNotAvailable(
        f"the NDIF server at {host} cannot run {model.nnsight.repo_id!r} ({text}). Is it a "
        f"model that server serves? {host}/status lists them; a server of your own serves "
        "the directories or hub ids its machine can load."
    )


def _is_connection_error(err: BaseException) -> bool:
    import httpx

    try:
        import websocket

        ws_errors: tuple[type[BaseException], ...] = (websocket.WebSocketException,)
    except ImportError:  # pragma: no cover - websocket-client comes with nnsight
        ws_errors = ()
    return isinstance(err, (httpx.TransportError, ConnectionError, TimeoutError, *ws_errors))


# ---- versions --------------------------------------------------------------------------

_CHECKED: set[str] = set()


def check_versions(host: str) -> None:
    """Refuse a server whose nnsight differs from this client's (checked once per host):
    trace code is compiled by the client's nnsight and run by the server's."""
    if host in _CHECKED:
        return
    from importlib.metadata import version

    import httpx

    key = api_key()
    try:
        response = httpx.get(
            f"{host}/env", headers={"ndif-api-key": key} if key else None, timeout=30
        )
    except httpx.TransportError as err:
        raise ServerUnavailable(
            f"cannot reach the NDIF server at {host} ({type(err).__name__}: {scrub(str(err))}). "
            "Is it running, and is the host right? (--host / NDIF_HOST; a local server: "
            "bash tools/ndif/start.sh)"
        ) from None
    if response.status_code >= 500:  # up but not ready (e.g. Ray reconnecting): retried
        raise ServerUnavailable(
            f"the NDIF server at {host} is unavailable: HTTP {response.status_code} from /env"
        )
    if response.status_code == 200:
        server = response.json().get("packages", {}).get("nnsight")
        client = version("nnsight")
        if server is not None and server != client:
            raise VersionSkew(
                f"the NDIF server at {host} runs nnsight {server}, this client {client}: "
                f"install the server's version here (pip install nnsight=={server})"
            )
    _CHECKED.add(host)  # also when the server has no /env: its own gate decides
