"""``interlace study`` and ``interlace report``: thin commands over :mod:`interlace.studies`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

console = Console()


def _fail(message: str, code: int = 2) -> None:
    console.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(code=code)


def study_command(
    file: Annotated[str, typer.Argument(help="A study file (.yaml/.yml/.json).")],
    out: Annotated[
        str | None, typer.Option("--out", "-o", help="The results store (overrides out:).")
    ] = None,
    backend: Annotated[
        str | None, typer.Option("--backend", help="local or ndif (overrides backend:).")
    ] = None,
    host: Annotated[
        str | None, typer.Option("--host", help="The NDIF server (overrides host:).")
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Check the file and print the plan; load no weights."),
    ] = False,
    report: Annotated[
        bool, typer.Option("--report/--no-report", help="Write the report when done.")
    ] = True,
) -> None:
    """Run a study: conditions x sweep points x dataset into one results store, resumably.
    Rerun the same command to resume an interrupted study."""
    from interlace.interventions import ValidationError
    from interlace.stores.errors import StoreError
    from interlace.studies.execute import load_study, plan_for, run_study
    from interlace.studies.report import write_report

    try:
        study, base_dir = load_study(file)
        overrides = {k: v for k, v in (("backend", backend), ("host", host)) if v is not None}
        study = study.model_copy(update=overrides) if overrides else study
        if dry_run:
            for line in plan_for(study, base_dir).describe():
                print(line)
            return
        result = run_study(file, out=out, backend=backend, host=host)
    except ValidationError as err:
        _fail(f"{file} is not a valid study:\n{err}", code=1)
    except (StoreError, OSError) as err:
        _fail(str(err))
    console.print(result.message(), highlight=False)
    if report:
        console.print(f"report: {write_report(result.path)}", highlight=False)


def report_command(
    results: Annotated[str, typer.Argument(help="A study's results store.")],
    out: Annotated[
        str | None,
        typer.Option(
            "--out", "-o", help="Directory for report.md and plots (default: RESULTS-report)."
        ),
    ] = None,
) -> None:
    """Write a markdown summary of a study's results, with PNG plots."""
    from interlace.stores.errors import StoreError
    from interlace.studies.report import write_report

    try:
        path = write_report(results, out)
    except StoreError as err:
        _fail(str(err))
    console.print(f"wrote {path}", highlight=False)
