"""The storage query benchmark with tiny counts, so it cannot rot (no timing is asserted:
the machines are shared and noisy; a benchmark is not a timed test)."""

from __future__ import annotations

import asyncio

import pytest
from rich.console import Console

from lightning_devtools.bench import providers, servers


async def listed() -> tuple[list[providers.Result], list[str]]:
    async with servers.scratch_database() as database_url:
        return await providers.list_queries(database_url, events=300, queries=2)


def test_list_queries_are_measured_and_served_by_the_declared_indexes() -> None:
    results, plans = asyncio.run(listed())
    assert [result.path for result in results] == [
        "postgres list page 1 of 30 events",
        f"postgres list page {providers.DEEP_PAGE} of 30 events",
    ]
    assert all(result.provider > 0 and result.raw for result in results)
    sweep = next(plan for plan in plans if plan.startswith("republish sweep"))
    assert "documents_events_status_received_at" in sweep
    console = Console(record=True, width=200)
    providers.report(results, console)
    assert "offset query, no usable index (before)" in console.export_text()


def test_help_runs_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        providers.main(["--help"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.startswith("usage: python -m lightning_devtools.bench.providers")
