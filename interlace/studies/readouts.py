"""A study's readouts, read from one batch's :class:`~interlace.RunResult`.

Every value comes from the result ``il.run`` returns for the (condition, sweep point) graph on
the batch's prompts: next-token log-probabilities from ``result.logprobs()``, generations from
``result.generated_text``, fork readouts from ``result.readouts``, captures from
``result.captured``. Nothing is recomputed here, so a study's numbers are the run's numbers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from interlace.interventions import Capture, ForkReadout, Problem, ValidationError
from interlace.runtime.forward import RunResult
from interlace.stores.schema import STRING
from interlace.studies.plan import Plan
from interlace.studies.scoring import extract, score
from interlace.studies.spec import GenerationReadout, LogitsReadout


@dataclass(frozen=True)
class TokenIds:
    """The token ids the logits readouts read, found (and checked) before any forward."""

    tokens: dict[str, list[int]]
    """Readout key -> the id of each of its ``tokens``."""
    targets: dict[str, list[int]]
    """Readout key -> the id of each record's target (its first token)."""


def token_ids(plan: Plan, tokenizer: Any) -> TokenIds:
    """Tokenize every logits readout's tokens and targets; one :class:`ValidationError` for
    a token that is not exactly one token, or a target with no token."""
    problems: list[Problem] = []
    tokens: dict[str, list[int]] = {}
    targets: dict[str, list[int]] = {}
    for i, r in enumerate(plan.study.readouts):
        if not isinstance(r, LogitsReadout):
            continue
        key = plan.study.readout_key(i)
        if r.tokens:
            ids = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in r.tokens]
            for j, (text, found) in enumerate(zip(r.tokens, ids, strict=True)):
                if len(found) != 1:
                    problems.append(
                        Problem(
                            f"readouts[{i}].tokens[{j}]",
                            f"{text!r} is {len(found)} tokens for this tokenizer",
                            "one token each",
                        )
                    )
            tokens[key] = [found[0] if found else -1 for found in ids]
        if r.target:
            firsts = []
            for j, rec in enumerate(plan.records):
                found = tokenizer(str(rec[r.target]), add_special_tokens=False)["input_ids"]
                if not found:
                    problems.append(
                        Problem(f"readouts[{i}].target", f"record {j}'s target has no token")
                    )
                firsts.append(found[0] if found else -1)
            if r.tokens and not problems:
                outside = [j for j, t in enumerate(firsts) if t not in tokens[key]]
                if outside:
                    problems.append(
                        Problem(
                            f"readouts[{i}].target",
                            f"the targets of records {outside[:5]} are none of the tokens",
                            "targets among the readout's tokens",
                        )
                    )
            targets[key] = firsts
    if problems:
        raise ValidationError(problems)
    return TokenIds(tokens, targets)


def batch_arrays(
    plan: Plan,
    result: RunResult,
    batch: slice,
    ids: TokenIds,
    special_tokens: list[str],
) -> dict[str, np.ndarray]:
    """Every readout array of one unit, leading dim ``example`` (the batch's examples)."""
    study = plan.study
    records = plan.records[batch]
    out: dict[str, np.ndarray] = {}
    logprobs = None
    for i, r in enumerate(study.readouts):
        key = study.readout_key(i)
        if isinstance(r, LogitsReadout):
            if logprobs is None:
                logprobs = result.logprobs().values
            if r.tokens:
                out[f"{key}_logprob"] = logprobs[:, ids.tokens[key]]
            if r.target:
                target = np.array(ids.targets[key][batch])
                rows = np.arange(len(target))
                out[f"{key}_target_logprob"] = logprobs[rows, target]
                among = logprobs[:, ids.tokens[key]] if r.tokens else logprobs
                winner = (
                    np.asarray(ids.tokens[key])[among.argmax(-1)] if r.tokens else among.argmax(-1)
                )
                out[f"{key}_correct"] = (winner == target).astype(np.float32)
        elif isinstance(r, GenerationReadout):
            texts = list(result.generated_text)
            answers = [extract(_plain(t, special_tokens), r.extract, r.pattern) for t in texts]
            out[f"{key}_text"] = np.array(texts, dtype=STRING)
            out[f"{key}_answer"] = np.array([a or "" for a in answers], dtype=STRING)
            if r.score:
                out[f"{key}_score"] = np.array(
                    [
                        score(a, r.score, rec, r.target)
                        for a, rec in zip(answers, records, strict=True)
                    ],
                    dtype=np.float32,
                )
        elif isinstance(r, ForkReadout):
            out.update(_fork(plan.arrays, result, key))
        elif isinstance(r, Capture):
            out[key] = result.captured[key].values
    return {k: np.asarray(v) for k, v in out.items()}


def _plain(text: str, special_tokens: list[str]) -> str:
    """Generated text without special tokens (``<|im_end|>``), for answer extraction."""
    for token in special_tokens:
        text = text.replace(token, "")
    return text


def _fork(variables: Mapping[str, Any], result: RunResult, key: str) -> dict[str, np.ndarray]:
    """A fork readout's checkpoints, padded to the store's checkpoint dim."""
    n_checkpoints = variables[f"{key}_log_odds"].shape[-1]
    n_choices = variables[f"{key}_logprob"].shape[-1]
    size = len(result.readouts)
    log_odds = np.full((size, n_checkpoints), np.nan, dtype=np.float32)
    mass = np.full((size, n_checkpoints), np.nan, dtype=np.float32)
    logprob = np.full((size, n_checkpoints, n_choices), np.nan, dtype=np.float32)
    token_index = np.full((size, n_checkpoints), -1, dtype=np.int32)
    for b, readouts in enumerate(result.readouts):
        ds = readouts[key]
        k = ds.sizes["checkpoint"]
        log_odds[b, :k] = ds["log_odds"].values
        mass[b, :k] = ds["mass"].values
        logprob[b, :k] = ds["logprob"].values
        token_index[b, :k] = ds["token_index"].values
    return {
        f"{key}_log_odds": log_odds,
        f"{key}_mass": mass,
        f"{key}_logprob": logprob,
        f"{key}_token_index": token_index,
    }
