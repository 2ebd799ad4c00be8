"""Tiny random models of every supported family, built from transformers config classes.

They need no download and run in milliseconds on a CPU, so tests can check that adapters and
interventions are wired correctly on every architecture (they say nothing about whether results
are meaningful: that is what the bundled SmolLM2 is for).

Every model has 2 layers, d_model 64, 4 query heads of width 16 (2 KV heads where the family
has grouped-query attention), an MLP of width 128 (GPT-2 keeps ``n_inner=None``, i.e. 4 * 64,
as its checkpoints do), untied embeddings (so a test can tell ``W_E`` from ``W_U``) and special
tokens pad=0, bos=1, eos=2. The family names are the adapter families (the transformers
``model_type``); ``gemma3`` is the multimodal wrapper around ``gemma3_text``, with a tiny vision
tower that token-only inputs never run. Attention is eager, so numerics are deterministic.
Weights are drawn with std 0.2 rather than the usual 0.02 so that every site carries visible
signal, and every 1-D parameter (biases, norm scales) is perturbed so that none is trivially
zero or one.
"""

from __future__ import annotations

from typing import Any

import torch
import transformers

_COMMON: dict[str, Any] = dict(
    num_hidden_layers=2,
    hidden_size=64,
    num_attention_heads=4,
    max_position_embeddings=256,
    tie_word_embeddings=False,
    pad_token_id=0,
    bos_token_id=1,
    eos_token_id=2,
)
_MLP: dict[str, Any] = dict(intermediate_size=128)
_GQA: dict[str, Any] = dict(_MLP, num_key_value_heads=2, head_dim=16)
# Gemma scales attention scores by query_pre_attn_scalar ** -0.5: match it to the head width.
# Gemma 2 keeps its default attention and final-logit softcapping (50 and 30).
_GEMMA: dict[str, Any] = dict(_GQA, query_pre_attn_scalar=16)

# family -> (config class name in transformers, what the family needs beyond _COMMON)
_FAMILIES: dict[str, tuple[str, dict[str, Any]]] = {
    # Llama's optional biases are on, so every bias accessor is exercised (Mistral is the
    # unbiased Llama layout).
    "llama": ("LlamaConfig", dict(_GQA, attention_bias=True, mlp_bias=True)),
    "mistral": ("MistralConfig", _GQA),
    "qwen2": ("Qwen2Config", _GQA),
    "qwen3": ("Qwen3Config", _GQA),
    "gemma2": ("Gemma2Config", _GEMMA),
    # One sliding and one full layer, so both of Gemma 3's rotary bases are exercised.
    "gemma3_text": (
        "Gemma3TextConfig",
        dict(_GEMMA, layer_types=["sliding_attention", "full_attention"]),
    ),
    "gpt2": ("GPT2Config", dict(n_inner=None)),
    "gpt_neox": ("GPTNeoXConfig", _MLP),
    "phi3": ("Phi3Config", _GQA),
    "olmo2": ("Olmo2Config", _GQA),
}

# Multimodal wrappers: family -> (config class name, text family, what the wrapper needs).
# The vision tower is built (tiny) but never runs on token-only inputs.
_WRAPPERS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "gemma3": (
        "Gemma3Config",
        "gemma3_text",
        dict(
            vision_config=dict(
                model_type="siglip_vision_model",
                hidden_size=32,
                intermediate_size=64,
                num_hidden_layers=1,
                num_attention_heads=2,
                image_size=28,
                patch_size=14,
            ),
            mm_tokens_per_image=4,
            boi_token_index=3,
            eoi_token_index=4,
            image_token_index=5,
            tie_word_embeddings=False,
        ),
    ),
}

TINY_FAMILIES: tuple[str, ...] = (*_FAMILIES, *_WRAPPERS)

WEIGHT_STD = 0.2
VECTOR_NOISE = 0.1


def tiny_config(family: str, vocab_size: int = 512) -> transformers.PretrainedConfig:
    """The config of the tiny model of ``family``."""
    if family in _WRAPPERS:
        class_name, text_family, extra = _WRAPPERS[family]
        text_config = tiny_config(text_family, vocab_size).to_dict()
        config = getattr(transformers, class_name)(text_config=text_config, **extra)
    elif family in _FAMILIES:
        class_name, extra = _FAMILIES[family]
        config = getattr(transformers, class_name)(**_COMMON, **extra, vocab_size=vocab_size)
    else:
        raise KeyError(f"no tiny model for {family!r}; families are {', '.join(TINY_FAMILIES)}")
    config._attn_implementation = "eager"
    return config


def tiny_model(family: str, seed: int = 0, vocab_size: int = 512) -> transformers.PreTrainedModel:
    """A tiny random causal LM of ``family``: float32, eval mode, deterministic in ``seed``."""
    config = tiny_config(family, vocab_size)
    with torch.random.fork_rng():  # construction draws an init we overwrite: keep global RNG
        model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            noise = torch.randn(p.shape, generator=gen, dtype=p.dtype)
            if p.dim() >= 2:
                p.copy_(noise * WEIGHT_STD)
            else:
                p.add_(noise * VECTOR_NOISE)
    return model.eval()
