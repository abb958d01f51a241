#!/usr/bin/env python3
"""What one slow thing costs everyone else: a frozen disk, a big listing (docs/performance.md:
"Nothing stalls the server").

    python3 benches/stall.py BIN [BIN ...]     (knobs: KEYS=1000000, FREEZE=3, ROUNDS=2)

For each BIN, interleaved round by round (BIN A, BIN B, A, B ...), medians printed:

1. Listing. Loads KEYS keys `key:N` (100-byte values) with `walkv import`, then times
   `GET /v1/?limit=1000` (20 times; most of it is the main thread's work, which no one else
   gets meanwhile), and `walkv ls` of every key while a second client reads one key in a loop
   on a keep-alive connection: that client's GET latency p50, p99 and max during the `ls`.
   Also RSS with KEYS keys, and GET throughput on one key at 50 connections (wrk, 3 s).
2. A frozen disk (root only: an ext4 image on a loop device, frozen with fsfreeze for FREEZE
   seconds; skipped otherwise). Three writers and a reader of a key, `/livez` and `/status` run
   throughout, on fresh connections: the latency of the reads that began during the freeze
   (p50, p99, max), and how many writes were answered during the freeze and how long the
   slowest waited.

Every process started is stopped by PID; the image is thawed and unmounted.
"""
import os, shutil, socket, statistics, subprocess, sys, tempfile, threading, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import free_port, kill_all, rss_kib, spawn_server, stop

BINS = sys.argv[1:] or ["target/release/walkv"]
KEYS = int(os.environ.get("KEYS", 1_000_000))
FREEZE = float(os.environ.get("FREEZE", 3))
ROUNDS = int(os.environ.get("ROUNDS", 2))
TMP = tempfile.mkdtemp(prefix="walkv-stall-bench-")


def get(port, target, conn=None):
    """One GET; on `conn` (kept open) or a fresh connection. Returns (seconds, status)."""
    own = conn is None
    s = conn or socket.create_connection(("127.0.0.1", port))
    began = time.perf_counter()
    s.sendall(b"GET %s HTTP/1.1\r\nHost: b\r\n%s\r\n" % (target.encode(), b"Connection: close\r\n" if own else b""))
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(65536)
        if not chunk:
            break
        head += chunk
    top, _, body = head.partition(b"\r\n\r\n")
    length = next((int(l.split(b":")[1]) for l in top.split(b"\r\n") if l.lower().startswith(b"content-length")), 0)
    while len(body) < length:
        body += s.recv(65536)
    took = time.perf_counter() - began
    if own:
        s.close()
    return took, int(top.split(b" ")[1])


def pct(samples, p):
    s = sorted(samples)
    return s[min(len(s) - 1, int(len(s) * p))] * 1000


def listing(binary, jsonl):
    port = free_port()
    proc, _ = spawn_server("walkv", binary, os.path.join(TMP, f"list-{port}"), port)
    out = subprocess.run([binary, "import", "--addr", f"127.0.0.1:{port}", jsonl], capture_output=True)
    assert out.returncode == 0, out.stderr
    rss = rss_kib(proc.pid) / 1024
    page = statistics.median(get(port, "/v1/?limit=1000")[0] for _ in range(20)) * 1000
    reads, stop_reading = [], threading.Event()

    def reader():
        conn = socket.create_connection(("127.0.0.1", port))
        while not stop_reading.is_set():
            reads.append(get(port, "/v1/key:4242", conn)[0])
    t = threading.Thread(target=reader)
    t.start()
    time.sleep(0.2)
    reads.clear()
    began = time.perf_counter()
    ls = subprocess.run([binary, "ls", "--addr", f"127.0.0.1:{port}"], stdout=subprocess.PIPE)
    ls_took = time.perf_counter() - began
    stop_reading.set()
    t.join()
    assert ls.stdout.count(b"\n") == KEYS, ls.stdout.count(b"\n")
    wrk = subprocess.run(["wrk", "-t1", "-c50", "-d3s", f"http://127.0.0.1:{port}/v1/key:4242"],
                         capture_output=True, text=True).stdout
    rps = float(next(l.split()[1] for l in wrk.splitlines() if l.startswith("Requests/sec")))
    stop(proc)
    return {"RSS (MiB)": rss, "page of 1000 (ms)": page, "ls of all keys (s)": ls_took,
            "GET during ls p50 (ms)": pct(reads, 0.5), "GET during ls p99 (ms)": pct(reads, 0.99),
            "GET during ls max (ms)": max(reads) * 1000, "GET c50 on one key (req/s)": rps}


def can_freeze():
    return os.geteuid() == 0 and shutil.which("fsfreeze") and shutil.which("mkfs.ext4")


def frozen(binary, n):
    image, mnt = os.path.join(TMP, f"fs-{n}.img"), os.path.join(TMP, f"mnt-{n}")
    os.makedirs(mnt)
    subprocess.run(["truncate", "-s", "256M", image], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", image], check=True)
    subprocess.run(["mount", "-o", "loop", image, mnt], check=True)
    port = free_port()
    proc = None
    try:
        proc, _ = spawn_server("walkv", binary, os.path.join(mnt, "data"), port)
        get(port, "/livez")
        subprocess.run(["curl", "-s", "-o", "/dev/null", "-X", "PUT", "-d", "v",
                        f"http://127.0.0.1:{port}/v1/seed"], check=True)
        done = threading.Event()
        reads, writes = [], []

        def reader():
            targets = ["/v1/seed", "/livez", "/status"]
            i = 0
            while not done.is_set():
                began = time.perf_counter()
                took, status = get(port, targets[i % 3])
                assert status == 200, status
                reads.append((began, took))
                i += 1
                time.sleep(0.002)

        def writer(w):
            i = 0
            while not done.is_set():
                i += 1
                with socket.create_connection(("127.0.0.1", port)) as s:
                    began = time.perf_counter()
                    s.sendall(b"PUT /v1/w%d-%d HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\nConnection: close\r\n\r\n" % (w, i % 10) + b"v" * 100)
                    s.recv(4096)
                    writes.append((began, time.perf_counter()))
        threads = [threading.Thread(target=reader)] + [threading.Thread(target=writer, args=(w,)) for w in range(3)]
        for t in threads:
            t.start()
        time.sleep(0.5)
        frozen_at = time.perf_counter()
        subprocess.run(["fsfreeze", "-f", mnt], check=True)
        try:
            time.sleep(FREEZE)
        finally:
            subprocess.run(["fsfreeze", "-u", mnt], check=True)
        thawed_at = time.perf_counter()
        time.sleep(0.5)
        done.set()
        for t in threads:
            t.join()
        # Reads that began during the freeze, however long they took.
        during = [took for began, took in reads if frozen_at <= began <= thawed_at]
        answered = sum(1 for began, end in writes if frozen_at + 0.05 < end < thawed_at)
        slowest = max(end - began for began, end in writes)
        return {"reads during the freeze": len(during),
                "read during freeze p50 (ms)": pct(during, 0.5),
                "read during freeze p99 (ms)": pct(during, 0.99),
                "read during freeze max (ms)": max(during) * 1000,
                "writes answered during the freeze": answered,
                "slowest write (s)": slowest}
    finally:
        if proc:
            proc.kill()
            proc.wait()
        subprocess.run(["fsfreeze", "-u", mnt], capture_output=True)
        subprocess.run(["umount", mnt], capture_output=True)


def main():
    jsonl = os.path.join(TMP, "in.jsonl")
    with open(jsonl, "w") as f:
        for i in range(KEYS):
            f.write(f'{{"key":"key:{i}","value":"{"v" * 100}"}}\n')
    results = {b: {} for b in BINS}
    freeze = can_freeze()
    if not freeze:
        print("not root, or no fsfreeze/mkfs.ext4: the frozen-disk part is skipped", file=sys.stderr)
    for n in range(ROUNDS):
        for b in BINS:
            rows = listing(b, jsonl)
            if freeze:
                rows.update(frozen(b, f"{n}-{BINS.index(b)}"))
            for k, v in rows.items():
                results[b].setdefault(k, []).append(v)
    print(f"stalls, {time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, {KEYS} keys, "
          f"freeze {FREEZE} s, {ROUNDS} rounds, medians")
    names = list(results[BINS[0]])
    print(f"{'':40}" + "".join(f"{b:>22}" for b in BINS))
    for name in names:
        print(f"{name:40}" + "".join(f"{statistics.median(results[b][name]):22.2f}" for b in BINS))


if __name__ == "__main__":
    try:
        main()
    finally:
        kill_all()
        subprocess.run(["rm", "-rf", TMP])
