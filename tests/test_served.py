"""The services as the runtime serves them: behind the Host check, with JSON logs that carry
each request and each event's ids."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from lightning_core.testing.runtime import RunningSystem, start_runtime


@pytest.fixture
def json_logging_system(tmp_path: Path) -> Iterator[RunningSystem]:
    env = {
        "LIGHTNING_MODE": "embedded",
        "LIGHTNING_SQLITE_PATH": str(tmp_path / "system.db"),
        "LIGHTNING_LOG_FORMAT": "json",
        "LIGHTNING_ACCESS_LOG": "true",  # off by default in embedded mode
        "LIGHTNING_LOG_LEVEL": "DEBUG",  # the processor's line per event is a DEBUG one
    }
    with start_runtime(env, tmp_path, services="api,event-processor,ui") as system:
        yield system


def log_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]


def test_a_rebound_host_name_is_refused_and_probes_answer_any(
    json_logging_system: RunningSystem,
) -> None:
    for url in (json_logging_system.api_url, json_logging_system.ui_url):
        assert httpx.get(f"{url}/healthz").status_code == 200
        refused = httpx.get(f"{url}/", headers={"host": "attacker.example"})
        assert refused.status_code == 400, url
        assert "LIGHTNING_ALLOWED_HOSTS" in refused.text
        probe = httpx.get(f"{url}/healthz", headers={"host": "10.0.0.7:8000"})
        assert probe.status_code == 200


def test_logs_are_json_with_access_lines_and_the_events_ids(
    json_logging_system: RunningSystem, tmp_path: Path
) -> None:
    api = json_logging_system.api_url
    posted = httpx.post(f"{api}/api/events", json={"type": "door.opened"})
    assert posted.status_code == 202
    event = posted.json()["event"]
    trace_id = event["traceparent"].split("-")[1]
    deadline = time.monotonic() + 10
    while True:
        lines = log_lines(tmp_path / "runtime.log")
        handled = [line for line in lines if line.get("event_id") == event["id"]]
        if handled or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert handled, "no log line names the event"
    assert all(line["trace_id"] == trace_id for line in handled)
    assert all(line["correlation_id"] == event["id"] for line in handled)
    access = [line for line in lines if line["logger"] == "uvicorn.access"]
    assert any("POST /api/events" in line["message"] for line in access)


def test_a_laptop_terminal_gets_no_line_per_request(
    embedded_system: RunningSystem, tmp_path: Path
) -> None:
    for _ in range(5):
        assert httpx.get(f"{embedded_system.ui_url}/").status_code == 200
    log = (tmp_path / "runtime.log").read_text()
    assert '"GET /' not in log
    assert "HTTP Request:" not in log
