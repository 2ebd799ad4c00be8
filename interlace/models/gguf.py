"""GGUF files -> safetensors directories in a per-user cache, converted once.

transformers reads a GGUF by dequantising it (tens of seconds on two cores); the cached
safetensors copy loads in about a second with bit-identical weights. The cache is keyed by the
file's hash, so a new file converts afresh. The tokenizer is saved beside the weights with the
GGUF's own ``add_bos_token`` (and ``add_eos_token``) honoured: transformers' GGUF tokenizer drops
them, and a model trained with a BOS (Gemma) silently answers wrongly without it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from interlace.models.errors import ModelLoadError


def cache_root() -> Path:
    """Where interlace keeps converted models: ``$INTERLACE_CACHE`` or ``~/.cache/interlace``."""
    env = os.environ.get("INTERLACE_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "interlace"


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


#: Bumped when a conversion's output changes (2: the tokenizer honours the GGUF's BOS flag), so
#: a directory converted by an older interlace is converted again rather than reused.
CONVERTER = 2


def converted_dir(gguf: Path) -> Path:
    """The cache directory for ``gguf``'s safetensors conversion (keyed by its content hash and
    :data:`CONVERTER`)."""
    return cache_root() / "models" / f"{gguf.stem}-{file_sha256(gguf)[:16]}-c{CONVERTER}"


def special_token_flags(gguf: Path) -> dict[str, bool]:
    """The GGUF's ``tokenizer.ggml.add_bos_token`` / ``add_eos_token`` flags, where it has them.

    >>> special_token_flags(Path("gemma-3-270m.gguf"))      # doctest: +SKIP
    {'add_bos_token': True, 'add_eos_token': False}
    """
    from gguf import GGUFReader

    reader = GGUFReader(str(gguf))
    flags = {}
    for name in ("add_bos_token", "add_eos_token"):
        field = reader.fields.get(f"tokenizer.ggml.{name}")
        if field is not None:
            flags[name] = bool(field.parts[field.data[0]][0])
    return flags


def honour_special_tokens(tokenizer: Any, flags: dict[str, bool]) -> None:
    """Make ``tokenizer`` add BOS/EOS as the GGUF says (its post-processor and saved config)."""
    for name, value in flags.items():
        setattr(tokenizer, name, value)
    update = getattr(tokenizer, "update_post_processor", None)
    if update is not None:
        update()


def convert_gguf(gguf: Path, out_dir: Path) -> Path:
    """Dequantise ``gguf`` and save model + tokenizer as a safetensors directory at ``out_dir``.

    Written to a temporary sibling and renamed, so an interrupted conversion never leaves a
    directory that looks complete.

    >>> convert_gguf(Path("model.gguf"), Path("/tmp/model"))    # doctest: +SKIP
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        model = AutoModelForCausalLM.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
        )
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        flags = special_token_flags(gguf)
    except Exception as err:  # transformers raises many types for a bad file
        raise ModelLoadError(f"could not read GGUF file {gguf}: {err}") from err
    honour_special_tokens(tokenizer, flags)
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
