"""GPT-2: ``Conv1D`` projections (weight ``[in, out]``) and a fused q/k/v.

Checked against transformers 5.22: ``transformer.h[i]`` is ``ln_1`` -> ``attn`` (``c_attn``
outputs ``[q | k | v]``, ``c_proj``) -> residual add -> ``ln_2`` -> ``mlp`` (``c_fc`` -> act ->
``c_proj``) -> residual add, with biases everywhere and no GQA. ``n_inner`` may be None (then
the MLP is 4 * d_model wide). The learned position embedding ``wpe`` is added to the token
embedding ``wte`` before layer 0, so ``resid_pre[0]`` is not ``embed``.
"""

from interlace.models.adapters.base import ArchitectureTable, FusedQKV, Location, MLPWeights

GPT2 = ArchitectureTable(
    family="gpt2",
    model_types=("gpt2",),
    layers="transformer.h",
    embed="transformer.wte",
    final_norm="transformer.ln_f",
    unembed="lm_head",
    attn_out=Location("attn", "output"),
    mlp_out=Location("mlp", "output"),
    o_proj="attn.c_proj",
    qkv=FusedQKV("attn.c_attn", "concat"),
    mlp=MLPWeights(up="mlp.c_fc", down="mlp.c_proj"),
    conv1d=True,
    n_kv_heads_attr=None,
    d_mlp_attr="n_inner",
    head_dim_attr=None,
)
