"""A selection of decoder layers, written as an int, a list of ints, ``"all"``, or a range string
such as ``"0-29"``, ``"8,12,16"`` or ``"0-3,8,10-12"`` (ranges inclusive).

The selection is kept as written so a document round-trips unchanged; it becomes a list of
layer indices only against a model, with :meth:`Layers.resolve`.
"""

from __future__ import annotations

import re
from typing import Any

import pydantic
from pydantic_core import PydanticCustomError

LAYERS_ALLOWED = (
    "a non-negative int or list of ints, 'all', or a range string like '0-29' or '8,12,16'"
)
_RANGE_ITEM = re.compile(r"\s*([0-9]+)\s*(?:-\s*([0-9]+)\s*)?")


class Layers(pydantic.RootModel[int | list[int] | str]):
    """A layer selection; ``Layers("8-11").resolve(30) == [8, 9, 10, 11]``."""

    model_config = pydantic.ConfigDict(strict=True, frozen=True)

    @pydantic.model_validator(mode="before")
    @classmethod
    def _check_form(cls, value: Any) -> Any:
        if isinstance(value, Layers):
            return value.root
        if _is_layer(value) or (
            isinstance(value, list) and value and all(_is_layer(v) for v in value)
        ):
            return value
        if isinstance(value, str) and (value == "all" or _parse_ranges(value) is not None):
            return value
        raise PydanticCustomError(
            "layers_form", "not a layer selection", {"allowed": LAYERS_ALLOWED}
        )

    def resolve(self, n_layers: int) -> list[int]:
        """The selected layers, sorted, without repeats; ``ValueError`` if any is out of range."""
        if self.root == "all":
            return list(range(n_layers))
        spans = _spans(self.root)
        bad = [_show_span(span) for span in spans if span[1] >= n_layers]
        if bad:
            raise ValueError(describe_out_of_range(bad, n_layers))
        return sorted({layer for first, last in spans for layer in range(first, last + 1)})


def describe_out_of_range(bad: list[str], n_layers: int) -> str:
    """``layer 40 of a 30-layer model``; ``bad`` holds layers or spans (``"28-40"``) as text."""
    noun = "layer" if bad == [bad[0]] and "-" not in bad[0] else "layers"
    return f"{noun} {', '.join(bad)} of a {n_layers}-layer model"


def allowed_layers(n_layers: int) -> str:
    return f"0-{n_layers - 1}" if n_layers else "none (the model has no layers)"


def _is_layer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _spans(root: int | list[int] | str) -> list[tuple[int, int]]:
    """The selection as inclusive (first, last) spans, without expanding ranges."""
    if isinstance(root, int):
        return [(root, root)]
    if isinstance(root, list):
        return [(layer, layer) for layer in root]
    return _parse_ranges(root) or []


def _show_span(span: tuple[int, int]) -> str:
    return str(span[0]) if span[0] == span[1] else f"{span[0]}-{span[1]}"


def _parse_ranges(text: str) -> list[tuple[int, int]] | None:
    """The spans a range string names, or None if it is not a range string."""
    spans: list[tuple[int, int]] = []
    for item in text.split(","):
        match = _RANGE_ITEM.fullmatch(item)
        if match is None:
            return None
        first, last = int(match[1]), int(match[2] or match[1])
        if last < first:
            return None
        spans.append((first, last))
    return spans
