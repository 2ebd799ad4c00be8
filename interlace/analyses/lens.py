"""The logit lens: each layer's residual stream read through the model's own final norm and
unembedding (nostalgebraist, 2020), as if the layers after it did nothing.

Everything goes through the adapter: ``final_norm`` and ``unembed`` modules of the family, then
``final_logits`` (Gemma 2's softcap), so the last layer's lens is exactly the model's logits.
A tuned lens (:mod:`.tuned_lens`) plugs in as a ``lens`` whose ``translate`` maps a layer's
residual before the same readout.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol

import numpy as np
import torch
import xarray as xr

from interlace.analyses._data import (
    as_dataarray,
    check_dims,
    fail,
    layers_of,
    model_layers,
    position_dim,
    rows,
)
from interlace.interventions import Capture, Graph, Problem, ValidationError
from interlace.models.model import Model
from interlace.runtime.prompts import Prompt
from interlace.runtime.run import run

LENS_SITES = ("resid_pre", "resid_post", "attn_out", "mlp_out")
CHUNK_ROWS = 512  # rows unembedded at once: 512 x 49152 float32 logits = 100 MB


class Translator(Protocol):
    """What a lens adds before the readout: a map of one layer's residual vectors."""

    def translate(self, layer: int, resid: torch.Tensor) -> torch.Tensor: ...

    def check(self, model: Model) -> None: ...


def target_ids(tokenizer: Any, targets: Sequence[str | int] | None) -> list[int]:
    """Token ids of the targets: ints as they are, strings that must be exactly one token."""
    ids, problems = [], []
    for i, t in enumerate(targets or []):
        if isinstance(t, int):
            ids.append(t)
            continue
        enc = tokenizer(t, add_special_tokens=False)["input_ids"]
        if len(enc) != 1:
            problems.append(Problem(f"targets[{i}]", f"{t!r} is {len(enc)} tokens {enc}", "one"))
        else:
            ids.append(enc[0])
    vocab = len(tokenizer)
    problems += [
        Problem(f"targets[{i}]", f"token id {t} is outside the vocabulary", f"0-{vocab - 1}")
        for i, t in enumerate(targets or [])
        if isinstance(t, int) and not 0 <= t < vocab
    ]
    if problems:
        raise ValidationError(problems)
    return ids


def unembed(model: Model, resid: torch.Tensor) -> torch.Tensor:
    """Logits of residual vectors ``[..., d_model]``: final norm, unembedding, softcap."""
    adapter, hf = model.adapter, model.hf
    param = adapter.weight(hf, "W_U")
    x = resid.to(device=param.device, dtype=param.dtype)
    return adapter.final_logits(adapter.unembed(hf)(adapter.final_norm(hf)(x))).float()


def lens_logprobs(
    model: Model, layer: int, resid: torch.Tensor, lens: Translator | None = None
) -> torch.Tensor:
    """Log-probabilities ``[n, vocab]`` the lens reads from rows of layer ``layer``."""
    if lens is not None:
        resid = lens.translate(layer, resid)
    return torch.log_softmax(unembed(model, resid), dim=-1)


def _chunks(n: int, size: int = CHUNK_ROWS) -> Iterator[slice]:
    return (slice(i, min(i + size, n)) for i in range(0, n, size))


def _ordered(resid: xr.DataArray) -> xr.DataArray:
    pos = position_dim(resid)
    return resid.transpose("example", "layer", *([pos] if pos else []), resid.dims[-1])


def read_lens(
    model: Model,
    resid: xr.DataArray,
    targets: Sequence[str | int] | None = None,
    top_k: int = 5,
    layers: Sequence[int] | None = None,
    lens: Translator | None = None,
) -> xr.Dataset:
    """The lens at every layer and position of ``resid`` ``(example, layer, [position],
    d_model)`` -- a capture or a store variable, read one layer at a time.

    Returns a Dataset over ``(example, layer, [position])``: ``top_id``, ``top_token`` and
    ``top_logprob`` along ``k`` (the ``top_k`` most likely tokens), and for each target token
    ``target_logprob`` and ``target_rank`` (0 = top-1) along ``target``. Padding is NaN / -1.
    Scores go through the final norm (this is what the model would predict from there).
    """
    resid = as_dataarray(resid, "resid")
    check_dims(resid, model.shape.d_model, "resid")
    layers = layers_of(resid, layers, model.shape.n_layers)
    if top_k < 1:
        raise fail("top_k", f"{top_k}", ">= 1")
    ids = target_ids(model.tokenizer, targets)
    if lens is not None:
        lens.check(model)
    resid = _ordered(resid.sel(layer=layers))
    grid = resid.shape[:-1]  # (example, layer, [position])
    cells = int(np.prod(grid))
    top_id = np.full((cells, top_k), -1, dtype=np.int64)
    top_lp = np.full((cells, top_k), np.nan, dtype=np.float32)
    t_lp = np.full((cells, len(ids)), np.nan, dtype=np.float32)
    t_rank = np.full((cells, len(ids)), -1, dtype=np.int64)
    target = torch.tensor(ids, dtype=torch.long)
    # Rows of several layers share one unembedding pass: for a short prompt, reading W_U once
    # instead of once per layer is most of the cost.
    pending: list[tuple[np.ndarray, torch.Tensor]] = []

    def flush() -> None:
        if not pending:
            return
        at = np.concatenate([a for a, _ in pending])
        lp = torch.log_softmax(unembed(model, torch.cat([r for _, r in pending])), -1).cpu()
        pending.clear()
        best = lp.topk(top_k, dim=-1)
        top_id[at], top_lp[at] = best.indices.numpy(), best.values.numpy()
        if ids:
            chosen = lp[:, target]
            t_lp[at] = chosen.numpy()
            t_rank[at] = (lp[:, None, :] > chosen[:, :, None]).sum(-1).numpy()

    with torch.inference_mode():
        for j, layer in enumerate(layers):
            values = np.asarray(resid.isel(layer=j).values, dtype=np.float32)
            flat = values.reshape(-1, values.shape[-1])
            where = np.nonzero(~np.isnan(flat).any(-1))[0]
            at = np.unravel_index(where, values.shape[:-1])
            cell = np.ravel_multi_index((at[0], np.full_like(at[0], j), *at[1:]), grid)
            for part in _chunks(len(where)):
                rows = torch.from_numpy(flat[where[part]])
                pending.append((cell[part], rows if lens is None else lens.translate(layer, rows)))
                if sum(len(a) for a, _ in pending) >= CHUNK_ROWS:
                    flush()
        flush()
    top_id, top_lp = top_id.reshape(*grid, top_k), top_lp.reshape(*grid, top_k)
    t_lp, t_rank = t_lp.reshape(*grid, len(ids)), t_rank.reshape(*grid, len(ids))
    dims = resid.dims[:-1]
    coords = {k: v for k, v in resid.coords.items() if set(v.dims) <= set(dims)}
    tokens = decode_tokens(model.tokenizer, top_id)
    out = xr.Dataset(
        {
            "top_id": (dims + ("k",), top_id),
            "top_token": (dims + ("k",), tokens),
            "top_logprob": (dims + ("k",), top_lp),
            "target_logprob": (dims + ("target",), t_lp),
            "target_rank": (dims + ("target",), t_rank),
        },
        coords=coords,
    )
    names = [t if isinstance(t, str) else model.tokenizer.decode([t]) for t in targets or []]
    out = out.assign_coords(target=names, target_id=("target", np.array(ids, dtype=np.int64)))
    out.attrs.update(lens="tuned" if lens is not None else "logit", model=model.name)
    return out


def decode_tokens(tokenizer: Any, ids: np.ndarray) -> np.ndarray:
    """Each token id as its text ('' for -1)."""
    unique = np.unique(ids)
    text = {int(i): tokenizer.decode([int(i)]) if i >= 0 else "" for i in unique}
    return np.vectorize(text.__getitem__, otypes=[object])(ids).astype(str)


def logit_lens(
    model: Model,
    prompts: Prompt | list[Prompt],
    targets: Sequence[str | int] | None = None,
    top_k: int = 5,
    site: str = "resid_post",
    layers: Sequence[int] | None = None,
    lens: Translator | None = None,
) -> xr.Dataset:
    """Run ``prompts`` capturing ``site`` at every position and read the lens from it (see
    :func:`read_lens`); adds ``input_token`` ``(example, position)``, each position's token.

    Arguments are checked before the model runs.
    """
    if site not in LENS_SITES:
        raise fail("site", f"{site!r} is not a residual-stream site", ", ".join(LENS_SITES))
    model_layers(layers, model.shape.n_layers)
    target_ids(model.tokenizer, targets)
    capture = Capture(site=site, layers=list(layers) if layers else "all", positions="all")
    result = run(model, Graph(capture=[capture]), prompts)
    out = read_lens(model, result.captured[site], targets, top_k, layers, lens)
    index = result.captured[site]["token_index"].values
    words = [[model.tokenizer.decode([t]) for t in toks] for toks in result.prompt_tokens]
    text = np.array(
        [[words[b][i] if i >= 0 else "" for i in row] for b, row in enumerate(index)], dtype=str
    )
    return out.assign_coords(input_token=(("example", "position"), text))


def first_top1_layer(lens: xr.Dataset) -> xr.DataArray:
    """For each target, example and position: the first layer at which the target is the
    lens's top-1 token, or -1 if it never is."""
    hit = lens["target_rank"] == 0
    first = hit.argmax("layer")
    first = first.copy(data=lens["layer"].values[first.values])
    return xr.where(hit.any("layer"), first, -1)


def final_layer(model: Model, data: Any) -> int:
    """The model's last layer, checked to be in ``data``: its lens is the model's output
    distribution, the reference of the KL and the target of tuned-lens training."""
    data = as_dataarray(data)
    check_dims(data, model.shape.d_model)
    last = model.shape.n_layers - 1
    held = data["layer"].values.tolist() if "layer" in data.dims else []
    if last not in held:
        raise fail("data", f"lacks the model's last layer {last}", f"data holding layer {last}")
    return last


def rows_like(
    data: xr.DataArray, layer: int, examples: np.ndarray, exclude_position_zero: bool
) -> np.ndarray:
    """Layer ``layer``'s rows, checked to be the tokens (``examples``) of another layer's."""
    x, got = rows(data, layer, exclude_position_zero)
    if not np.array_equal(got, examples):
        raise fail("data", f"layer {layer} has other real tokens than the last layer")
    return x


def lens_kl(
    model: Model,
    data: xr.DataArray,
    lens: Translator | None = None,
    layers: Sequence[int] | None = None,
    exclude_position_zero: bool = True,
) -> xr.DataArray:
    """Mean KL(final || lens) per layer over the real tokens of ``data`` (``(example, layer,
    [position], d_model)``, which must hold the model's last layer): how far each layer's
    lens is from the model's output distribution, in nats. Position 0 is left out by default.
    """
    last = final_layer(model, data)
    layers = layers_of(data, layers, model.shape.n_layers)
    if lens is not None:
        lens.check(model)
    final, final_examples = rows(data, last, exclude_position_zero)
    final_t = torch.from_numpy(final)
    kl = []
    with torch.inference_mode():
        for layer in layers:
            x = rows_like(data, layer, final_examples, exclude_position_zero)
            total = 0.0
            for part in _chunks(len(x)):
                p = lens_logprobs(model, last, final_t[part])
                q = lens_logprobs(model, layer, torch.from_numpy(x[part]), lens)
                total += float((p.exp() * (p - q)).sum())
            kl.append(total / max(len(x), 1))
    attrs = {"lens": "tuned" if lens is not None else "logit", "n_tokens": len(final)}
    return xr.DataArray(np.array(kl), dims=("layer",), coords={"layer": layers}, attrs=attrs)
