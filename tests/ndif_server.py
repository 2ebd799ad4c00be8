"""The local NDIF the remote tests run against (``tools/ndif/``): reuse one answering on
127.0.0.1:8001, or set it up (idempotent, cached) and start it; stop only what was started
here. A server that cannot be had fails the tests that need it, saying why."""

from __future__ import annotations

import os
import subprocess
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

KIT = Path(__file__).resolve().parent.parent / "tools" / "ndif"
URL = "http://127.0.0.1:8001"
BASE = Path(os.environ.get("NDIF_BASE", Path.home() / ".cache" / "interlace" / "ndif"))
MODEL_DIR = Path(os.environ.get("NDIF_MODEL_DIR", BASE / "models" / "smollm2-135m"))


@dataclass
class LocalNDIF:
    url: str
    model_dir: Path
    started_here: bool

    def stop(self) -> None:
        _script("stop.sh", timeout=120)

    def start(self) -> None:
        _script("start.sh", timeout=300)


def answering(url: str = URL) -> bool:
    """Whether an NDIF API answers at ``url``."""
    try:
        with urllib.request.urlopen(f"{url}/connected", timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


def _script(name: str, timeout: int) -> str:
    """Run one of tools/ndif's scripts; a failure fails the test with its output."""
    try:
        done = subprocess.run(
            ["bash", str(KIT / name)], capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired as err:
        pytest.fail(f"tools/ndif/{name} did not finish in {timeout} s:\n{err.stdout}{err.stderr}")
    if done.returncode != 0:
        pytest.fail(
            f"tools/ndif/{name} failed (exit {done.returncode}); the local NDIF the remote tests "
            f"need is not available:\n{done.stdout}\n{done.stderr}\n"
            f"(logs in {BASE / 'home' / 'logs'})"
        )
    return done.stdout


def acquire() -> LocalNDIF:
    """A running local NDIF: the one already answering, else a new one (set up first if the
    cached environment or model is missing)."""
    if answering():
        return LocalNDIF(URL, MODEL_DIR, started_here=False)
    if not (BASE / "venv" / ".complete").is_file() or not (MODEL_DIR / "config.json").is_file():
        _script("setup.sh", timeout=1800)
    server = LocalNDIF(URL, MODEL_DIR, started_here=True)
    server.start()
    if not answering():
        pytest.fail(f"tools/ndif/start.sh returned but nothing answers at {URL}")
    return server
