"""The hashes that identify what made a store, so that a rerun can tell its own store from
another job's (which attributes identify a job is the job's to say: :mod:`interlace.jobs`).

A store records what decides its numbers -- the model's weights and tokenizer among them --
as hashes, and names and paths as provenance: the bundled model loaded by alias or by
directory is the same model. Library versions are recorded as provenance. Torch is imported
only to hash weights, so reading a store never imports it.

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
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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


def weights_hash(hf: torch.nn.Module) -> str:
    """SHA-256 of the state dict's names, dtypes, shapes and a strided sample of its values."""
    import torch

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
