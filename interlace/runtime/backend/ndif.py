"""The NDIF backend: steps shipped to an NDIF server in one nnsight session.

One call of :func:`run` is one remote job: a session whose body runs
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

import os
import time
from importlib.metadata import version

import httpx
from nnsight import CONFIG
from nnsight.intervention.backends.display import StatusDisplay
from nnsight.intervention.backends.remote import RemoteBackend, RemoteError
from nnsight.modeling import huggingface

from interlace.models.model import Model
from interlace.runtime.backend.base import Backend
from interlace.runtime.backend.errors import (
    ModelNotAvailable,
    NDIFError,
    RemoteJobError,
    ServerUnavailable,
    VersionSkew,
)
from interlace.runtime.backend.session import check_size, run_session, share_tensors


def api_key() -> str | None:
    """The NDIF API key: ``NDIF_API_KEY``, else nnsight's configured key."""
    return os.environ.get("NDIF_API_KEY") or CONFIG.API.APIKEY or None


def host_of(backend: Backend) -> str:
    """The server URL: the backend's, else ``NDIF_HOST``, else nnsight's configured host."""
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
    huggingface._ID_CACHE[path] = path


def _remote(model: Model, backend: Backend) -> RemoteBackend:
    """nnsight's backend for a request to the server."""
    remote = RemoteBackend(
        _model_key(model), host=host_of(backend), api_key=api_key(), blocking=True
    )
    remote.display = StatusDisplay(enabled=False)  # no status lines on stdout (JSON output)
    return remote


def _model_key(model: Model) -> str:
    repo = model.nnsight.repo_id
    if repo and os.path.isdir(repo):
        seed_local_model_id(repo)
    return model.nnsight.to_model_key()


def run(model: Model, steps: list[dict], backend: Backend) -> list[dict]:
    """Run ``steps`` in one session on the NDIF server, retrying transient failures; one dict
    of results per step."""
    check_size(steps, backend)
    steps = share_tensors(steps)
    host = host_of(backend)
    for attempt in range(backend.retries + 1):
        try:
            check_versions(host)
            return run_session(model.nnsight, steps, _remote(model, backend))
        except Exception as err:  # noqa: BLE001 - classified below, re-raised as NDIFError
            error = classify(err, host, model)
        if not isinstance(error, ServerUnavailable) or attempt == backend.retries:
            raise error from None
        time.sleep(backend.backoff * 2**attempt)
    raise AssertionError("unreachable")  # pragma: no cover


# ---- errors ----------------------------------------------------------------------------

_HOST_HELP = "(the backend's host, else NDIF_HOST; a server of your own: see docs/remote.md)"
# what NDIF answers when it cannot bring a model up (unknown, or failing to load)
_DEPLOY_FAILURES = ("Error starting model", "Error provisioning model")
_TRANSIENT_HTTP = ("502", "503", "504", "Bad Gateway", "Service Unavailable", "Gateway Timeout")


def classify(err: BaseException, host: str, model: Model) -> NDIFError:
    """The :class:`NDIFError` that explains ``err`` (the API key scrubbed)."""
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
            f"running, and is the host right? {_HOST_HELP}"
        )
    return RemoteJobError(f"the remote run on {host} failed: {type(err).__name__}: {text}")


def _refused(text: str, host: str, model: Model) -> NDIFError:
    lowered = text.lower()
    if "version" in lowered:
        return VersionSkew(f"the NDIF server at {host} refused this client: {text}")
    if "model" in lowered or "deploy" in lowered:
        return _model_unavailable(text, host, model)
    return NDIFError(f"the NDIF server at {host} refused the request: {text}")


def _model_unavailable(text: str, host: str, model: Model) -> ModelNotAvailable:
    return ModelNotAvailable(
        f"the NDIF server at {host} cannot run {model.nnsight.repo_id!r} ({text}). Is it a "
        f"model that server serves? {host}/status lists them; a server of your own serves "
        "the directories or hub ids its machine can load."
    )


def _is_connection_error(err: BaseException) -> bool:
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
    key = api_key()
    try:
        response = httpx.get(
            f"{host}/env", headers={"ndif-api-key": key} if key else None, timeout=30
        )
    except httpx.TransportError as err:
        raise ServerUnavailable(
            f"cannot reach the NDIF server at {host} ({type(err).__name__}: {scrub(str(err))}). "
            f"Is it running, and is the host right? {_HOST_HELP}"
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
