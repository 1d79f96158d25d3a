"""`python -m lightning_devtools.bench.api` with tiny counts, so the benchmark cannot rot.

Only that every path runs and reports: the numbers themselves are never asserted (these
machines are shared and noisy; a benchmark is not a timed test)."""

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from lightning_devtools.bench import api


@pytest.mark.parametrize(
    "generator",
    [
        "asyncio",
        pytest.param(
            "wrk",
            marks=pytest.mark.skipif(not shutil.which("wrk"), reason=api.INSTALL_WRK),
        ),
    ],
)
def test_every_measurement_runs_and_is_reported(generator: api.Generator) -> None:
    measurements = api.measure(
        generator, connections=4, duration=1, warmup=0.2, events=5, rounds=2, batch_size=10
    )

    assert measurements.generator == generator
    assert len(measurements.throughput.pairs) == 2
    assert all(bare > 0 and real > 0 for bare, real in measurements.throughput.pairs)
    assert len(measurements.batching.pairs) == 2
    assert all(one > 0 and many > 0 for one, many in measurements.batching.pairs)
    assert [(latency.path, latency.count) for latency in measurements.latencies] == [
        ("POST → processed, embedded (SQLite + memory)", 5),
        ("POST → processed, embedded (SQLite + memory)", 5),
        ("POST → processed, local (PostgreSQL + Redis)", 5),
        ("POST → processed, local (PostgreSQL + Redis)", 5),
    ]
    assert all(0 < latency.p50 <= latency.p99 for latency in measurements.latencies)

    console = Console(record=True, width=200)
    api.report(measurements, console)
    text = console.export_text()
    assert "POST /api/events" in text
    assert "events/s in batches of 10, embedded" in text
    assert "target (>= 70% of bare, median of the pairs' ratios)" in text
    assert "2 pairs" in text


def test_the_ratio_is_the_median_of_each_pairs_ratio() -> None:
    # The machine slows down during the run, and one pair is disturbed: each side's median
    # comes from a different pair, and their ratio (1800 / 3000) would say 0.6.
    throughput = api.Throughput([(4000, 3600), (3000, 1500), (2000, 1800)], "label")

    assert throughput.ratios == [0.9, 0.5, 0.9]
    assert throughput.ratio == 0.9
    assert (throughput.bare, throughput.api) == (3000, 1800)


def test_the_side_that_goes_first_alternates(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    @contextlib.contextmanager
    def fake_server(side: str) -> Iterator[str]:
        yield side

    rates = iter([100.0, 80.0, 90.0, 100.0, 100.0, 70.0])
    order: list[str] = []

    def fake_rate(url: str, *_: object) -> float:
        order.append(url)
        return next(rates)

    monkeypatch.setattr(api, "bare_server", lambda: fake_server("bare"))
    monkeypatch.setattr(api, "embedded_server", lambda _path: fake_server("api"))
    monkeypatch.setattr(api, "post_rate", fake_rate)

    throughput = api.measure_throughput("wrk", 4, 1, 0, rounds=3, work=tmp_path)

    assert order == ["bare", "api", "api", "bare", "bare", "api"]
    assert throughput.pairs == [(100, 80), (100, 90), (100, 70)]
