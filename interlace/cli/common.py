"""What the commands share: the console, the ``--json``, ``--model``, ``--backend`` and
``--host`` options, loading the model a command names, and failing with a message.

Library errors name API fields (``targets[1]``, ``out``); :func:`fail` shows a field that is a
parameter of the running command as that parameter's flag (``--target``, ``--out``), so the
parameters of a command are named after the API fields they pass on. (typer vendors its own
click, so a command hands its ``typer.Context`` to :func:`fail` rather than it being looked up.)
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from enum import Enum
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from interlace.models.adapters import Adapter
    from interlace.models.model import Model
    from interlace.runtime.backend import Backend

#: The width of output that is not a terminal: wide enough that no line is ever wrapped, so
#: what a pipe, a file or a test reads does not depend on a terminal's width or a path's length.
UNWRAPPED = 100_000

JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
ModelOption = Annotated[
    str, typer.Option("--model", "-m", help="Model name, hub id, directory or .gguf file.")
]
PlotOption = Annotated[
    str | None, typer.Option("--plot", help="Also draw the result to this PNG file.")
]


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


def console() -> Console:
    """The console a command prints to (``console().print(table)``): a terminal's width on a
    terminal; anywhere else lines are never wrapped. Emoji codes stay text: ``2:-1:2`` is a
    slice, not a thumbs-down."""
    if sys.stdout.isatty():
        return Console(emoji=False)
    return Console(emoji=False, width=UNWRAPPED, soft_wrap=True)


def fail(
    error: str | Exception,
    ctx: typer.Context | None = None,
    aliases: Mapping[str, str] | None = None,
    code: int = 2,
) -> NoReturn:
    """Print ``error`` and exit with ``code``: ``fail(err, ctx)`` in an ``except`` clause.

    Given the command's context, the problems of a validation error name its flags for the
    fields they name (see :func:`flagged`).
    """
    message = error if isinstance(error, str) else flagged(error, ctx, aliases)
    console().print(f"[red]error:[/red] {escape(message)}", highlight=False)
    raise typer.Exit(code=code)


_FIELD = re.compile(r"(?P<field>[A-Za-z_]\w*)(?:\[\d+\])?")


def flagged(
    error: Exception, ctx: typer.Context | None = None, aliases: Mapping[str, str] | None = None
) -> str:
    """``error``'s message; for a validation error, each problem whose path is a parameter of
    the command ``ctx`` runs (or one element of it: ``targets[1]``) is named by its flag
    (``--target``) or, for an argument, its metavar (``STORE``). ``aliases`` maps the API
    fields that a parameter of another name passes on (``{"data": "store"}``). Other paths stay
    as they are: they point into a document (``interventions[0].layer``)."""
    from interlace.interventions.errors import Problem, ValidationError

    if not isinstance(error, ValidationError) or ctx is None:
        return str(error)
    names = {}
    for param in ctx.command.params:
        if param.param_type_name == "option":
            names[param.name] = max(param.opts, key=len)
        else:
            names[param.name] = param.name.upper()
    for field, param in (aliases or {}).items():
        names[field] = names[param]
    problems = []
    for p in error.problems:
        match = _FIELD.fullmatch(p.path or "")
        path = names.get(match["field"], p.path) if match else p.path
        problems.append(Problem(path, p.message, p.allowed))
    return str(ValidationError(problems))


def load_for(model: str, backend: BackendName, host: str | None) -> tuple[Model, Backend]:
    """The backend (checked first: a bad host fails before any loading) and the model loaded
    for it: for ndif without its weights, which stay on the server."""
    from interlace.models.loading import load
    from interlace.runtime.backend import as_backend

    chosen = as_backend(backend.value, host)
    return load(model, remote=chosen.kind == "ndif"), chosen


def adapter_of(model: str) -> Adapter:
    """The adapter of ``model`` (a name, hub id, directory or .gguf file) from its config
    alone, no weights: ``adapter_of("smollm2-135m").shape``."""
    from transformers import AutoConfig

    from interlace.models.adapters import UnsupportedArchitectureError, adapter_for
    from interlace.models.errors import ModelLoadError
    from interlace.models.loading import resolve_source

    try:
        return adapter_for(AutoConfig.from_pretrained(str(resolve_source(model))))
    except (ModelLoadError, UnsupportedArchitectureError, OSError) as err:
        fail(err)
