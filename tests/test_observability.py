"""One user action is one trace across the API and the processor, and /metrics counts it.

The real API app and the real processor worker run in this process over the embedded
providers; the spans they finish are collected in memory.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from lightning_api.app import create_app
from lightning_core.domain import PROCESSOR_GROUP
from lightning_core.service import ServiceContext
from lightning_processor.main import service


@pytest.fixture
async def api(context: ServiceContext) -> AsyncIterator[httpx.AsyncClient]:
    """The API, with the processor worker consuming beside it."""
    await context.bus.open_group(PROCESSOR_GROUP)
    stop = asyncio.Event()
    worker = asyncio.create_task(service(context, stop))
    transport = httpx.ASGITransport(app=create_app(context))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        yield client
    stop.set()
    await asyncio.wait_for(worker, 30)


async def processed(client: httpx.AsyncClient, event_id: str) -> None:
    async with asyncio.timeout(10):
        while True:
            records = (await client.get("/api/events", params={"limit": 500})).json()["items"]
            if any(r["event"]["id"] == event_id and r["status"] == "processed" for r in records):
                return
            await asyncio.sleep(0.02)


async def test_a_post_and_everything_it_causes_share_one_trace(
    api: httpx.AsyncClient, spans: InMemorySpanExporter
) -> None:
    instruction = {
        "name": "door",
        "event_type": "door.opened",
        "action": {"kind": "request_task", "task": "notify", "params": {"title": "Door"}},
    }
    assert (await api.post("/api/instructions", json=instruction)).status_code == 201
    posted = await api.post("/api/events", json={"type": "door.opened", "data": {"by": "a"}})
    assert posted.status_code == 202
    event = posted.json()["event"]
    await processed(api, event["id"])
    async with asyncio.timeout(10):  # the task's notification is the last link of the chain
        while not (await api.get("/api/notifications")).json()["items"]:
            await asyncio.sleep(0.02)

    request = next(
        span
        for span in spans.get_finished_spans()
        if span.name == "POST /api/events"
        and span.kind.name == "SERVER"
        and span.context.trace_id == int(event["traceparent"].split("-")[1], 16)
    )
    trace_spans = [
        span
        for span in spans.get_finished_spans()
        if span.context.trace_id == request.context.trace_id
    ]
    handled = {span.name for span in trace_spans if span.kind.name == "CONSUMER"}
    assert handled >= {
        "process door.opened",
        "process lightning.task.requested",
        "process lightning.notification.requested",
    }


async def test_metrics_count_requests_publishes_handling_and_the_backlog(
    api: httpx.AsyncClient,
) -> None:
    posted = await api.post("/api/events", json={"type": "door.opened"})
    await processed(api, posted.json()["event"]["id"])
    response = await api.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert (
        'lightning_http_requests_total{method="POST",route="/api/events",service="api",'
        'status="202"}' in text
    )
    assert 'lightning_events_published_total{outcome="ok"}' in text
    assert f'lightning_events_handled_total{{group="{PROCESSOR_GROUP}",outcome="ok"}}' in text
    assert f'lightning_bus_backlog{{group="{PROCESSOR_GROUP}"}} 0.0' in text
