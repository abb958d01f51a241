#!/usr/bin/env python3
"""Compaction, measured against Redis in one run.

    python3 benches/compaction.py BIN     (a release build: cargo build --release)

Knobs (environment): KEYS=1000000 live keys, HISTORY=10 writes per key, ROUNDS=3 restarts,
DISK_KEYS=100000, DISK_WRITES=10000000 (the disk-bound run), PHASES=restart,compact,disk.
Everything runs on loopback, in a temp directory; everything started is stopped by PID.

restart  walkv gets KEYS keys written HISTORY times each (KEYS*HISTORY writes), is compacted
         (POST /compact) and restarted ROUNDS times; beside it, a walkv whose log holds just
         KEYS records (each key written once) and Redis with the same KEYS keys after
         BGREWRITEAOF (its default multi-part AOF with an RDB preamble), restarted as often,
         interleaved. Time = spawn -> first answer (walkv GET /status; Redis PING -> PONG).
compact  the compaction of that history, timed by its own report, beside Redis's
         BGREWRITEAOF of the same keys (command -> aof_rewrite_in_progress:0), and the
         compaction the defaults would start (a snapshot plus one more write of every key,
         so the files hold twice the live data) beside the same; walkv's RSS
         sampled every 5 ms during it against its RSS just before; steady RSS of both. Then
         the same compaction again under load: a reader doing GETs on one connection (latency
         of each, p99 and max) and a writer pipelining PUTs (rate), each measured for the same
         time with and without a compaction running.
disk     DISK_KEYS keys of 100-byte values overwritten DISK_WRITES times in all, with the
         defaults (--compact-ratio 2, --compact-min-size 64M); the data directory's size is
         sampled every 100 ms, and its maximum compared with (R + 1) x live + min-size + 16 MiB.
         Write amplification: the server's write_bytes (/proc/PID/io, bytes sent to the block
         layer) and wchar (bytes passed to write()) over the bytes of keys and values
         acknowledged.
"""
import os, signal, socket, statistics, subprocess, sys, tempfile, threading, time, json
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import free_port, kill_all, load, read_latencies, rss_kib, spawn_server, stop

BIN = sys.argv[1]
KEYS = int(os.environ.get("KEYS", 1_000_000))
HISTORY = int(os.environ.get("HISTORY", 10))
ROUNDS = int(os.environ.get("ROUNDS", 3))
DISK_KEYS = int(os.environ.get("DISK_KEYS", 100_000))
DISK_WRITES = int(os.environ.get("DISK_WRITES", 10_000_000))
PHASES = os.environ.get("PHASES", "restart,compact,disk").split(",")
VALUE = b"v" * 100
TMP = tempfile.mkdtemp(prefix="walkv-compaction-")


def start(kind, data, port, extra=()):
    """Starts walkv (BIN) or Redis: see harness.spawn_server."""
    return spawn_server(kind, BIN, data, port, extra)

def proc_io(pid):
    with open(f"/proc/{pid}/io") as f:
        return {k: int(v) for k, v in (line.split(": ") for line in f)}


def dir_bytes(path):
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(root, name))
            except OSError:
                pass  # removed by a compaction while we looked
    return total


def http(port, method, path, body=b"", timeout=3600):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(b"%s %s HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                  % (method.encode(), path.encode(), len(body)) + body)
        raw = b""
        while chunk := s.recv(65536):
            raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def redis(port, *args):
    out = b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(out)
        data = b""
        while not data.endswith(b"\r\n") or (data.startswith(b"$") and data.count(b"\r\n") < 2):
            data += s.recv(1 << 20)
        return data


def redis_info(port, field):
    text = redis(port, b"INFO", b"persistence").decode()
    for line in text.split("\r\n"):
        if line.startswith(field + ":"):
            return line.split(":", 1)[1]
    return None


def compact(port):
    status, body = http(port, "POST", "/compact")
    if status != 200:
        sys.exit(f"POST /compact answered {status}: {body!r}")
    return json.loads(body)


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))]


def table(title, rows):
    print(f"\n{title}")
    print(f"{'measure':<58} {'walkv':>10} {'peer':>10} {'ratio':>8}")
    for name, w, r in rows:
        ratio = f"{w / r:.2f}x" if r else ""
        print(f"{name:<58} {w:>10.3f} {r:>10.3f} {ratio:>8}")


def phase_restart_and_compact():
    ports = {"history": free_port(), "once": free_port(), "redis": free_port()}
    dirs = {k: os.path.join(TMP, k) for k in ports}
    kinds = {"history": "walkv", "once": "walkv", "redis": "redis"}
    off = ["--compact-ratio", "0"]
    procs = {}
    for name in ports:
        extra = off if kinds[name] == "walkv" else ()
        procs[name], _ = start(kinds[name], dirs[name], ports[name], extra)
    began = time.monotonic()
    load("walkv", ports["history"], KEYS, HISTORY)
    print(f"wrote {KEYS * HISTORY} writes into walkv in {time.monotonic() - began:.1f} s",
          file=sys.stderr)
    load("walkv", ports["once"], KEYS, 1)
    load("redis", ports["redis"], KEYS, 1)
    steady = {n: rss_kib(p.pid) / 1024 for n, p in procs.items()}
    history_disk = dir_bytes(dirs["history"])

    # Compaction speed and peak RSS, beside BGREWRITEAOF.
    pid = procs["history"].pid
    before_rss = rss_kib(pid) / 1024
    peak, done = [before_rss], threading.Event()

    def sample():
        while not done.is_set():
            peak.append(rss_kib(pid) / 1024)
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    report = compact(ports["history"])
    done.set()
    sampler.join()
    began = time.monotonic()
    redis(ports["redis"], b"BGREWRITEAOF")
    time.sleep(0.01)
    while redis_info(ports["redis"], "aof_rewrite_in_progress") != "0" or \
            redis_info(ports["redis"], "aof_rewrite_scheduled") != "0":
        time.sleep(0.005)
    redis_rewrite = time.monotonic() - began
    print(f"walkv compaction report: {report}", file=sys.stderr)

    # Pauses and write rate under load, with and without a compaction.
    pause = {}
    for with_compaction in (False, True):
        if with_compaction:
            load("walkv", ports["history"], KEYS, 2)  # history to compact again
        lat, writes, stop_flag = [], [0], threading.Event()

        def reader():
            read_latencies(ports["history"], KEYS, stop_flag, lat)

        def writer():
            writes[0] = load("walkv", ports["history"], KEYS, 1000, stop_at=stop_flag.is_set)

        threads = [threading.Thread(target=reader), threading.Thread(target=writer)]
        for t in threads:
            t.start()
        began = time.monotonic()
        if with_compaction:
            r = compact(ports["history"])
            print(f"compaction under load: {r}", file=sys.stderr)
            took = time.monotonic() - began
        else:
            took = max(report["seconds"], 3.0)
            time.sleep(took)
        stop_flag.set()
        for t in threads:
            t.join()
        pause[with_compaction] = (pct(lat, 0.99) * 1000, max(lat) * 1000, writes[0] / took)

    # Restarts compare the snapshot with a log of the same records: merge what the load above
    # wrote, with nothing writing now, so that the newest segment is empty.
    final = compact(ports["history"])
    print(f"final compaction: {final}", file=sys.stderr)
    # The compaction the defaults start by themselves: a snapshot of the live data plus about
    # as much again in segments (--compact-ratio 2), here one more write of every key.
    load("walkv", ports["history"], KEYS, 1)
    threshold = compact(ports["history"])
    print(f"compaction at the threshold: {threshold}", file=sys.stderr)
    for p in procs.values():
        stop(p)
    restart = {n: [] for n in ports}
    for _ in range(ROUNDS):
        for name in ports:
            proc, took = start(kinds[name], dirs[name], ports[name], off if kinds[name] == "walkv" else ())
            restart[name].append(took)
            stop(proc)
    med = {n: statistics.median(v) for n, v in restart.items()}
    print(f"\ncompaction, {time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, {KEYS} keys of "
          f"100-byte values, {KEYS * HISTORY} writes of history, restarts: median of {ROUNDS}")
    table("restart (s); peer: a log holding just the live records", [
        (f"walkv after compacting {KEYS * HISTORY} writes", med["history"], med["once"]),
    ])
    table("restart (s); peer: Redis after BGREWRITEAOF", [
        (f"walkv after compacting {KEYS * HISTORY} writes", med["history"], med["redis"]),
    ])
    table("compaction (s); peer: Redis BGREWRITEAOF of the same keys", [
        (f"one compaction of {KEYS * HISTORY} writes (its report's seconds)",
         report["seconds"], redis_rewrite),
        ("at the default threshold: snapshot + one write per key", threshold["seconds"],
         redis_rewrite),
    ])
    table("memory (MiB)", [
        ("peak RSS during the compaction / RSS just before", max(peak), before_rss),
        (f"steady RSS with {KEYS} keys; peer: Redis", steady["once"], steady["redis"]),
    ])
    table("under load (ms, writes/s); peer: the same without a compaction", [
        ("GET p99 (ms)", pause[True][0], pause[False][0]),
        ("GET max (ms)", pause[True][1], pause[False][1]),
        ("pipelined PUTs per second", pause[True][2], pause[False][2]),
    ])
    print(f"data directory with history: {history_disk / 2**20:.0f} MiB; "
          f"after compaction: {report['disk_bytes_after'] / 2**20:.0f} MiB; "
          f"live bytes: {report['live_bytes'] / 2**20:.0f} MiB")


def phase_disk():
    port = free_port()
    data = os.path.join(TMP, "disk")
    proc, _ = start("walkv", data, port)
    io_before = proc_io(proc.pid)
    samples, done = [], threading.Event()

    def sample():
        while not done.is_set():
            samples.append(dir_bytes(data))
            time.sleep(0.1)

    sampler = threading.Thread(target=sample)
    sampler.start()
    rounds = max(1, DISK_WRITES // DISK_KEYS)
    began = time.monotonic()
    written = load("walkv", port, DISK_KEYS, rounds)
    took = time.monotonic() - began
    done.set()
    sampler.join()
    io_after = proc_io(proc.pid)
    _, body = http(port, "GET", "/status")
    status = json.loads(body)
    stop(proc)
    live = status["live_bytes"]
    bound = 3 * live + (64 << 20) + (16 << 20)
    acked = sum(len(b"key:%d" % (i % DISK_KEYS)) + len(VALUE) for i in range(written))
    wb = io_after["write_bytes"] - io_before["write_bytes"]
    wc = io_after["wchar"] - io_before["wchar"]
    print(f"\ndisk bound, {written} writes over {DISK_KEYS} keys in {took:.0f} s "
          f"({status['compactions']} compactions), sampled every 100 ms ({len(samples)} samples)")
    print(f"  live bytes {live / 2**20:.1f} MiB; bound (R+1) x live + min-size + 16 MiB = "
          f"{bound / 2**20:.1f} MiB; max seen {max(samples) / 2**20:.1f} MiB "
          f"({max(samples) / bound:.2f} of the bound); median {statistics.median(samples) / 2**20:.1f} MiB")
    print(f"  write amplification: write_bytes / acknowledged bytes = {wb / acked:.2f}; "
          f"wchar / acknowledged bytes = {wc / acked:.2f} (acknowledged {acked / 2**20:.0f} MiB)")


try:
    if "restart" in PHASES or "compact" in PHASES:
        phase_restart_and_compact()
    if "disk" in PHASES:
        phase_disk()
finally:
    kill_all()
    subprocess.run(["rm", "-rf", TMP])
