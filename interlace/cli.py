"""The ``interlace`` command line: thin commands that parse, call the API and print."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    help="Declarative mechanistic-interpretability experiments on language models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console()

JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def _fail(message: str) -> None:
    console.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(code=2)


@app.command()
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
    console.print(table)
    for name, what in ALIASES.items():
        console.print(f"bundled: [bold]{name}[/bold] — {what}")


@app.command()
def info(
    model: Annotated[str, typer.Argument(help="Model name, hub id, directory or .gguf file.")],
    as_json: JsonFlag = False,
) -> None:
    """Print a model's shape facts and its sites (reads the config only, no weights)."""
    from transformers import AutoConfig

    from interlace.interventions.sites import SITES
    from interlace.models.adapters import UnsupportedArchitectureError, adapter_for
    from interlace.models.errors import ModelLoadError
    from interlace.models.loading import resolve_source

    try:
        adapter = adapter_for(AutoConfig.from_pretrained(str(resolve_source(model))))
    except (ModelLoadError, UnsupportedArchitectureError, OSError) as err:
        _fail(str(err))
    facts = adapter.shape.to_dict()
    if as_json:
        print(json.dumps({"model": model, **facts}, indent=2))
        return
    table = Table("fact", "value", title=model)
    for key, value in facts.items():
        if key != "sites":
            table.add_row(key, str(value))
    console.print(table)
    sites = Table("site", "per layer", "meaning")
    for name in facts["sites"]:
        s = SITES[name]
        sites.add_row(name, "yes" if s.per_layer else "", s.meaning)
    console.print(sites)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
