"""What a caching job is, so that a rerun can tell its own store from another job's.

A job is identified by what decides the stored numbers: the model's weights and tokenizer, the
interventions (the graph's content hash), the dataset's records, and what is captured (sites,
layers, positions, dtype). Names and paths are provenance, not identity: the bundled model
loaded by alias or by directory is the same job. Library versions are recorded as provenance.

Weights hash: SHA-256 over every state-dict tensor's name, dtype and shape and a fixed sample of
its values, :data:`SAMPLE` elements evenly strided through it (all of a smaller tensor). Its
cost does not grow with the model: 14 MB of SmolLM2's 650 MB are read (0.2 s; every byte would
take 0.6 s), and for a 7B model only the sample leaves the GPU, where hashing every byte would
copy 15 GB off it and take tens of seconds. Any other checkpoint, fine-tune, dtype or shape
changes it; an edit confined to unsampled values would not, which is why the model's name and
source are recorded too.
"""

from __future__ import annotations

import hashlib
import json
import platform
from importlib import metadata
from typing import Any

import torch

SAMPLE = 1 << 14
LIBRARIES = (
    "interlace",
    "nnsight",
    "transformers",
    "torch",
    "zarr",
    "xarray",
    "numcodecs",
    "numpy",
)
IDENTITY_KEYS = (
    "model_weights_sha256",
    "tokenizer_sha256",
    "adapter_family",
    "graph_sha256",
    "dataset_sha256",
    "text_field",
    "sites",
    "layers",
    "positions",
    "dtype",
)
_WHAT = {  # identity key -> how a difference is named to the user
    "model_weights_sha256": "model weights",
    "tokenizer_sha256": "tokenizer",
    "adapter_family": "model family",
    "graph_sha256": "graph",
    "dataset_sha256": "dataset",
    "text_field": "text field",
    "sites": "sites",
    "layers": "layers",
    "positions": "positions",
    "dtype": "dtype",
}


def weights_hash(hf: torch.nn.Module) -> str:
    """SHA-256 of the state dict's names, dtypes, shapes and a strided sample of its values."""
    sha = hashlib.sha256()
    for name, tensor in sorted(hf.state_dict().items()):
        flat = tensor.detach().reshape(-1)
        n = flat.numel()
        if n > SAMPLE:
            flat = flat[torch.arange(SAMPLE, device=flat.device) * n // SAMPLE]
        header = json.dumps([name, str(tensor.dtype), list(tensor.shape)]).encode()
        sha.update(header)
        sha.update(flat.cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return sha.hexdigest()


def model_weights_id(model: Any) -> str:
    """The weights' hash; for a model whose weights stay on a server (``load(remote=True)``),
    the hash of what names them there."""
    if model.has_weights:
        return weights_hash(model.hf)
    return hashlib.sha256(f"remote:{model.source}".encode()).hexdigest()


def tokenizer_hash(tokenizer: Any) -> str:
    """SHA-256 of what decides tokenization: the tokenizer's own JSON (vocabulary, merges,
    normaliser, special tokens) as serialised with padding and truncation off (they are set per
    call), and the chat template."""
    sha = hashlib.sha256()
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:  # a slow tokenizer: its vocabulary
        sha.update(json.dumps(sorted(tokenizer.get_vocab().items())).encode())
    else:
        if backend.padding is not None or backend.truncation is not None:
            backend = type(backend).from_str(backend.to_str())
            backend.no_padding()
            backend.no_truncation()
        sha.update(backend.to_str().encode())
    sha.update(json.dumps(getattr(tokenizer, "chat_template", None)).encode())
    return sha.hexdigest()


def versions() -> dict[str, str]:
    """Versions of the libraries that produced a store, and of Python."""
    out = {"python": platform.python_version()}
    for lib in LIBRARIES:
        try:
            out[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            out[lib] = "not installed"
    return out


def identity(attrs: dict[str, Any]) -> dict[str, Any]:
    """The identity part of a store's attributes."""
    return {k: attrs.get(k) for k in IDENTITY_KEYS}


def differences(stored: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """How the job in a store differs from the one asked for, one line per difference."""
    lines = []
    for key in IDENTITY_KEYS:
        a, b = stored.get(key), wanted.get(key)
        if a != b:
            lines.append(f"{_WHAT[key]}: the store has {_short(a)}, this job {_short(b)}")
    return lines


def _short(value: Any) -> str:
    text = json.dumps(value)
    if isinstance(value, str) and len(value) == 64:  # a hash
        return f"sha256 {value[:12]}"
    return text if len(text) <= 80 else text[:77] + "..."
