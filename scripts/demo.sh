#!/bin/bash
# make run: three replicas on 127.0.0.1:9001..9003 behind lb on :8080 with
# conf/demo.yaml, in the foreground. Ctrl-C stops lb and the replicas.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
    wait 2>/dev/null
}
trap cleanup EXIT
trap 'exit 0' INT TERM

for i in 1 2 3; do
    "$BUILD/replica" -p "900$i" -n "replica-$i" >/dev/null &
    pids+=($!)
done
echo "demo: replicas on 127.0.0.1:9001-9003; lb on :8080 (try: curl localhost:8080)"
echo "demo: Ctrl-C stops everything"
"$BUILD/lb" -c conf/demo.yaml &
pids+=($!)
wait "${pids[-1]}"
