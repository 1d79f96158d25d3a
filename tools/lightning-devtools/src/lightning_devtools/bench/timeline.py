"""What the pipeline benchmark measured, and the figures derived from it. Every time is a
wall-clock epoch second of the one machine, so the generator's and the records' times meet."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

Load = Literal["saturation", "fixed"]


@dataclass(frozen=True)
class Sample:
    """One accepted event: POST sent, 202 read, processed (None: not by the end)."""

    sent: float
    accepted: float
    processed: float | None


@dataclass(frozen=True)
class Series:
    """Per-`step` bins from the start of the load: events accepted and processed per
    second in each bin, and the backlog (accepted, not yet processed) at each bin's end."""

    step: float
    time: list[float]
    accepted_per_s: list[float]
    processed_per_s: list[float]
    backlog: list[int]


@dataclass(frozen=True)
class PipelineRun:
    """The real pipeline (API, processor processes, storage, bus) under one load."""

    label: str
    bus: str
    processors: int
    load: Load
    offered: float | None  # events/s the generator aimed at (fixed rate); None: as fast as it can
    started: float  # the load's first and last second
    ended: float
    samples: list[Sample]
    refused: int = 0  # 503 answers (backpressure)
    cpu: dict[str, float] = field(default_factory=dict)  # CPUs used during the load, per kind

    @property
    def duration(self) -> float:
        return self.ended - self.started

    @property
    def accepted_per_s(self) -> float:
        return len(self.samples) / self.duration if self.duration > 0 else 0.0

    @property
    def processed_per_s(self) -> float:
        """Events processed within the load's window, per second of it."""
        done = sum(1 for s in self.samples if s.processed is not None and s.processed <= self.ended)
        return done / self.duration if self.duration > 0 else 0.0

    @property
    def unprocessed(self) -> int:
        return sum(1 for s in self.samples if s.processed is None)

    def backlog_at(self, moment: float) -> int:
        """Events accepted by `moment` and not processed by it."""
        return sum(
            1
            for s in self.samples
            if s.accepted <= moment and (s.processed is None or s.processed > moment)
        )

    def max_backlog(self) -> int:
        """The most events accepted and not yet processed at any one moment."""
        changes: list[tuple[float, int]] = []
        for s in self.samples:
            if s.processed is None or s.processed > s.accepted:
                changes.append((s.accepted, 1))
            if s.processed is not None and s.processed > s.accepted:
                changes.append((s.processed, -1))
        depth = peak = 0
        for _moment, change in sorted(changes):  # at one moment, the -1s come first
            depth += change
            peak = max(peak, depth)
        return peak

    def latencies(self) -> list[float]:
        """Seconds from each POST sent to its event processed, for those processed."""
        return sorted(s.processed - s.sent for s in self.samples if s.processed is not None)

    def answer(self, fraction: float) -> float | None:
        """The `fraction` percentile of seconds from POST sent to its 202 read: the API's
        part of the latency (a fixed-rate POST counts from when it was due)."""
        answers = [s.accepted - s.sent for s in self.samples]
        return percentile(answers, fraction) if answers else None

    def latency(self, fraction: float) -> float | None:
        latencies = self.latencies()
        return percentile(latencies, fraction) if latencies else None

    def series(self, step: float = 1.0) -> Series:
        last = max([self.ended, *(s.processed for s in self.samples if s.processed is not None)])
        bins = max(1, math.ceil((last - self.started) / step))
        accepted, processed = [0] * bins, [0] * bins
        for sample in self.samples:
            accepted[_bin(sample.accepted, self.started, step, bins)] += 1
            if sample.processed is not None:
                processed[_bin(sample.processed, self.started, step, bins)] += 1
        backlog, depth = [], 0
        for came, went in zip(accepted, processed, strict=True):
            depth += came - went
            backlog.append(depth)
        return Series(
            step=step,
            time=[step * (n + 1) for n in range(bins)],
            accepted_per_s=[count / step for count in accepted],
            processed_per_s=[count / step for count in processed],
            backlog=backlog,
        )


@dataclass(frozen=True)
class Drain:
    """A backlog of `events` recorded and published beforehand, drained by `path` in
    `seconds` from the first event processed to the last."""

    path: str
    bus: str
    events: int
    seconds: float
    baseline: str | None = None  # the path this one is compared with, if any
    cpu: dict[str, float] = field(default_factory=dict)  # share of one CPU, per process kind

    @property
    def per_s(self) -> float:
        return (self.events - 1) / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class Results:
    """One `nox -s bench` run."""

    machine: dict[str, str | int | float]
    drains: list[Drain] = field(default_factory=list)
    runs: list[PipelineRun] = field(default_factory=list)

    def drain(self, path: str) -> Drain | None:
        return next((drain for drain in self.drains if drain.path == path), None)

    def ratio(self, drain: Drain) -> float | None:
        """`drain`'s rate over its baseline's, both measured in this run."""
        base = self.drain(drain.baseline) if drain.baseline else None
        return drain.per_s / base.per_s if base and base.per_s else None


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (p99 of 300 values is the 297th smallest); `values` not empty."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def _bin(moment: float, start: float, step: float, bins: int) -> int:
    return min(bins - 1, max(0, int((moment - start) // step)))
