#!/usr/bin/env python3
"""Data in and out at 1M keys: a listing page, export and import against
`redis-cli --pipe`, the size of an export, and RSS.

    python3 benches/data.py BIN [BASELINE_BIN]     (knobs KEYS=1000000, VALUE=100, ROUNDS=3)

1. Writes KEYS keys `key:N` with VALUE-byte values into walkv as JSON lines (the files step 3
   imports) and as RESP (what redis-cli --pipe takes), the same data.
2. Import, ROUNDS times each, alternating, each into a fresh server on a fresh directory:
   `walkv import FILE` into walkv (--sync interval, the default: the import asks for one fsync at
   the end), and `redis-cli --pipe < FILE` into Redis (AOF, appendfsync everysec, the peer set-up
   of the other benchmarks). Wall time from the client's start to its exit.
3. With KEYS keys loaded: RSS of walkv (and of BASELINE_BIN loaded the same way, if given: a
   build from before ETags); the time of one listing page (GET /v1/?limit=1000, and a prefix
   that matches 10 keys), median of 20; `walkv export` in both formats, wall time and bytes,
   ROUNDS times, while the server runs.
Medians are printed; every process started is stopped by PID.
"""
import os, socket, statistics, subprocess, sys, tempfile, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import free_port, kill_all, rss_kib, spawn_server, stop

BIN = sys.argv[1]
BASELINE = sys.argv[2] if len(sys.argv) > 2 else None
KEYS = int(os.environ.get("KEYS", 1_000_000))
VALUE = int(os.environ.get("VALUE", 100))
ROUNDS = int(os.environ.get("ROUNDS", 3))
TMP = tempfile.mkdtemp(prefix="walkv-data-bench-")


def write_inputs():
    value = "v" * VALUE
    jsonl, resp = os.path.join(TMP, "in.jsonl"), os.path.join(TMP, "in.resp")
    with open(jsonl, "w") as j, open(resp, "wb") as r:
        for i in range(KEYS):
            key = f"key:{i}"
            j.write(f'{{"key":"{key}","value":"{value}"}}\n')
            r.write(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n"
                    % (len(key), key.encode(), VALUE, value.encode()))
    return jsonl, resp


def timed(argv, stdin=None):
    began = time.monotonic()
    with open(stdin, "rb") if stdin else open(os.devnull, "rb") as f:
        out = subprocess.run(argv, stdin=f, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    took = time.monotonic() - began
    if out.returncode != 0:
        sys.exit(f"{argv[0]} failed ({out.returncode}): {out.stderr.decode()} {out.stdout.decode()}")
    return took, out.stdout


def http_get(port, target):
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(f"GET {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(1 << 16):
            data += chunk
    return data


def one_import(kind, n, jsonl, resp):
    port = free_port()
    data = os.path.join(TMP, f"{kind}-{n}")
    proc, _ = spawn_server(kind, BIN, data, port)
    if kind == "walkv":
        took, out = timed([BIN, "import", "--addr", f"127.0.0.1:{port}", jsonl])
        assert out.startswith(b"imported %d keys" % KEYS), out
    else:
        took, out = timed(["redis-cli", "-p", str(port), "--pipe"], stdin=resp)
        assert b"errors: 0, replies: %d" % KEYS in out, out
    return proc, port, data, took


def main():
    jsonl, resp = write_inputs()
    print(f"inputs: {KEYS} keys, {VALUE}-byte values; jsonl {os.path.getsize(jsonl)} bytes, "
          f"resp {os.path.getsize(resp)} bytes", file=sys.stderr)
    times = {"walkv": [], "redis": []}
    kept = None
    for n in range(ROUNDS):
        for kind in ("walkv", "redis"):
            proc, port, data, took = one_import(kind, n, jsonl, resp)
            times[kind].append(took)
            if kind == "walkv" and n == ROUNDS - 1:
                kept = (proc, port, data)
            else:
                stop(proc)
    rows = []
    w, r = statistics.median(times["walkv"]), statistics.median(times["redis"])
    rows.append((f"import {KEYS} keys: walkv import / redis-cli --pipe (s)", w, r))
    rows.append(("import rate (keys/s): walkv / redis", KEYS / w, KEYS / r))

    proc, port, data = kept
    rows.append((f"RSS with {KEYS} keys (MiB), this build", rss_kib(proc.pid) / 1024, None))
    pages = []
    for target in ("/v1/?limit=1000", "/v1/?prefix=key:99999&limit=1000"):
        ts = []
        for _ in range(20):
            t = time.perf_counter()
            answer = http_get(port, target)
            ts.append(time.perf_counter() - t)
            assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
        pages.append(statistics.median(ts) * 1000)
    rows.append((f"listing page of 1000 at {KEYS} keys (ms)", pages[0], None))
    rows.append((f"listing page, prefix matching 10 keys (ms)", pages[1], None))
    for fmt in ("jsonl", "resp"):
        ts, size = [], 0
        for _ in range(ROUNDS):
            took, out = timed([BIN, "export", "--format", fmt, "--data-dir", data])
            ts.append(took)
            size = len(out)
        rows.append((f"export --format {fmt}, running server (s)", statistics.median(ts), None))
        rows.append((f"export --format {fmt} size (MiB)", size / (1 << 20), None))
    stop(proc)

    if BASELINE:
        port = free_port()
        base, _ = spawn_server("walkv", BASELINE, os.path.join(TMP, "baseline"), port)
        # The baseline predates `walkv import`: the new client loads it over the same endpoint
        # only if it has one, so load it the way the other benchmarks do.
        from harness import load
        load("walkv", port, KEYS, value=b"v" * VALUE)
        rows.append((f"RSS with {KEYS} keys (MiB), baseline build", rss_kib(base.pid) / 1024, None))
        port2 = free_port()
        new, _ = spawn_server("walkv", BIN, os.path.join(TMP, "new-put"), port2)
        load("walkv", port2, KEYS, value=b"v" * VALUE)
        rows.append((f"RSS with {KEYS} keys (MiB), this build, same PUT load", rss_kib(new.pid) / 1024, None))
        stop(base)
        stop(new)

    print(f"data in and out, {time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, {ROUNDS} rounds, medians")
    for name, a, b in rows:
        ratio = f"{a / b:.2f}x" if b else ""
        bs = f"{b:10.2f}" if b is not None else " " * 10
        print(f"{name:<58} {a:10.2f} {bs} {ratio:>7}")


if __name__ == "__main__":
    try:
        main()
    finally:
        kill_all()
        subprocess.run(["rm", "-rf", TMP])
