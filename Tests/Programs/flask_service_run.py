"""Runs Tests/Programs/flask_service.py as a real service under heapsnap, for
Tests/ShimTests/FlaskServiceTests.swift and Scripts/bench-leaks.

gunicorn (from VENV) serves the app with WORKERS sync workers on 127.0.0.1 (a
free port), preloaded with the shim, which writes a snapshot to DIR every
INTERVAL seconds while sampling. Once every worker has booted and the service
answers, `heapsnap start --tree MASTER` starts the master and its workers (a
worker the master forks later samples from its first allocation). A bounded
load generator (at most 20 s) alternates /leak and /churn from 4 threads; then
`heapsnap stop --tree MASTER` writes each process's final snapshot and
gunicorn is stopped. Prints one JSON line: {"port", "master", "workers",
"started", "stopped" (the pids each command reached), "ok", "failed"}; exits
non-zero, with one line on stderr, when a step fails.

usage: flask_service_run.py --venv VENV --heapsnap HEAPSNAP --lib LIB --dir DIR
                            [--no-leak] [--seconds 15] [--workers 4] [--interval 1] [--rate BYTES]
"""

import argparse
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def fail(message):
    print("flask_service_run: " + message, file=sys.stderr)
    sys.exit(1)


def load(port, seconds, threads=4):
    """GET /leak and /churn alternately from `threads` threads for `seconds` (at most 20)."""
    deadline = time.monotonic() + min(seconds, 20.0)
    counts = {"ok": 0, "failed": 0}
    lock = threading.Lock()

    def worker(index):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        i = index
        while time.monotonic() < deadline:
            try:
                connection.request("GET", "/leak" if i % 2 == 0 else "/churn")
                response = connection.getresponse()
                response.read()
                ok = response.status == 200
            except (OSError, http.client.HTTPException):
                ok = False
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            with lock:
                counts["ok" if ok else "failed"] += 1
            i += 1

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return counts


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--venv", required=True)
    parser.add_argument("--heapsnap", required=True)
    parser.add_argument("--lib", required=True)
    parser.add_argument("--dir", required=True)
    parser.add_argument("--no-leak", action="store_true")
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--interval", default="1")
    parser.add_argument("--rate")
    args = parser.parse_args()

    env = dict(os.environ, LD_PRELOAD=args.lib, HEAPSNAP_DIR=args.dir, HEAPSNAP_INTERVAL=args.interval,
               FLASK_SERVICE_LEAK="0" if args.no_leak else "1", PYTHONDONTWRITEBYTECODE="1")
    if args.rate:
        env["HEAPSNAP_RATE"] = args.rate
    for name in ("HEAPSNAP_START", "HEAPSNAP_AT_EXIT"):
        env.pop(name, None)
    master = subprocess.Popen([os.path.join(args.venv, "bin", "gunicorn"), "-w", str(args.workers), "-b", "127.0.0.1:0",
                               "--chdir", HERE, "flask_service:app"],
                              env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    port = None
    workers = []
    log = []
    ready = threading.Event()

    def read_log():
        nonlocal port
        for line in master.stderr:
            log.append(line.rstrip())
            m = re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", line)
            if m:
                port = int(m.group(1))
            m = re.search(r"Booting worker with pid: (\d+)", line)
            if m:
                workers.append(int(m.group(1)))
            if port and len(workers) >= args.workers:
                ready.set()

    threading.Thread(target=read_log, daemon=True).start()
    try:
        if not ready.wait(60):
            fail("gunicorn did not boot %d workers in 60 s; its log: %s" % (args.workers, " | ".join(log[-5:])))
        # The workers answer once they have imported the app.
        deadline = time.monotonic() + 30
        while True:
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                c.request("GET", "/churn")
                if c.getresponse().status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                fail("the service on port %d did not answer in 30 s" % port)
            time.sleep(0.1)
        r = subprocess.run([args.heapsnap, "start", "--tree", str(master.pid)], capture_output=True, text=True)
        if r.returncode != 0:
            fail("heapsnap start --tree %d: %s" % (master.pid, r.stderr.strip()))
        started = sorted(int(p) for p in re.findall(r"sampling started in process (\d+)", r.stderr))
        counts = load(port, args.seconds)
        r = subprocess.run([args.heapsnap, "stop", "--tree", str(master.pid)], capture_output=True, text=True)
        if r.returncode != 0:
            fail("heapsnap stop --tree %d: %s" % (master.pid, r.stderr.strip()))
        stopped = sorted(int(p) for p in re.findall(r"heapsnap\.(\d+)\.\d+\.heapsnap", r.stdout))
    finally:
        master.send_signal(signal.SIGTERM)
        try:
            master.wait(30)
        except subprocess.TimeoutExpired:
            master.kill()
            master.wait()
    print(json.dumps({"port": port, "master": master.pid, "workers": workers, "started": started, "stopped": stopped,
                      "ok": counts["ok"], "failed": counts["failed"]}))


if __name__ == "__main__":
    main()
