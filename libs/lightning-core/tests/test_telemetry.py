"""Log records carry the ids of the work in hand; an event's handling continues the trace
its publisher started; exporters follow the settings."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export import ConsoleSpanExporter
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from lightning_core import telemetry
from lightning_core.config import ConfigError, LogFormat, Mode, Settings
from lightning_core.events import CloudEvent


@pytest.fixture
def root_logging() -> Iterator[None]:
    """Give the root logger back as the test found it (configure_logging replaces it)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def event(**fields: object) -> CloudEvent:
    return CloudEvent(type="door.opened", source="test", user="u1", **fields)


def test_handling_continues_the_publishers_trace(spans: InMemorySpanExporter) -> None:
    with telemetry.tracer.start_as_current_span("POST /api/events") as request:
        traceparent = telemetry.current_traceparent()
    assert traceparent is not None
    with telemetry.handling(event(traceparent=traceparent)) as handled:
        pass
    assert handled.get_span_context().trace_id == request.get_span_context().trace_id
    finished = {span.name: span for span in spans.get_finished_spans()}
    consumer = finished["process door.opened"]
    assert consumer.parent is not None
    assert consumer.parent.span_id == request.get_span_context().span_id
    assert consumer.kind is trace.SpanKind.CONSUMER


@pytest.mark.usefixtures("spans")
def test_an_event_without_traceparent_starts_a_trace() -> None:
    with telemetry.handling(event()) as handled:
        assert handled.get_span_context().is_valid


@pytest.mark.usefixtures("root_logging", "spans")
def test_json_lines_carry_event_correlation_and_trace_ids(
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = Settings(
        LIGHTNING_MODE=Mode.LOCAL, DATABASE_URL="postgresql://x/y", REDIS_URL="redis://x"
    )
    telemetry.configure_logging(settings, "event-processor")
    handled = event(correlationid="order-7")
    with telemetry.handling(handled) as span:
        logging.getLogger("lightning.test").warning("handled %s", "it")
    logging.getLogger("lightning.test").warning("idle")
    first, second = (json.loads(line) for line in capsys.readouterr().err.splitlines())
    assert first["message"] == "handled it"
    assert first["service"] == "event-processor"
    assert first["event_id"] == handled.id
    assert first["correlation_id"] == "order-7"
    assert first["trace_id"] == format(span.get_span_context().trace_id, "032x")
    assert "event_id" not in second
    assert "trace_id" not in second


def test_text_is_the_laptop_default_and_json_the_container_one() -> None:
    assert telemetry.log_format(Settings()) is LogFormat.TEXT
    local = Settings(LIGHTNING_MODE=Mode.LOCAL)
    assert telemetry.log_format(local) is LogFormat.JSON
    chosen = Settings(LIGHTNING_MODE=Mode.LOCAL, LIGHTNING_LOG_FORMAT="text")
    assert telemetry.log_format(chosen) is LogFormat.TEXT


@pytest.mark.usefixtures("root_logging")
def test_chatty_libraries_log_warnings_only() -> None:
    telemetry.configure_logging(Settings(), "ui")
    assert logging.getLogger("httpx").getEffectiveLevel() == logging.WARNING


def test_exporters_follow_the_settings() -> None:
    assert telemetry.span_exporters(Settings()) == []
    exporters = telemetry.span_exporters(
        Settings(
            OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:4318",
            LIGHTNING_TRACE_CONSOLE=True,
            APPLICATIONINSIGHTS_CONNECTION_STRING=(
                "InstrumentationKey=00000000-0000-0000-0000-000000000000;"
                "IngestionEndpoint=https://example.invalid/"
            ),
        )
    )
    names = [type(exporter).__name__ for exporter in exporters]
    assert names == ["AzureMonitorTraceExporter", "OTLPSpanExporter", "ConsoleSpanExporter"]
    assert isinstance(exporters[-1], ConsoleSpanExporter)


def test_a_missing_exporter_is_one_line_naming_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.http.trace_exporter", None)
    with pytest.raises(ConfigError, match=r"lightning-core\[local\]"):
        telemetry.span_exporters(Settings(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:4318"))


@pytest.mark.usefixtures("root_logging", "spans")
def test_text_lines_name_the_ids_only_where_there_are_any(
    capsys: pytest.CaptureFixture[str],
) -> None:
    telemetry.configure_logging(Settings(), "api")
    logging.getLogger("lightning.test").warning("idle")
    handled = event()
    with telemetry.handling(handled) as span:
        logging.getLogger("lightning.test").warning("busy")
    idle, busy = capsys.readouterr().err.splitlines()
    assert idle.endswith("WARNING idle")
    trace_id = format(span.get_span_context().trace_id, "032x")
    assert busy.endswith(f"WARNING busy [trace={trace_id} event={handled.id}]")
