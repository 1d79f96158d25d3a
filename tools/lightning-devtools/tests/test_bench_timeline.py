"""The benchmark's measured data model and the figures derived from it."""

from __future__ import annotations

import pytest

from lightning_devtools.bench.timeline import Drain, PipelineRun, Results, Sample, percentile


def run(samples: list[Sample], started: float = 100.0, ended: float = 103.0) -> PipelineRun:
    return PipelineRun("run", "redis", 1, "saturation", None, started, ended, samples)


# Accepted in seconds 0, 0, 1 and 2 of a 3 s load; processed in 0 and 1, never, and after it.
SAMPLES = [
    Sample(100.1, 100.2, 100.5),
    Sample(100.6, 100.7, 101.2),
    Sample(101.4, 101.5, None),
    Sample(102.8, 102.9, 104.5),
]


def test_series_bins_events_from_the_start_until_the_last_processed() -> None:
    series = run(SAMPLES).series(1.0)
    assert series.time == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert series.accepted_per_s == [2.0, 1.0, 1.0, 0.0, 0.0]
    assert series.processed_per_s == [1.0, 1.0, 0.0, 0.0, 1.0]
    assert series.backlog == [1, 1, 2, 2, 1]


def test_series_rates_are_per_second_of_each_bin() -> None:
    series = run(SAMPLES).series(2.0)
    assert series.step == 2.0
    assert series.time == [2.0, 4.0, 6.0]
    assert series.accepted_per_s == [1.5, 0.5, 0.0]
    assert series.processed_per_s == [1.0, 0.0, 0.5]
    assert series.backlog == [1, 2, 1]


def test_series_puts_moments_outside_the_bins_in_the_first_or_last() -> None:
    early = Sample(99.0, 99.5, 103.0)  # accepted before the start, processed on the last edge
    series = run([early], ended=103.0).series(1.0)
    assert series.accepted_per_s == [1.0, 0.0, 0.0]
    assert series.processed_per_s == [0.0, 0.0, 1.0]
    assert run([]).series(1.0).backlog == [0, 0, 0]


def test_rates_count_processed_events_only_within_the_load() -> None:
    measured = run(SAMPLES)
    assert measured.duration == 3.0
    assert measured.accepted_per_s == pytest.approx(4 / 3)
    assert measured.processed_per_s == pytest.approx(2 / 3)  # 104.5 is after the load
    assert measured.unprocessed == 1
    empty = run(SAMPLES, ended=100.0)
    assert (empty.accepted_per_s, empty.processed_per_s) == (0.0, 0.0)


def test_latencies_are_sorted_from_post_sent_to_processed() -> None:
    measured = run(SAMPLES)
    assert measured.latencies() == pytest.approx([0.4, 0.6, 1.7])
    assert measured.latency(0.5) == pytest.approx(0.6)
    assert run([Sample(1.0, 1.0, None)]).latency(0.5) is None


def test_answers_run_from_post_sent_to_its_202_processed_or_not() -> None:
    measured = run([Sample(1.0, 1.5, None), Sample(2.0, 2.1, 3.0)])
    assert measured.answer(0.5) == pytest.approx(0.1)
    assert measured.answer(0.99) == pytest.approx(0.5)
    assert run([]).answer(0.5) is None


def test_percentile_is_the_nearest_rank() -> None:
    values = [float(n) for n in range(1, 301)]
    assert percentile(values, 0.99) == 297.0
    assert percentile(values, 0.5) == 150.0
    assert percentile(values, 1.0) == 300.0
    assert percentile(values, 0.0) == 1.0
    assert percentile([4.0, 1.0, 3.0, 2.0], 0.6) == 3.0  # sorted first


def test_backlog_at_a_moment_counts_accepted_not_yet_processed() -> None:
    measured = run(SAMPLES)
    moments = (100.0, 100.2, 100.5, 101.5, 103.0, 105.0)
    assert [measured.backlog_at(t) for t in moments] == [0, 1, 0, 1, 2, 1]


def test_max_backlog_is_the_peak_at_any_moment() -> None:
    assert run(SAMPLES).max_backlog() == 2
    assert run([]).max_backlog() == 0
    # Processed before its 202 was read: never waiting. Processed as the next is accepted: 1.
    racing = [Sample(1.0, 1.2, 1.1), Sample(1.0, 1.3, 1.5), Sample(1.4, 1.5, 1.6)]
    assert run(racing).max_backlog() == 1
    assert [run(racing).backlog_at(t) for t in (1.15, 1.25, 1.5)] == [0, 0, 1]


def test_a_drain_is_compared_with_its_baseline_in_the_same_run() -> None:
    peer = Drain("peer", "redis", 1_001, 1.0)
    processor = Drain("processor", "redis", 1_001, 4.0, baseline="peer")
    orphan = Drain("orphan", "redis", 11, 1.0, baseline="absent")
    results = Results(machine={}, drains=[peer, processor, orphan])
    assert (peer.per_s, processor.per_s) == (1_000.0, 250.0)  # first to last event processed
    assert results.drain("processor") is processor
    assert results.ratio(processor) == 0.25
    assert results.ratio(peer) is None
    assert results.ratio(orphan) is None
    stalled = Drain("peer", "redis", 1, 0.0)
    assert stalled.per_s == 0.0
    assert Results(machine={}, drains=[stalled, processor]).ratio(processor) is None
