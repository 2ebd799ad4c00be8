"""Will a model fit? The weights' size estimated from the config, before any weight is read.

A model that does not fit in the free memory would be killed by the kernel half-way through
loading (or swap for minutes): refusing it up front, with the numbers, is kinder.
"""

from __future__ import annotations

from typing import Any

from interlace.models.adapters import adapter_for
from interlace.models.errors import ModelLoadError

#: Headroom on top of the weights: the loader's buffers, the tokenizer, the first activations.
OVERHEAD = 1.2


def parameter_count(config: Any) -> int:
    """The number of weights a causal LM with this config has (norms and biases left out).

    >>> from transformers import LlamaConfig
    >>> parameter_count(LlamaConfig(vocab_size=10, hidden_size=4, intermediate_size=8,
    ...     num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1))
    184
    """
    adapter = adapter_for(config)
    s = adapter.shape
    attention = s.d_model * s.head_dim * (2 * s.n_heads + 2 * s.n_kv_heads)
    mlp = (
        s.d_model
        * s.d_mlp
        * (3 if adapter.table.mlp.gate or adapter.table.mlp.fused_gate_up else 2)
    )
    tied = getattr(adapter.text_config, "tie_word_embeddings", True)
    embeddings = s.vocab * s.d_model * (1 if tied else 2)
    return embeddings + s.n_layers * (attention + mlp)


def available_bytes() -> int | None:
    """Memory the kernel can give without swapping (``MemAvailable``); None where unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def check_fits(config: Any, bytes_per_weight: int, name: str) -> None:
    """Refuse a model whose weights (plus :data:`OVERHEAD`) exceed the available memory."""
    free = available_bytes()
    if free is None:
        return
    need = parameter_count(config) * bytes_per_weight * OVERHEAD
    if need > free:
        gib = 2**30
        raise ModelLoadError(
            f"model {name!r} needs about {need / gib:.1f} GiB to load "
            f"({parameter_count(config) / 1e9:.2f}B weights x {bytes_per_weight} bytes, plus "
            f"{OVERHEAD - 1:.0%}) but only {free / gib:.1f} GiB is free; load it in a smaller "
            "dtype (dtype='bfloat16'), free memory, or pass check_memory=False"
        )
