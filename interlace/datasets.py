"""Small seeded task datasets generated offline, as records ready for ``il.cache`` and studies.

A record is a plain dict: the prompt (``text``, or ``messages`` for a chat prompt) plus label
fields, which a store keeps as coordinates along ``example``. Every generator takes ``n`` and
``seed`` and returns the same records for the same arguments on every machine (it draws from
its own ``random.Random(seed)``). Records that have one right answer carry it in ``answer``,
written as the model would continue (``" Paris"``, ``" Yes"``, ``" B"``), so a study reads
the answer token's log-probability or scores a generation against it
(:mod:`interlace.studies.scoring`).

Torch-free: a study file is checked and planned without loading a model.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

ARITHMETIC_SHOTS = "4 + 4 = 8\n"
"""The worked example put before each statement. Without it the bundled SmolLM2-135M does not
add at all (7% of single-digit sums right); with it, 85%."""

CAPITALS: tuple[tuple[str, str], ...] = (
    ("France", "Paris"),
    ("Germany", "Berlin"),
    ("Italy", "Rome"),
    ("Spain", "Madrid"),
    ("Japan", "Tokyo"),
    ("Russia", "Moscow"),
    ("England", "London"),
    ("Egypt", "Cairo"),
    ("Greece", "Athens"),
    ("Austria", "Vienna"),
    ("Portugal", "Lisbon"),
    ("Ireland", "Dublin"),
    ("Norway", "Oslo"),
    ("Poland", "Warsaw"),
    ("Hungary", "Budapest"),
    ("China", "Beijing"),
    ("Thailand", "Bangkok"),
    ("Kenya", "Nairobi"),
    ("Peru", "Lima"),
    ("Cuba", "Havana"),
)
"""Countries and their capitals, each capital a common word the bundled model knows."""

LETTERS = "ABCDEFGH"


def _prompt(question: str, chat: bool) -> dict[str, Any]:
    """The prompt fields of a record: chat messages, or plain text."""
    if chat:
        return {"messages": [{"role": "user", "content": question}]}
    return {"text": question}


def _check_n(n: int, least: int = 1) -> None:
    if n < least:
        raise ValueError(f"n must be at least {least}, not {n}")


def arithmetic_statements(
    n: int, seed: int = 0, max_sum: int = 9, shots: str = ARITHMETIC_SHOTS
) -> list[dict[str, Any]]:
    """``n`` statements ``"a + b = c"`` of which exactly ``n // 2`` are correct, in random order.

    Each record: ``text`` (``shots`` followed by the statement), ``statement``, ``a``, ``b``,
    ``c`` and the bool ``label`` (the statement is correct). Operands are digits with
    ``a + b <= max_sum``; a wrong ``c`` is off by 1 or 2 and stays in ``0..max_sum``. With
    ``max_sum <= 9`` every answer is one digit, so the statement's last token is its answer.
    """
    _check_n(n, 2)
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


def arithmetic_verification(
    n: int, seed: int = 0, max_sum: int = 9, chat: bool = False
) -> list[dict[str, Any]]:
    """The statements of :func:`arithmetic_statements`, asked as a yes/no question.

    Plain text ends in ``"Answer:"``, so the next token is the answer (``answer`` is ``" Yes"``
    or ``" No"``); a chat prompt asks for ``Yes`` or ``No`` (``answer`` without the space).
    """
    records = []
    for rec in arithmetic_statements(n, seed, max_sum, shots=""):
        question = f"Is {rec['statement']} correct? Answer Yes or No."
        text = question if chat else f"{question}\nAnswer:"
        word = "Yes" if rec["label"] else "No"
        fields = {k: v for k, v in rec.items() if k != "text"}
        records.append({**_prompt(text, chat), **fields, "answer": word if chat else f" {word}"})
    return records


def capitals(n: int, seed: int = 0, chat: bool = False) -> list[dict[str, Any]]:
    """``n`` questions about the capitals of :data:`CAPITALS`, drawn without replacement while
    they last. Plain text is ``"The capital of France is"`` (``answer`` ``" Paris"``)."""
    _check_n(n)
    rng = random.Random(seed)
    order: list[tuple[str, str]] = []
    while len(order) < n:
        batch = list(CAPITALS)
        rng.shuffle(batch)
        order += batch
    records = []
    for country, capital in order[:n]:
        if chat:
            prompt = _prompt(f"What is the capital of {country}? Answer with one word.", True)
            answer = capital
        else:
            prompt, answer = _prompt(f"The capital of {country} is", False), f" {capital}"
        records.append({**prompt, "country": country, "capital": capital, "answer": answer})
    return records


def multiple_choice(
    n: int, seed: int = 0, n_choices: int = 4, chat: bool = False
) -> list[dict[str, Any]]:
    """``n`` lettered multiple-choice questions, alternately a capital city and a sum of two
    digits, with distractors drawn from the same kind. ``answer`` is the right letter
    (``" B"``; ``"B"`` in chat), ``label`` its index."""
    _check_n(n)
    if not 2 <= n_choices <= len(LETTERS):
        raise ValueError(f"n_choices must be between 2 and {len(LETTERS)}, not {n_choices}")
    rng = random.Random(seed)
    records = []
    for i in range(n):
        if i % 2 == 0:
            country, right = rng.choice(CAPITALS)
            question = f"What is the capital of {country}?"
            pool = [c for _, c in CAPITALS if c != right]
        else:
            a, b = rng.randrange(10), rng.randrange(10)
            right, question = str(a + b), f"What is {a} + {b}?"
            pool = [str(v) for v in range(19) if v != a + b]
        options = [right, *rng.sample(pool, n_choices - 1)]
        rng.shuffle(options)
        label = options.index(right)
        lines = "\n".join(f"{LETTERS[k]}. {o}" for k, o in enumerate(options))
        text = f"{question}\n{lines}\nAnswer with the letter."
        if not chat:
            text += "\nAnswer:"
        records.append(
            {
                **_prompt(text, chat),
                "choices": options,
                "label": label,
                "answer": LETTERS[label] if chat else f" {LETTERS[label]}",
            }
        )
    return records


def countdown(
    n: int, seed: int = 0, n_numbers: int = 3, max_number: int = 10, chat: bool = True
) -> list[dict[str, Any]]:
    """``n`` CountDown puzzles: reach ``target`` from ``numbers`` with + - * / (each number at
    most once). The target is the value of a random expression over all the numbers
    (``solution``, always positive and whole), so every puzzle is solvable;
    :func:`interlace.studies.scoring.check_countdown` checks a proposed expression."""
    _check_n(n)
    if not 2 <= n_numbers <= 6:
        raise ValueError(f"n_numbers must be between 2 and 6, not {n_numbers}")
    if max_number < 2:
        raise ValueError(f"max_number must be at least 2, not {max_number}")
    rng = random.Random(seed)
    records = []
    while len(records) < n:
        numbers = [rng.randint(1, max_number) for _ in range(n_numbers)]
        solution, value = str(numbers[0]), numbers[0]
        for x in numbers[1:]:
            op = rng.choice("+-*")
            value = {"+": value + x, "-": value - x, "*": value * x}[op]
            solution = f"({solution} {op} {x})" if op != "*" else f"{solution} * {x}"
        if value <= 0:
            continue  # redraw: targets are positive
        shown = ", ".join(map(str, numbers))
        question = (
            f"Using the numbers {shown}, each at most once, and + - * /, make {value}. "
            "Reply with the expression only."
        )
        records.append(
            {
                **_prompt(question, chat),
                "numbers": numbers,
                "target": value,
                "solution": solution,
            }
        )
    return records


TASKS: dict[str, Callable[..., list[dict[str, Any]]]] = {
    "arithmetic": arithmetic_statements,
    "arithmetic_verification": arithmetic_verification,
    "capitals": capitals,
    "multiple_choice": multiple_choice,
    "countdown": countdown,
}
"""The built-in generators by the name a study file gives them (``dataset: {task: NAME}``)."""
