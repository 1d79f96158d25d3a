"""`python -m lightning_devtools.bench_api` with tiny counts, so the benchmark cannot rot.

Only that every path runs and reports: the numbers themselves are never asserted (these
machines are shared and noisy; a benchmark is not a timed test)."""

import os
import shutil
import subprocess
import sys

import pytest
from rich.console import Console

from lightning_devtools import bench_api


@pytest.mark.parametrize(
    "generator",
    [
        "asyncio",
        pytest.param(
            "wrk",
            marks=pytest.mark.skipif(not shutil.which("wrk"), reason=bench_api.INSTALL_WRK),
        ),
    ],
)
def test_every_measurement_runs_and_is_reported(generator: bench_api.Generator) -> None:
    measurements = bench_api.measure(
        generator, connections=4, duration=1, warmup=0.2, events=5, rounds=2
    )

    assert measurements.generator == generator
    assert measurements.throughput.provider > 0
    assert measurements.throughput.raw
    assert measurements.throughput.raw > 0
    assert [(latency.path, latency.count) for latency in measurements.latencies] == [
        ("POST → processed, embedded (SQLite + memory)", 5),
        ("POST → processed, embedded (SQLite + memory)", 5),
        ("POST → processed, local (PostgreSQL + Redis)", 5),
        ("POST → processed, local (PostgreSQL + Redis)", 5),
    ]
    assert all(0 < latency.p50 <= latency.p99 for latency in measurements.latencies)

    console = Console(record=True, width=200)
    bench_api.report(measurements, console)
    text = console.export_text()
    assert "POST /api/events" in text
    assert "target (>= 70% of bare)" in text
    assert "median of 2" in text


def test_percentile_is_nearest_rank() -> None:
    values = [float(n) for n in range(1, 301)]
    assert bench_api.percentile(values, 0.50) == 150
    assert bench_api.percentile(values, 0.99) == 297
    assert bench_api.percentile([7.0], 0.99) == 7


@pytest.mark.skipif(bench_api.SERVER_CPUS is None, reason="needs Linux CPU affinity and 2+ CPUs")
def test_servers_and_load_start_on_cpus_of_their_own() -> None:
    server, load = bench_api.SERVER_CPUS, bench_api.LOAD_CPUS
    assert server is not None
    assert load is not None
    assert not server & load
    mine = os.sched_getaffinity(0)
    for cpus in (server, load):
        with bench_api.started_on(cpus):
            child = subprocess.run(
                [sys.executable, "-c", "import os; print(sorted(os.sched_getaffinity(0)))"],
                check=True,
                capture_output=True,
                text=True,
            )
        assert child.stdout.strip() == str(sorted(cpus))
        assert os.sched_getaffinity(0) == mine
