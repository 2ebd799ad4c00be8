"""One error type for every problem with a graph document, whether found while parsing it or
while checking it against a model's shape.

A :class:`ValidationError` carries *all* the problems found, each with the path of the field at
fault (``interventions[1].heads[0]``), what is wrong, and what would be allowed, so a researcher
fixes a document in one pass instead of one error per run. Pydantic's errors are translated
here: its ``loc`` tuples mix field names with union tags, which mean nothing to the person who
wrote the YAML, so the path is rebuilt by walking the input document alongside the ``loc``.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Any

import pydantic
from pydantic_core import PydanticCustomError

ROOT = "<root>"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a document: where, what, and what would be allowed instead."""

    path: str
    message: str
    allowed: str | None = None

    def __str__(self) -> str:
        text = f"{self.path or ROOT}: {self.message}"
        return f"{text} (allowed: {self.allowed})" if self.allowed else text


class ValidationError(ValueError):
    """A document is malformed or does not fit the model; ``problems`` lists every reason."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        super().__init__(self._describe())

    def _describe(self) -> str:
        count = len(self.problems)
        head = "1 problem" if count == 1 else f"{count} problems"
        return "\n".join([f"{head}:", *(f"  {p}" for p in self.problems)])

    @classmethod
    def from_pydantic(
        cls, exc: pydantic.ValidationError, data: Any, model: type[pydantic.BaseModel]
    ) -> ValidationError:
        """Translate pydantic's errors for ``data`` validated as ``model`` into problems.

        Errors at one path for one input are the failed alternatives of a union (``source: 5``
        is neither a string nor a list); they become one problem listing the alternatives.
        """
        by_path: dict[str, list[tuple[dict[str, Any], list[type[pydantic.BaseModel]]]]] = {}
        for error in exc.errors():
            path, owners = _locate(error["loc"], error["type"], data, model)
            by_path.setdefault(path, []).append((dict(error), owners))
        problems = []
        for path, errors in by_path.items():
            first = errors[0][0]
            if len(errors) > 1 and all(e["input"] is first["input"] for e, _ in errors):
                alternatives = "; ".join(_expected(e) for e, _ in errors)
                problems.append(Problem(path, f"got {_show(first['input'])}", alternatives))
            else:
                problems.extend(_problem(path, error, owners) for error, owners in errors)
        return cls(problems)


def field_error(field: str, message: str, allowed: str | None = None) -> PydanticCustomError:
    """An error raised by a cross-field check, pointing at ``field`` below the model at fault.

    ``field`` is a relative path such as ``reference`` or ``capture[1].name``.
    """
    return PydanticCustomError("cross_field", message, {"field": field, "allowed": allowed})


def join_path(path: str, part: str | int) -> str:
    """Extend a path by a field name or a list index: ``a`` + ``b`` -> ``a.b``; + 0 -> ``a[0]``."""
    if isinstance(part, int):
        return f"{path}[{part}]"
    if part.startswith("["):
        return f"{path}{part}"
    return f"{path}.{part}" if path else part


def _problem(path: str, error: dict[str, Any], owners: list[type[pydantic.BaseModel]]) -> Problem:
    """One error as a problem; ``owners`` are the models the data at ``path`` may be."""
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind == "missing":
        return Problem(path, "required field is missing")
    if kind == "extra_forbidden":
        allowed = ", ".join(owners[0].model_fields) if len(owners) == 1 else None
        return Problem(path, "unknown field", allowed)
    if kind == "union_tag_invalid":
        tag = error["input"].get("kind") if isinstance(error["input"], dict) else ctx["tag"]
        return Problem(join_path(path, "kind"), f"unknown kind {_show(tag)}", ctx["expected_tags"])
    if kind == "union_tag_not_found":
        kinds = ", ".join(repr(_kind_of(m)) for m in owners)
        return Problem(join_path(path, "kind"), "missing kind", kinds or None)
    if kind == "literal_error":
        return Problem(path, f"got {_show(error['input'])}", ctx["expected"])
    if kind == "cross_field":
        return Problem(join_path(path, ctx["field"]), error["msg"], ctx["allowed"])
    message = error["msg"].removeprefix("Value error, ")
    return Problem(path, f"{message}; got {_show(error['input'])}", ctx.get("allowed"))


def _expected(error: dict[str, Any]) -> str:
    """What one alternative of a union expected, from its error."""
    if error["type"] == "literal_error":
        return error["ctx"]["expected"]
    return error["msg"].removeprefix("Input should be ")


def _show(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _locate(
    loc: tuple[str | int, ...], kind: str, data: Any, model: type[pydantic.BaseModel]
) -> tuple[str, list[type[pydantic.BaseModel]]]:
    """The user-facing path of ``loc`` in ``data``, and the model classes that the data there,
    or for an unknown field the data holding it, may be validated as.

    A ``loc`` element is a path step when it names a key or index present in the data at that
    point, or a missing field (the last element of a ``missing`` error); anything else is a
    union tag and is skipped, except that a tag naming a model (a ``kind`` value or a class
    name) narrows which model the data below it was validated as.
    """
    path, node = "", data
    owners: list[type[pydantic.BaseModel]] = [model]
    for index, part in enumerate(loc):
        if kind == "extra_forbidden" and index == len(loc) - 1:
            return join_path(path, str(part)), owners
        if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            path, node = join_path(path, part), node[part]
            continue
        if isinstance(node, dict) and part in node:
            path, node = join_path(path, str(part)), node[part]
        elif index == len(loc) - 1 and kind == "missing" and isinstance(part, str):
            path, node = join_path(path, part), None
        else:
            owners = [m for m in owners if part in (m.__name__, _kind_of(m))]
            continue
        field = owners[0].model_fields.get(str(part)) if len(owners) == 1 else None
        owners = _models_in(field.annotation) if field else []
    return path, owners


def _kind_of(model: type[pydantic.BaseModel]) -> Any:
    field = model.model_fields.get("kind")
    return field.default if field else None


def _models_in(annotation: Any) -> list[type[pydantic.BaseModel]]:
    """Every pydantic model class mentioned anywhere inside a type annotation."""
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]
