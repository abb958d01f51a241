#!/usr/bin/env bash
# Two walkv binaries side by side with --sync always, at 1, 8 and 64 connections: what a change
# to the write path costs, as a ratio measured in one run.
#
#   bash benches/ab_always.sh OLD_BIN NEW_BIN      (knobs: ROUNDS=5 SECS=4)
#
# Typical use: build the commit before a change, copy its target/release/walkv aside, build the
# change, and compare. Each round runs every (binary, connections) pair once, interleaved
# (A B A B ...), each on a fresh data directory and a free loopback port; wrk sends PUTs of
# 100-byte values to new keys. A run with a non-2xx answer or a socket error is reported as
# invalid. Prints the median writes/s of each and NEW/OLD. Installs wrk if missing; stops what
# it started, by PID.
set -euo pipefail
OLD=${1:?usage: ab_always.sh OLD_BIN NEW_BIN}
NEW=${2:?usage: ab_always.sh OLD_BIN NEW_BIN}
ROUNDS=${ROUNDS:-5}
SECS=${SECS:-4}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }

TMP=$(mktemp -d)
PID=
cleanup() {
    [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT
cp "$(dirname "$0")/put.lua" "$TMP/put.lua"  # PUT to a new key each time, 100-byte values

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Prints writes/s (or "invalid") for one run.  args: binary connections
run() {
    local port dir out threads=2
    [ "$2" -lt 2 ] && threads=1
    port=$(free_port)
    dir=$(mktemp -d -p "$TMP")
    "$1" serve --port "$port" --sync always --data-dir "$dir" 2>/dev/null &
    PID=$!
    for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done
    out=$(wrk -t"$threads" -c"$2" -d"${SECS}s" -s "$TMP/put.lua" "http://127.0.0.1:$port" 2>&1)
    kill "$PID"; wait "$PID" 2>/dev/null || true; PID=
    rm -rf "$dir"
    if grep -qE "Non-2xx|Socket errors" <<<"$out"; then echo invalid; return; fi
    awk '/Requests\/sec/ {printf "%.0f\n", $2}' <<<"$out"
}

declare -A R
for round in $(seq "$ROUNDS"); do
    for c in 1 8 64; do
        for which in OLD NEW; do
            R["$which|$c"]+="$(run "${!which}" "$c") "
        done
    done
    echo "round $round of $ROUNDS done" >&2
done
echo "--sync always, wrk PUT 100-byte values, $ROUNDS rounds x ${SECS}s, median writes/s, $(nproc) cores"
printf "%12s %12s %12s %10s\n" connections old new new/old
for c in 1 8 64; do
    python3 - "$c" "${R[OLD|$c]}" "${R[NEW|$c]}" <<'EOF'
import statistics, sys
c, old, new = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()
if "invalid" in old + new:
    print(f"{c:>12} invalid (a run saw a non-2xx answer or a socket error)"); sys.exit()
o, n = statistics.median(map(float, old)), statistics.median(map(float, new))
print(f"{c:>12} {o:>12.0f} {n:>12.0f} {n / o:>9.2f}x   (old {' '.join(old)}; new {' '.join(new)})")
EOF
done
