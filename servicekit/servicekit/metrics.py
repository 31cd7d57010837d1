"""Prometheus metrics: the request metrics of prometheus-flask-exporter (its names and labels, recorded
by the kit's own lean hooks) plus the kit's own."""

from __future__ import annotations

from timeit import default_timer

from flask import Flask, Response, g, request
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_flask_exporter import PrometheusMetrics

UNTRACKED_PATHS = frozenset({"/metrics", "/healthz", "/readyz"})


class RequestMetrics:
    """prometheus-flask-exporter's default request metrics (`flask_http_request_duration_seconds` by
    method, endpoint and status, `flask_http_request_total` and `flask_http_request_exceptions_total`
    by method and status, each with the `service` label), recorded with a fraction of its per-request
    work: one timer, a set lookup for the untracked paths, and the labelled children cached per
    (method, endpoint, status) instead of being resolved from keyword labels on every request."""

    def __init__(self, app: Flask, registry: CollectorRegistry, service: str):
        self.service = service
        self.duration = Histogram(
            "flask_http_request_duration_seconds",
            "Flask HTTP request duration in seconds",
            ("method", "endpoint", "status", "service"),
            registry=registry,
        )
        self.total = Counter(
            "flask_http_request_total", "Total number of HTTP requests", ("method", "status", "service"), registry=registry
        )
        self.exceptions = Counter(
            "flask_http_request_exceptions_total",
            "Total number of HTTP requests which resulted in an exception",
            ("method", "status", "service"),
            registry=registry,
        )
        self._children: dict[tuple, tuple] = {}
        app.before_request(self._start)
        app.after_request(self._after)
        app.teardown_request(self._teardown)

    def _record(self, status: int) -> None:
        started = g.pop("metrics_started", None)
        if started is None:  # untracked, or already recorded
            return
        key = (request.method, request.endpoint, status)
        children = self._children.get(key)
        if children is None:
            method, endpoint, _ = key
            children = (
                self.duration.labels(method, endpoint, status, self.service),
                self.total.labels(method, status, self.service),
            )
            self._children[key] = children
        children[0].observe(max(default_timer() - started, 0))
        children[1].inc()

    def _start(self) -> None:
        if request.path not in UNTRACKED_PATHS:
            g.metrics_started = default_timer()

    def _after(self, response: Response) -> Response:
        self._record(response.status_code)
        return response

    def _teardown(self, exception: BaseException | None) -> None:
        if exception is None or request.path in UNTRACKED_PATHS:
            return
        self.exceptions.labels(request.method, 500, self.service).inc()
        self._record(500)  # unless the 500 was recorded already


class ServiceMetrics:
    """One registry per app, so several apps can live in one process (tests)."""

    def __init__(self, app: Flask, service: str, topics: tuple[str, ...] = ()):
        self.registry = CollectorRegistry(auto_describe=True)
        # The exporter serves /metrics (multiprocess-aware); the request metrics are RequestMetrics'.
        self.exporter = PrometheusMetrics(app, registry=self.registry, export_defaults=False)
        self.exporter.info(
            "flask_exporter_info", "Information about the Prometheus Flask exporter", version=self.exporter.version
        )
        self.requests = RequestMetrics(app, self.registry, service)
        self.outbox_pending = Gauge(
            "outbox_pending_events", "Outbox events not yet published", registry=self.registry, multiprocess_mode="livemax"
        )
        self.outbox_published = Counter("outbox_published_total", "Outbox events published", ["topic"], registry=self.registry)
        self.outbox_failures = Counter(
            "outbox_publish_failures_total", "Failed publish attempts", ["topic"], registry=self.registry
        )
        self.events_consumed = Counter(
            "events_consumed_total", "Events handled by a consumer", ["topic", "event_type", "outcome"], registry=self.registry
        )
        self.events_parked = Counter("events_parked_total", "Messages parked after failing", ["topic"], registry=self.registry)
        # Service-specific metrics, created once per app by whoever needs them first.
        self.extra: dict = {}
        # Every known label value exported at 0 from the start, so alerts and dashboards see the series.
        for topic in topics:
            self.outbox_published.labels(topic)
            self.outbox_failures.labels(topic)
            self.events_parked.labels(topic)
        self.consumer_lag = Gauge(
            "consumer_lag_messages",
            "Messages behind the partition end",
            ["topic", "partition"],
            registry=self.registry,
            multiprocess_mode="livemax",
        )

    def declare_counters(self, counters: dict[str, str]) -> None:
        """Create the service's counters (name: documentation) at start-up, so they are exported at 0
        before their first event; `count` increments them by name."""
        for name, documentation in counters.items():
            self.counter(name, documentation)

    def count(self, name: str, amount: int = 1) -> None:
        """Add `amount` to a counter made by `declare_counters` (0 adds nothing)."""
        if amount:
            self.extra[name].inc(amount)

    def counter(self, name: str, documentation: str, labels: tuple[str, ...] = ()) -> Counter:
        """A service-specific counter, created on first use and shared after."""
        if name not in self.extra:
            self.extra[name] = Counter(name, documentation, list(labels), registry=self.registry)
        return self.extra[name]

    def gauge(self, name: str, documentation: str, labels: tuple[str, ...] = ()) -> Gauge:
        """A service-specific gauge, created on first use and shared after."""
        if name not in self.extra:
            # Under several gunicorn processes (multiprocess mode) the last value set by any live one wins.
            self.extra[name] = Gauge(
                name, documentation, list(labels), registry=self.registry, multiprocess_mode="livemostrecent"
            )
        return self.extra[name]


def metrics_of(app: Flask) -> ServiceMetrics:
    return app.extensions["servicekit.metrics"]
