"""gunicorn settings shared by the services: `gunicorn -c python:servicekit.gunicorn_conf "app:create_app()"`.

Request processes answer requests only: the background work runs in `python run.py worker`
(unless BACKGROUND_WORKERS=true puts it in each request process, for a single-process setup)."""

import json
import os
import shutil
import tempfile

from gunicorn import util

from servicekit.problems import PROBLEM_JSON, problem_document


def available_cpus() -> int:
    """CPUs this process may use: its affinity, bounded by a cgroup (container) CPU quota."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        quota, period = open("/sys/fs/cgroup/cpu.max").read().split()
        if quota != "max":
            cpus = min(cpus, max(1, -(-int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cpus)


bind = f"0.0.0.0:{os.environ.get('PORT', '5000')}"
workers = int(os.environ.get("WEB_CONCURRENCY") or available_cpus())
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
timeout = 30
graceful_timeout = 20
keepalive = 75  # longer than the gateway's upstream keep-alive
accesslog = None  # the app logs each request as JSON
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()

# Request size limits, agreed with the gateway (nginx.conf, `large_client_header_buffers 4 8k`) so that
# NGINX, not gunicorn, refuses an oversized request, as problem+json. NGINX holds the request line and
# each header line in one 8 KiB buffer: the longest request line it forwards is 8190 bytes + CRLF,
# gunicorn's maximum; a header line grows by what the gateway appends (`, <peer>` to X-Forwarded-For,
# `X-Forwarded-` before `Host`), hence 256 bytes more. NGINX does not count header fields, only their
# total (32 KiB, so up to ~8000 fields), and gunicorn buffers up to fields x field size of head per
# connection (copying it on every read): the count stays 100, more than any client sends, keeping that
# near 1 MB for a client of a service's own port. Beyond it gunicorn answers 431, as problem+json (below).
limit_request_line = 8190
limit_request_field_size = 8 * 1024 + 256
limit_request_fields = 100

# Several request processes: Prometheus metrics are kept in files shared by them (prometheus_client's
# multiprocess mode), so /metrics answers for the whole service whichever process serves it.
_own_metrics_dir = None
if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    _own_metrics_dir = tempfile.mkdtemp(prefix="prometheus-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _own_metrics_dir


_GUNICORN_ERROR_DETAILS = {
    400: "The request is malformed.",
    414: "The request line is longer than 8190 bytes.",
    417: "Only the 100-continue expectation is supported.",
    431: "The request has too many header fields, or one that is too long.",
    501: "The request's transfer coding is not supported.",
}


def write_problem(sock, status_int: int, reason: str, mesg: str) -> None:
    """Answer a request gunicorn refused before the app saw it (a malformed request line or header,
    a limit above) as an RFC 9457 problem document, in place of gunicorn's HTML page.

    The detail is fixed per status: gunicorn's message quotes the request and is logged instead."""
    detail = _GUNICORN_ERROR_DETAILS.get(status_int, reason)
    body = json.dumps(problem_document(status_int, reason, detail), separators=(",", ":")).encode()
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
        f"Content-Type: {PROBLEM_JSON}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    util.write_nonblock(sock, head.encode("latin-1") + body)


# gunicorn has no setting for the body of its own error answers; every worker writes them through
# `util.write_error`, which the request processes inherit from this (the master's) module.
util.write_error = write_problem


def _background_in_web(app) -> bool:
    service = app.config.get("SERVICE")  # None for an app not built on the kit (bench/baseline_app.py)
    return bool(service and service.background_workers)


def post_worker_init(worker):
    app = worker.wsgi
    if _background_in_web(app):
        app.extensions["servicekit.background"].start()


def worker_exit(_server, worker):
    app = getattr(worker, "wsgi", None)
    if app is not None and _background_in_web(app):
        app.extensions["servicekit.background"].stop()


def child_exit(_server, worker):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def on_exit(_server):
    if _own_metrics_dir:
        shutil.rmtree(_own_metrics_dir, ignore_errors=True)
