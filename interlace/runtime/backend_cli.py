"""The ``--backend``/``--host`` options of the commands that run a model (run, confidence,
cache, study), and loading the model they name for that backend."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any

import typer


class BackendName(str, Enum):
    local = "local"
    ndif = "ndif"


BackendOption = Annotated[
    BackendName,
    typer.Option(
        "--backend",
        help="Where the model runs: local, or ndif (an NDIF server; the API key comes from "
        "NDIF_API_KEY or nnsight's config).",
    ),
]
HostOption = Annotated[
    str | None,
    typer.Option(
        "--host",
        help="The NDIF server's URL, e.g. http://127.0.0.1:8001 (default: NDIF_HOST, else the "
        "public NDIF).",
    ),
]


def load_for(model: str, backend: BackendName, host: str | None) -> tuple[Any, Any]:
    """The backend (checked first: a bad host fails before any loading) and the model loaded
    for it: for ndif without its weights, which stay on the server."""
    import interlace as il
    from interlace.runtime.backend import as_backend

    chosen = as_backend(backend.value, host)
    return il.load(model, remote=chosen.kind == "ndif"), chosen
