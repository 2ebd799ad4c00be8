"""A backend's settings: which backend, and how it reaches and guards a server."""

from __future__ import annotations

from dataclasses import dataclass

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
