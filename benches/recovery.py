#!/usr/bin/env python3
"""Recovery time, memory and startup: walkv against Redis, in one run.

    python3 benches/recovery.py BIN      (run by benches/peers.sh; knobs RECORDS=1000000, ROUNDS=3)

1. Starts walkv (--sync interval) and Redis (AOF, appendfsync everysec, no RDB, no AOF rewrite,
   so that it must replay the raw AOF) on free loopback ports with data in a temp directory.
2. Loads RECORDS keys with 100-byte values into each: pipelined `PUT /v1/key:N` over HTTP for
   walkv, pipelined `SET key:N` over RESP for Redis. Both answer every request; the loader counts
   the answers and checks their status.
3. RSS with RECORDS keys (VmRSS of each server, after the load).
4. Stops both (SIGTERM: walkv fsyncs its log, Redis fsyncs its AOF) and restarts each ROUNDS
   times, interleaved, timing spawn -> first successful request (walkv: GET /status; Redis:
   PING answered PONG, not LOADING). That is recovery of RECORDS records from each one's log.
5. Idle RSS and startup time on an empty data directory, ROUNDS times each, interleaved.
Medians and ratios are printed; everything started is stopped by PID.
"""
import os, signal, statistics, subprocess, sys, tempfile, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import free_port, kill_all, rss_kib, spawn_server, stop
from harness import load as harness_load

BIN = sys.argv[1]
RECORDS = int(os.environ.get("RECORDS", 1_000_000))
ROUNDS = int(os.environ.get("ROUNDS", 3))
TMP = tempfile.mkdtemp(prefix="walkv-recovery-")


def start(kind, data, port, extra=()):
    """Starts walkv (BIN) or Redis: see harness.spawn_server."""
    return spawn_server(kind, BIN, data, port, extra)

def load(kind, port):
    """Pipelines RECORDS writes in batches and checks every answer (harness.load)."""
    harness_load(kind, port, RECORDS)


def median(xs):
    return statistics.median(xs)


def main():
    ports = {"walkv": free_port(), "redis": free_port()}
    rows = []
    procs = {}
    for kind in ("walkv", "redis"):
        procs[kind], _ = start(kind, os.path.join(TMP, kind), ports[kind])
        began = time.monotonic()
        load(kind, ports[kind])
        print(f"loaded {RECORDS} records into {kind} in {time.monotonic() - began:.1f} s",
              file=sys.stderr)
    rss = {k: rss_kib(p.pid) / 1024 for k, p in procs.items()}
    for p in procs.values():
        stop(p)
    walkv_dir = os.path.join(TMP, "walkv")
    sizes = {"walkv": sum(os.path.getsize(os.path.join(walkv_dir, f)) for f in os.listdir(walkv_dir)),
             "redis": sum(os.path.getsize(os.path.join(r, f))
                          for r, _, fs in os.walk(os.path.join(TMP, "redis")) for f in fs
                          if "appendonly" in r)}
    recovery = {"walkv": [], "redis": []}
    for _ in range(ROUNDS):
        for kind in ("walkv", "redis"):
            proc, took = start(kind, os.path.join(TMP, kind), ports[kind])
            recovery[kind].append(took)
            stop(proc)
    idle_rss, startup = {"walkv": [], "redis": []}, {"walkv": [], "redis": []}
    for round_ in range(ROUNDS):
        for kind in ("walkv", "redis"):
            proc, took = start(kind, os.path.join(TMP, f"empty-{kind}-{round_}"), ports[kind])
            startup[kind].append(took)
            time.sleep(0.2)
            idle_rss[kind].append(rss_kib(proc.pid) / 1024)
            stop(proc)
    rows.append((f"recovery of {RECORDS} records (s)", median(recovery["walkv"]),
                 median(recovery["redis"]), "lower"))
    rows.append((f"RSS with {RECORDS} keys (MiB)", rss["walkv"], rss["redis"], "lower"))
    rows.append(("log size on disk (MiB)", sizes["walkv"] / 2**20, sizes["redis"] / 2**20, "lower"))
    rows.append(("idle RSS, empty (MiB)", median(idle_rss["walkv"]), median(idle_rss["redis"]), "lower"))
    rows.append(("startup, empty dir (ms)", median(startup["walkv"]) * 1000,
                 median(startup["redis"]) * 1000, "lower"))
    print(f"recovery and memory, {time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, "
          f"{ROUNDS} rounds, medians")
    print(f"{'measure':<36} {'walkv':>10} {'redis':>10} {'walkv/redis':>12}")
    for name, w, r, _ in rows:
        print(f"{name:<36} {w:>10.2f} {r:>10.2f} {w / r:>11.2f}x")


try:
    main()
finally:
    kill_all()
    subprocess.run(["rm", "-rf", TMP])
