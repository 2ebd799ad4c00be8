"""Architecture adapters: the family tables and the lookup from a transformers config."""

from __future__ import annotations

from typing import Any

from interlace.models.adapters.base import Adapter, ArchitectureTable, Location, get_path
from interlace.models.adapters.gemma import GEMMA2, GEMMA3, GEMMA3_TEXT
from interlace.models.adapters.gpt2 import GPT2
from interlace.models.adapters.gpt_neox import GPT_NEOX
from interlace.models.adapters.llama import LLAMA, MISTRAL, QWEN2, QWEN3
from interlace.models.adapters.olmo2 import OLMO2
from interlace.models.adapters.phi3 import PHI3

TABLES: tuple[ArchitectureTable, ...] = (
    LLAMA,
    MISTRAL,
    QWEN2,
    QWEN3,
    GEMMA2,
    GEMMA3_TEXT,
    GEMMA3,
    GPT2,
    GPT_NEOX,
    PHI3,
    OLMO2,
)


class UnsupportedArchitectureError(ValueError):
    """The model's architecture has no adapter."""


def supported_model_types() -> list[str]:
    return sorted(mt for t in TABLES for mt in t.model_types)


def adapter_for(config: Any) -> Adapter:
    """The adapter for a transformers config, chosen by its ``model_type``."""
    model_type = getattr(config, "model_type", None)
    for table in TABLES:
        if model_type in table.model_types:
            return Adapter(table, config)
    raise UnsupportedArchitectureError(
        f"unsupported architecture {model_type!r} ({type(config).__name__}); supported model "
        f"types: {', '.join(supported_model_types())}"
    )


__all__ = [
    "Adapter",
    "ArchitectureTable",
    "Location",
    "TABLES",
    "UnsupportedArchitectureError",
    "adapter_for",
    "get_path",
    "supported_model_types",
]
