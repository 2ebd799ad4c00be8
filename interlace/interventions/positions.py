"""Which token positions an intervention or capture applies to.

Positions always refer to an example's *real* tokens, never to padding: ``0`` is the first
token of the unpadded prompt, ``-1`` its last. The forms:

- ``"all"``: every position (prompt and generated);
- ``"prompt"``: the prompt's positions only;
- ``"generated"``: the positions produced during generation (needs a ``generate`` section);
- ``"last"``: the last position of the sequence (with no generation, the prompt's last token);
- a list of ints: those prompt positions, in that order (negative ones count from the end of
  the prompt);
- ``{start, stop, step}``: a Python slice of the prompt's positions.

Order matters where positions are paired (patching: the k-th target position takes the source
run's k-th position), so lists are kept as written.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import pydantic

from interlace.interventions.base import Spec

PositionKeyword = Literal["all", "prompt", "generated", "last"]
POSITIONS_ALLOWED = "'all', 'prompt', 'generated', 'last', a list of ints, or {start, stop, step}"


class Slice(Spec):
    """A Python slice of the prompt's positions: ``{start: 1, stop: -1}`` is every prompt token
    but the first and the last."""

    start: int | None = None
    stop: int | None = None
    step: int | None = pydantic.Field(default=None, description="non-zero")

    @pydantic.field_validator("step")
    @classmethod
    def _step_not_zero(cls, step: int | None) -> int | None:
        if step == 0:
            raise ValueError("step must not be zero")
        return step

    def indices(self, prompt_length: int) -> list[int]:
        return list(range(prompt_length))[slice(self.start, self.stop, self.step)]


def _form(value: Any) -> str | None:
    """Which form of :data:`Positions` a value is written in (the union's tag)."""
    if isinstance(value, str):
        return "keyword"
    if isinstance(value, list):
        return "list"
    if isinstance(value, (dict, Slice)):
        return "Slice"
    return None


Positions = Annotated[
    Annotated[PositionKeyword, pydantic.Tag("keyword")]
    | Annotated[list[int], pydantic.Field(min_length=1), pydantic.Tag("list")]
    | Annotated[Slice, pydantic.Tag("Slice")],
    pydantic.Discriminator(
        _form,
        custom_error_type="positions_type",
        custom_error_message="not a form of positions",
        custom_error_context={"allowed": POSITIONS_ALLOWED},
    ),
]
"""A position selection; see the module docstring."""


def prompt_index(position: int, prompt_length: int) -> int | None:
    """The 0-based index of an explicit prompt position, or None if the prompt has no such one."""
    index = position + prompt_length if position < 0 else position
    return index if 0 <= index < prompt_length else None


def resolve_positions(
    positions: PositionKeyword | list[int] | Slice, prompt_length: int, n_generated: int = 0
) -> list[int]:
    """Indices into an example's real tokens (prompt then generated) that ``positions`` selects.

    Raises ``IndexError`` for an explicit position outside the prompt.
    """
    total = prompt_length + n_generated
    if isinstance(positions, Slice):
        return positions.indices(prompt_length)
    if isinstance(positions, list):
        indices = [prompt_index(p, prompt_length) for p in positions]
        bad = [p for p, i in zip(positions, indices, strict=True) if i is None]
        if bad:
            raise IndexError(f"positions {bad} are outside a {prompt_length}-token prompt")
        return [i for i in indices if i is not None]
    keyword_ranges = {
        "all": range(total),
        "prompt": range(prompt_length),
        "generated": range(prompt_length, total),
        "last": range(total - 1, total) if total else range(0),
    }
    return list(keyword_ranges[positions])


def covers_generated(positions: Positions) -> bool:
    """Whether ``positions`` include tokens produced during generation (each new token is the
    sequence's last, so ``last`` follows the generation)."""
    return positions in ("all", "generated", "last")
