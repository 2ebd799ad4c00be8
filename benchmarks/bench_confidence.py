"""Fork readouts vs the slow way (default: the bundled model).

    .venv/bin/python benchmarks/bench_confidence.py [--tokens 512] [--checkpoints 64]
    .venv/bin/python benchmarks/bench_confidence.py \
        --model qwen2.5-coder-1.5b-instruct --dtype bfloat16

A reasoning text of ``--tokens`` response tokens with ``--checkpoints`` evenly spaced
checkpoints, suffix " The final answer is", choices " Yes" / " No". Three cases, each in its
own subprocess so that peak memory (max RSS above the loaded model's) is its own:
- fork: interlace's readout (one prefix forward + packed suffix chunks);
- slow: a fresh forward of prompt + response[:t] + suffix for every checkpoint t;
- one forward of the whole prompt + response (the floor).
Times are the median of ``--repeats`` runs inside each subprocess after one warm-up.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

PARAGRAPH = (
    " Let me check this carefully. First I list what is given, then I test each option in"
    " turn, and I keep track of which ones fail. If a step looks wrong I go back and redo it."
)


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def run_case(
    case: str, n_tokens: int, n_checkpoints: int, repeats: int, model: str, dtype: str
) -> dict:
    import torch

    import interlace as il
    from interlace.runtime.prompts import encode

    torch.set_grad_enabled(False)
    m = il.load(model, dtype=dtype)
    prompt = il.ChatPrompt(user="Is 1001 divisible by 7? Think, then answer Yes or No.")
    words = m.tokenizer(PARAGRAPH * 40, add_special_tokens=False)["input_ids"][:n_tokens]
    every = n_tokens // n_checkpoints
    readout = il.ForkReadout(at=il.Every(every=every), suffix=" The final answer is",
                             choices=[" Yes", " No"], chunk_size=16)
    prompt_ids = encode(m.tokenizer, [prompt]).input_ids[0].tolist()
    suffix = m.tokenizer(" The final answer is", add_special_tokens=False)["input_ids"]
    points = list(range(every, n_tokens + 1, every))

    def fork() -> None:
        il.confidence(m, prompt, readout, response=words)

    def slow() -> None:
        with torch.inference_mode():
            for t in points:
                m.hf(input_ids=torch.tensor([prompt_ids + words[:t] + suffix]))

    def one() -> None:
        with torch.inference_mode():
            m.hf(input_ids=torch.tensor([prompt_ids + words]))

    fn = {"fork": fork, "slow": slow, "one": one}[case]
    base = rss_mb()
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"case": case, "seconds": statistics.median(times), "peak_above_model_mb": peak - base,
            "checkpoints": len(points), "sequence": len(prompt_ids) + n_tokens}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=512)
    parser.add_argument("--checkpoints", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        case = run_case(args.case, args.tokens, args.checkpoints, args.repeats, args.model,
                        args.dtype)
        print(json.dumps(case))
        return
    results = {}
    for case in ("one", "fork", "slow"):
        repeats = 1 if case == "slow" else args.repeats
        out = subprocess.run(
            [sys.executable, __file__, "--case", case, "--tokens", str(args.tokens),
             "--checkpoints", str(args.checkpoints), "--repeats", str(repeats),
             "--model", args.model, "--dtype", args.dtype],
            check=True, capture_output=True, text=True,
        ).stdout
        results[case] = json.loads(out.strip().splitlines()[-1])
    r = results
    print(f"{args.model} in {args.dtype}:")
    print(f"{r['fork']['checkpoints']} checkpoints on a {r['one']['sequence']}-token sequence:")
    for case in ("one", "fork", "slow"):
        print(f"  {case:<5} {r[case]['seconds'] * 1000:9.1f} ms   peak RSS above the model "
              f"{r[case]['peak_above_model_mb']:7.1f} MiB")
    print(f"  speedup of fork over slow   = {r['slow']['seconds'] / r['fork']['seconds']:.1f}x")
    print(f"  fork / one forward of all   = {r['fork']['seconds'] / r['one']['seconds']:.2f}x")


if __name__ == "__main__":
    main()
