#!/usr/bin/env python3
"""Context switches and system calls per request on the server, beside throughput.

    python3 benches/wakeups.py [BIN ...]     (knobs: SECS=3, ROUNDS=2, CONNS="1 50")

Callgrind (benches/cpu_per_request.py) counts instructions; on two shared cores the cost of a
request is mostly elsewhere: every time a thread blocks and another runs (a context switch), and
every system call. This script loads each BIN (default target/release/walkv) with wrk (GET of one
100-byte value, PUT of new keys with 100-byte values, PUT with --sync always) at each number of
connections, with `perf stat` attached to the server (all its threads) for the length of the run: once
counting context switches (which costs next to nothing; req/s comes from this run), once counting
system calls (`raw_syscalls:sys_enter`, which slows the server by about a third), and prints per request: context switches, system
calls, and requests/s. Several BINs are run interleaved, round by round, so that they share the
machine's state; medians are printed. wrk runs on the same two cores: its own switches are not
counted, but it competes for the CPU, as it does in benches/peers.sh.

Installs wrk and perf (linux-perf) from Debian if missing.
"""
import os, re, shutil, statistics, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

BINS = sys.argv[1:] or ["target/release/walkv"]
SECS = int(os.environ.get("SECS", 3))
ROUNDS = int(os.environ.get("ROUNDS", 2))
CONNS = [int(c) for c in os.environ.get("CONNS", "1 50").split()]
TMP = tempfile.mkdtemp(prefix="walkv-wakeups-")



def need(command, package):
    if shutil.which(command):
        return
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", package], check=True,
                   env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})


def run_wrk(pid, port, conns, lua, events):
    """(requests, requests/s, {event: count}) of one wrk run with perf counting `events`."""
    perf = subprocess.Popen(
        ["perf", "stat", "-x,", "-e", events, "-p", str(pid), "--", "sleep", str(SECS)],
        stderr=subprocess.PIPE, text=True)
    time.sleep(0.05)
    argv = ["wrk", f"-t{min(2, conns)}", f"-c{conns}", f"-d{SECS}s"]
    if lua:
        argv += ["-s", lua]
    out = subprocess.run(argv + [f"http://127.0.0.1:{port}/v1/bench"], capture_output=True,
                         text=True).stdout
    counts = {}
    for line in perf.communicate()[1].splitlines():
        fields = line.split(",")
        if len(fields) > 2 and fields[0].isdigit():
            counts[fields[2]] = int(fields[0])
    if "Non-2xx" in out or "Socket errors" in out or "requests in" not in out:
        sys.exit(f"wrk saw errors:\n{out}")
    total = int(re.search(r"(\d+) requests in", out).group(1))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    return total, rps, counts


def measure(pid, port, conns, lua):
    """(requests/s, switches per request, system calls per request): two runs, because counting
    system calls (a tracepoint on every one) costs the server a third of its throughput, while
    counting context switches costs next to nothing. perf runs a little longer than wrk (it
    starts first): the idle part adds next to nothing."""
    total, rps, counts = run_wrk(pid, port, conns, lua, "context-switches")
    switches = counts["context-switches"] / total
    total, _, counts = run_wrk(pid, port, conns, lua, "raw_syscalls:sys_enter")
    return rps, switches, counts["raw_syscalls:sys_enter"] / total


def main():
    need("wrk", "wrk")
    need("perf", "linux-perf")
    lua = os.path.join(os.path.dirname(os.path.abspath(__file__)), "put.lua")
    servers = []
    for i, binary in enumerate(BINS):
        for mode in ("interval", "always"):
            port = harness.free_port()
            extra = ("--sync", "always") if mode == "always" else ()
            proc, _ = harness.spawn_server("walkv", binary, os.path.join(TMP, f"{i}-{mode}"),
                                           port, extra)
            servers.append((binary, mode, proc, port))
            if mode == "interval":
                harness.ask(port, b"PUT /v1/bench HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n"
                            b"Connection: close\r\n\r\n" + b"v" * 100, b"HTTP/1.1 20")
    workloads = [(f"GET c{c}", "interval", c, None) for c in CONNS]
    workloads += [(f"PUT c{c}", "interval", c, lua) for c in CONNS]
    workloads += [(f"PUT always c{c}", "always", c, lua) for c in CONNS]
    results = {}
    for _ in range(ROUNDS):
        for name, mode, conns, script in workloads:
            for binary, m, proc, port in servers:
                if m == mode:
                    results.setdefault((name, binary), []).append(
                        measure(proc.pid, port, conns, script))
    print(f"per request on the server, {ROUNDS} rounds x {SECS:g} s, medians; "
          f"{os.cpu_count()} cores")
    print(f"{'workload':<16} {'binary':<28} {'req/s':>9} {'switches':>9} {'syscalls':>9}")
    for name, _, _, _ in workloads:
        for binary in BINS:
            runs = results[(name, binary)]
            rps, cs, sc = (statistics.median(r[k] for r in runs) for k in range(3))
            print(f"{name:<16} {binary[-28:]:<28} {rps:>9.0f} {cs:>9.2f} {sc:>9.2f}")


try:
    main()
finally:
    harness.kill_all()
    shutil.rmtree(TMP, ignore_errors=True)
