"""``interlace models`` and ``interlace info``: what interlace supports and a model's shape."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from interlace.cli.common import JsonFlag, adapter_of, console


def models(as_json: JsonFlag = False) -> None:
    """List the supported architecture families and the bundled model."""
    from interlace.models.adapters import TABLES
    from interlace.models.loading import ALIASES

    rows = [{"family": t.family, "model_types": list(t.model_types)} for t in TABLES]
    if as_json:
        print(json.dumps({"families": rows, "bundled": ALIASES}, indent=2))
        return
    table = Table("family", "transformers model_type")
    for r in rows:
        table.add_row(r["family"], ", ".join(r["model_types"]))
    out = console()
    out.print(table)
    for name, what in ALIASES.items():
        out.print(f"bundled: [bold]{name}[/bold] — {what}")


def info(
    model: Annotated[str, typer.Argument(help="Model name, hub id, directory or .gguf file.")],
    as_json: JsonFlag = False,
) -> None:
    """Print a model's shape facts and its sites (reads the config only, no weights)."""
    from interlace.interventions.sites import SITES

    facts = adapter_of(model).shape.to_dict()
    if as_json:
        print(json.dumps({"model": model, **facts}, indent=2))
        return
    table = Table("fact", "value", title=model)
    for key, value in facts.items():
        if key != "sites":
            table.add_row(key, str(value))
    sites = Table("site", "per layer", "meaning")
    for name in facts["sites"]:
        s = SITES[name]
        sites.add_row(name, "yes" if s.per_layer else "", s.meaning)
    out = console()
    out.print(table)
    out.print(sites)
