"""Requests are counted by the route template that served them, with their status."""

from __future__ import annotations

import asyncio

import httpx
from prometheus_client import REGISTRY
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from lightning_core import metrics
from lightning_core.bus.base import RetryPolicy
from lightning_core.bus.memory import MemoryBus
from lightning_core.events import CloudEvent


async def item(request: Request) -> PlainTextResponse:
    if request.path_params["item_id"] == "boom":
        raise RuntimeError("handler failed")
    return PlainTextResponse("ok")


def requests_counted(route: str, status: str) -> float:
    value = REGISTRY.get_sample_value(
        "lightning_http_requests_total",
        {"service": "test", "method": "GET", "route": route, "status": status},
    )
    return value or 0.0


async def test_requests_are_counted_by_template_and_status() -> None:
    app = metrics.RequestMetrics(Starlette(routes=[Route("/items/{item_id}", item)]), "test")
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    before = {
        key: requests_counted(*key)
        for key in [("/items/{item_id}", "200"), ("/items/{item_id}", "500"), ("unmatched", "404")]
    }
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        assert (await client.get("/items/1")).status_code == 200
        assert (await client.get("/items/2")).status_code == 200
        assert (await client.get("/items/boom")).status_code == 500
        assert (await client.get("/nowhere")).status_code == 404
    assert requests_counted("/items/{item_id}", "200") - before["/items/{item_id}", "200"] == 2
    assert requests_counted("/items/{item_id}", "500") - before["/items/{item_id}", "500"] == 1
    assert requests_counted("unmatched", "404") - before["unmatched", "404"] == 1


def test_the_exposition_names_every_metric() -> None:
    text = metrics.exposition().decode()
    for name in (
        "lightning_http_requests_total",
        "lightning_http_request_duration_seconds",
        "lightning_events_published_total",
        "lightning_events_handled_total",
        "lightning_event_handle_duration_seconds",
        "lightning_bus_backlog",
    ):
        assert f"# TYPE {name.removesuffix('_total')}" in text


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_the_bus_loop_counts_publishes_handling_and_dead_letters() -> None:
    bus = MemoryBus(retry=RetryPolicy(max_attempts=2, base_delay=0.0, max_delay=0.0))
    group = "metrics-test"
    published = sample("lightning_events_published_total", outcome="ok")
    handled = {
        outcome: sample("lightning_events_handled_total", group=group, outcome=outcome)
        for outcome in ("ok", "error", "dead_lettered")
    }
    await bus.open_group(group)
    await bus.publish_batch(
        [CloudEvent(source="test", type=kind, user="u") for kind in ("good", "bad")]
    )
    stop = asyncio.Event()

    async def handler(event: CloudEvent) -> None:
        if event.type == "bad":
            raise ValueError("refused")

    consuming = asyncio.create_task(bus.consume(group, handler, stop=stop))
    async with asyncio.timeout(5):
        while not await bus.dead_letters(group):
            await asyncio.sleep(0.01)
    stop.set()
    await consuming
    assert sample("lightning_events_published_total", outcome="ok") - published == 2
    counted = {
        outcome: sample("lightning_events_handled_total", group=group, outcome=outcome)
        - handled[outcome]
        for outcome in handled
    }
    assert counted == {"ok": 1, "error": 2, "dead_lettered": 1}
