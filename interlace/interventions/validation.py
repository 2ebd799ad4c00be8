"""Check a parsed graph against a model's shape before anything runs.

Parsing already guarantees a well-formed document; this finds what cannot work on *this* model
and *these* prompts: layers, heads or value vectors that do not exist, vectors of the wrong
width (file vectors are loaded to check; an unreadable file is a problem, not a crash), sites
the model does not provide, explicit positions outside the shortest prompt, ``"generated"``
positions without generation, and per-example source lists of the wrong length. Every problem
is collected, so one :class:`~.errors.ValidationError` lists them all. Each spec checks itself
(``spec.check``) with the shared :class:`~.checks.Checks`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from interlace.interventions.checks import Checks
from interlace.interventions.errors import Problem, ValidationError, join_path
from interlace.interventions.sites import ModelShape

if TYPE_CHECKING:
    from interlace.interventions.graph import Graph


def validate_graph(
    graph: Graph,
    shape: ModelShape,
    prompt_lengths: list[int] | None = None,
    base_dir: str | Path | None = None,
) -> None:
    """Raise one :class:`ValidationError` listing every way ``graph`` does not fit the model.

    ``prompt_lengths`` (real tokens per example), when given, lets explicit positions and
    per-example source lists be checked; ``base_dir`` resolves relative vector file paths.
    """
    checks = Checks(
        shape=shape,
        shortest=min(prompt_lengths) if prompt_lengths else None,
        n_examples=len(prompt_lengths) if prompt_lengths else None,
        generates=graph.generate is not None,
        base_dir=base_dir,
    )
    problems: list[Problem] = []
    for section, specs in (("interventions", graph.interventions), ("capture", graph.capture)):
        for index, spec in enumerate(specs):
            path = f"{section}[{index}]"
            where = join_path(path, "site") if "site" in type(spec).model_fields else path
            problems.extend(checks.sites(spec.sites(), where))
            problems.extend(spec.check(checks, path))
    if problems:
        raise ValidationError(problems)
