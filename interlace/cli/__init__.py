"""The ``interlace`` command line: thin commands that parse, call the API and print.

One module per group of commands; each imports the library when its command runs, so the
command line starts (``interlace --help``) without torch or nnsight.
"""

from __future__ import annotations

import typer

from interlace.cli import analyses, confidence, graphs, models, stores, studies

app = typer.Typer(
    help="Declarative mechanistic-interpretability experiments on language models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
EXTRA_ARGS = {"allow_extra_args": True}  # `--tokens A B`: B arrives as an extra argument

app.add_typer(models.models_app, name="models")
app.command()(models.info)
app.command()(graphs.validate)
app.command()(graphs.explain)
app.command(context_settings=EXTRA_ARGS)(graphs.run)
app.command(context_settings=EXTRA_ARGS)(confidence.confidence)
app.command()(stores.cache)
app.add_typer(stores.store_app, name="store")
app.command()(analyses.lens)
app.command()(analyses.probe)
app.command()(studies.study)
app.command()(studies.report)
app.command()(studies.demo)

__all__ = ["app"]
