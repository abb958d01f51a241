#!/usr/bin/env python3
"""What TTLs, transactions and counters cost (docs/performance.md), each against a
peer measured in the same run.

    python3 benches/ttl.py [BIN]     (knobs: KEYS=1000000, TXNS=200, ROUNDS=2,
                                      ONLY=memory,txn,sweep: the parts to run)

1. Memory. RSS with KEYS keys `key:N` of 100-byte values and no TTL, walkv against Redis (AOF,
   appendfsync everysec, the peer set-up of the other benches), loaded the same way: a key
   without a TTL must not pay for TTLs. Then the same keys, each with a TTL, in both.
2. Transactions. TXNS transactions of 100 SETs each (`POST /v1/txn`) against 100 single PUTs
   each, one client on a keep-alive connection, in `--sync interval` and `--sync always`:
   seconds per 100 writes, and the log's bytes per 100 writes.
3. The sweep. KEYS keys loaded with TTLs that all end in the same second (`POST /v1/bulk`, each
   batch's `ttl` computed to land on that second), plus 1,000 keys without a TTL. A reader GETs
   those 1,000 keys on a keep-alive connection from a second before that second until the
   sweep has removed every key: its GET latency p50, p99 and max, and how long the sweep took
   (until `walkv_expiring_keys` is 0). Redis, loaded with `SET ... PXAT` on the same second,
   is the peer: the same reader's latencies, and how long until `DBSIZE` is 1,000.

Every process started is stopped by PID.
"""
import json, os, shutil, socket, statistics, subprocess, sys, tempfile, threading, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import free_port, kill_all, load, rss_kib, spawn_server, stop

BIN = sys.argv[1] if len(sys.argv) > 1 else "target/release/walkv"
KEYS = int(os.environ.get("KEYS", 1_000_000))
TXNS = int(os.environ.get("TXNS", 200))
ROUNDS = int(os.environ.get("ROUNDS", 2))
ONLY = os.environ.get("ONLY", "memory,txn,sweep").split(",")
TMP = tempfile.mkdtemp(prefix="walkv-ttl-bench-")


class Conn:
    """One keep-alive HTTP/1.1 connection to walkv."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.f = self.s.makefile("rb")

    def call(self, method, target, body=b""):
        self.s.sendall(b"%s %s HTTP/1.1\r\nHost: b\r\nContent-Length: %d\r\n\r\n"
                       % (method.encode(), target.encode(), len(body)) + body)
        status = int(self.f.readline().split(b" ")[1])
        length = 0
        while (line := self.f.readline()) != b"\r\n":
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        return status, self.f.read(length)


class Resp:
    """One Redis connection."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.f = self.s.makefile("rb")

    def send(self, *parts):
        self.s.sendall(b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts))

    def reply(self):
        line = self.f.readline()
        if line[:1] == b"$":
            n = int(line[1:])
            return None if n < 0 else self.f.read(n + 2)[:-2]
        return line.rstrip(b"\r\n")


def metric(port, name):
    _, body = Conn(port).call("GET", "/metrics")
    for line in body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def memory(round_no):
    rows = {}
    for ttl in (False, True):
        for kind in ("walkv", "redis"):
            data, port = os.path.join(TMP, f"mem-{kind}-{ttl}-{round_no}"), free_port()
            proc, _ = spawn_server(kind, BIN, data, port, ("--compact-ratio", "0") if kind == "walkv" else ())
            if not ttl:
                load(kind, port, KEYS)
            elif kind == "walkv":
                bulk_ttl(port, 0, KEYS, lambda: 3600.0)
            else:
                resp_ttl(port, 0, KEYS, int(time.time() * 1000) + 3_600_000)
            time.sleep(0.5)
            rows[(kind, ttl)] = rss_kib(proc.pid) / 1024
            stop(proc)
            shutil.rmtree(data, ignore_errors=True)
    return rows


def bulk_ttl(port, first, count, ttl_of, value=b"v" * 100):
    """Loads keys first.. with POST /v1/bulk, 10,000 lines a request; ttl_of() is each
    request's TTL in seconds (None: no TTL)."""
    c = Conn(port)
    for start in range(first, first + count, 10_000):
        ttl = ttl_of()
        extra = "" if ttl is None else ',"ttl":%.3f' % ttl
        body = "".join('{"key":"key:%d","value":"%s"%s}\n' % (i, value.decode(), extra)
                       for i in range(start, min(start + 10_000, first + count)))
        status, answer = c.call("POST", "/v1/bulk", body.encode())
        assert status == 200, answer


def resp_ttl(port, first, count, pxat, value=b"v" * 100):
    r = Resp(port)
    for start in range(first, first + count, 2000):
        ks = range(start, min(start + 2000, first + count))
        for i in ks:
            r.send(b"SET", b"key:%d" % i, value, b"PXAT", str(pxat).encode())
        for _ in ks:
            assert r.reply() == b"+OK"


def log_bytes(port):
    """Bytes of the data directory's files, less the space reserved ahead of the log."""
    _, body = Conn(port).call("GET", "/status")
    status = json.loads(body)
    return status["disk_bytes"] - status["reserved_bytes"]


def transactions(mode, round_no):
    out = {}
    for how in ("txn", "single"):
        data, port = os.path.join(TMP, f"txn-{mode}-{how}-{round_no}"), free_port()
        proc, _ = spawn_server("walkv", BIN, data, port, ("--sync", mode))
        c = Conn(port)
        before = log_bytes(port)
        began = time.perf_counter()
        for t in range(TXNS):
            keys = [f"t{t}-k{j}" for j in range(100)]
            if how == "txn":
                ops = ",".join('{"op":"set","key":"%s","value":"%s"}' % (k, "v" * 100) for k in keys)
                status, body = c.call("POST", "/v1/txn", ('{"then":[%s]}' % ops).encode())
                assert status == 200, body
            else:
                for k in keys:
                    status, body = c.call("PUT", f"/v1/{k}", b"v" * 100)
                    assert status == 201, body
        took = time.perf_counter() - began
        out[how] = (took / TXNS, (log_bytes(port) - before) / TXNS)
        stop(proc)
        shutil.rmtree(data, ignore_errors=True)
    return out


def reader(port_or_conn, kind, stop_flag, lat):
    if kind == "walkv":
        c = Conn(port_or_conn)
        i = 0
        while not stop_flag.is_set():
            i += 1
            t = time.perf_counter()
            status, _ = c.call("GET", "/v1/other:%d" % (i % 1000))
            lat.append(time.perf_counter() - t)
            assert status == 200
    else:
        r = Resp(port_or_conn)
        i = 0
        while not stop_flag.is_set():
            i += 1
            t = time.perf_counter()
            r.send(b"GET", b"other:%d" % (i % 1000))
            assert r.reply() is not None
            lat.append(time.perf_counter() - t)


def sweep(kind, round_no):
    data, port = os.path.join(TMP, f"sweep-{kind}-{round_no}"), free_port()
    proc, _ = spawn_server(kind, BIN, data, port, ("--compact-ratio", "0") if kind == "walkv" else ())
    if kind == "walkv":
        c = Conn(port)
        for i in range(1000):
            assert c.call("PUT", f"/v1/other:{i}", b"o" * 100)[0] == 201
    else:
        r = Resp(port)
        for i in range(1000):
            r.send(b"SET", b"other:%d" % i, b"o" * 100)
            r.reply()
    # Every key's expiry lands in one second, a little after the load ends.
    expiry_s = int(time.time()) + 8 + KEYS // 100_000
    if kind == "walkv":
        bulk_ttl(port, 0, KEYS, lambda: expiry_s + 0.5 - time.time())
    else:
        resp_ttl(port, 0, KEYS, int((expiry_s + 0.5) * 1000))
    while time.time() < expiry_s - 1:
        time.sleep(0.05)
    stop_flag, lat = threading.Event(), []
    t = threading.Thread(target=reader, args=(port, kind, stop_flag, lat))
    t.start()
    began = None
    while True:
        if kind == "walkv":
            left = metric(port, "walkv_expiring_keys")
        else:
            r = Resp(port)
            r.send(b"DBSIZE")
            left = int(r.reply()[1:]) - 1000
        now = time.time()
        if now >= expiry_s + 0.5 and began is None:
            began = now
        if began is not None and left == 0:
            break
        time.sleep(0.01)
    done = time.time() - (expiry_s + 0.5)
    time.sleep(0.2)
    stop_flag.set()
    t.join()
    stop(proc)
    shutil.rmtree(data, ignore_errors=True)
    ms = sorted(x * 1000 for x in lat)
    return (ms[len(ms) // 2], ms[int(len(ms) * 0.99)], ms[-1], done, len(ms))


def main():
    try:
        mems, txns, sweeps = [], {"interval": [], "always": []}, {"walkv": [], "redis": []}
        for r in range(ROUNDS):
            if "memory" in ONLY:
                mems.append(memory(r))
            for mode in txns if "txn" in ONLY else ():
                txns[mode].append(transactions(mode, r))
            for kind in ("walkv", "redis") if "sweep" in ONLY else ():
                sweeps[kind].append(sweep(kind, r))
        med = statistics.median
        print(f"\n{KEYS} keys, {ROUNDS} rounds (medians)\n")
        print("| measure | walkv | Redis | ratio |\n|---|---|---|---|")
        for ttl in (False, True) if mems else ():
            w, rd = med([m[("walkv", ttl)] for m in mems]), med([m[("redis", ttl)] for m in mems])
            label = "RSS, keys with a TTL (MiB)" if ttl else "RSS, keys without a TTL (MiB)"
            print(f"| {label} | {w:.1f} | {rd:.1f} | {w / rd:.2f}x |")
        print("\n| --sync | 100 SETs as one transaction | 100 single PUTs | ratio |\n|---|---|---|---|")
        for mode, runs in txns.items() if "txn" in ONLY else ():
            t = med([x["txn"][0] for x in runs]) * 1000
            s = med([x["single"][0] for x in runs]) * 1000
            tb = med([x["txn"][1] for x in runs])
            sb = med([x["single"][1] for x in runs])
            print(f"| {mode} | {t:.2f} ms, {tb:.0f} B of log | {s:.2f} ms, {sb:.0f} B of log | {t / s:.2f}x time, {tb / sb:.2f}x bytes |")
        print(f"\n| while {KEYS} keys expire in one second | walkv | Redis |\n|---|---|---|")
        for i, name in enumerate(["GET p50 (ms)", "GET p99 (ms)", "GET max (ms)", "until all are gone (s)"] if "sweep" in ONLY else []):
            w, rd = med([s[i] for s in sweeps["walkv"]]), med([s[i] for s in sweeps["redis"]])
            print(f"| {name} | {w:.3f} | {rd:.3f} |")
        if "sweep" in ONLY:
            print(f"| GETs measured | {med([s[4] for s in sweeps['walkv']]):.0f} | {med([s[4] for s in sweeps['redis']]):.0f} |")
    finally:
        kill_all()
        shutil.rmtree(TMP, ignore_errors=True)


if __name__ == "__main__":
    main()
