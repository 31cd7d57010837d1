"""gunicorn settings shared by the services: `gunicorn -c python:servicekit.gunicorn_conf "app:create_app()"`.

Request processes answer requests only: the background work runs in `python run.py worker`
(unless BACKGROUND_WORKERS=true puts it in each request process, for a single-process setup)."""

import os
import shutil
import tempfile


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

# Several request processes: Prometheus metrics are kept in files shared by them (prometheus_client's
# multiprocess mode), so /metrics answers for the whole service whichever process serves it.
_own_metrics_dir = None
if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    _own_metrics_dir = tempfile.mkdtemp(prefix="prometheus-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _own_metrics_dir


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
