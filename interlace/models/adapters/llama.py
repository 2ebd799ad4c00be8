"""Llama and the families that share its module names and layout (Mistral, Qwen2, Qwen3).

Checked against transformers 5.22: all four use ``model.layers[i]`` with ``input_layernorm``
-> ``self_attn`` (q/k/v/o_proj) -> residual add -> ``post_attention_layernorm`` -> ``mlp``
(gate/up/down_proj) -> residual add. Qwen2 has biases on q/k/v (read by ``Adapter.bias``);
Qwen3 normalises each head's query and key (``q_norm``/``k_norm``) after the projection.
"""

from dataclasses import replace

from interlace.models.adapters.base import ArchitectureTable, Location, MLPWeights, SeparateQKV

LLAMA = ArchitectureTable(
    family="llama",
    model_types=("llama",),
    layers="model.layers",
    embed="model.embed_tokens",
    final_norm="model.norm",
    unembed="lm_head",
    attn_out=Location("self_attn", "output"),
    mlp_out=Location("mlp", "output"),
    o_proj="self_attn.o_proj",
    qkv=SeparateQKV("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"),
    mlp=MLPWeights(up="mlp.up_proj", gate="mlp.gate_proj", down="mlp.down_proj"),
)

MISTRAL = replace(LLAMA, family="mistral", model_types=("mistral",))
QWEN2 = replace(LLAMA, family="qwen2", model_types=("qwen2",))
QWEN3 = replace(LLAMA, family="qwen3", model_types=("qwen3",))
