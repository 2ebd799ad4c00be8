"""GPT-NeoX (Pythia): a fused q/k/v laid out per head, and a parallel residual.

Checked against transformers 5.22: ``query_key_value``'s output is viewed as
``[..., n_heads, 3 * head_dim]`` and chunked into q, k, v per head. With
``use_parallel_residual`` (the default) attention and MLP both read the layer input; either
way the layer returns ``resid_pre + attn_out + mlp_out``. The unembedding is ``lm_head``
(checkpoints' ``embed_out`` is renamed on load). Partial rotary does not touch the weights;
there is no GQA.
"""

from interlace.models.adapters.base import ArchitectureTable, FusedQKV, Location, MLPWeights

GPT_NEOX = ArchitectureTable(
    family="gpt_neox",
    model_types=("gpt_neox",),
    layers="gpt_neox.layers",
    embed="gpt_neox.embed_in",
    final_norm="gpt_neox.final_layer_norm",
    unembed="lm_head",
    attn_out=Location("attention", "output"),
    mlp_out=Location("mlp", "output"),
    o_proj="attention.dense",
    qkv=FusedQKV("attention.query_key_value", "per_head"),
    mlp=MLPWeights(up="mlp.dense_h_to_4h", down="mlp.dense_4h_to_h"),
    n_kv_heads_attr=None,
    head_dim_attr=None,
)
