#!/usr/bin/env python3
"""CPU per request on the server, as instructions counted by callgrind.

    python3 benches/cpu_per_request.py [BIN]     (knob: REQUESTS=5000)

Installs valgrind from Debian if it is missing; BIN defaults to target/release/walkv (build it
first: cargo build --release).
Wall time on two shared cores drifts by 20% between runs; instruction counts do not. For each
workload the server runs under `valgrind --tool=callgrind` twice: once serving nothing and once
serving REQUESTS requests (one keep-alive connection, one request at a time, 100-byte values);
the difference divided by REQUESTS is the server's cost per request, all threads included. Judge a
change to the request path by this number before and after. Callgrind counts user-space
instructions only: system calls and context switches are not in it.
"""
import os, re, shutil, signal, socket, subprocess, sys, tempfile, time

BIN = sys.argv[1] if len(sys.argv) > 1 else "target/release/walkv"
REQUESTS = int(os.environ.get("REQUESTS", 5000))
VALUE = b"v" * 100
TMP = tempfile.mkdtemp(prefix="walkv-cpu-")
# More `walkv serve` flags, e.g. EXTRA="--spin-us 0" (polling is counted as instructions).
EXTRA = os.environ.get("EXTRA", "").split()


def request(kind, i):
    if kind == "GET":
        return b"GET /v1/key HTTP/1.1\r\nHost: b\r\n\r\n"
    return b"PUT /v1/key:%d HTTP/1.1\r\nHost: b\r\nContent-Length: 100\r\n\r\n" % i + VALUE


def read_answer(reader):
    status = reader.readline()
    length = 0
    while (line := reader.readline()) not in (b"\r\n", b""):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    reader.read(length)
    return status


def instructions(kind, count):
    out = os.path.join(TMP, f"cg-{kind}-{count}")
    data = os.path.join(TMP, f"data-{kind}-{count}")
    proc = subprocess.Popen(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", BIN, "serve", *EXTRA, "--port", "0",
         "--data-dir", data], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    port = None
    for line in proc.stderr:
        if m := re.search(r"ready on http://127\.0\.0\.1:(\d+)", line):
            port = int(m.group(1))
            break
    if port is None:
        sys.exit("walkv did not start under valgrind")
    with socket.create_connection(("127.0.0.1", port)) as s:
        reader = s.makefile("rb")
        s.sendall(request("PUT", 0).replace(b"key:0", b"key"))  # the key GET reads
        read_answer(reader)
        for i in range(count):
            s.sendall(request(kind, i))
            status = read_answer(reader)
            if not status.startswith((b"HTTP/1.1 200", b"HTTP/1.1 201")):
                sys.exit(f"{kind} answered {status!r}")
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=120)
    with open(out) as f:
        for line in f:
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
    sys.exit("no totals in callgrind's output")


if shutil.which("valgrind") is None:
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "valgrind"], check=True,
                   env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
try:
    print(f"server instructions per request (callgrind), {REQUESTS} requests, {time.strftime('%Y-%m-%d')}")
    for kind in ("GET", "PUT"):
        base, loaded = instructions(kind, 0), instructions(kind, REQUESTS)
        print(f"{kind:<4} {(loaded - base) / REQUESTS:>10.0f} instructions/request")
finally:
    subprocess.run(["rm", "-rf", TMP])
