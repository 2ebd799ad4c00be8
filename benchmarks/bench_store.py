"""Activation store costs, on the bundled model.

    .venv/bin/python benchmarks/bench_store.py [--n 256] [--repeats 3] [--sections time,rss,...]
        [--torch-threads 1]

1. Time: ``il.cache`` of N examples into a zarr store (everything included: the dataset pass,
   the weights hash, creating the store, writing) vs capturing the same batches in memory
   with ``il.run``, side by side in one process: each case once to warm up, then round-robin,
   median reported. Two jobs: the probe case (resid_post and mlp_act, every layer, last
   position) and the heavy-write case (resid_post, every layer, every position).
2. Peak RSS of caching N and 4N examples, each in a fresh process, the peak mark reset once
   the model has loaded (the load's own peak would hide the run's); the in-memory capture of
   the same, for contrast.
3. Bytes on disk vs raw size, per dtype, for both jobs.
4. The codecs measured on real activations, per dtype: compression ratio and speed.

The dataset: prompts of 4 to 60 random words (about 8 to 80 tokens), fixed seed.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numcodecs
import numpy as np
import torch

import interlace as il
from interlace.runtime.prompts import encode
from interlace.stores import describe, real_tokens
from interlace.stores.schema import to_disk

JOBS = {
    "probe": dict(sites="resid_post,mlp_act", layers="all", positions="last"),
    "all positions": dict(sites="resid_post", layers="all", positions="all"),
}
BATCH = 8
WORDS = (
    "the of and to in is was that for it with as his on be at by had are but from or have "
    "an they which one you were all we her she there would their will when who him been has "
    "more if no out do so can what up said about other into than its time only could new them"
).split()


def write_dataset(path: Path, n: int) -> Path:
    rng = random.Random(0)
    with path.open("w") as f:
        for i in range(n):
            text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 60)))
            f.write(json.dumps({"text": text, "id": i, "label": i % 2}) + "\n")
    return path


def in_memory(model: Any, data: Path, job: dict[str, Any]) -> list[dict[str, np.ndarray]]:
    """The baseline: the same batches through il.run, results kept in memory."""
    graph = il.Graph(
        capture=[
            il.Capture(site=s, layers=job["layers"], positions=job["positions"])
            for s in job["sites"].split(",")
        ]
    )
    texts = [json.loads(line)["text"] for line in data.read_text().splitlines()]
    kept = []
    for start in range(0, len(texts), BATCH):
        batch = encode(model.tokenizer, texts[start : start + BATCH])
        rows = [batch.input_ids[b, batch.pad(b) :].tolist() for b in range(batch.size)]
        result = il.run(model, graph, rows)
        kept.append({k: v.values for k, v in result.captured.items()})
    return kept


def to_zarr(model: Any, data: Path, job: dict[str, Any], out: Path, dtype: str = "float32"):
    return il.cache(model, str(data), out, batch_size=BATCH, dtype=dtype, progress=False, **job)


def round_robin(
    cases: dict[str, Callable[[], object]], repeats: int, cleanup: Callable[[], object]
) -> dict[str, tuple[float, float]]:
    """Median (wall, CPU) seconds of each case, CPU counting every thread of this process;
    ``cleanup`` runs, untimed, after every case."""
    for fn in cases.values():
        fn()
        cleanup()
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in cases}
    for _ in range(repeats):
        for name, fn in cases.items():
            wall, cpu = time.perf_counter(), time.process_time()
            fn()
            times[name].append((time.perf_counter() - wall, time.process_time() - cpu))
            cleanup()
    return {
        k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v))
        for k, v in times.items()
    }


def peak_rss(mode: str, job: str, n: int) -> tuple[float, float]:
    """(RSS before the run, peak RSS during it) in MiB, in a fresh process."""
    out = subprocess.run(
        [sys.executable, __file__, "--rss", mode, "--job", job, "--n", str(n)],
        capture_output=True,
        text=True,
        check=True,
    )
    before, peak = out.stdout.split()[-2:]
    return float(before), float(peak)


def _status_mib(key: str) -> float:
    line = next(x for x in open("/proc/self/status") if x.startswith(key))
    return int(line.split()[1]) / 1024


def rss_child(mode: str, job: str, n: int) -> None:
    """Load the model and run one forward (paging its weights in), then reset the peak-RSS
    mark (Linux ``clear_refs``) so that the peak measured is the run's, not the load's."""
    torch.set_grad_enabled(False)
    model = il.load()
    il.run(model, il.Graph(), ["warm up"])
    with tempfile.TemporaryDirectory() as tmp:
        data = write_dataset(Path(tmp) / "data.jsonl", n)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        before = _status_mib("VmRSS")
        if mode == "zarr":
            to_zarr(model, data, JOBS[job], Path(tmp) / "s.zarr")
        else:
            in_memory(model, data, JOBS[job])
        print(before, _status_mib("VmHWM"))


def codec_table(store: Path) -> list[tuple[str, str, float, float, float]]:
    """(dtype, codec, ratio, encode MB/s, decode MB/s) on the store's real-token activations."""
    ds = il.open_store(store)
    real = real_tokens(ds["resid_post"]).values  # [tokens, layer, d_model] float32
    codecs = {
        "zstd-1": numcodecs.Zstd(level=1),
        "zstd-3": numcodecs.Zstd(level=3),
        "blosc-lz4-shuffle": numcodecs.Blosc("lz4", 5, numcodecs.Blosc.SHUFFLE),
        "blosc-lz4-bitshuffle": numcodecs.Blosc("lz4", 5, numcodecs.Blosc.BITSHUFFLE),
        "blosc-zstd1-shuffle": numcodecs.Blosc("zstd", 1, numcodecs.Blosc.SHUFFLE),
        "blosc-zstd1-bitshuffle": numcodecs.Blosc("zstd", 1, numcodecs.Blosc.BITSHUFFLE),
    }
    rows = []
    for dtype in ("float32", "float16", "bfloat16"):
        a = np.ascontiguousarray(to_disk(real, dtype))
        for name, codec in codecs.items():
            enc, dec = [], []
            for _ in range(3):
                t = time.perf_counter()
                blob = codec.encode(a)
                enc.append(time.perf_counter() - t)
                t = time.perf_counter()
                codec.decode(blob)
                dec.append(time.perf_counter() - t)
            mb = a.nbytes / 1e6
            rows.append((dtype, name, a.nbytes / len(blob), mb / min(enc), mb / min(dec)))
    return rows


def time_section(model: Any, data: Path, tmp: Path, repeats: int) -> None:
    print("## time: zarr vs in memory (medians of round-robin runs)")
    store = tmp / "t.zarr"
    for name, job in JOBS.items():
        times = round_robin(
            {
                "memory": lambda job=job: in_memory(model, data, job),
                "zarr": lambda job=job: to_zarr(model, data, job, store),
            },
            repeats,
            cleanup=lambda: shutil.rmtree(store, ignore_errors=True),
        )
        (mw, mc), (zw, zc) = times["memory"], times["zarr"]
        print(
            f"{name}: memory {mw:.2f} s, zarr {zw:.2f} s, ratio {zw / mw:.3f}; CPU time "
            f"memory {mc:.1f} s, zarr {zc:.1f} s, ratio {zc / mc:.3f}"
        )


def rss_section(n: int) -> None:
    print("## peak RSS (MiB) during the run, fresh process each")
    for name in JOBS:
        for mode in ("zarr", "memory"):
            (b1, p1), (b4, p4) = (peak_rss(mode, name, k * n) for k in (1, 4))
            print(
                f"{name} {mode}: {n} examples peak {p1:.0f} (+{p1 - b1:.0f} over the "
                f"model after a forward), {4 * n} examples peak {p4:.0f} (+{p4 - b4:.0f}); "
                f"peak grows {100 * (p4 / p1 - 1):+.1f}%"
            )


def disk_section(model: Any, data: Path, tmp: Path) -> None:
    print("## bytes on disk vs raw")
    for name, job in JOBS.items():
        for dtype in ("float32", "float16", "bfloat16"):
            out = tmp / f"{name}-{dtype}.zarr".replace(" ", "_")
            to_zarr(model, data, job, out, dtype)
            facts = describe(out)
            raw = facts["raw_bytes"]
            ds = il.open_store(out)
            real = raw  # the bytes of real tokens: padding left out
            if "position" in ds.dims:
                slots = ds.sizes["example"] * ds.sizes["position"]
                real = raw * int(ds["n_tokens"].sum()) // slots
            disk = facts["bytes_on_disk"]
            print(
                f"{name} {dtype}: raw (padded) {raw / 2**20:.1f} MiB, raw real tokens "
                f"{real / 2**20:.1f} MiB, on disk {disk / 2**20:.1f} MiB "
                f"(raw/disk {raw / disk:.2f}, real/disk {real / disk:.2f})"
            )


def codecs_section(model: Any, data: Path, tmp: Path) -> None:
    print("## codecs on real-token resid_post activations (ratio, encode MB/s, decode MB/s)")
    store = tmp / "codecs.zarr"
    to_zarr(model, data, JOBS["all positions"], store)
    for dtype, name, ratio, enc, dec in codec_table(store):
        print(f"{dtype} {name}: {ratio:.3f}, {enc:.0f}, {dec:.0f}")


SECTIONS = ("time", "rss", "disk", "codecs")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sections", default=",".join(SECTIONS), help="e.g. time,rss")
    parser.add_argument("--torch-threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--rss", choices=["zarr", "memory"], help=argparse.SUPPRESS)
    parser.add_argument("--job", choices=list(JOBS), default="probe", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss:
        rss_child(args.rss, args.job, args.n)
        return
    torch.set_grad_enabled(False)
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    model = il.load()
    tmp = Path(tempfile.mkdtemp())
    data = write_dataset(tmp / "data.jsonl", args.n)
    print(
        f"# {args.n} examples, batch {BATCH}, bundled SmolLM2-135M, float32, "
        f"{torch.get_num_threads()} torch threads"
    )
    sections = args.sections.split(",")
    for section in SECTIONS:
        if section in sections:
            print()
            if section == "time":
                time_section(model, data, tmp, args.repeats)
            elif section == "rss":
                rss_section(args.n)
            elif section == "disk":
                disk_section(model, data, tmp)
            else:
                codecs_section(model, data, tmp)
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
