"""A graph: the interventions to apply, the activations to capture, and optionally generation.

Interventions apply in declaration order; where several touch the same site at the same layer
and position, each sees the result of the ones before it (``scale_value_vectors`` then
``add_vector`` scales first, then adds). Captures read sites after the interventions at that
site have been applied.

A graph is a document: :meth:`Graph.load` / :meth:`Graph.save` read and write YAML or JSON by
file extension, the round trip is exact, and :meth:`content_hash` identifies its meaning.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pydantic
from typing_extensions import Self

from interlace.interventions.base import Spec
from interlace.interventions.checks import Checks
from interlace.interventions.errors import Problem, ValidationError, field_error, join_path
from interlace.interventions.kinds import Intervention
from interlace.interventions.readouts import ForkReadout
from interlace.interventions.sites import ModelShape
from interlace.interventions.specs import Capture, Generate

SCHEMA_VERSION = 1
_FORMATS = {".yaml": "yaml", ".yml": "yaml", ".json": "json"}


class Graph(Spec):
    """Interventions, captures and generation settings for one run of a model."""

    schema_version: Literal[1] = SCHEMA_VERSION
    """The document format's version; bumped when a change would alter a document's meaning."""
    interventions: list[Intervention] = pydantic.Field(default_factory=list)
    capture: list[Capture] = pydantic.Field(default_factory=list)
    generate: Generate | None = None
    readouts: list[ForkReadout] = pydantic.Field(default_factory=list)
    """Fork readouts of the generated response (each example's prompt + its generation)."""

    @pydantic.model_validator(mode="after")
    def _distinct_capture_keys(self) -> Graph:
        seen: dict[str, int] = {}
        for index, capture in enumerate(self.capture):
            if capture.key in seen:
                raise field_error(
                    f"capture[{index}].name",
                    f"capture {capture.key!r} is already declared at capture[{seen[capture.key]}]",
                    "a distinct name for each capture",
                )
            seen[capture.key] = index
        return self

    @classmethod
    def load(cls, path: str | Path) -> Self:
        """Read a ``.yaml``/``.yml``/``.json`` document. Relative vector paths inside it are
        resolved later against a ``base_dir``: pass ``path``'s directory."""
        text = Path(path).read_text(encoding="utf-8")
        return cls.from_json(text) if _format(path) == "json" else cls.from_yaml(text)

    def save(self, path: str | Path) -> None:
        text = self.to_json() if _format(path) == "json" else self.to_yaml()
        Path(path).write_text(text, encoding="utf-8")

    def validate(
        self,
        shape: ModelShape,
        prompt_lengths: list[int] | None = None,
        base_dir: str | Path | None = None,
    ) -> None:
        """Check this graph against a model; see :func:`validate_graph`."""
        validate_graph(self, shape, prompt_lengths, base_dir)


def validate_graph(
    graph: Graph,
    shape: ModelShape,
    prompt_lengths: list[int] | None = None,
    base_dir: str | Path | None = None,
) -> None:
    """Raise one :class:`ValidationError` listing every way ``graph`` does not fit the model.

    Parsing already guarantees a well-formed document; this finds what cannot work on *this*
    model and *these* prompts: layers, heads or value vectors that do not exist, vectors of the
    wrong width (file vectors are loaded to check; an unreadable file is a problem, not a
    crash), sites the model does not provide, explicit positions outside the shortest prompt,
    ``"generated"`` positions without generation, and per-example source lists of the wrong
    length. Each spec checks itself (``spec.check``) with the shared :class:`~.checks.Checks`.

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


def _format(path: str | Path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in _FORMATS:
        allowed = ", ".join(_FORMATS)
        raise ValidationError([Problem("", f"unknown graph file type {suffix!r}", allowed)])
    return _FORMATS[suffix]
