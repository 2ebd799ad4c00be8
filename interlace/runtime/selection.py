"""Resolve declared positions against a padded batch: masks and gather indices.

Declared positions index each example's real tokens; here they become padded indices.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from interlace.interventions.positions import Slice, resolve_positions
from interlace.runtime.prompts import Batch

PositionsSpec = str | list[int] | Slice


def real_positions(positions: PositionsSpec, length: int) -> list[int]:
    """The real (unpadded) prompt indices ``positions`` selects in a ``length``-token prompt."""
    return resolve_positions(positions, length, 0)


def prompt_mask(positions: PositionsSpec, batch: Batch) -> torch.Tensor:
    """``[batch, seq]`` bool: where an edit applies during the prompt forward."""
    mask = torch.zeros(batch.input_ids.shape, dtype=torch.bool)
    for b, length in enumerate(batch.lengths):
        idx = [p + batch.pad(b) for p in real_positions(positions, length)]
        mask[b, idx] = True
    return mask


@dataclass
class Gather:
    """Padded indices ``[batch, k]`` to gather the selected positions, with validity and labels.

    ``labels`` name the k selected positions (the real index for ``all``/``prompt``, the
    position as written for lists and slices); ``token_index`` is each one's real index per
    example (-1 where an example has fewer positions).
    """

    index: torch.Tensor
    valid: torch.Tensor
    labels: list[int]
    token_index: torch.Tensor
    squeeze: bool


def gather_plan(positions: PositionsSpec, batch: Batch) -> Gather:
    per_row = [real_positions(positions, n) for n in batch.lengths]
    k = max(len(r) for r in per_row)
    index = torch.zeros((batch.size, k), dtype=torch.long)
    valid = torch.zeros((batch.size, k), dtype=torch.bool)
    token_index = torch.full((batch.size, k), -1, dtype=torch.long)
    for b, rows in enumerate(per_row):
        for j, p in enumerate(rows):
            index[b, j] = p + batch.pad(b)
            valid[b, j] = True
            token_index[b, j] = p
    if isinstance(positions, list):
        labels = list(positions)
    elif isinstance(positions, Slice):
        labels = list(range(k))
    else:
        labels = list(range(k))
    return Gather(index, valid, labels, token_index, squeeze=positions == "last")
