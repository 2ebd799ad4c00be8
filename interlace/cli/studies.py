"""``interlace study``, ``interlace report`` and ``interlace demo``: run a study file, report
its results, and the demo study end to end."""

from __future__ import annotations

from typing import Annotated

import typer

from interlace.cli.common import ModelOption, console, fail


def study(
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
        spec, base_dir = load_study(file)
        overrides = {k: v for k, v in (("backend", backend), ("host", host)) if v is not None}
        spec = spec.model_copy(update=overrides) if overrides else spec
        if dry_run:
            for line in plan_for(spec, base_dir).describe():
                print(line)
            return
        result = run_study(file, out=out, backend=backend, host=host)
    except ValidationError as err:  # its paths are the study file's fields, not flags
        fail(f"{file} is not a valid study:\n{err}", code=1)
    except (StoreError, OSError) as err:
        fail(err)
    printer = console()
    printer.print(result.message(), highlight=False)
    if report:
        printer.print(f"report: {write_report(result.path)}", highlight=False)


def report(
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
        fail(err)
    console().print(f"wrote {path}", highlight=False)


def demo(model: ModelOption = "smollm2-135m") -> None:
    """A small study on the bundled model (ablations, a steering sweep beside a random
    direction, a confidence curve, a probe) into ./interlace-demo: store, report, plots."""
    from interlace.cli.demo import run_demo

    run_demo(model)
