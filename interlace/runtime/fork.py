"""Fork readouts: answer confidence along a chain of thought.

For each checkpoint t of a response, the readout is the model's distribution after
``prompt + response[:t] + suffix``. The slow way runs that sequence afresh for every t. Here
the prefix ``prompt + response`` runs once; its KV cache is shared by every checkpoint, and
the checkpoints' suffixes are packed into one forward per chunk: suffix tokens of checkpoint t
sit at position ids ``len(prompt) + t + j`` and a 4-D additive mask lets them see the cache up to
``len(prompt) + t`` and their own suffix (and, for a multi-token choice, its earlier tokens).
Causal attention makes the cache prefix up to t exactly what a fresh forward of
``prefix[:t]`` computes, so both ways agree to float precision.

Token ids are joined, never text: the suffix's ids are appended to the prefix's ids. Re-tokenising
the joined text could merge tokens across the boundary (``"...is" + " Yes"`` may tokenize
differently from either part), so the readout would no longer measure the response the model
produced, and the checkpoint's prefix would not be a prefix of the forward that made the cache.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import xarray as xr

from interlace.interventions import (
    AfterMatch,
    AtTokens,
    Every,
    ForkReadout,
    Graph,
    Intervention,
    Problem,
    ValidationError,
)
from interlace.models.model import Model
from interlace.runtime.backend import LOCAL, Backend, execute
from interlace.runtime.plan import compile_plan
from interlace.runtime.prompts import encode_ids
from interlace.runtime.steps import ForkStep, chunk_reads, fork_step, forward_step


def tokens_of(tokenizer: Any, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


@dataclass
class ForkPlan:
    """A readout's inputs in token ids, checked."""

    prompt: list[int]
    response: list[int]
    suffix: list[int]
    choices: list[list[int]]
    checkpoints: list[int]


def checkpoints(at: Any, response: list[int], tokenizer: Any) -> list[int]:
    """Response-token counts at which to read (0 = before the response)."""
    n = len(response)
    if at == "end":
        return [n]
    if isinstance(at, Every):
        return list(range(at.every, n + 1, at.every))
    if isinstance(at, AtTokens):
        return list(at.tokens)
    assert isinstance(at, AfterMatch)
    # character offset where each token's text ends, decoding growing prefixes
    ends = [len(tokenizer.decode(response[: t + 1])) for t in range(n)]
    text = tokenizer.decode(response)
    pattern = at.after if at.regex else re.escape(at.after)
    out = []
    for match in re.finditer(pattern, text):
        t = next((i + 1 for i, end in enumerate(ends) if end >= match.end()), n)
        if not out or out[-1] != t:
            out.append(t)
    return out


def readout_tokens(tokenizer: Any, readout: ForkReadout, path: str) -> tuple[list, list]:
    """The suffix's and choices' token ids; a part that tokenizes to nothing is a problem."""
    problems = []
    suffix = tokens_of(tokenizer, readout.suffix)
    if not suffix:
        problems.append(
            Problem(
                f"{path}.suffix",
                f"suffix {readout.suffix!r} tokenizes to nothing",
                "a suffix of at least one token",
            )
        )
    choices = [tokens_of(tokenizer, c) for c in readout.choices]
    for i, (text, ids) in enumerate(zip(readout.choices, choices, strict=True)):
        if not ids:
            problems.append(
                Problem(
                    f"{path}.choices[{i}]",
                    f"choice {text!r} tokenizes to nothing",
                    "a choice of at least one token",
                )
            )
    if problems:
        raise ValidationError(problems)
    return suffix, choices


def plan_fork(
    tokenizer: Any, readout: ForkReadout, prompt: list[int], response: list[int], path: str
) -> ForkPlan:
    """Tokenize and check a readout before any forward of it. A response too short for any
    checkpoint gives an empty readout, not an error (generated responses vary in length)."""
    suffix, choices = readout_tokens(tokenizer, readout, path)
    points = checkpoints(readout.at, response, tokenizer)
    beyond = [t for t in points if t > len(response)]
    if beyond:
        raise ValidationError(
            [
                Problem(
                    f"{path}.at",
                    f"checkpoint(s) {beyond} beyond the {len(response)}-token response",
                    f"0 to {len(response)} response tokens",
                )
            ]
        )
    return ForkPlan(prompt, response, suffix, choices, points)


def check_readout_interventions(graph: Graph, path: str = "interventions") -> None:
    """The interventions a readout forward can apply (each kind says: position-independent
    edits, ``positions: all``)."""
    problems = [
        Problem(
            f"{path}[{i}]",
            f"{spec.kind} with positions {spec.positions!r} cannot be "
            "applied during a fork readout",
            "add_vector, value-vector edits and zero/mean "
            "ablate_heads with positions 'all', or steer: generation",
        )
        for i, spec in enumerate(graph.interventions)
        if not spec.acts_in_readout()
    ]
    if problems:
        raise ValidationError(problems)


@dataclass
class Packed:
    """One chunk's packed suffix tree: token ids, position ids, the mask, and where to read."""

    ids: list[int]
    positions: list[int]
    mask: torch.Tensor  # [1, 1, n, prefix_len + n] additive
    suffix_last: list[int]  # per checkpoint: index of the last suffix token
    choice_reads: list[list[list[tuple[int, int]]]]  # [checkpoint][choice] -> (row, token id)


def pack(fp: ForkPlan, chunk: list[int], dtype: torch.dtype) -> Packed:
    """Pack ``chunk``'s checkpoints: each checkpoint's suffix, then each multi-token choice's
    continuation, every token attending to its own ancestors only."""
    P, L = len(fp.prompt), len(fp.response)
    ids: list[int] = []
    positions: list[int] = []
    ancestors: list[list[int]] = []
    visible: list[int] = []  # how much of the prefix cache each packed token sees
    suffix_last, choice_reads = [], []
    for t in chunk:
        chain: list[int] = []
        for j, tok in enumerate(fp.suffix):
            chain = [*chain, len(ids)]
            ids.append(tok)
            positions.append(P + t + j)
            ancestors.append(chain)
            visible.append(P + t)
        last = chain[-1]
        suffix_last.append(last)
        reads = []
        for choice in fp.choices:
            row_reads, branch, prev = [(last, choice[0])], chain, last
            for i, tok in enumerate(choice[:-1]):  # continuation feeding the next choice token
                branch = [*branch, len(ids)]
                ids.append(tok)
                positions.append(P + t + len(fp.suffix) + i)
                ancestors.append(branch)
                visible.append(P + t)
                prev = branch[-1]
                row_reads.append((prev, choice[i + 1]))
            reads.append(row_reads)
        choice_reads.append(reads)
    n = len(ids)
    mask = torch.full((n, P + L + n), torch.finfo(dtype).min, dtype=dtype)
    for row in range(n):
        mask[row, : visible[row]] = 0
        mask[row, [P + L + a for a in ancestors[row]]] = 0
    return Packed(ids, positions, mask[None, None], suffix_last, choice_reads)


@dataclass
class ForkJob:
    """One readout of one example, compiled: its step (None without checkpoints) and the
    packed chunks that say how to read the step's results."""

    readout: ForkReadout
    plan: ForkPlan
    step: ForkStep | None
    packs: list[Packed]


def compile_fork(
    model: Model,
    readout: ForkReadout,
    fp: ForkPlan,
    interventions: list[Intervention],
    references: dict[int, Any] | None = None,
) -> ForkJob:
    """The fork step of one readout (``fp`` from :func:`plan_fork`): the prefix with its
    cache kept, then one packed forward per chunk of checkpoints over that cache."""
    if not fp.checkpoints:
        return ForkJob(readout, fp, None, [])
    graph = Graph(interventions=interventions)
    refs = references or {}
    prefix = encode_ids([fp.prompt + fp.response], pad_id=0)
    prefix_plan = compile_plan(graph, model.shape, prefix, refs)
    prefix_step = forward_step(
        model, prefix_plan, prefix.model_inputs(), all_logits=False, keep_cache=True
    )
    dtype = next(model.hf.parameters()).dtype
    packs, chunks = [], []
    for start in range(0, len(fp.checkpoints), readout.chunk_size):
        packed = pack(fp, fp.checkpoints[start : start + readout.chunk_size], dtype)
        suffix = encode_ids([packed.ids], pad_id=0)
        inputs = {
            "input_ids": torch.tensor([packed.ids]),
            "attention_mask": packed.mask,
            "position_ids": torch.tensor([packed.positions]),
        }
        plan = compile_plan(graph, model.shape, suffix, refs)
        chunks.append(
            {
                "forward": forward_step(model, plan, inputs, all_logits=True),
                "n": len(packed.ids),
                **chunk_reads(packed.choice_reads, packed.suffix_last),
            }
        )
        packs.append(packed)
    return ForkJob(readout, fp, fork_step(prefix_step, chunks, readout.top_k), packs)


def run_forks(model: Model, jobs: list[ForkJob], backend: Backend = LOCAL) -> list[xr.Dataset]:
    """Run fork jobs, all in one session (a remote server keeps every prefix cache to
    itself), and label each one's readout."""
    steps = [job.step for job in jobs if job.step is not None]
    results = iter(execute(model, steps, backend) if steps else [])
    out = []
    for job in jobs:
        fp, k = job.plan, len(job.plan.choices)
        n_cp = len(fp.checkpoints)
        logprob = np.zeros((n_cp, k))
        top_ids = np.zeros((n_cp, job.readout.top_k), dtype=np.int64)
        top_lp = np.zeros((n_cp, job.readout.top_k))
        if job.step is not None:
            row = 0
            for packed, chunk in zip(job.packs, next(results)["chunks"], strict=True):
                values = iter(chunk["choices"].tolist())
                for c, reads in enumerate(packed.choice_reads):
                    for i, choice_reads in enumerate(reads):
                        logprob[row, i] = sum(next(values) for _ in choice_reads)
                    top_ids[row] = chunk["top_ids"][c].numpy()
                    top_lp[row] = chunk["top_values"][c].numpy()
                    row += 1
        out.append(_dataset(model.tokenizer, job.readout, fp, logprob, top_ids, top_lp))
    return out


def fork_readout(
    model: Model,
    readout: ForkReadout,
    fp: ForkPlan,
    interventions: list[Intervention],
    references: dict[int, Any] | None = None,
    backend: Backend = LOCAL,
) -> xr.Dataset:
    """Run one readout for one example (``fp`` from :func:`plan_fork`)."""
    job = compile_fork(model, readout, fp, interventions, references)
    return run_forks(model, [job], backend)[0]


def _dataset(
    tokenizer: Any,
    readout: ForkReadout,
    fp: ForkPlan,
    logprob: np.ndarray,
    top_ids: np.ndarray,
    top_lp: np.ndarray,
) -> xr.Dataset:
    mass = np.exp(logprob).sum(1)
    norm = np.exp(logprob - logprob.max(1, keepdims=True))
    norm /= norm.sum(1, keepdims=True)
    log_odds = (
        logprob[:, 0] - logprob[:, 1] if logprob.shape[1] >= 2 else np.full(len(mass), np.nan)
    )
    coords = {
        "checkpoint": np.arange(len(fp.checkpoints)),
        "choice": list(readout.choices),
        "token_index": ("checkpoint", np.array(fp.checkpoints)),
        "text": ("checkpoint", [tokenizer.decode(fp.response[:t]) for t in fp.checkpoints]),
    }
    top_tokens = np.array([tokenizer.decode([int(i)]) for i in top_ids.ravel()], dtype=str).reshape(
        top_ids.shape
    )
    return xr.Dataset(
        {
            "logprob": (("checkpoint", "choice"), logprob),
            "prob": (("checkpoint", "choice"), norm),
            "log_odds": ("checkpoint", log_odds),
            "mass": ("checkpoint", mass),
            "low_mass": ("checkpoint", mass < readout.min_mass),
            "top_token": (("checkpoint", "rank"), top_tokens),
            "top_id": (("checkpoint", "rank"), top_ids),
            "top_logprob": (("checkpoint", "rank"), top_lp),
        },
        coords=coords,
        attrs={
            "suffix": readout.suffix,
            "readout": readout.to_json(indent=None),
            "prompt_tokens": len(fp.prompt),
            "response_tokens": len(fp.response),
        },
    )
