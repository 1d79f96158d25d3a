"""Prometheus metrics of a Lightning OS process (docs/observability.md)."""

from __future__ import annotations

import time

import prometheus_client
from prometheus_client import Counter, Gauge, Histogram

from lightning_core.asgi import ASGIApp, Message, Receive, Scope, Send

REQUESTS = Counter(
    "lightning_http_requests",
    "HTTP requests answered, by route template and status",
    ["service", "method", "route", "status"],
)
REQUEST_SECONDS = Histogram(
    "lightning_http_request_duration_seconds",
    "Time to the end of the response body (a stream's whole life)",
    ["service", "method", "route"],
)
PUBLISHED = Counter(
    "lightning_events_published", "Events handed to the bus, by outcome", ["outcome"]
)
HANDLED = Counter(
    "lightning_events_handled",
    "Deliveries a consumer group handled, by outcome (ok, error, dead_lettered)",
    ["group", "outcome"],
)
HANDLE_SECONDS = Histogram(
    "lightning_event_handle_duration_seconds", "Time one handler call took", ["group"]
)
BACKLOG = Gauge(
    "lightning_bus_backlog",
    "Events a consumer group has not settled yet (read when /metrics is scraped)",
    ["group"],
)
CONTENT_TYPE = prometheus_client.CONTENT_TYPE_LATEST


def exposition() -> bytes:
    """The text format of every metric of this process."""
    return prometheus_client.generate_latest()


def serve(port: int, host: str) -> None:
    """Serve /metrics on its own port from a background thread (hosts without HTTP)."""
    prometheus_client.start_http_server(port, addr=host)


class RequestMetrics:
    """ASGI middleware counting and timing HTTP requests by the route that served them
    (the template, such as `/api/tasks/{task_id}`, so paths do not explode the labels)."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the server answers if the app raises before responding

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method = scope["method"]
            REQUESTS.labels(self.service, method, route, str(status)).inc()
            REQUEST_SECONDS.labels(self.service, method, route).observe(
                time.perf_counter() - started
            )
