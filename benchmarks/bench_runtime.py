"""Runtime overheads, measured side by side in one process (default: the bundled model).

    .venv/bin/python benchmarks/bench_runtime.py [--repeats 5]
    .venv/bin/python benchmarks/bench_runtime.py \
        --model qwen2.5-coder-1.5b-instruct --dtype bfloat16

1. Capture every layer's residual (resid_post, all positions) on a batch of 8 x 128 tokens:
   interlace vs plain transformers (output_hidden_states=True) vs a raw nnsight trace, all
   three unembedding only the last position (``logits_to_keep=1``, as interlace does when
   only the last logits are asked for), so the ratio is the capture's cost alone.
2. Steering at every step of a 32-token greedy generation (batch 4): interlace vs plain
   transformers generate with a forward hook doing the same addition, and vs unsteered generate.
Each configuration runs once to warm up, then ``repeats`` times in round-robin order; the
median is reported, with the process's peak RSS above the loaded model.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
from collections.abc import Callable

import nnsight
import torch

import interlace as il


def timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def round_robin(cases: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    for fn in cases.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(repeats):
        for name, fn in cases.items():
            times[name].append(timed(fn))
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    model = il.load(args.model, dtype=args.dtype)
    loaded_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    hf, nm, n = model.hf, model.nnsight, model.shape.n_layers
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(100, 40000, (8, 128), generator=g)
    prompts = ids.tolist()

    capture = il.Graph(capture=[il.Capture(site="resid_post", layers="all", positions="all")])

    def plain() -> object:
        with torch.inference_mode():
            return hf(input_ids=ids, output_hidden_states=True, logits_to_keep=1).hidden_states

    def raw_nnsight() -> object:
        with torch.inference_mode():
            with nm.trace(ids, logits_to_keep=1):
                out = nnsight.save([nm.model.layers[i].output.clone() for i in range(n)])
        return out

    def interlace_capture() -> object:
        return il.run(model, capture, prompts).captured

    t1 = round_robin({"transformers": plain, "nnsight": raw_nnsight,
                      "interlace": interlace_capture}, args.repeats)

    vec = torch.randn(model.shape.d_model, generator=g).to(hf.dtype)
    vec = vec / vec.norm() * 8.0
    layer, new_tokens = 12, 32
    gen_prompts = ids[:4, :64].tolist()
    gen_ids = ids[:4, :64]
    steer = il.Graph(
        interventions=[
            il.AddVector(site="resid_post", layers=[layer], vector=vec.float().tolist())
        ],
        generate=il.Generate(max_new_tokens=new_tokens),
    )
    mask = torch.ones_like(gen_ids)
    kwargs = dict(attention_mask=mask, max_new_tokens=new_tokens, do_sample=False,
                  min_new_tokens=new_tokens, pad_token_id=model.tokenizer.pad_token_id)

    def plain_generate() -> object:
        with torch.inference_mode():
            return hf.generate(gen_ids, **kwargs)

    def hooked_generate() -> object:
        handle = hf.model.layers[layer].register_forward_hook(lambda m, i, o: o + vec)
        try:
            with torch.inference_mode():
                return hf.generate(gen_ids, **kwargs)
        finally:
            handle.remove()

    def interlace_generate() -> object:
        return il.run(model, steer, gen_prompts).generated_ids

    t2 = round_robin({"generate": plain_generate, "hooked": hooked_generate,
                      "interlace": interlace_generate}, args.repeats)

    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{args.model} in {args.dtype}: peak RSS {peak_mb:.0f} MiB, "
          f"{peak_mb - loaded_mb:.0f} MiB above the loaded model")
    print(f"capture all {n} residuals, batch 8 x 128 tokens (median of {args.repeats}):")
    for k, v in t1.items():
        print(f"  {k:<14} {v * 1000:8.1f} ms")
    print(f"  interlace / transformers = {t1['interlace'] / t1['transformers']:.3f}")
    print(f"  interlace / raw nnsight  = {t1['interlace'] / t1['nnsight']:.3f}")
    print(f"steer at every step, {new_tokens} new tokens, batch 4 x 64 (median of "
          f"{args.repeats}):")
    for k, v in t2.items():
        print(f"  {k:<14} {v * 1000:8.1f} ms")
    print(f"  interlace / plain generate  = {t2['interlace'] / t2['generate']:.3f}")
    print(f"  interlace / hooked generate = {t2['interlace'] / t2['hooked']:.3f}")


if __name__ == "__main__":
    main()
