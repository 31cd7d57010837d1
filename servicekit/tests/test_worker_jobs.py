"""Exclusive periodic jobs: at most one replica runs such a job at a time (a session-level advisory
lock on the job's name, held on a connection of its own while the job commits as it likes)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from servicekit.worker import Job, Scheduler, run_exclusively


def _in_context(app, run):
    with app.app_context():
        return run()


def _run_on_two_schedulers(app, job: Job, enough: Callable[[], bool]) -> None:
    """Two schedulers (two replicas) run `job` until `enough()` holds, or 10 seconds have passed."""
    schedulers = [Scheduler(app, [job], tick_seconds=0.005) for _ in range(2)]
    for scheduler in schedulers:
        scheduler.start()
    deadline = time.monotonic() + 10
    while not enough() and time.monotonic() < deadline:
        time.sleep(0.05)
    for scheduler in schedulers:
        scheduler.stop()


def test_an_exclusive_job_is_skipped_while_another_process_runs_it(app):
    inside, release = threading.Event(), threading.Event()

    def long_job():
        inside.set()
        release.wait(10)

    holder = threading.Thread(target=lambda: _in_context(app, lambda: run_exclusively("kit-exclusive", long_job)))
    holder.start()
    assert inside.wait(10)
    try:
        assert _in_context(app, lambda: run_exclusively("kit-exclusive", lambda: None)) is False
        assert _in_context(app, lambda: run_exclusively("another-job", lambda: None)) is True
    finally:
        release.set()
        holder.join(10)
    assert _in_context(app, lambda: run_exclusively("kit-exclusive", lambda: None)) is True


def test_two_schedulers_never_run_an_exclusive_job_at_once(app):
    running, overlaps, runs = [0], [], []
    guard = threading.Lock()

    def job():
        with guard:
            running[0] += 1
            overlaps.append(running[0])
        time.sleep(0.05)
        with guard:
            running[0] -= 1
            runs.append(1)

    _run_on_two_schedulers(app, Job("kit-exclusive-pair", 0.0, job, exclusive=True), lambda: len(runs) >= 10)
    assert len(runs) >= 10
    assert max(overlaps) == 1


def test_without_exclusive_two_schedulers_do_overlap(app):
    """The control: the same job, not exclusive, does run twice at once (so the test above can fail)."""
    running, overlaps = [0], []
    guard = threading.Lock()
    both = threading.Barrier(2, timeout=5)

    def job():
        with guard:
            running[0] += 1
            overlaps.append(running[0])
        try:
            both.wait()
        except threading.BrokenBarrierError:
            pass
        with guard:
            running[0] -= 1

    _run_on_two_schedulers(app, Job("kit-shared", 60.0, job), lambda: len(overlaps) >= 2)
    assert max(overlaps) == 2
