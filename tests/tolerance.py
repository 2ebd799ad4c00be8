"""Comparisons that hold on any CPU: another CPU (or ATEN_CPU_CAPABILITY=default, or another
thread count) sums in another order, so floats differ in their last bits and near-ties may swap.

    from tolerance import assert_close, assert_ranks_agree
    assert_close(got, expected, rtol=1e-5)
    assert_ranks_agree(got_top_ids_ranks, logprobs, got_top_ids, tol=1e-4)
"""

from __future__ import annotations

from typing import Any

import numpy as np


def assert_close(actual: Any, expected: Any, rtol: float = 1e-5, err_msg: str = "") -> None:
    """`np.testing.assert_allclose` with atol = rtol * max|expected|.

        assert_close(mean_difference(stored, "label"), mean_difference(captured, "label"))

    Rounding from a different summation order scales with the magnitude of what was summed, not
    with each result: a value near zero computed among values near one may differ by rtol * 1
    in relative terms far above rtol.
    """
    expected = np.asarray(expected, dtype=np.float64)
    scale = float(np.abs(expected).max()) if expected.size else 0.0
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale, err_msg=err_msg)


def assert_ranks_agree(ranks: Any, values: Any, items: Any, tol: float) -> None:
    """Each entry of `ranks` is the rank (the number of larger entries along `values`' last axis)
    of the matching entry of `items`, up to reordering of the values within `tol` of it.

        # logprobs [..., vocab]; got_ids, got_ranks [..., k]
        assert_ranks_agree(np.arange(5), logprobs, got_top_ids, tol=1e-4)  # top ids, ties aside
        assert_ranks_agree(got_rank[..., None], logprobs, paris, tol=1e-4)  # one token's rank

    `ranks` and `items` broadcast to `values.shape[:-1]` plus a last axis of slots.
    """
    values = np.asarray(values, dtype=np.float64)
    ranks, items = np.asarray(ranks), np.asarray(items, dtype=np.int64)
    shape = np.broadcast_shapes(ranks.shape, items.shape, (*values.shape[:-1], 1))
    ranks, items = np.broadcast_to(ranks, shape), np.broadcast_to(items, shape)
    for slot in range(shape[-1]):
        item = np.take_along_axis(values, items[..., slot, None], -1)  # [..., 1]
        above = (values > item + tol).sum(-1)  # the rank it has whatever the ties
        near = (np.abs(values - item) <= tol).sum(-1)  # itself and its ties
        rank = ranks[..., slot]
        bad = (rank < above) | (rank >= above + near)
        if bad.any():
            at = tuple(int(i) for i in np.argwhere(bad)[0])
            raise AssertionError(
                f"rank {int(rank[at])} of item {int(items[at][slot])} at {at} (slot {slot}); "
                f"with ties within {tol} it ranks {int(above[at])}..{int(above[at] + near[at]) - 1}"
            )
