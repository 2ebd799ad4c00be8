"""Small seeded task datasets generated offline, as records ready for ``il.cache`` and studies.

A record is a plain dict: ``text`` (the prompt) plus label fields, which a store keeps as
coordinates along ``example``.
"""

from __future__ import annotations

import random
from typing import Any

ARITHMETIC_SHOTS = "4 + 4 = 8\n"
"""The worked example put before each statement. Without it the bundled SmolLM2-135M does not
add at all (7% of single-digit sums right); with it, 85%."""


def arithmetic_statements(
    n: int, seed: int = 0, max_sum: int = 9, shots: str = ARITHMETIC_SHOTS
) -> list[dict[str, Any]]:
    """``n`` statements ``"a + b = c"`` of which exactly ``n // 2`` are correct, in random order.

    Each record: ``text`` (``shots`` followed by the statement), ``statement``, ``a``, ``b``,
    ``c`` and the bool ``label`` (the statement is correct). Operands are digits with
    ``a + b <= max_sum``; a wrong ``c`` is off by 1 or 2 and stays in ``0..max_sum``. With
    ``max_sum <= 9`` every answer is one digit, so the statement's last token is its answer.
    """
    if n < 2:
        raise ValueError(f"n must be at least 2 (one correct, one wrong statement), not {n}")
    if not 1 <= max_sum <= 18:
        raise ValueError(f"max_sum must be between 1 and 18 (two digits), not {max_sum}")
    rng = random.Random(seed)
    pairs = [(a, b) for a in range(10) for b in range(10) if a + b <= max_sum]
    labels = [i < n // 2 for i in range(n)]
    rng.shuffle(labels)
    records = []
    for correct in labels:
        a, b = rng.choice(pairs)
        c = a + b
        if not correct:
            c = rng.choice([w for w in (c - 2, c - 1, c + 1, c + 2) if 0 <= w <= max_sum])
        statement = f"{a} + {b} = {c}"
        records.append(
            {
                "text": shots + statement,
                "statement": statement,
                "a": a,
                "b": b,
                "c": c,
                "label": correct,
            }
        )
    return records
