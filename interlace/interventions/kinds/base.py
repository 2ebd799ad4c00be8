"""What every intervention kind is: a spec that validates, explains and lowers itself.

A kind's module declares its fields (the document format) and answers, for itself, every
question the rest of interlace asks of an intervention:

- :meth:`InterventionBase.check`: the problems it has on a model (and its prompts);
- :meth:`InterventionBase.describe`: its words for ``interlace explain``;
- :meth:`InterventionBase.acts_in_readout`: whether it may act inside a fork readout;
- :meth:`InterventionBase.reference_run`: what it needs from a run on other prompts;
- :meth:`InterventionBase.lower`: the :class:`Edit` values it compiles to.

All of it is torch-free: an :class:`Edit` names a trace op (a function in
``interlace.runtime.edits.OPS``) and holds plain values and numpy arrays; the runtime turns
those into tensors and positions into masks, the same way for every kind.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import pydantic

from interlace.interventions.base import Spec
from interlace.interventions.checks import Checks
from interlace.interventions.errors import Problem
from interlace.interventions.positions import Positions
from interlace.interventions.sites import ModelShape

Index = Annotated[int, pydantic.Field(ge=0)]
Indices = Annotated[list[Index], pydantic.Field(min_length=1)]
Prompt = Annotated[str, pydantic.Field(min_length=1)]
Prompts = Prompt | Annotated[list[Prompt], pydantic.Field(min_length=1)]


@dataclass(frozen=True)
class ReferenceRun:
    """A run on other prompts that an intervention needs before its own run.

    ``kind`` ``"mean"``: the mean of ``site`` at ``layer`` over every position of every prompt
    (position 0 left out when ``exclude_position_zero``): one ``[*site width]`` tensor.
    ``kind`` ``"source"``: ``site`` at ``layer`` and ``positions`` of a run on ``prompts``
    (one shared by all examples, or a list with one per example), to be written at the target's
    own ``positions``: the k-th target position takes the source's k-th.
    ``field`` names the spec field holding the prompts (for problems).
    """

    kind: Literal["mean", "source"]
    field: str
    prompts: str | list[str]
    site: str
    layer: int | None
    positions: Positions = "all"
    exclude_position_zero: bool = False

    @property
    def per_example(self) -> bool:
        """Whether there is one prompt per example (a list), not one shared by all."""
        return self.kind == "source" and isinstance(self.prompts, list)

    def prompts_for(self, n_examples: int) -> list[str]:
        """The prompts to run: a shared source repeated for each example."""
        if isinstance(self.prompts, str):
            return [self.prompts] * n_examples
        return list(self.prompts)


@dataclass(frozen=True)
class Edit:
    """One edit a kind lowers to: apply the trace op ``op`` to ``site`` at ``layer``.

    ``positions`` select where it applies in the prompt's forward (the runtime makes the mask);
    ``on_generated``: whether it also applies to each generated token. ``args`` are the op's
    keyword arguments: numbers, strings, numpy arrays (made tensors by the runtime) and, as is,
    what the runtime's :class:`ReferenceRun` returned. Sites ``k``/``v`` edit the KV cache
    after the forward that wrote it.
    """

    site: str
    layer: int | None
    op: str
    positions: Positions
    on_generated: bool
    args: dict[str, Any] = field(default_factory=dict)


#: One line of ``interlace explain``: the site, its layer, and what happens there.
Description = tuple[str, int | None, str]


class InterventionBase(Spec):
    """What every intervention has: a ``kind``, the sites it touches, and the answers listed
    in this module's docstring."""

    kind: str

    def sites(self) -> tuple[str, ...]:
        """The sites this intervention touches (checked against the model's sites)."""
        return (self.site,)  # type: ignore[attr-defined]  # kinds without a site override

    @abc.abstractmethod
    def check(self, checks: Checks, path: str) -> Iterator[Problem]:
        """The problems of this intervention on ``checks``' model and prompts (sites are
        checked for every kind by the caller)."""

    @abc.abstractmethod
    def describe(self, shape: ModelShape) -> list[Description]:
        """(site, layer, words) for each site operation, for ``interlace explain``."""

    def acts_in_readout(self) -> bool:
        """Whether it can be applied during a fork readout (which packs many checkpoints'
        suffixes into one forward, so only position-independent edits fit)."""
        return False

    def reference_run(self) -> ReferenceRun | None:
        """The run on other prompts it needs, if any."""
        return None

    @abc.abstractmethod
    def lower(
        self, shape: ModelShape, reference: Any = None, base_dir: str | Path | None = None
    ) -> list[Edit]:
        """The edits it compiles to; ``reference`` is what the runtime computed for
        :meth:`reference_run`; ``base_dir`` resolves relative vector files."""


def at(positions: Positions) -> str:
    """Positions in ``interlace explain``'s words."""
    return f"at positions {positions!r}"
