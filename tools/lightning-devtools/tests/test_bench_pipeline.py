"""`nox -s bench` with tiny counts, so the benchmark cannot rot: every path runs and lands in
the JSON and the plots. The numbers themselves are never asserted (these machines are
shared and noisy; a benchmark is not a timed test)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from lightning_devtools.bench import pipeline

SHORT = ["--drain-events", "200", "--saturation", "2", "--duration", "2"]


def test_help_describes_the_options_and_runs_nothing() -> None:
    shown = subprocess.run(
        [sys.executable, "-m", "lightning_devtools.bench.pipeline", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "--saturation" in shown.stdout
    assert "--fraction" in shown.stdout


def test_an_unknown_bus_is_refused_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        pipeline.main(["--buses", "kafka"])
    assert exited.value.code == 2
    assert "unknown bus kafka" in capsys.readouterr().err


@pytest.mark.timeout(600)
@pytest.mark.usefixtures("postgres_database", "redis_namespace")  # skip or fail without them
async def test_a_short_run_measures_every_path_and_writes_json_and_plots(tmp_path: Path) -> None:
    """On Redis (where the FastStream peer runs) and embedded mode; RabbitMQ's drains and
    runs are the same code with another bus setting."""
    argv = ["--buses", "redis,embedded", *SHORT, "--out", str(tmp_path)]
    assert await asyncio.to_thread(pipeline.main, argv) == 0
    check_written(tmp_path)


def check_written(tmp_path: Path) -> None:
    results = json.loads((tmp_path / "results.json").read_text())
    assert [drain["path"] for drain in results["drains"]] == [
        "1 processor · redis",
        "2 processors · redis",
        "plain consumer · redis",
        "FastStream · redis",
    ]
    assert all(drain["events"] == 200 for drain in results["drains"])
    assert [run["label"].split(" ")[:3] for run in results["runs"]] == [
        ["redis", "·", "saturation"],
        ["redis", "·", "fixed"],
        ["embedded", "·", "saturation"],
        ["embedded", "·", "fixed"],
    ]
    assert all(run["unprocessed"] == 0 for run in results["runs"])
    assert {path.name for path in tmp_path.glob("*.png")} == {
        "throughput.png",
        "backlog.png",
        "latency.png",
        "drains.png",
    }
