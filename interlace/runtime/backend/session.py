"""What the remote backends (``ndif`` and ``simulate``) share: one nnsight session whose body
runs the steps, a payload that sends each distinct tensor once, and the result-size guard."""

from __future__ import annotations

import hashlib
from typing import Any

import nnsight
import torch

from interlace.runtime.backend.base import Backend
from interlace.runtime.backend.errors import ResultTooLarge
from interlace.runtime.execute import execute


def share_tensors(obj: Any, seen: dict | None = None) -> Any:
    """``obj`` (nested dicts, lists, tuples) with equal tensors replaced by one object, so the
    serializer's memo sends each distinct tensor (a steering vector, a mask) once per session."""
    seen = {} if seen is None else seen
    if isinstance(obj, torch.Tensor):
        raw = obj.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy()
        key = (obj.dtype, tuple(obj.shape), hashlib.sha1(raw).digest())
        return seen.setdefault(key, obj)
    if isinstance(obj, dict):
        return {k: share_tensors(v, seen) for k, v in obj.items()}
    if isinstance(obj, list):
        return [share_tensors(v, seen) for v in obj]
    if isinstance(obj, tuple):
        return tuple(share_tensors(v, seen) for v in obj)
    return obj


def check_size(steps: list[dict], backend: Backend) -> None:
    size = sum(step["result_bytes"] for step in steps)
    if size > backend.max_result_bytes:
        raise ResultTooLarge(
            f"this run could send back {size / 2**20:.1f} MiB from the server, more than the "
            f"limit of {backend.max_result_bytes / 2**20:.1f} MiB: capture fewer layers or "
            "positions, use logits='last', or run fewer prompts at a time (smaller batches); "
            "or raise Backend(max_result_bytes=...)"
        )


def run_session(nm: Any, steps: list[dict], remote: Any) -> list[dict]:
    """One nnsight session whose body runs ``steps``; ``remote`` is nnsight's backend."""
    with nm.session(backend=remote):
        results = nnsight.save(execute(nm, steps))
    return results
