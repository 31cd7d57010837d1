"""Background work: polling workers over leased queues, periodic jobs, and the worker process.

A *leased queue* is a table whose rows wait to be handled (outbox events, outgoing mail). A
worker claims a batch in a short transaction (`FOR UPDATE SKIP LOCKED`, setting a lease column
in the future and counting the attempt), handles it with no transaction open, and settles each
row: done, or released again after a backoff that grows with its attempts. Several workers (and
replicas) may poll one queue at once; a worker that dies only delays its rows until the lease ends.

`Background` holds what a service runs besides requests: the outbox relay, its consumers, its
workers and its periodic jobs. `python run.py worker` runs it in a process of its own (see
`servicekit.runner`); the test fixtures run it as threads beside the app.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol

from flask import Flask
from sqlalchemy import text
from sqlalchemy.engine import Row
from sqlalchemy.orm import Session

from .db import db

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LeasedQueue:
    """A table polled as a queue. `ready` is the SQL condition of a claimable row, `lease_column`
    the timestamp a claim pushes into the future (the row is not `ready` until it passes), and
    `returning` the columns a claim hands to the worker. The table has `id`, `attempts`, `last_error`."""

    table: str
    ready: str
    lease_column: str
    returning: str

    def claim(self, session: Session, limit: int, lease_seconds: float) -> Sequence[Row]:
        """Claim up to `limit` ready rows, oldest first, and commit the claim at once."""
        rows = session.execute(
            text(
                f"UPDATE {self.table} SET {self.lease_column} = now() + make_interval(secs => :lease),"
                f" attempts = attempts + 1"
                f" WHERE id IN (SELECT id FROM {self.table} AS q WHERE {self.ready}"
                f" ORDER BY id LIMIT :limit FOR UPDATE SKIP LOCKED)"
                f" RETURNING {self.returning}"
            ),
            {"lease": lease_seconds, "limit": limit},
        ).all()
        session.commit()
        return sorted(rows, key=lambda row: row.id)

    def extend(self, session: Session, row_ids: Sequence[int], lease_seconds: float) -> None:
        """Renew the lease of rows still being worked on (the caller commits)."""
        session.execute(
            text(f"UPDATE {self.table} SET {self.lease_column} = now() + make_interval(secs => :lease) WHERE id = ANY(:ids)"),
            {"lease": lease_seconds, "ids": list(row_ids)},
        )

    def retry_later(self, session: Session, row_id: int, error: str, max_backoff_seconds: float) -> None:
        """Release a claimed row after a backoff of 2^attempts seconds (capped); the caller commits."""
        session.execute(
            text(
                f"UPDATE {self.table} SET last_error = :error, {self.lease_column} = now()"
                f" + make_interval(secs => least(:cap, power(2, attempts))) WHERE id = :id"
            ),
            {"error": error[:2000], "cap": max_backoff_seconds, "id": row_id},
        )


class Worker(Protocol):
    def start(self) -> None: ...
    def stop(self) -> None: ...


class BackgroundThread:
    """A loop (`_run`, which returns once `_stop` is set) on a daemon thread named `name`."""

    name = "background"

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout)


class PollingWorker(BackgroundThread):
    """Calls `poll_once()` on a daemon thread, inside an app context: again at once while it finds
    work, after `idle_seconds` when it finds none, and after a growing backoff (up to
    `max_backoff_seconds`) while it raises (typically: the database is away)."""

    name = "polling-worker"

    def __init__(self, app: Flask, *, idle_seconds: float = 0.1, max_backoff_seconds: float = 10.0):
        super().__init__()
        self.app = app
        self.idle_seconds = idle_seconds
        self.max_backoff_seconds = max_backoff_seconds

    def poll_once(self) -> int:
        """Do one round of work; return how many items were handled (0 = idle)."""
        raise NotImplementedError

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            handled = 0
            with self.app.app_context():
                try:
                    handled = self.poll_once()
                    failures = 0
                except Exception:
                    failures += 1
                    log.exception("%s: round failed (%d in a row)", self.name, failures)
                    db.session.rollback()
            if failures:
                self._stop.wait(min(self.max_backoff_seconds, 0.5 * 2 ** (failures - 1)))
            elif not handled:
                self._stop.wait(self.idle_seconds)


@dataclass
class Job:
    name: str
    every_seconds: float
    run: Callable[[], Any]
    next_run: float = field(default=0.0)
    # Exclusive: at most one replica runs it at a time (a session-level advisory lock on its name);
    # the others skip their turn. For jobs whose order matters, e.g. first come, first served.
    exclusive: bool = False


_TRY_JOB_LOCK = text("SELECT pg_try_advisory_lock(CAST(:space AS integer), hashtext(:name))")
_JOB_UNLOCK = text("SELECT pg_advisory_unlock(CAST(:space AS integer), hashtext(:name))")
_JOB_LOCK_SPACE = 0x4A4F


def run_exclusively(name: str, run: Callable[[], Any]) -> bool:
    """Run `run()` unless another process runs the job `name` right now; True if it ran.

    The lock is held on a connection of its own for the whole job, so the job may commit as often as it likes."""
    with db.engine.connect() as connection:
        if not connection.execute(_TRY_JOB_LOCK, {"space": _JOB_LOCK_SPACE, "name": name}).scalar_one():
            connection.rollback()
            return False
        connection.commit()
        try:
            run()
        finally:
            connection.execute(_JOB_UNLOCK, {"space": _JOB_LOCK_SPACE, "name": name})
            connection.commit()
    return True


class Scheduler(BackgroundThread):
    """Periodic jobs (purging expired rows, refreshing gauges) on one daemon thread, each in its own
    app context; a job that raises is logged and runs again at its next turn. Every job must be
    safe to run in several worker replicas at once."""

    name = "scheduler"

    def __init__(self, app: Flask, jobs: Sequence[Job], *, tick_seconds: float = 0.5):
        super().__init__()
        self.app = app
        self.jobs = [Job(j.name, j.every_seconds, j.run, exclusive=j.exclusive) for j in jobs]
        self.tick_seconds = tick_seconds

    def run_due(self) -> int:
        """Run every job whose time has come; returns how many ran."""
        ran = 0
        for job in self.jobs:
            now = time.monotonic()
            if now < job.next_run:
                continue
            job.next_run = now + job.every_seconds
            with self.app.app_context():
                try:
                    if job.exclusive:
                        run_exclusively(job.name, job.run)
                    else:
                        job.run()
                    ran += 1
                except Exception:
                    log.exception("scheduled job %s failed", job.name)
                    db.session.rollback()
        return ran

    def _run(self) -> None:
        while not self._stop.is_set():
            self.run_due()
            self._stop.wait(self.tick_seconds)


class Background:
    """Everything a service does besides answering requests: the outbox relay, its consumers and
    workers (`add_worker`), and its periodic jobs (`add_job`)."""

    def __init__(self, app: Flask):
        self.app = app
        self.factories: list[Callable[[Flask], Worker]] = []
        self.jobs: list[Job] = [Job("forget-processed-events", 600, self._forget_processed_events, exclusive=True)]
        self.workers: list[Worker] = []
        self.relay = None

    def _forget_processed_events(self) -> int:
        from .consumer import forget_processed_events

        retention = timedelta(hours=self.app.config["SERVICE"].processed_events_retention_hours)
        forgotten = forget_processed_events(retention)
        if forgotten:
            log.info("forgot %d processed-event records older than %s", forgotten, retention)
        return forgotten

    def add_worker(self, factory: Callable[[Flask], Worker]) -> None:
        """A consumer, or any object with start() and stop() built from the app (e.g. a mail sender)."""
        self.factories.append(factory)

    def add_job(self, name: str, every_seconds: float, run: Callable[[], Any], *, exclusive: bool = False) -> None:
        """`run()` every `every_seconds`, inside an app context (it commits its own work); `exclusive`:
        in one replica at a time (see `run_exclusively`)."""
        self.jobs.append(Job(name, every_seconds, run, exclusive=exclusive))

    def start(self) -> None:
        from .outbox import OutboxRelay

        self.relay = OutboxRelay(self.app)
        self.workers = [self.relay, *(factory(self.app) for factory in self.factories)]
        self.workers.append(Scheduler(self.app, [*self.relay.jobs(), *self.jobs]))
        for worker in self.workers:
            worker.start()

    def stop(self) -> None:
        for worker in reversed(self.workers):
            worker.stop()
        self.workers = []


_OPERATIONS_PATHS = ("/metrics", "/healthz", "/readyz")


def serve_background(app: Flask, port: int, *, stop: threading.Event | None = None) -> None:
    """The worker process: run `app`'s background work until SIGTERM/SIGINT (or `stop`), and answer
    only /metrics, /healthz and /readyz on `port` (for Prometheus and the orchestrator's probes)."""
    import signal

    from werkzeug.serving import make_server

    stop = stop or threading.Event()

    def operations_only(environ, start_response):
        if environ.get("PATH_INFO") in _OPERATIONS_PATHS:
            return app(environ, start_response)
        body = b'{"type":"about:blank","title":"Not Found","status":404,"detail":"The worker process serves no API."}'
        start_response("404 Not Found", [("Content-Type", "application/problem+json"), ("Content-Length", str(len(body)))])
        return [body]

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    server = make_server("0.0.0.0", port, operations_only, threaded=True)
    threading.Thread(target=server.serve_forever, name="operations-http", daemon=True).start()
    background: Background = app.extensions["servicekit.background"]
    background.start()
    log.info("%s worker running (operations endpoints on port %d)", app.config["SERVICE"].service_name, port)
    try:
        stop.wait()
    finally:
        background.stop()
        server.shutdown()
