"""Gemma 2 and Gemma 3: Llama's module names with a norm on both sides of each block.

Checked against transformers 5.22: a block is ``input_layernorm`` -> ``self_attn`` ->
``post_attention_layernorm`` -> residual add -> ``pre_feedforward_layernorm`` -> ``mlp`` ->
``post_feedforward_layernorm`` -> residual add, so the *post* norms' outputs are
``attn_out``/``mlp_out``. The embedding module multiplies by sqrt(d_model); RMSNorm scales by
``1 + weight``. Gemma 2 softcaps the final logits (``30 * tanh(lm_head / 30)`` by default).
Gemma 3 normalises each head's query and key (``q_norm``/``k_norm``) after the projection.

Gemma 3 comes in two wrappers: the text model (``gemma3_text``, ``Gemma3ForCausalLM``, the 1B
checkpoint) keeps its layers under ``model``; the multimodal one (``gemma3``,
``Gemma3ForConditionalGeneration``, what ``AutoModelForCausalLM`` builds for the 4B+
checkpoints) under ``model.language_model``, with its sizes in ``config.text_config``, and
applies no logit softcap.
"""

from dataclasses import replace

from interlace.models.adapters.base import Location
from interlace.models.adapters.llama import LLAMA

GEMMA2 = replace(
    LLAMA,
    family="gemma2",
    model_types=("gemma2",),
    attn_out=Location("post_attention_layernorm", "output"),
    mlp_out=Location("post_feedforward_layernorm", "output"),
    embed_scaled=True,
    logit_softcap_attr="final_logit_softcapping",
)

GEMMA3_TEXT = replace(GEMMA2, family="gemma3_text", model_types=("gemma3_text",))

GEMMA3 = replace(
    GEMMA3_TEXT,
    family="gemma3",
    model_types=("gemma3",),
    layers="model.language_model.layers",
    embed="model.language_model.embed_tokens",
    final_norm="model.language_model.norm",
    logit_softcap_attr=None,
    sub_config="text_config",
)
