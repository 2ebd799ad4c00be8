"""Phi-3: Llama's module names and layout with fused projections.

Checked against transformers 5.22: ``self_attn.qkv_proj`` outputs ``[q | k | v]`` (k and v
``n_kv_heads`` wide), ``mlp.gate_up_proj`` outputs ``[gate | up]`` and the MLP computes
``down_proj(up * act(gate))``.
"""

from dataclasses import replace

from interlace.models.adapters.base import FusedQKV, MLPWeights
from interlace.models.adapters.llama import LLAMA

PHI3 = replace(
    LLAMA,
    family="phi3",
    model_types=("phi3",),
    qkv=FusedQKV("self_attn.qkv_proj", "concat"),
    mlp=MLPWeights(up="mlp.gate_up_proj", down="mlp.down_proj", fused_gate_up=True),
)
