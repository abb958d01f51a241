#!/usr/bin/env python3
"""Pauses during a compaction, one by one: the under-load phase of
benches/compaction.py repeated TRIALS times (default 2), printing each run's GET p99 and
maximum, the write rate, and every GET slower than 10 ms with when it came (seconds after the
compaction began).

    python3 benches/compaction_pauses.py target/release/walkv

To see the fsyncs at the same time: strace -f -tt -T -e trace=fdatasync,fsync -p SERVER_PID.
"""
import os, socket, subprocess, sys, tempfile, threading, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import free_port, kill_all, load, read_latencies, spawn_server, stop

BIN = sys.argv[1]
KEYS = 1_000_000
TRIALS = int(os.environ.get("TRIALS", 2))
DATA = tempfile.mkdtemp(prefix="walkv-pauses-")


def post_compact(port):
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"POST /compact HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        raw = b""
        while chunk := s.recv(65536):
            raw += chunk
    return raw.partition(b"\r\n\r\n")[2].decode()


def trial(port):
    load("walkv", port, KEYS, 2)  # history to compact
    stop_flag, lat, writes = threading.Event(), [], [0]

    def writer():
        writes[0] = load("walkv", port, KEYS, 1000, stop_at=stop_flag.is_set)

    threads = [threading.Thread(target=read_latencies, args=(port, KEYS, stop_flag, lat)),
               threading.Thread(target=writer)]
    began = time.monotonic()
    for t in threads:
        t.start()
    report = post_compact(port)
    stop_flag.set()
    for t in threads:
        t.join()
    took = time.monotonic() - began
    # When each GET ended, from the start: the latencies run back to back on one connection.
    ends, at = [], 0.0
    for d in lat:
        at += d
        ends.append((round(at, 3), round(d * 1000, 1)))
    slow = [e for e in ends if e[1] > 10]
    ordered = sorted(lat)
    print(f"{report}; GET p99 {ordered[int(len(ordered) * 0.99)] * 1000:.2f} ms, max "
          f"{ordered[-1] * 1000:.1f} ms; PUTs/s {writes[0] / took:.0f}; GETs over 10 ms "
          f"(s, ms): {slow}")


try:
    port = free_port()
    proc, _ = spawn_server("walkv", BIN, DATA, port, ["--compact-ratio", "0"])
    load("walkv", port, KEYS, 3)
    for _ in range(TRIALS):
        trial(port)
    stop(proc)
finally:
    kill_all()
    subprocess.run(["rm", "-rf", DATA])
