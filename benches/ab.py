#!/usr/bin/env python3
"""Several builds side by side on one workload, interleaved: requests per second and the
server's CPU per request.

    python3 benches/ab.py BIN [BIN ...]     (knobs: CONNS=50, ROUNDS=5, SECS=3,
                                             WORKLOAD=put|get, ARGS="--sync always")

Each round starts every BIN in turn on a fresh data directory (`walkv serve ARGS`), loads it
with wrk for SECS seconds at CONNS connections (WORKLOAD put: a 100-byte value to a new key each
time, `benches/put.lua`; get: one 100-byte value), and reads the server's CPU time (user +
system, all its threads, from /proc) before and after. Medians over ROUNDS are printed, with
every round's rate: on two shared cores one round can be 20% off, and only interleaving the
builds round by round makes their ratio mean something (`benches/peers.sh` runs one build at a
time). Stops every server by PID.
"""
import os, re, shutil, statistics, subprocess, sys, tempfile, time

BINS = sys.argv[1:] or ["target/release/walkv"]
CONNS = int(os.environ.get("CONNS", 50))
ROUNDS = int(os.environ.get("ROUNDS", 5))
SECS = int(os.environ.get("SECS", 3))
WORKLOAD = os.environ.get("WORKLOAD", "put")
ARGS = os.environ.get("ARGS", "").split()
HERE = os.path.dirname(os.path.abspath(__file__))
TICK = os.sysconf("SC_CLK_TCK")


def cpu_ticks(pid):
    """utime + stime of the whole process (threads that ended included)."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def one(binary, port, data):
    proc = subprocess.Popen([binary, "serve", *ARGS, "--port", str(port), "--data-dir", data],
                            stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(200):
            if subprocess.run(["curl", "-s", "-o", "/dev/null", url + "/livez"]).returncode == 0:
                break
            time.sleep(0.02)
        if WORKLOAD == "get":
            subprocess.run(["curl", "-s", "-o", "/dev/null", "-X", "PUT", "--data-binary",
                            "v" * 100, url + "/v1/bench"], check=True)
            target = ["-d", f"{SECS}s", url + "/v1/bench"]
        else:
            target = ["-d", f"{SECS}s", "-s", os.path.join(HERE, "put.lua"), url]
        before = cpu_ticks(proc.pid)
        out = subprocess.run(["wrk", "-t1", f"-c{CONNS}", *target], capture_output=True,
                             text=True).stdout
        after = cpu_ticks(proc.pid)
        requests = int(re.search(r"(\d+) requests in", out).group(1))
        rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
        return rate, (after - before) / TICK / requests * 1e6
    finally:
        proc.terminate()
        proc.wait()


def main():
    tmp = tempfile.mkdtemp(prefix="walkv-ab-")
    results = {b: [] for b in BINS}
    try:
        for _ in range(ROUNDS):
            for i, b in enumerate(BINS):
                data = os.path.join(tmp, str(i))
                shutil.rmtree(data, ignore_errors=True)
                results[b].append(one(b, 18300 + i, data))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{WORKLOAD} c{CONNS} {' '.join(ARGS)}, {ROUNDS} rounds x {SECS} s interleaved, "
          f"medians, {time.strftime('%Y-%m-%d')}")
    first = statistics.median(r for r, _ in results[BINS[0]])
    for b in BINS:
        rate = statistics.median(r for r, _ in results[b])
        cpu = statistics.median(c for _, c in results[b])
        rounds = ", ".join(f"{r:.0f}" for r, _ in results[b])
        print(f"{b:32} {rate:9.0f}/s {rate / first:5.2f}x  {cpu:7.1f} us CPU/request  ({rounds})")


if __name__ == "__main__":
    main()
