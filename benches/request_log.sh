#!/usr/bin/env bash
# What --log-requests costs in throughput: walkv without it, with logfmt and with JSON lines,
# side by side in one run.
#
#   bash benches/request_log.sh            (knobs: ROUNDS=3, SECS=5)
#
# Builds the release binary; installs wrk if it is missing; starts three servers on free
# loopback ports, each with its own data directory and its stderr going to a file (what a
# supervisor's log pipe or journald would take); runs every workload against every server,
# interleaved (off logfmt json off logfmt json ...) for ROUNDS rounds; prints medians and the
# ratio to the server without the log; checks that the logging servers wrote one line per
# request and dropped none (walkv_request_log_dropped_total); stops what it started, by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
SECS=${SECS:-5}
command -v wrk >/dev/null ||
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
cargo build --release -q
BIN=$PWD/target/release/walkv
TMP=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

declare -A PORT
for kind in off logfmt json; do
    PORT[$kind]=$(free_port)
    flags=()
    [ "$kind" != off ] && flags=(--log-requests --log-format "$kind")
    "$BIN" serve --port "${PORT[$kind]}" --data-dir "$TMP/data-$kind" "${flags[@]}" 2>"$TMP/$kind.log" &
    PIDS+=($!)
done
for kind in off logfmt json; do
    for _ in $(seq 200); do curl -sf "http://127.0.0.1:${PORT[$kind]}/readyz" >/dev/null && break; sleep 0.05; done
    curl -sf -X PUT --data-binary "$(head -c 100 /dev/zero | tr '\0' v)" \
        "http://127.0.0.1:${PORT[$kind]}/v1/bench" >/dev/null
done
cp benches/put.lua "$TMP/put.lua"  # PUT to a new key each time, 100-byte values

# Prints requests/s and total requests of one wrk run.  args: connections port [lua]
run_wrk() {
    local c=$1 port=$2 script=${3:-} threads=2 out
    [ "$c" -lt 2 ] && threads=1
    if [ -n "$script" ]; then
        out=$(wrk -t"$threads" -c"$c" -d"${SECS}s" -s "$script" "http://127.0.0.1:$port/v1/bench" 2>&1)
    else
        out=$(wrk -t"$threads" -c"$c" -d"${SECS}s" "http://127.0.0.1:$port/v1/bench" 2>&1)
    fi
    if grep -q "Non-2xx\|Socket errors" <<<"$out"; then echo "invalid"; return; fi
    awk '/ requests in / {total = $1} /Requests\/sec/ {rps = $2} END {printf "%.0f %d\n", rps, total}' <<<"$out"
}

WORKLOADS=("GET c1|1|" "GET c50|50|" "SET c50|50|$TMP/put.lua")
declare -A RESULTS
declare -A SENT
for round in $(seq "$ROUNDS"); do
    for w in "${WORKLOADS[@]}"; do
        IFS='|' read -r name c script <<<"$w"
        for kind in off logfmt json; do
            read -r rps total <<<"$(run_wrk "$c" "${PORT[$kind]}" "$script")"
            RESULTS["$name|$kind"]+="$rps "
            SENT[$kind]=$(( ${SENT[$kind]:-0} + ${total:-0} ))
        done
    done
    echo "round $round of $ROUNDS done" >&2
done

echo "request log cost, $(date -u +%F), $(nproc) cores, $ROUNDS rounds x ${SECS}s, median requests/s"
printf "%-10s %10s %10s %10s %10s %10s\n" workload off logfmt json "logfmt/off" "json/off"
for w in "${WORKLOADS[@]}"; do
    name=${w%%|*}
    python3 - "$name" "${RESULTS[$name|off]}" "${RESULTS[$name|logfmt]}" "${RESULTS[$name|json]}" <<'PY'
import statistics, sys
name, *runs = sys.argv[1:]
med = [statistics.median(float(x) for x in r.split()) if "invalid" not in r else float("nan") for r in runs]
print(f"{name:<10} {med[0]:>10.0f} {med[1]:>10.0f} {med[2]:>10.0f} {med[1]/med[0]:>10.2f} {med[2]/med[0]:>10.2f}")
PY
done
sleep 1
for kind in logfmt json; do
    lines=$(grep -vc '^[0-9TZ:.-]* walkv: ' "$TMP/$kind.log" || true)
    dropped=$(curl -s "http://127.0.0.1:${PORT[$kind]}/metrics" | awk '/^walkv_request_log_dropped_total/ {print $2}')
    echo "$kind: ${SENT[$kind]} requests sent by wrk, $lines lines logged, $dropped dropped"
done
