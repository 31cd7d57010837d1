"""Login under concurrency: latency and user-service's peak memory with 8 concurrent logins.

Starts PostgreSQL, the broker and user-service under gunicorn (as `make dev` does) on free ports,
then runs rounds of BENCH_CLIENTS (8) simultaneous logins straight at the service, sampling the
resident memory of its process tree. Run: `.venv/bin/python bench/login_bench.py`. The figure in
the README's security section comes from it; nothing is asserted.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import requests

from devstack.components import available_services
from devstack.stack import Ports, Stack

CLIENTS = int(os.environ.get("BENCH_CLIENTS", "8"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "10"))


def tree_rss_mib(pid: int) -> float:
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total / 2**20


def main() -> None:
    state = Path(tempfile.mkdtemp(prefix="login-bench-"))
    stack = Stack(state=state, ports=Ports.random())
    specs = [spec for spec in available_services() if spec.name == "user-service"]
    # One request process, as in a 1-CPU pod (the README's figures): gunicorn would otherwise start one per CPU.
    os.environ.update(
        ADMIN_EMAIL="bench-admin@example.com", ADMIN_PASSWORD="bench admin password", LOG_LEVEL="WARNING", WEB_CONCURRENCY="1"
    )
    try:
        stack.start_infrastructure([spec.database for spec in specs])
        stack.start_services(specs)
        base = f"http://127.0.0.1:{stack.ports.services['user-service']}"
        pid = stack.services["user-service"].child.popen.pid
        emails = []
        for _ in range(CLIENTS):
            email = f"bench-{uuid.uuid4().hex[:8]}@example.com"
            body = {"email": email, "password": "bench password", "full_name": "Bench"}
            assert requests.post(f"{base}/api/auth/register", json=body, timeout=30).status_code == 201
            emails.append(email)
        idle = tree_rss_mib(pid)
        peak = idle
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, tree_rss_mib(pid))
                time.sleep(0.02)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        sessions = [requests.Session() for _ in range(CLIENTS)]

        def login(i: int) -> tuple[float, int]:
            started = time.perf_counter()
            response = sessions[i].post(
                f"{base}/api/auth/login", json={"email": emails[i], "password": "bench password"}, timeout=60
            )
            return (time.perf_counter() - started) * 1000, response.status_code

        samples: list[tuple[float, int]] = []
        started = time.perf_counter()
        with ThreadPoolExecutor(CLIENTS) as pool:
            for _ in range(ROUNDS):
                samples += list(pool.map(login, range(CLIENTS)))
        wall = time.perf_counter() - started
        done.set()
        sampler.join()
        latencies = sorted(ms for ms, _ in samples)
        statuses: dict[int, int] = {}
        for _, status in samples:
            statuses[status] = statuses.get(status, 0) + 1
        q = statistics.quantiles(latencies, n=100)
        print(
            f"{CLIENTS} concurrent logins x {ROUNDS} rounds: {len(samples) / wall:.1f} logins/s, "
            f"p50 {q[49]:.0f} ms, p95 {q[94]:.0f} ms, max {latencies[-1]:.0f} ms, statuses {dict(sorted(statuses.items()))}"
        )
        print(f"user-service RSS (gunicorn master + worker): idle {idle:.0f} MiB, peak {peak:.0f} MiB")
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
