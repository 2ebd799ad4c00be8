"""The study file: a model, a dataset, named conditions, a sweep, readouts and the output store.

A study is data, like a graph: strict, closed, immutable pydantic models (:class:`Spec`), read
from YAML with ``yaml.safe_load`` only, and torch-free, so a study is checked and planned
without a model. The parts:

- ``dataset``: a JSONL file (``path``, optional ``text_field``) or a built-in generator
  (``task``, ``n``, ``seed``, ``options``: see :data:`interlace.datasets.TASKS`).
- ``vectors``: named vectors an intervention's ``vector`` may name instead of spelling one out:
  a file or inline list (as in a graph), ``{unembed: " Paris"}`` (the token's unembedding row),
  or ``{random: SEED, like: NAME}`` (a seeded random direction as long as another vector; the
  baseline a steering direction is compared with).
- ``conditions``: named lists of interventions. ``extends: OTHER`` starts from another
  condition's interventions (its own are appended); ``set`` overrides fields by path
  (``{"interventions[0].vector": random}``).
- ``sweep``: axes, each setting a field of the listed conditions (``interventions[0].coeff``)
  to each of its values, as a ``product`` (one dim per axis) or a ``zip`` (one ``point`` dim).
- ``readouts`` (shared by every condition): ``logits`` of named tokens and/or of each record's
  target, ``fork_readout`` confidence curves along the generation, ``generation``s scored
  against the record, and ``capture``s of activations; ``generate`` settings when a readout
  needs a generation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import pydantic
from typing_extensions import Self

from interlace.interventions import Capture, ForkReadout, Generate, VectorFile
from interlace.interventions.base import Spec
from interlace.interventions.errors import field_error
from interlace.studies.scoring import EXTRACTORS, SCORERS

SCHEMA_VERSION = 1
Name = Annotated[str, pydantic.Field(min_length=1, pattern=r"^[A-Za-z_][A-Za-z0-9_.-]*$")]
"""A condition, axis, vector or readout name: it labels coordinates and names arrays."""
Label = int | float | str | bool
"""A sweep value: it labels a coordinate, so it is a scalar."""


class TaskDataset(Spec):
    """``n`` records from a built-in generator, drawn with ``seed``; ``options`` are the
    generator's other arguments (``max_sum``, ``chat``, ...)."""

    task: str
    n: Annotated[int, pydantic.Field(ge=1)]
    seed: Annotated[int, pydantic.Field(ge=0)] = 0
    options: dict[str, Any] = pydantic.Field(default_factory=dict)


class FileDataset(Spec):
    """A JSONL file of records (a path relative to the study file, or a URL)."""

    path: Annotated[str, pydantic.Field(min_length=1)]
    text_field: str | None = None


def _dataset_form(value: Any) -> str | None:
    if isinstance(value, (TaskDataset, FileDataset)):
        return type(value).__name__
    if isinstance(value, dict):
        return "TaskDataset" if "task" in value else "FileDataset" if "path" in value else None
    return None


DatasetSpec = Annotated[
    Annotated[TaskDataset, pydantic.Tag("TaskDataset")]
    | Annotated[FileDataset, pydantic.Tag("FileDataset")],
    pydantic.Discriminator(
        _dataset_form,
        custom_error_type="dataset_type",
        custom_error_message="not a dataset",
        custom_error_context={"allowed": "{task: NAME, n: N, seed: S} or {path: FILE.jsonl}"},
    ),
]


class UnembedVector(Spec):
    """The unembedding row (``W_U``) of the first token of ``unembed``."""

    unembed: Annotated[str, pydantic.Field(min_length=1)]


class RandomVector(Spec):
    """A random direction drawn with seed ``random``: as long as the vector ``like`` names, or
    ``norm`` long, or of unit norm; ``width`` defaults to ``like``'s, else ``d_model``."""

    random: Annotated[int, pydantic.Field(ge=0)]
    like: Name | None = None
    norm: Annotated[float, pydantic.Field(gt=0)] | None = None
    width: Annotated[int, pydantic.Field(ge=1)] | None = None

    @pydantic.model_validator(mode="after")
    def _one_length(self) -> RandomVector:
        if self.like is not None and self.norm is not None:
            raise field_error("norm", "give like or norm, not both", "one of them")
        return self


def _vector_form(value: Any) -> str | None:
    if isinstance(value, (VectorFile, UnembedVector, RandomVector)):
        return type(value).__name__
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        for key, form in (("path", "VectorFile"), ("unembed", "UnembedVector")):
            if key in value:
                return form
        return "RandomVector" if "random" in value else None
    return None


StudyVector = Annotated[
    Annotated[list[float], pydantic.Field(min_length=1), pydantic.Tag("list")]
    | Annotated[VectorFile, pydantic.Tag("VectorFile")]
    | Annotated[UnembedVector, pydantic.Tag("UnembedVector")]
    | Annotated[RandomVector, pydantic.Tag("RandomVector")],
    pydantic.Discriminator(
        _vector_form,
        custom_error_type="vector_type",
        custom_error_message="not a study vector",
        custom_error_context={
            "allowed": "a list of floats, {path: FILE}, {unembed: TOKEN} or {random: SEED, "
            "like: NAME}"
        },
    ),
]


class Condition(Spec):
    """A named list of interventions, as in a graph's ``interventions`` (checked when the
    study is planned, after ``extends``, ``set``, the sweep and named vectors apply)."""

    extends: Name | None = None
    interventions: list[dict[str, Any]] = pydantic.Field(default_factory=list)
    set: dict[str, Any] = pydantic.Field(default_factory=dict)
    """Field path -> value, applied to the interventions after ``extends``."""
    description: str | None = None


class Axis(Spec):
    """One sweep axis: the field it sets (one path for every swept condition, or one per
    condition) and its values."""

    field: Annotated[str, pydantic.Field(min_length=1)] | dict[Name, str]
    values: Annotated[list[Label], pydantic.Field(min_length=1)]

    @pydantic.field_validator("values")
    @classmethod
    def _distinct(cls, values: list[Label]) -> list[Label]:
        if len({(type(v), v) for v in values}) != len(values):
            raise ValueError("values must be distinct (they label a coordinate)")
        return values


class Sweep(Spec):
    """Axes over fields of the listed conditions; the others run once and are broadcast."""

    mode: Literal["product", "zip"] = "product"
    conditions: Annotated[list[Name], pydantic.Field(min_length=1)]
    axes: Annotated[dict[Name, Axis], pydantic.Field(min_length=1)]

    @pydantic.model_validator(mode="after")
    def _zip_lengths(self) -> Sweep:
        lengths = {name: len(axis.values) for name, axis in self.axes.items()}
        if self.mode == "zip" and len(set(lengths.values())) > 1:
            raise field_error("axes", f"zipped axes differ in length: {lengths}", "equal lengths")
        return self


class LogitsReadout(Spec):
    """Next-token log-probabilities at each prompt's last token: of ``tokens`` (each one
    token), and/or of the record's ``target`` field (its first token). With a target,
    ``correct`` says whether it wins: the top of ``tokens`` if given, else of the vocabulary."""

    kind: Literal["logits"] = "logits"
    name: Name = "logits"
    tokens: (
        Annotated[list[Annotated[str, pydantic.Field(min_length=1)]], pydantic.Field(min_length=1)]
        | None
    ) = None
    target: Annotated[str, pydantic.Field(min_length=1)] | None = None

    @pydantic.model_validator(mode="after")
    def _something(self) -> LogitsReadout:
        if self.tokens is None and self.target is None:
            raise field_error("tokens", "a logits readout needs tokens, a target or both")
        return self


class GenerationReadout(Spec):
    """The generated text, the answer ``extract`` finds in it, and, with ``score``, whether the
    answer is right for the record (``exact_match`` against the ``target`` field, or
    ``countdown``)."""

    kind: Literal["generation"] = "generation"
    name: Name = "generation"
    extract: Literal[EXTRACTORS] = "first_line"  # type: ignore[valid-type]
    pattern: str | None = None
    """The regular expression of ``extract: regex``."""
    score: Literal[SCORERS] | None = None  # type: ignore[valid-type]
    target: Annotated[str, pydantic.Field(min_length=1)] | None = None

    @pydantic.model_validator(mode="after")
    def _consistent(self) -> GenerationReadout:
        if (self.extract == "regex") != (self.pattern is not None):
            raise field_error("pattern", "a pattern goes with extract: regex, and only with it")
        if self.score == "exact_match" and self.target is None:
            raise field_error("target", "exact_match needs the field holding the right answer")
        return self


Readout = Annotated[
    LogitsReadout | GenerationReadout | ForkReadout | Capture,
    pydantic.Field(discriminator="kind"),
]
"""Any readout, told apart by ``kind``: ``logits``, ``generation``, ``fork_readout``,
``capture``."""


class Study(Spec):
    """A whole study; see the module docstring."""

    schema_version: Literal[1] = SCHEMA_VERSION
    name: str | None = None
    model: Annotated[str, pydantic.Field(min_length=1)] = "smollm2-135m"
    backend: Literal["local", "ndif", "simulate"] = "local"
    """Where each run executes, as ``il.run``'s ``backend`` (``simulate``: the remote path
    in-process)."""
    host: str | None = None
    """The NDIF server for ``backend: ndif`` (default: ``NDIF_HOST``, else the public NDIF)."""
    dataset: DatasetSpec
    batch_size: Annotated[int, pydantic.Field(ge=1)] = 8
    vectors: dict[Name, StudyVector] = pydantic.Field(default_factory=dict)
    conditions: Annotated[dict[Name, Condition], pydantic.Field(min_length=1)]
    sweep: Sweep | None = None
    generate: Generate | None = None
    readouts: Annotated[list[Readout], pydantic.Field(min_length=1)]
    out: str | None = None
    """The results store; relative to the study file."""

    @classmethod
    def load(cls, path: str | Path) -> Self:
        """Read a study file (YAML, or JSON by its ``.json`` suffix)."""
        text = Path(path).read_text(encoding="utf-8")
        return cls.from_json(text) if Path(path).suffix.lower() == ".json" else cls.from_yaml(text)

    def readout_key(self, index: int) -> str:
        """The name readout ``index`` stores its arrays under."""
        readout = self.readouts[index]
        return readout.key if isinstance(readout, (Capture, ForkReadout)) else readout.name
