"""The benchmark report on synthetic results: tables, the JSON file and the figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console
from rich.table import Table

from lightning_devtools.bench import report
from lightning_devtools.bench.timeline import Drain, PipelineRun, Results, Sample

START = 1_700_000_000.0
PNG = b"\x89PNG\r\n\x1a\n"


def saturation() -> PipelineRun:
    """20 s accepting 500/s, processing 300/s, until 10 s after the load."""
    samples = []
    for n in range(10_000):
        sent = START + n / 500
        processed = START + (n + 0.5) / 300
        samples.append(Sample(sent, sent + 0.001, processed if processed < START + 30 else None))
    return PipelineRun(
        "saturation, 2 processors",
        "redis",
        2,
        "saturation",
        None,
        START,
        START + 20,
        samples,
        refused=7,
        cpu={"processor": 1.9512, "host": 2.5},
    )


def fixed() -> PipelineRun:
    """20 s at 100/s, each event processed 2-9 ms after its POST (before the next)."""
    samples = []
    for n in range(2_000):
        sent = START + n / 100
        samples.append(Sample(sent, sent + 0.001, sent + 0.002 + 0.007 * (n * 37 % 100) / 100))
    return PipelineRun("fixed 100/s", "redis", 1, "fixed", 100.0, START, START + 20, samples)


def results(*, drains: bool = True, runs: bool = True) -> Results:
    return Results(
        machine={"cpus": 8, "python": "3.11"},
        drains=[
            Drain("faststream peer", "redis", 10_001, 2.0, cpu={"peer": 0.99}),
            Drain("processor", "redis", 10_001, 4.0, "faststream peer", {"processor": 0.97}),
            Drain("processor rabbitmq", "rabbitmq", 5_001, 1.0, "missing path"),
        ]
        if drains
        else [],
        runs=[saturation(), fixed()] if runs else [],
    )


def text(table: Table) -> str:
    console = Console(record=True, width=250)
    console.print(table)
    return console.export_text()


def column(table: Table, name: str) -> list[str]:
    found = next(c for c in table.columns if c.header == name)
    return [str(cell) for cell in found.cells]


def test_the_drains_table_shows_rates_ratios_and_cpu() -> None:
    drains, _runs = report.tables(results())
    assert column(drains, "path") == ["faststream peer", "processor", "processor rabbitmq"]
    assert column(drains, "events/s") == ["5,000", "2,500", "5,000"]
    assert column(drains, report.RATIO) == ["", "0.50", ""]  # no baseline; not measured
    assert column(drains, "baseline") == ["", "faststream peer", "missing path"]
    assert column(drains, "CPU") == ["peer 99%", "processor 97%", ""]
    assert report.cpu_text({"processor": 0.97, "postgres": 0.61}) == (
        "processor 97% · postgres 61%"
    )


def test_the_runs_table_shows_load_latency_and_backlog() -> None:
    _drains, runs = report.tables(results())
    assert column(runs, "run") == ["saturation, 2 processors", "fixed 100/s"]
    assert column(runs, "load") == ["saturation", "fixed 100/s"]
    assert column(runs, "accepted/s") == ["500", "100"]
    assert column(runs, "processed/s") == ["300", "100"]
    assert column(runs, "refused") == ["7", "0"]
    assert column(runs, "unprocessed") == ["1,000", "0"]
    # 10,000 accepted and 6,000 processed by the end of the load, the peak
    assert column(runs, "backlog at end") == ["4,000", "0"]
    assert column(runs, "max backlog") == ["4,000", "1"]
    p50, p99 = column(runs, "p50 ms")[1], column(runs, "p99 ms")[1]
    assert 2 < float(p50) < float(p99) < 9
    assert column(runs, "CPU") == ["processor 195% · host 250%", ""]
    assert "POST sent to event processed" in text(runs)


def test_only_tables_with_rows_are_made() -> None:
    assert [t.title for t in report.tables(results(drains=False))] == [
        "Runs: the pipeline under load"
    ]
    assert report.tables(results(drains=False, runs=False)) == []


def test_the_json_holds_derived_figures_and_a_short_cdf(tmp_path: Path) -> None:
    path = tmp_path / "out" / "bench.json"
    report.write_json(results(), path)
    document = json.loads(path.read_text())
    assert document["machine"] == {"cpus": 8, "python": "3.11"}
    assert [d["ratio"] for d in document["drains"]] == [None, 0.5, None]
    assert document["drains"][1]["per_s"] == 2500.0
    run = document["runs"][0]
    assert run["accepted"] == 10_000
    assert (run["accepted_per_s"], run["processed_per_s"]) == (500.0, 300.0)
    assert (run["refused"], run["unprocessed"]) == (7, 1_000)
    assert (run["max_backlog"], run["backlog_at_end"]) == (4_000, 4_000)
    assert run["cpu"] == {"processor": 1.951, "host": 2.5}
    assert set(run["latency"]) == set(run["answer"]) == {"p50", "p90", "p99", "max"}
    assert run["latency"]["p50"] <= run["latency"]["p99"] <= run["latency"]["max"]
    assert len(run["series"]["time"]) == 30  # processing goes on 10 s after the load
    assert run["series"]["backlog"][19] == 4_000
    cdf = run["latency_cdf"]
    assert len(cdf["quantile"]) == len(cdf["seconds"]) == report.CDF_STEPS + 1
    assert cdf["seconds"] == sorted(cdf["seconds"])
    assert cdf["seconds"][-1] == run["latency"]["max"]
    assert "samples" not in run
    assert path.stat().st_size < 30_000  # figures, not the 12,000 samples


def test_the_cdf_ranks_exactly() -> None:
    values = [float(n) for n in range(1, 101)]
    quantiles, ranked = report.cdf(values, 100)
    assert ranked == values[:1] + values  # quantile 0 is the minimum, k/100 is the k-th
    assert quantiles[7] == 0.07
    assert report.cdf([3.0], 4) == ([0.0, 0.25, 0.5, 0.75, 1.0], [3.0] * 5)
    assert report.cdf([], 100) == ([], [])


@pytest.mark.parametrize(
    ("drains", "runs", "expected"),
    [
        (True, True, ["throughput.png", "backlog.png", "latency.png", "drains.png"]),
        (True, False, ["drains.png"]),
        (False, False, []),
    ],
)
def test_plot_writes_pngs_for_what_there_is(
    tmp_path: Path, drains: bool, runs: bool, expected: list[str]
) -> None:
    written = report.plot(results(drains=drains, runs=runs), tmp_path / "plots")
    assert [path.name for path in written] == expected
    for path in written:
        data = path.read_bytes()
        assert data[:8] == PNG
        assert len(data) > 1_000


def test_no_latency_figure_when_nothing_was_processed() -> None:
    run = PipelineRun(
        "stuck", "redis", 1, "fixed", 10.0, START, START + 1, [Sample(START, START, None)]
    )
    assert report._latency(Results(machine={}, runs=[run])) is None
