#!/usr/bin/env python3
"""Peak memory and time of check, repair and startup on a large log damaged near its start.

    cargo build --release && python3 benches/damaged_log_memory.py [BIN]
    knobs: LOG_MB=2048 (log size), VALUE_KB=64, DAMAGE_AT=1048576 (byte offset of the flip)

Before the tools streamed the log, `check` took 1.98 GB of RSS on a 2 GB log damaged near its
start. This builds such a log through the real server (PUTs of VALUE_KB values
to 100 keys, --sync never, stopped with SIGTERM), flips one byte at DAMAGE_AT, and runs, each as
its own process under GNU time (installed by `apt-get install time` if missing), timing it
and reading its peak RSS:

  check, repair --dry-run, serve (refuses: exit 7), repair --skip-damaged (rewrites the log),
  serve on the repaired log (replays all of it, then stopped), the byte flipped again,
  repair --cut (keeps 2 GB in a side file).

Everything runs in a temp directory that is removed at the end (it needs about 3 x LOG_MB of
free disk). Nothing here is a timed test: these are measurements to report.
"""
import os, signal, socket, subprocess, sys, tempfile, time, shutil

BIN = sys.argv[1] if len(sys.argv) > 1 else "target/release/walkv"
LOG_MB = int(os.environ.get("LOG_MB", 2048))
VALUE_KB = int(os.environ.get("VALUE_KB", 64))
DAMAGE_AT = int(os.environ.get("DAMAGE_AT", 1 << 20))
TMP = tempfile.mkdtemp(prefix="walkv-damaged-")
DATA = os.path.join(TMP, "data")
WAL = os.path.join(DATA, "walkv.wal")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load():
    port = free_port()
    server = subprocess.Popen([BIN, "serve", "--port", str(port), "--sync", "never",
                               "--data-dir", DATA], stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    value = b"v" * (VALUE_KB * 1024)
    total = LOG_MB * 1024 * 1024 // (len(value) + 30)
    sock = socket.create_connection(("127.0.0.1", port))
    answers = b""
    sent = 0
    while sent < total:
        batch = min(16, total - sent)
        for i in range(batch):
            head = f"PUT /v1/k{(sent + i) % 100} HTTP/1.1\r\nHost: b\r\nContent-Length: {len(value)}\r\n\r\n"
            sock.sendall(head.encode() + value)
        sent += batch
        while answers.count(b"HTTP/1.1 20") < batch:
            chunk = sock.recv(65536)
            if not chunk:
                raise SystemExit("the server closed the connection")
            answers += chunk
        answers = b""
    sock.close()
    server.send_signal(signal.SIGTERM)
    if server.wait(timeout=120) != 0:
        raise SystemExit("the server did not stop cleanly")


def flip(offset):
    with open(WAL, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x20]))


def measure(name, argv, stop_after_listening=False):
    """Runs argv under GNU time (a small parent: the peak RSS Linux reports for a process
    includes what its parent had before the exec, so not straight from this Python)."""
    started = time.monotonic()
    proc = subprocess.Popen(["/usr/bin/time", "-f", "maxrss %M"] + argv,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if stop_after_listening and b"walkv: ready on" in line:
            subprocess.run(["pkill", "-TERM", "-P", str(proc.pid)])
    code = proc.wait()
    took = time.monotonic() - started
    kib = int(next(l for l in reversed(lines) if l.startswith(b"maxrss")).split()[1])
    print(f"{name:<40} exit {code:>3}  {took:7.2f} s  peak RSS {kib / 1024:8.1f} MiB", flush=True)


def main():
    if not os.path.exists("/usr/bin/time"):
        subprocess.run(["apt-get", "install", "-y", "-qq", "time"], check=True,
                       stdout=subprocess.DEVNULL)
    try:
        load()
        size = os.path.getsize(WAL)
        print(f"log: {size / 2**20:.0f} MiB of {VALUE_KB} KiB values; one byte flipped at offset "
              f"{DAMAGE_AT}", flush=True)
        flip(DAMAGE_AT)
        measure("walkv check", [BIN, "check", "--data-dir", DATA])
        measure("walkv repair --dry-run", [BIN, "repair", "--dry-run", "--data-dir", DATA])
        measure("walkv serve (refuses to start)", [BIN, "serve", "--port", "0", "--data-dir", DATA])
        measure("walkv repair --skip-damaged", [BIN, "repair", "--skip-damaged", "--data-dir", DATA])
        measure("walkv serve (replays the repaired log)",
                [BIN, "serve", "--port", "0", "--data-dir", DATA], stop_after_listening=True)
        flip(DAMAGE_AT)
        measure("walkv repair --cut", [BIN, "repair", "--cut", "--data-dir", DATA])
    finally:
        shutil.rmtree(TMP, ignore_errors=True)


main()
