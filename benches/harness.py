"""What the Python benchmarks share: free loopback ports, starting walkv and Redis and timing
until they answer, stopping them, and RSS. Every process started is listed in STARTED, for
kill_all() to stop by PID whatever happens."""
import os, signal, socket, subprocess, sys, time

STARTED = []


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def ask(port, payload, want):
    """Sends payload, returns True if the answer starts with want."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(payload)
            return s.recv(64).startswith(want)
    except OSError:
        return False


def spawn_server(kind, binary, data, port, extra=()):
    """Spawns walkv (`binary`) or Redis (AOF, appendfsync everysec, no RDB, no automatic AOF
    rewrite) on `data`; returns (process, seconds until it answered: walkv GET /status, Redis
    PING answered PONG, not LOADING)."""
    os.makedirs(data, exist_ok=True)
    if kind == "walkv":
        argv = [binary, "serve", "--port", str(port), "--data-dir", data, *extra]
        probe, want = b"GET /status HTTP/1.1\r\nConnection: close\r\n\r\n", b"HTTP/1.1 200"
    else:
        argv = ["redis-server", "--port", str(port), "--dir", data, "--appendonly", "yes",
                "--appendfsync", "everysec", "--save", "", "--auto-aof-rewrite-percentage", "0",
                "--daemonize", "no", "--logfile", os.path.join(data, "redis.log"), *extra]
        probe, want = b"PING\r\n", b"+PONG"
    began = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    STARTED.append(proc)
    while not ask(port, probe, want):
        if proc.poll() is not None:
            sys.exit(f"{kind} exited with {proc.returncode} while starting")
        time.sleep(0.0005)
    return proc, time.monotonic() - began


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=300)


def kill_all():
    for p in STARTED:
        if p.poll() is None:
            p.kill()
            p.wait()
