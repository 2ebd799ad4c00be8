"""The model a job runs: its shape before the weights load (so a job is checked first), the
model itself, and what a store records of it."""

from __future__ import annotations

import hashlib
from typing import Any

from interlace.interventions import ModelShape
from interlace.models import loading
from interlace.models.model import Model
from interlace.stores.identity import tokenizer_hash, weights_hash


def shape_of(model: Model | str) -> ModelShape:
    """A loaded model's shape, or a named one's from its config alone (no weights load).

    ``shape_of("smollm2-135m").n_layers`` is 30."""
    if isinstance(model, Model):
        return model.shape
    from transformers import AutoConfig

    from interlace.models.adapters import adapter_for

    return adapter_for(AutoConfig.from_pretrained(str(loading.resolve_source(model)))).shape


def loaded(model: Model | str, remote: bool = False) -> Model:
    """``model`` itself, or the model it names, loaded (without weights when ``remote``: they
    stay on the NDIF server)."""
    return model if isinstance(model, Model) else loading.load(model, remote=remote)


def max_tokens(model: Model) -> int | None:
    """The most tokens a prompt may have (the model's context), if its config says."""
    return getattr(model.hf.config, "max_position_embeddings", None)


def model_attrs(model: Model) -> dict[str, Any]:
    """What a store records of the model: the identity (weights, tokenizer, family), then the
    provenance (name, source, shape)."""
    return {
        "model_weights_sha256": weights_id(model),
        "tokenizer_sha256": tokenizer_hash(model.tokenizer),
        "adapter_family": model.adapter.family,
        "model": model.name,
        "model_source": model.source,
        "model_shape": model.shape.to_dict(),
    }


MODEL_IDENTITY = {
    "model_weights_sha256": "model weights",
    "tokenizer_sha256": "tokenizer",
    "adapter_family": "model family",
}
"""The identity attributes of :func:`model_attrs` -> how a difference is named."""


def weights_id(model: Model) -> str:
    """The weights' hash (:func:`interlace.stores.identity.weights_hash`); for a model whose
    weights stay on a server (``load(remote=True)``), the hash of what names them there."""
    if model.has_weights:
        return weights_hash(model.hf)
    return hashlib.sha256(f"remote:{model.source}".encode()).hexdigest()
