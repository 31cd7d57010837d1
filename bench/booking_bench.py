"""Benchmarks of the platform as `make dev` runs it (gunicorn services behind NGINX, real PostgreSQL and broker).

Prints latency percentiles, throughput and each service's memory. Run with `make bench`.
Figures are for reading and comparing, never asserted.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil
import requests

from devstack.components import available_services
from devstack.stack import Ports, Stack
from servicekit.events import make_envelope

CLIENTS = int(os.environ.get("BENCH_CLIENTS", "8"))
REQUESTS = int(os.environ.get("BENCH_REQUESTS", "400"))


def timed(session: requests.Session, method: str, url: str, **kwargs) -> tuple[float, int]:
    started = time.perf_counter()
    response = session.request(method, url, timeout=30, **kwargs)
    return (time.perf_counter() - started) * 1000, response.status_code


def report(name: str, samples: list[tuple[float, int]], wall: float) -> None:
    latencies = sorted(ms for ms, _ in samples)
    statuses: dict[int, int] = {}
    for _, status in samples:
        statuses[status] = statuses.get(status, 0) + 1
    q = statistics.quantiles(latencies, n=100)
    print(
        f"{name:<38} {len(samples):>5} req  {len(samples) / wall:>8.1f} req/s  "
        f"p50 {q[49]:>7.1f} ms  p95 {q[94]:>7.1f} ms  p99 {q[98]:>7.1f} ms  statuses {dict(sorted(statuses.items()))}"
    )


def run_parallel(name: str, work, count: int) -> None:
    sessions = [requests.Session() for _ in range(CLIENTS)]
    started = time.perf_counter()
    with ThreadPoolExecutor(CLIENTS) as pool:
        samples = list(pool.map(lambda i: work(sessions[i % CLIENTS], i), range(count)))
    report(name, samples, time.perf_counter() - started)


def main() -> None:
    state = Path(tempfile.mkdtemp(prefix="bench-"))
    stack = Stack(state=state, ports=Ports.random(), fast=False, auth_rate="10000r/s", write_rate="10000r/s")
    specs = available_services()
    os.environ.update(ADMIN_EMAIL="bench-admin@example.com", ADMIN_PASSWORD="bench admin password", LOG_LEVEL="WARNING")
    try:
        stack.start_infrastructure([s.database for s in specs])
        stack.start_services(specs)
        stack.start_gateway()
        gateway = f"http://127.0.0.1:{stack.ports.gateway}"
        print(f"platform up: {', '.join(s.name for s in specs)}; {CLIENTS} concurrent clients\n")
        password = "bench password"
        emails = [f"bench-{uuid.uuid4().hex[:8]}@example.com" for _ in range(CLIENTS * 4)]

        run_parallel(
            "POST /api/auth/register (argon2)",
            lambda s, i: timed(
                s, "POST", f"{gateway}/api/auth/register", json={"email": emails[i], "password": password, "full_name": "Bench"}
            ),
            len(emails),
        )
        tokens = [
            requests.post(f"{gateway}/api/auth/login", json={"email": e, "password": password}, timeout=30).json()["access_token"]
            for e in emails[:CLIENTS]
        ]
        run_parallel(
            "POST /api/auth/login (argon2)",
            lambda s, i: timed(
                s, "POST", f"{gateway}/api/auth/login", json={"email": emails[i % len(emails)], "password": password}
            ),
            CLIENTS * 8,
        )
        run_parallel(
            "GET /api/users/me",
            lambda s, i: timed(s, "GET", f"{gateway}/api/users/me", headers={"Authorization": f"Bearer {tokens[i % CLIENTS]}"}),
            REQUESTS,
        )

        if "reservation-service" in stack.services:
            bench_reservations(stack, gateway, tokens)

        print("\nresident memory after the run:")
        for name, service in stack.services.items():
            process = psutil.Process(service.child.popen.pid)
            rss = sum(p.memory_info().rss for p in [process, *process.children(recursive=True)])
            print(f"  {name:<22} {rss / 2**20:>7.1f} MiB (gunicorn master + worker)")
    finally:
        stack.stop()


def bench_reservations(stack: Stack, gateway: str, tokens: list[str]) -> None:
    from confluent_kafka import Producer

    rooms = list(range(10_000_001, 10_000_001 + CLIENTS))
    producer = Producer({"bootstrap.servers": stack.bootstrap})
    now = datetime.now(UTC).isoformat()
    for room_id in rooms:
        room = {
            "id": room_id,
            "name": f"Bench {room_id}",
            "capacity": 20,
            "location": "B",
            "equipment": [],
            "description": "",
            "is_active": True,
            "created_at": now,
            "updated_at": now,
        }
        producer.produce("room-events", key=str(room_id), value=json.dumps(make_envelope("room.created", room, "room-service")))
    producer.flush(10)
    time.sleep(3)  # let the read model take the rooms in
    base = (datetime.now(UTC) + timedelta(days=1)).replace(minute=0, second=0, microsecond=0)

    def book(session, i):
        start = base + timedelta(minutes=30 * (i // CLIENTS))
        body = {
            "room_id": rooms[i % CLIENTS],
            "title": "Bench",
            "start_time": start.isoformat(),
            "end_time": (start + timedelta(minutes=30)).isoformat(),
        }
        return timed(
            session, "POST", f"{gateway}/api/reservations", json=body, headers={"Authorization": f"Bearer {tokens[i % CLIENTS]}"}
        )

    run_parallel("POST /api/reservations (no clashes)", book, REQUESTS)

    def clash(session, i):
        start = base + timedelta(days=30)
        body = {
            "room_id": rooms[0],
            "title": "Clash",
            "start_time": start.isoformat(),
            "end_time": (start + timedelta(hours=1)).isoformat(),
        }
        return timed(
            session, "POST", f"{gateway}/api/reservations", json=body, headers={"Authorization": f"Bearer {tokens[i % CLIENTS]}"}
        )

    run_parallel("POST /api/reservations (all one slot)", clash, REQUESTS // 4)
    run_parallel(
        "GET /api/reservations/room/{id}",
        lambda s, i: timed(
            s,
            "GET",
            f"{gateway}/api/reservations/room/{rooms[i % CLIENTS]}",
            headers={"Authorization": f"Bearer {tokens[i % CLIENTS]}"},
        ),
        REQUESTS,
    )


if __name__ == "__main__":
    main()
