"""Logs and traces of a Lightning OS process, set up once at start (docs/observability.md)."""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import json
import logging
import sys
from collections.abc import Iterator
from datetime import UTC, datetime

from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased

from lightning_core.config import ConfigError, LogFormat, Mode, Settings
from lightning_core.events import CloudEvent

QUIET_LOGGERS = ("httpx", "httpcore", "azure", "aio_pika", "aiormq", "asyncio")  # INFO per request

_handling: contextvars.ContextVar[CloudEvent | None] = contextvars.ContextVar(
    "lightning_handling", default=None
)
tracer = trace.get_tracer("lightning_core")


class ContextFilter(logging.Filter):
    """Adds `trace_id`, `span_id`, `event_id` and `correlation_id` to every record ('-' if none)."""

    def filter(self, record: logging.LogRecord) -> bool:
        span = trace.get_current_span().get_span_context()
        record.trace_id = format(span.trace_id, "032x") if span.is_valid else "-"
        record.span_id = format(span.span_id, "016x") if span.is_valid else "-"
        event = _handling.get()
        record.event_id = event.id if event else "-"
        record.correlation_id = (event.correlationid or event.id) if event else "-"
        return True


CONTEXT_FIELDS = ("trace_id", "span_id", "event_id", "correlation_id")


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with the context ids `ContextFilter` adds."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "service": self.service,
        }
        for field in CONTEXT_FIELDS:
            value = getattr(record, field, "-")
            if value != "-":
                entry[field] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """One readable line; the context ids `ContextFilter` adds follow where there are any."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(name)s %(levelname)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ids = [
            f"{name}={value}"
            for name, field in (("trace", "trace_id"), ("event", "event_id"))
            if (value := getattr(record, field, "-")) != "-"
        ]
        return f"{line} [{' '.join(ids)}]" if ids else line


def current_traceparent() -> str | None:
    """The W3C `traceparent` of the current span, for an envelope this span publishes."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent")


@contextlib.contextmanager
def handling(event: CloudEvent) -> Iterator[trace.Span]:
    """A consumer span for handling `event`, child of the span that published it; log
    records written inside carry the event's ids."""
    parent = propagate.extract({"traceparent": event.traceparent} if event.traceparent else {})
    token = _handling.set(event)
    try:
        with tracer.start_as_current_span(
            f"process {event.type}",
            context=parent,
            kind=trace.SpanKind.CONSUMER,
            attributes={
                "messaging.message.id": event.id,
                "lightning.event.type": event.type,
                "lightning.correlation_id": event.correlationid or event.id,
                "lightning.hops": event.hops,
            },
        ) as span:
            yield span
    finally:
        _handling.reset(token)


def log_format(settings: Settings) -> LogFormat:
    """JSON in containers and on Azure, text on a laptop, unless LIGHTNING_LOG_FORMAT says."""
    if settings.log_format is not None:
        return settings.log_format
    return LogFormat.TEXT if settings.mode is Mode.EMBEDDED else LogFormat.JSON


def configure_logging(settings: Settings, service: str) -> None:
    """Root logging to stderr in the chosen format, with context ids on every record."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ContextFilter())
    if log_format(settings) is LogFormat.JSON:
        handler.setFormatter(JsonFormatter(service))
    else:
        handler.setFormatter(TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def _exporter_class(module: str, name: str, setting: str, extra: str) -> type[SpanExporter]:
    """An exporter from an extra's package, imported only when its setting asks for it."""
    try:
        exporter: type[SpanExporter] = getattr(importlib.import_module(module), name)
    except ModuleNotFoundError:
        raise ConfigError(
            [f"{setting} is set but {module} is not installed: install lightning-core[{extra}]"]
        ) from None
    return exporter


def span_exporters(settings: Settings) -> list[SpanExporter]:
    """Where this process sends its spans; ConfigError if an exporter's extra is missing."""
    exporters: list[SpanExporter] = []
    if settings.applicationinsights_connection_string:
        azure_monitor = _exporter_class(
            "azure.monitor.opentelemetry.exporter",
            "AzureMonitorTraceExporter",
            "APPLICATIONINSIGHTS_CONNECTION_STRING",
            "azure",
        )
        secret = settings.applicationinsights_connection_string.get_secret_value()
        exporters.append(azure_monitor(connection_string=secret))  # type: ignore[call-arg]
    if settings.otlp_endpoint:
        otlp = _exporter_class(
            "opentelemetry.exporter.otlp.proto.http.trace_exporter",
            "OTLPSpanExporter",
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "local",
        )
        exporters.append(otlp())  # reads OTEL_EXPORTER_OTLP_* itself
    if settings.trace_console:
        exporters.append(ConsoleSpanExporter(out=sys.stderr))
    return exporters


def tracer_provider(settings: Settings, service: str) -> TracerProvider:
    """A provider naming this service, exporting to `span_exporters(settings)` (none: unsampled)."""
    exporters = span_exporters(settings)
    provider = TracerProvider(
        resource=Resource.create(
            {"service.name": f"lightning-{service}", "service.namespace": "lightning-os"}
        ),
        sampler=ParentBased(ALWAYS_ON) if exporters else ALWAYS_OFF,
    )
    for exporter in exporters:
        processor: SpanProcessor = BatchSpanProcessor(exporter)
        provider.add_span_processor(processor)
    return provider


def configure(settings: Settings, service: str) -> TracerProvider:
    """Logging and tracing for this process, once before any service starts; the provider
    returned flushes queued spans on `shutdown()`."""
    configure_logging(settings, service)
    provider = tracer_provider(settings, service)
    trace.set_tracer_provider(provider)
    return provider
