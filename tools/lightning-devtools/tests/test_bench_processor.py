"""The processor benchmark with tiny counts, so it cannot rot (no timing is asserted: the
machines are shared and noisy; a benchmark is not a timed test)."""

from __future__ import annotations

import asyncio

from lightning_devtools import bench
from lightning_devtools.bench_processor import processor_plans


async def measured(count: int) -> list[tuple[str, float, float]]:
    async with bench.scratch_database() as database_url:
        return [
            (path, await processor(count), await plain(count))
            for path, processor, plain, _, _ in processor_plans(database_url, count)
        ]


def test_the_processor_and_the_plain_consumer_drain_the_same_events_on_each_bus() -> None:
    results = asyncio.run(measured(50))
    assert [path for path, _, _ in results] == [
        "processor on redis + postgres",
        "processor on rabbitmq + postgres",
    ]
    assert all(processor > 0 and plain > 0 for _, processor, plain in results)
