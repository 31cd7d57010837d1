"""gunicorn settings shared by the services: `gunicorn -c python:servicekit.gunicorn_conf "app:create_app()"`."""

import os

bind = f"0.0.0.0:{os.environ.get('PORT', '5000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "1"))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
timeout = 30
graceful_timeout = 20
keepalive = 75  # longer than the gateway's upstream keep-alive
accesslog = None  # the app logs each request as JSON
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()


def post_worker_init(worker):
    """Start the outbox relay and consumers in each worker (not in the master)."""
    app = worker.wsgi
    if app.config["SERVICE"].background_workers:
        app.extensions["servicekit.background"].start()


def worker_exit(_server, worker):
    app = getattr(worker, "wsgi", None)
    if app is not None and app.config["SERVICE"].background_workers:
        app.extensions["servicekit.background"].stop()
