#!/bin/bash
# Start redis, an S3 stand-in, a Ray head + NDIF controller and the NDIF API, all on
# 127.0.0.1, in a process group of their own (stop.sh stops exactly that group).
set -euo pipefail
if [ "$(ps -o pgid= -p $$ | tr -d ' ')" != "$$" ]; then exec setsid -w "$0" "$@"; fi
source "$(dirname "$0")/env.sh"
if curl -sf http://127.0.0.1:$NDIF_API_PORT/connected >/dev/null 2>&1; then
  echo "a local NDIF already answers at http://127.0.0.1:$NDIF_API_PORT"; exit 0
fi
[ -f "$NDIF_VENV/.complete" ] || { echo "no NDIF environment in $NDIF_VENV: run tools/ndif/setup.sh"; exit 1; }
mkdir -p "$NDIF_HOME/logs" "$NDIF_RAY_TEMP_DIR"
cd "$NDIF_HOME"   # not the caller's directory: the server must not import a checkout's packages
echo $$ > "$NDIF_HOME/pgid"
L=$NDIF_HOME/logs
t0=$(date +%s)
redis-server --bind 127.0.0.1 --port 6379 --save '' --appendonly no --daemonize no > $L/redis.log 2>&1 &
moto_server -H 127.0.0.1 -p 9000 > $L/moto.log 2>&1 &
unset RAY_ADDRESS
ray start --head --node-ip-address=127.0.0.1 \
    --resources="$(python -m ndif.services.ray.resources --head)" \
    --port=$NDIF_RAY_HEAD_PORT --object-manager-port=8076 \
    --include-dashboard=true --dashboard-host=127.0.0.1 --dashboard-port=8265 \
    --dashboard-agent-grpc-port=52366 --metrics-export-port=8080 \
    --ray-client-server-port=10001 --temp-dir=$NDIF_RAY_TEMP_DIR > $L/ray-start.log 2>&1
RAY_ADDRESS=127.0.0.1:$NDIF_RAY_HEAD_PORT python -m ndif.services.ray.deployments.controller.controller > $L/controller-launch.log 2>&1
bash "$NDIF_VENV/lib/python3.12/site-packages/ndif/services/api/start.sh" > $L/api.log 2>&1 &
for i in $(seq 1 180); do
  if curl -sf http://127.0.0.1:8001/connected >/dev/null 2>&1; then break; fi; sleep 1
done
if ! curl -sf http://127.0.0.1:8001/connected >/dev/null; then
  echo "NDIF did not come up; logs in $L (stopping what was started)"
  bash "$NDIF_KIT/stop.sh" >/dev/null; exit 1
fi
echo "local NDIF up in $(( $(date +%s) - t0 ))s at http://127.0.0.1:8001 (model dir $NDIF_MODEL_DIR)"
