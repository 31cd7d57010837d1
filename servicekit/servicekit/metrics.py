"""Prometheus metrics: prometheus-flask-exporter's request metrics plus the kit's own."""

from __future__ import annotations

from flask import Flask
from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_flask_exporter import PrometheusMetrics


class ServiceMetrics:
    """One registry per app, so several apps can live in one process (tests)."""

    def __init__(self, app: Flask, service: str, topics: tuple[str, ...] = ()):
        self.registry = CollectorRegistry(auto_describe=True)
        self.exporter = PrometheusMetrics(
            app,
            registry=self.registry,
            group_by="endpoint",
            default_labels={"service": service},
            excluded_paths=["^/metrics$", "^/healthz$", "^/readyz$"],
        )
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
