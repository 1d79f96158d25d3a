"""`python -m lightning_devtools.bench.streams` with tiny counts, so the benchmark cannot rot.

Only that every measurement runs and is reported: the numbers themselves are never
asserted (these machines are shared and noisy; a benchmark is not a timed test)."""

from rich.console import Console

from lightning_devtools.bench import streams


def test_every_measurement_runs_and_is_reported() -> None:
    console = Console(record=True, width=200)
    measurements = streams.measure(
        streams=3, window=0.5, load_streams=4, events=20, count=5, console=console
    )

    assert [rate.label for rate in measurements.rates] == [
        "no stream",
        "3 idle streams",
        "3 streams, 0.5 s after one POST",
    ]
    assert all(rate.per_second >= 0 for rate in measurements.rates)
    assert [(result.label, result.count) for result in measurements.posts] == [
        ("POST, no stream, 20 records", 5),
        ("POST, 4 streams, 20 records", 5),
    ]
    assert all(0 < result.p50 <= result.p99 for result in measurements.posts)

    streams.report(measurements, console)
    text = console.export_text()
    assert "PostgreSQL transactions/s" in text
    assert "target (< 100 ms)" in text
