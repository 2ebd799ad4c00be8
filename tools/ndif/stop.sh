#!/bin/bash
# Stop what start.sh started: its process group and all their descendants (Ray workers
# make process groups of their own), one PID at a time. Nothing is stopped by name.
source "$(dirname "$0")/env.sh"
H=$NDIF_HOME
[ -f "$H/pgid" ] || { echo "no local NDIF recorded in $H"; exit 0; }
PGID=$(cat "$H/pgid")
all=$(ps -eo pid=,pgid= | awk -v g=$PGID '$2==g{print $1}')
frontier=$all
while [ -n "$frontier" ]; do
  next=""
  for p in $frontier; do next="$next $(ps -o pid= --ppid $p)"; done
  frontier=$(echo $next); all="$all $frontier"
done
# never this script or its caller (start.sh stops its own group when the stack fails to come up)
all=$(echo $all | tr ' ' '\n' | sort -un | grep -vx -e $$ -e $PPID || true)
for p in $all; do kill -TERM $p 2>/dev/null; done
alive=""
for i in $(seq 1 20); do
  alive=""; for p in $all; do kill -0 $p 2>/dev/null && alive="$alive $p"; done
  [ -z "$alive" ] && break; sleep 0.5
done
for p in $alive; do kill -KILL $p 2>/dev/null; done
rm -f "$H/pgid"
echo "stopped: $(echo $all | wc -w) processes"
