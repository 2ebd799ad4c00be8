"""Readouts: what to read from a model beyond its next-token logits.

:class:`ForkReadout` measures how a model's answer evolves along its chain of thought: at each
checkpoint of the response, fork the KV cache, append ``suffix`` (such as
``" The final answer is"``) and read the log-probability of each answer choice. A choice of
several tokens scores the sum of its tokens' log-probabilities.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import pydantic

from interlace.interventions.base import Spec


class Every(Spec):
    """A checkpoint every ``every`` response tokens: after tokens every, 2·every, ..."""

    every: Annotated[int, pydantic.Field(ge=1)]


class AtTokens(Spec):
    """Checkpoints after these numbers of response tokens (0 = before the response)."""

    tokens: Annotated[list[Annotated[int, pydantic.Field(ge=0)]], pydantic.Field(min_length=1)]


class AfterMatch(Spec):
    """A checkpoint after each match of ``pattern`` in the decoded response: at the first token
    whose text completes the match. ``regex: false`` matches the literal string."""

    after: Annotated[str, pydantic.Field(min_length=1)]
    regex: bool = False


def _form(value: Any) -> str | None:
    """Which form of :data:`Checkpoints` a value is written in (the union's tag)."""
    if isinstance(value, str):
        return "end"
    if isinstance(value, Spec):
        return type(value).__name__
    if isinstance(value, dict):
        for key, form in (("every", "Every"), ("tokens", "AtTokens"), ("after", "AfterMatch")):
            if key in value:
                return form
    return None


CHECKPOINTS_ALLOWED = "'end', {every: N}, {tokens: [t, ...]} or {after: TEXT, regex: false}"

Checkpoints = Annotated[
    Annotated[Literal["end"], pydantic.Tag("end")]
    | Annotated[Every, pydantic.Tag("Every")]
    | Annotated[AtTokens, pydantic.Tag("AtTokens")]
    | Annotated[AfterMatch, pydantic.Tag("AfterMatch")],
    pydantic.Discriminator(
        _form,
        custom_error_type="checkpoints_type",
        custom_error_message="not a form of checkpoints",
        custom_error_context={"allowed": CHECKPOINTS_ALLOWED},
    ),
]
"""Where along the response to read: see the classes above."""


class ForkReadout(Spec):
    """Answer confidence along a response (see the module docstring).

    ``steer`` says where the graph's interventions are active: ``generation`` (steer while
    thinking, read without), ``readout`` (the prefix and suffix forward of the readout), or
    ``both``. Checkpoints whose probability mass on the choices is under ``min_mass`` are
    flagged ``low_mass``: the prompt is off there and the readout means little.
    ``chunk_size`` bounds how many checkpoints share one packed forward (and so the memory).
    """

    kind: Literal["fork_readout"] = "fork_readout"
    at: Checkpoints = "end"
    suffix: Annotated[str, pydantic.Field(min_length=1)]
    choices: Annotated[
        list[Annotated[str, pydantic.Field(min_length=1)]], pydantic.Field(min_length=1)
    ]
    steer: Literal["generation", "readout", "both"] = "both"
    min_mass: Annotated[float, pydantic.Field(ge=0, le=1)] = 0.1
    top_k: Annotated[int, pydantic.Field(ge=1, le=100)] = 5
    chunk_size: Annotated[int, pydantic.Field(ge=1)] = 16
    name: Annotated[str, pydantic.Field(min_length=1)] | None = None

    @pydantic.field_validator("choices")
    @classmethod
    def _distinct(cls, choices: list[str]) -> list[str]:
        if len(set(choices)) != len(choices):
            raise ValueError("choices must be distinct")
        return choices

    @property
    def key(self) -> str:
        return self.name or "confidence"
