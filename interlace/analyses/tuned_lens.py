"""The tuned lens (Belrose et al. 2023, "Eliciting Latent Predictions from Transformers with the
Tuned Lens"): one affine translator per layer, ``h -> h + h @ A + b``, trained so that the
logit lens of the translated residual matches the model's final distribution (the loss is
KL(final || lens), the paper's distillation loss).

As in the paper the translators start at the identity (``A = 0``, ``b = 0``) and the final
layer's translator is the identity. Unlike it, training uses Adam on minibatches of tokens drawn
from a store or capture, one layer at a time, so memory holds two layers of the data at most.

A lens is saved without pickle: ``translators.safetensors`` (``A.<layer>``, ``b.<layer>``) and
``lens.json`` with the shape facts and the sha256 of the unembedding (and final norm) it was
trained against; applying it to a model whose unembedding differs warns.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr

from interlace.analyses._data import fail, layers_of, rows
from interlace.analyses.lens import final_layer, lens_kl, lens_logprobs, rows_like
from interlace.models.model import Model

FORMAT = "interlace.tuned_lens"
VERSION = 1
WEIGHTS_FILE = "translators.safetensors"
META_FILE = "lens.json"


class UnembeddingMismatchWarning(UserWarning):
    """A tuned lens is applied through another unembedding than it was trained against."""


def unembedding_hash(model: Model) -> str:
    """sha256 of what a lens reads through: ``W_U``, the final norm's parameters, the softcap."""
    hf, adapter = model.hf, model.adapter
    tensors = [("W_U", adapter.weight(hf, "W_U"))]
    tensors += [(f"final_norm.{n}", p) for n, p in adapter.final_norm(hf).named_parameters()]
    digest = hashlib.sha256(repr(adapter.logit_softcap).encode())
    for name, t in tensors:
        array = t.detach().float().cpu().contiguous().numpy()
        digest.update(f"{name}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


@dataclass
class TunedLens:
    """Affine translators by layer: ``weights[l]`` is ``A`` ``[d_model, d_model]``, ``biases[l]``
    is ``b`` ``[d_model]``; layer ``l``'s residual ``h`` reads as ``h + h @ A + b``."""

    weights: dict[int, torch.Tensor]
    biases: dict[int, torch.Tensor]
    n_layers: int
    d_model: int
    unembedding_sha256: str
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def layers(self) -> list[int]:
        return sorted(self.weights)

    def translate(self, layer: int, resid: torch.Tensor) -> torch.Tensor:
        """Layer ``layer``'s residual vectors ``[..., d_model]`` translated (the final layer:
        unchanged)."""
        if layer not in self.weights:
            if layer == self.n_layers - 1:
                return resid
            allowed = f"layers {self.layers} and the last, {self.n_layers - 1}"
            raise fail("layers", f"the tuned lens has no translator for layer {layer}", allowed)
        a = self.weights[layer].to(resid)
        return resid + resid @ a + self.biases[layer].to(resid)

    def check(self, model: Model) -> None:
        """Refuse a model of another shape; warn if its unembedding is not the one trained on."""
        s = model.shape
        if (s.n_layers, s.d_model) != (self.n_layers, self.d_model):
            raise fail(
                "lens",
                f"trained for {self.n_layers} layers of width {self.d_model}, "
                f"not {s.n_layers} of width {s.d_model}",
            )
        if unembedding_hash(model) != self.unembedding_sha256:
            warnings.warn(
                f"the tuned lens was trained against another unembedding "
                f"(sha256 {self.unembedding_sha256[:12]}...) than {model.name}'s; its "
                "readings may mean little",
                UnembeddingMismatchWarning,
                stacklevel=3,
            )

    def save(self, path: str | os.PathLike) -> Path:
        """Write the lens to directory ``path`` (safetensors + JSON, no pickle)."""
        from safetensors.torch import save_file

        out = Path(path)
        out.mkdir(parents=True, exist_ok=True)
        tensors = {f"A.{layer}": a.detach().cpu().contiguous() for layer, a in self.weights.items()}
        tensors |= {f"b.{layer}": b.detach().cpu().contiguous() for layer, b in self.biases.items()}
        save_file(tensors, out / WEIGHTS_FILE)
        meta = {
            "format": FORMAT,
            "version": VERSION,
            "n_layers": self.n_layers,
            "d_model": self.d_model,
            "layers": self.layers,
            "unembedding_sha256": self.unembedding_sha256,
            "info": self.info,
        }
        (out / META_FILE).write_text(json.dumps(meta, indent=2))
        return out

    @classmethod
    def load(cls, path: str | os.PathLike, model: Model | None = None) -> TunedLens:
        """Read a lens saved by :meth:`save`; given ``model``, check it against it (warns if the
        unembedding differs)."""
        from safetensors.torch import load_file

        root = Path(path)
        meta = json.loads((root / META_FILE).read_text())
        if meta.get("format") != FORMAT or meta.get("version") != VERSION:
            raise fail("path", f"{root} is not an interlace tuned lens (version {VERSION})")
        tensors = load_file(root / WEIGHTS_FILE)
        lens = cls(
            weights={layer: tensors[f"A.{layer}"] for layer in meta["layers"]},
            biases={layer: tensors[f"b.{layer}"] for layer in meta["layers"]},
            n_layers=meta["n_layers"],
            d_model=meta["d_model"],
            unembedding_sha256=meta["unembedding_sha256"],
            info=meta["info"],
        )
        if model is not None:
            lens.check(model)
        return lens


def train_tuned_lens(
    model: Model,
    data: xr.DataArray,
    layers: Sequence[int] | None = None,
    steps: int = 250,
    batch_size: int = 256,
    lr: float = 1e-3,
    seed: int = 0,
    exclude_position_zero: bool = True,
) -> TunedLens:
    """Train a translator for each of ``layers`` (default: every layer of ``data`` but the
    model's last) on the real tokens of ``data`` ``(example, layer, [position], d_model)``, a
    residual-stream capture or store variable that holds the model's last layer (its lens is
    the model's output distribution, the training target).

    Each layer takes ``steps`` Adam steps on ``batch_size`` tokens drawn with ``seed``.
    """
    last = final_layer(model, data)
    layers = layers_of(data, layers, model.shape.n_layers)
    layers = [v for v in layers if v != last]  # the last layer's translator is the identity
    if steps < 1 or batch_size < 1 or lr <= 0:
        raise fail("steps", f"steps={steps}, batch_size={batch_size}, lr={lr}", "all positive")
    final, final_examples = rows(data, last, exclude_position_zero)
    if len(final) == 0:
        raise fail("data", "holds no real token (after leaving position 0 out)")
    device = model.device
    final_t = torch.from_numpy(final).to(device)
    gen = torch.Generator().manual_seed(seed)
    lens = TunedLens({}, {}, model.shape.n_layers, model.shape.d_model, unembedding_hash(model))
    train_kl: dict[str, float] = {}
    for layer in layers:
        x = rows_like(data, layer, final_examples, exclude_position_zero)
        x_t = torch.from_numpy(x).to(device)
        a = torch.zeros(x.shape[1], x.shape[1], device=device, requires_grad=True)
        b = torch.zeros(x.shape[1], device=device, requires_grad=True)
        lens.weights[layer], lens.biases[layer] = a, b
        opt = torch.optim.Adam([a, b], lr=lr)
        losses = []
        for _ in range(steps):
            idx = torch.randint(len(x), (min(batch_size, len(x)),), generator=gen).to(device)
            with torch.no_grad():
                p = lens_logprobs(model, last, final_t[idx])
            q = lens_logprobs(model, layer, x_t[idx], lens)
            loss = (p.exp() * (p - q)).sum(-1).mean()
            opt.zero_grad()
            loss.backward(inputs=[a, b])  # no gradient for the model's own weights
            opt.step()
            losses.append(float(loss.detach()))
        lens.weights[layer], lens.biases[layer] = a.detach().cpu(), b.detach().cpu()
        train_kl[str(layer)] = float(np.mean(losses[-max(1, steps // 10) :]))
    lens.info = {
        "model": model.name,
        "steps": steps,
        "batch_size": batch_size,
        "lr": lr,
        "seed": seed,
        "n_tokens": len(final),
        "train_kl": train_kl,
    }
    return lens


def compare_lenses(
    model: Model, data: xr.DataArray, lens: TunedLens, layers: Sequence[int] | None = None
) -> xr.Dataset:
    """Per layer, mean KL(final || lens) of the logit lens and of ``lens`` on ``data`` (use
    held-out data): ``logit_lens`` and ``tuned_lens``, in nats. Default layers: the lens's."""
    layers = lens.layers if layers is None else layers
    return xr.Dataset(
        {
            "logit_lens": lens_kl(model, data, None, layers),
            "tuned_lens": lens_kl(model, data, lens, layers),
        }
    )
