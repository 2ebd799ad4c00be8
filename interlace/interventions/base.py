"""The base of every declarative object: strict, closed, immutable pydantic models that convert
to and from plain data, JSON and YAML, and hash by content.

Strict so that ``layer: "10"`` or ``heads: [true]`` in a YAML file is an error rather than a
silent coercion; closed (unknown fields rejected) so that a typo is never ignored; frozen so that
a graph's hash stays true to it; non-finite floats refused because they do not round-trip.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pydantic
import yaml
from typing_extensions import Self

from interlace.interventions.errors import Problem, ValidationError


class Spec(pydantic.BaseModel):
    """A declarative object. Parsing a document (:meth:`from_dict` and friends) reports problems
    as a :class:`ValidationError`; the Python constructors raise pydantic's ``ValidationError``
    (also a ``ValueError``): wrapping ``__init__`` would make pydantic call it for nested specs."""

    model_config = pydantic.ConfigDict(
        strict=True,
        extra="forbid",
        frozen=True,
        allow_inf_nan=False,
        use_attribute_docstrings=True,
    )

    @classmethod
    def from_dict(cls, data: Any) -> Self:
        """Parse plain data (as loaded from JSON or YAML)."""
        try:
            return cls.model_validate(data)
        except pydantic.ValidationError as exc:
            raise ValidationError.from_pydantic(exc, data, cls) from None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-compatible data: every field, defaults included (a saved document states
        every setting), except those that are None, which is what leaving them out means."""
        return self.model_dump(mode="json", exclude_none=True)

    @classmethod
    def from_json(cls, text: str) -> Self:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValidationError([Problem("", f"not valid JSON: {exc}")]) from None
        return cls.from_dict(data)

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    @classmethod
    def from_yaml(cls, text: str) -> Self:
        """Parse YAML with ``yaml.safe_load`` (never constructs arbitrary Python objects)."""
        try:
            data = yaml.safe_load(text)
        except (yaml.YAMLError, ValueError) as exc:  # ValueError: e.g. a date like 2001-13-01
            raise ValidationError([Problem("", f"not valid YAML: {exc}")]) from None
        return cls.from_dict(data)

    def to_yaml(self) -> str:
        return yaml.dump(self.to_dict(), Dumper=_Dumper, sort_keys=False, allow_unicode=True)

    def content_hash(self, base_dir: str | Path | None = None) -> str:
        """SHA-256 (hex) of the canonical JSON of :meth:`to_dict`: sorted keys, no whitespace,
        defaults included, so two documents that parse to equal objects hash alike whatever their
        key order or omitted defaults. A vector file also contributes the SHA-256 of its bytes
        (resolved against ``base_dir`` as for loading), so editing the file changes the hash.
        """
        context = {"hash_files": True, "base_dir": base_dir}
        data = self.model_dump(mode="json", exclude_none=True, context=context)
        canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False)
        return hashlib.sha256(canonical.encode("ascii")).hexdigest()


class _Dumper(yaml.SafeDumper):
    """``yaml.safe_dump``'s dumper with two changes: lists of numbers go on one line
    (``heads: [0, 3]``, and a vector is one entry, not one line per component); strings holding
    U+0085 are double-quoted, since PyYAML otherwise writes it raw and reads it back as a line
    break."""


def _represent_list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    numbers = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=numbers)


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    style = '"' if "\x85" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(list, _represent_list)
_Dumper.add_representer(str, _represent_str)
