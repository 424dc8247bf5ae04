#!/usr/bin/env bash
# Until the worker lands: start the dev cluster, send commands through it and read them back.
set -euo pipefail
bin=.build/debug/cancel-worker
out=$(mktemp)
"$bin" dev-cluster --brokers 3 --partitions 6 --log-level warning >"$out" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null; rm -f "$out"' EXIT
for _ in $(seq 100); do [ -s "$out" ] && break; sleep 0.1; done
bootstrap=$(head -n1 "$out")
echo "dev cluster: $bootstrap"
for i in 1 2 3; do
    printf 'futures:acct-%s\t{"command_id":"demo-%s"}\n' "$i" "$i"
done | kcat -b "$bootstrap" -P -t cancel.commands -K '\t'
kcat -b "$bootstrap" -C -t cancel.commands -c 3 -e -f 'partition %p offset %o key %k: %s\n'
