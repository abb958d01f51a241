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
        probe, want = b"GET /status HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", b"HTTP/1.1 200"
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


def load(kind, port, keys, rounds=1, value=b"v" * 100, stop_at=None):
    """Pipelines `rounds` writes of each of `keys` keys; returns the writes answered."""
    batch, done = 2000, 0
    with socket.create_connection(("127.0.0.1", port)) as s:
        reader = s.makefile("rb")
        for r in range(rounds):
            for first in range(0, keys, batch):
                if stop_at is not None and stop_at():
                    return done
                ks = range(first, min(first + batch, keys))
                if kind == "walkv":
                    out = b"".join(b"PUT /v1/key:%d HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n"
                                   % (i, len(value)) + value for i in ks)
                else:
                    out = b"".join(b"*3\r\n$3\r\nSET\r\n$%d\r\nkey:%d\r\n$%d\r\n"
                                   % (len(b"key:%d" % i), i, len(value)) + value + b"\r\n"
                                   for i in ks)
                s.sendall(out)
                for _ in ks:
                    if kind == "walkv":
                        status = reader.readline()
                        if not (status.startswith(b"HTTP/1.1 201")
                                or status.startswith(b"HTTP/1.1 200")):
                            sys.exit(f"walkv answered {status!r}")
                        length = 0
                        while (line := reader.readline()) not in (b"\r\n", b""):
                            if line.lower().startswith(b"content-length:"):
                                length = int(line.split(b":")[1])
                        reader.read(length)
                    elif reader.readline() != b"+OK\r\n":
                        sys.exit("redis refused a SET")
                done += len(ks)
    return done


def read_latencies(port, keys, stop_flag, lat):
    """GETs keys spread over `keys` on one connection until stop_flag is set, appending each
    one's latency (seconds) to lat."""
    with socket.create_connection(("127.0.0.1", port)) as s:
        f = s.makefile("rb")
        i = 0
        while not stop_flag.is_set():
            i += 1
            t = time.perf_counter()
            s.sendall(b"GET /v1/key:%d HTTP/1.1\r\nHost: t\r\n\r\n" % (i * 7919 % keys))
            f.readline()
            n = 0
            while (line := f.readline()) != b"\r\n":
                if line.lower().startswith(b"content-length:"):
                    n = int(line.split(b":")[1])
            f.read(n)
            lat.append(time.perf_counter() - t)
