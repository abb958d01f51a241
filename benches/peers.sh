#!/usr/bin/env bash
# walkv against Redis and webdis, side by side on this machine, in one run.
#
#   bash benches/peers.sh            (knobs: ROUNDS=3, SECS=5, RECORDS=1000000)
#
# Throughput here; recovery time, memory with RECORDS keys, idle memory and startup time in
# benches/recovery.py, which this script runs at the end.
#
# Builds the release binary; installs wrk, redis-server, redis-tools and webdis from Debian if
# they are missing; starts walkv (--sync interval, and a second one with --sync always), Redis
# (AOF everysec, and a second one with appendfsync always) and webdis (in front of the everysec
# Redis) on free loopback ports with their data in a temp directory; runs every workload against
# every server, interleaved (A B C A B C ...) for ROUNDS rounds; prints medians and ratios; stops
# everything it started, by PID.
#
# HTTP servers (walkv, webdis) are loaded with wrk; Redis with redis-benchmark (RESP, no
# pipelining). Values are 100 bytes. A run is invalid, and reported as such rather than as a
# number, if wrk saw a non-2xx answer or a socket error, or if connections were starved.
#
# wrk cannot see a starved connection: against a listener that accepts and never answers, wrk
# reports 0 requests and no socket error (checked 2026-11-24). Little's law does not help either
# on 2 shared cores, because wrk itself becomes the bottleneck. So the harness looks at the
# server's side of every connection: twice during each run it lists the established connections
# on the server's port (`ss`), and a connection whose receive queue holds unread bytes both times
# is starved: its requests arrived and nobody reads them. More than a tenth of the connections
# starved, or more than one, makes the run invalid.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
SECS=${SECS:-5}

need() { # command package
    command -v "$1" >/dev/null && return
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
}
need wrk wrk
need redis-server redis-server
need redis-benchmark redis-tools
need webdis webdis
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
wait_port() {
    for _ in $(seq 200); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return
        sleep 0.05
    done
    echo "nothing listens on port $1" >&2
    exit 1
}

WALKV=$(free_port); WALKV_ALWAYS=$(free_port)
REDIS=$(free_port); REDIS_ALWAYS=$(free_port); WEBDIS=$(free_port)
"$BIN" serve --port "$WALKV" --data-dir "$TMP/walkv" 2>"$TMP/walkv.log" &
PIDS+=($!)
"$BIN" serve --port "$WALKV_ALWAYS" --sync always --data-dir "$TMP/walkv-always" 2>"$TMP/walkv-always.log" &
PIDS+=($!)
for r in "$REDIS:everysec" "$REDIS_ALWAYS:always"; do
    port=${r%%:*}; fsync=${r##*:}
    mkdir -p "$TMP/redis-$port"
    redis-server --port "$port" --dir "$TMP/redis-$port" --appendonly yes --appendfsync "$fsync" \
        --save '' --daemonize no --logfile "$TMP/redis-$port.log" &
    PIDS+=($!)
done
cat >"$TMP/webdis.json" <<EOF
{"redis_host": "127.0.0.1", "redis_port": $REDIS, "http_host": "127.0.0.1", "http_port": $WEBDIS,
 "threads": 2, "daemonize": false, "database": 0, "verbosity": 0, "logfile": "$TMP/webdis.log"}
EOF
webdis "$TMP/webdis.json" &
PIDS+=($!)
for port in "$WALKV" "$WALKV_ALWAYS" "$REDIS" "$REDIS_ALWAYS" "$WEBDIS"; do wait_port "$port"; done

VALUE=$(head -c 100 /dev/zero | tr '\0' v)
curl -sf -X PUT --data-binary "$VALUE" "http://127.0.0.1:$WALKV/v1/bench" >/dev/null
redis-cli -p "$REDIS" SET bench "$VALUE" >/dev/null

# wrk script: PUT to PREFIX<n> with a 100-byte body, a new key each time.
cat >"$TMP/put.lua" <<'EOF'
local prefix = os.getenv("PREFIX")
local n = 0
wrk.method = "PUT"
wrk.body = string.rep("v", 100)
request = function()
    n = n + 1
    return wrk.format(nil, prefix .. n .. "-" .. math.random(1e9))
end
EOF

# Lists the server-side connections on port $1 that hold unread bytes (local address:port peer).
unread() {
    ss -tnH state established "( sport = :$1 )" | awk '$1 > 0 { print $4, $5 }' | sort
}

# Prints "RPS" or "invalid: REASON" for one wrk run.  args: connections url [lua prefix]
run_wrk() {
    local c=$1 url=$2 script=${3:-} prefix=${4:-} threads=2 port out starved
    [ "$c" -lt 2 ] && threads=1
    port=${url##*:}; port=${port%%/*}
    (
        sleep "$(python3 -c "print($SECS / 3)")"; unread "$port" >"$TMP/unread1"
        sleep "$(python3 -c "print($SECS / 3)")"; unread "$port" >"$TMP/unread2"
    ) &
    local sampler=$!
    if [ -n "$script" ]; then
        out=$(PREFIX=$prefix wrk -t"$threads" -c"$c" -d"${SECS}s" --latency -s "$script" "$url" 2>&1)
    else
        out=$(wrk -t"$threads" -c"$c" -d"${SECS}s" --latency "$url" 2>&1)
    fi
    wait "$sampler"
    starved=$(comm -12 "$TMP/unread1" "$TMP/unread2" | wc -l)
    python3 - "$c" "$starved" <<EOF
import re, sys
out = """$out"""
c, starved = int(sys.argv[1]), int(sys.argv[2])
if starved > max(1, c // 10):
    print(f"invalid: {starved} of {c} connections starved (unread requests on the server side)")
    sys.exit()
m = re.search(r"Requests/sec:\s+([\d.]+)", out)
if not m:
    print("invalid: no result"); sys.exit()
rps = float(m.group(1))
if "Non-2xx" in out or "Socket errors" in out:
    print("invalid: " + "; ".join(l.strip() for l in out.splitlines() if "Non-2xx" in l or "Socket errors" in l)); sys.exit()
print(f"{rps:.0f}")
EOF
}

# Prints "RPS" for one redis-benchmark run.  args: port test connections
run_redis() {
    local n=$(( $3 == 1 ? 30000 : 200000 ))
    redis-benchmark -p "$1" -t "$2" -c "$3" -n "$n" -d 100 -r 1000000 --csv 2>/dev/null \
        | awk -F'"' 'NR==2 {printf "%.0f\n", $4}'
}

WORKLOADS=(
    "GET c1|run_wrk 1 http://127.0.0.1:$WALKV/v1/bench|run_wrk 1 http://127.0.0.1:$WEBDIS/GET/bench|run_redis $REDIS get 1"
    "GET c50|run_wrk 50 http://127.0.0.1:$WALKV/v1/bench|run_wrk 50 http://127.0.0.1:$WEBDIS/GET/bench|run_redis $REDIS get 50"
    "SET c1|run_wrk 1 http://127.0.0.1:$WALKV $TMP/put.lua /v1/k|run_wrk 1 http://127.0.0.1:$WEBDIS $TMP/put.lua /SET/k|run_redis $REDIS set 1"
    "SET c50|run_wrk 50 http://127.0.0.1:$WALKV $TMP/put.lua /v1/k|run_wrk 50 http://127.0.0.1:$WEBDIS $TMP/put.lua /SET/k|run_redis $REDIS set 50"
    "SET always c1|run_wrk 1 http://127.0.0.1:$WALKV_ALWAYS $TMP/put.lua /v1/k||run_redis $REDIS_ALWAYS set 1"
    "SET always c8|run_wrk 8 http://127.0.0.1:$WALKV_ALWAYS $TMP/put.lua /v1/k||run_redis $REDIS_ALWAYS set 8"
    "SET always c50|run_wrk 50 http://127.0.0.1:$WALKV_ALWAYS $TMP/put.lua /v1/k||run_redis $REDIS_ALWAYS set 50"
    "SET always c64|run_wrk 64 http://127.0.0.1:$WALKV_ALWAYS $TMP/put.lua /v1/k||run_redis $REDIS_ALWAYS set 64"
)

declare -A RESULTS
for round in $(seq "$ROUNDS"); do
    for w in "${WORKLOADS[@]}"; do
        IFS='|' read -r name walkv webdis redis <<<"$w"
        for peer in walkv webdis redis; do
            cmd=${!peer}
            [ -z "$cmd" ] && continue
            result=$($cmd)
            [[ $result == invalid* ]] && echo "round $round, $name, $peer: $result" >&2
            RESULTS["$name|$peer"]+="$result "
        done
    done
    echo "round $round of $ROUNDS done" >&2
done

echo "walkv vs peers, $(date -u +%F), $(nproc) cores, $ROUNDS rounds x ${SECS}s, median requests/s"
printf "%-16s %10s %10s %10s %12s %12s\n" workload walkv webdis redis "vs webdis" "vs redis"
for w in "${WORKLOADS[@]}"; do
    IFS='|' read -r name _ <<<"$w"
    python3 - "$name" "${RESULTS[$name|walkv]:-}" "${RESULTS[$name|webdis]:-}" "${RESULTS[$name|redis]:-}" <<'EOF'
import statistics, sys
name, cols = sys.argv[1], sys.argv[2:]
def med(s):
    xs = s.split()
    if not xs: return None
    bad = [x for x in xs if not x.replace(".", "").isdigit()]
    if bad or any(x == "invalid:" for x in xs): return "invalid"
    return statistics.median(float(x) for x in xs)
m = [med(c) for c in cols]
def show(x): return "-" if x is None else ("invalid" if x == "invalid" else f"{x:.0f}")
def ratio(a, b): return "-" if not isinstance(a, float) or not isinstance(b, float) else f"{a / b:.2f}x"
print(f"{name:<16} {show(m[0]):>10} {show(m[1]):>10} {show(m[2]):>10} {ratio(m[0], m[1]):>12} {ratio(m[0], m[2]):>12}")
EOF
done
echo "binary: $(stat -c %s "$BIN") bytes (release profile, stripped)"
echo
# Recovery of 1M records, RSS with 1M keys, idle RSS, startup: against Redis (see the script).
ROUNDS=$ROUNDS python3 benches/recovery.py "$BIN"
