"""Summaries of a :class:`RunResult` for people and for JSON: top tokens, requested tokens."""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr


def token_ids(tokenizer: Any, tokens: list[str]) -> list[list[int]]:
    """Token ids of each requested token string; a string that is not one token is refused
    (its log-probability would be a different quantity)."""
    out = []
    for t in tokens:
        ids = tokenizer(t, add_special_tokens=False)["input_ids"]
        if len(ids) != 1:
            raise ValueError(f"--tokens {t!r} is {len(ids)} tokens ({ids}); give single tokens")
        out.append(ids)
    return out


def summarize(
    tokenizer: Any,
    result: Any,
    prompts: list[str],
    tokens: list[str],
    ids: list[list[int]],
    top: int,
) -> dict:
    logits = result.logits.values
    logprobs = result.logprobs().values
    examples = []
    for b, prompt in enumerate(prompts):
        order = np.argsort(-logits[b])[:top]
        ex = {
            "prompt": prompt,
            "top": [
                {
                    "token": tokenizer.decode([int(i)]),
                    "id": int(i),
                    "logprob": float(logprobs[b, i]),
                }
                for i in order
            ],
            "tokens": [
                {
                    "token": t,
                    "id": i[0],
                    "logit": float(logits[b, i[0]]),
                    "logprob": float(logprobs[b, i[0]]),
                }
                for t, i in zip(tokens, ids, strict=True)
            ],
        }
        if result.generated_text is not None:
            ex["generated"] = result.generated_text[b]
        examples.append(ex)
    return {"examples": examples}


def to_dataset(result: Any, graph: Any) -> xr.Dataset:
    """The result as one Dataset: each capture's position dim is named after the capture, so
    captures with different position selections can live side by side."""
    data = {"logits": result.logits}
    for key, da in result.captured.items():
        renames = {d: f"{key}_{d}" for d in ("position",) if d in da.dims}
        da = da.rename(renames)
        if "token_index" in da.coords:
            da = da.rename({"token_index": f"{key}_token_index"})
        data[key] = da
    if result.generated_ids is not None:
        data["generated_ids"] = result.generated_ids
    ds = xr.Dataset(data)
    ds.attrs["graph"] = graph.to_json()
    ds.attrs["graph_hash"] = graph.content_hash()
    return ds
