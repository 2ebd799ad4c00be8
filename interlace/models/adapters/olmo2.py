"""OLMo-2: Llama's module names, but each block normalises its *output* instead of its input.

Checked against transformers 5.22: there is no ``input_layernorm``; attention and MLP read the
raw residual, and their outputs pass through ``post_attention_layernorm`` /
``post_feedforward_layernorm`` before the residual add, so those norms' outputs are
``attn_out``/``mlp_out``. ``q_norm``/``k_norm`` normalise the whole projected query/key (all
heads together) after ``q_proj``/``k_proj``.
"""

from dataclasses import replace

from interlace.models.adapters.base import Location
from interlace.models.adapters.llama import LLAMA

OLMO2 = replace(
    LLAMA,
    family="olmo2",
    model_types=("olmo2",),
    attn_out=Location("post_attention_layernorm", "output"),
    mlp_out=Location("post_feedforward_layernorm", "output"),
)
