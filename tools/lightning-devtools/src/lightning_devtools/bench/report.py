"""The pipeline benchmark's report: rich tables to print, a JSON file to keep, PNG figures
(matplotlib is imported only to draw them)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.table import Table

from lightning_devtools.bench.timeline import Drain, PipelineRun, Results, Series, percentile
from lightning_devtools.errors import ToolError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

CDF_STEPS = 100  # the JSON latency CDF: quantiles 0, 1/100, ..., 1
LATENCY = {"p50": 0.5, "p90": 0.9, "p99": 0.99, "max": 1.0}
WIDTH, DPI = 7.5, 120  # 900 px wide: a README's width at its natural size
LOAD_AXIS = "seconds from start of load"
TIMES = "\N{MULTIPLICATION SIGN}"
RATIO = f"{TIMES} baseline"


def tables(results: Results) -> list[Table]:
    """The drains table and the runs table, each only when there is a row for it."""
    made = []
    if results.drains:
        made.append(_drains_table(results))
    if results.runs:
        made.append(_runs_table(results.runs))
    return made


def _drains_table(results: Results) -> Table:
    table = Table(
        title="Drains: a recorded backlog processed as fast as it goes",
        caption=f"{RATIO}: events/s over the baseline path's, both measured in this run",
    )
    for name in ("path", "bus", "events", "seconds", "events/s", RATIO, "baseline", "CPU"):
        table.add_column(name, justify="right" if name in _NUMERIC else "left")
    for drain in results.drains:
        ratio = results.ratio(drain)
        table.add_row(
            drain.path,
            drain.bus,
            f"{drain.events:,}",
            f"{drain.seconds:,.2f}",
            f"{drain.per_s:,.0f}",
            f"{ratio:.2f}" if ratio is not None else "",
            drain.baseline or "",
            cpu_text(drain.cpu),
        )
    return table


_NUMERIC = {"events", "seconds", "events/s", RATIO, "accepted/s", "processed/s"}
_NUMERIC |= {"refused", "p50 ms", "p99 ms", "202 p99 ms", "max backlog", "backlog at end"}
_NUMERIC |= {"unprocessed"}


def _runs_table(runs: list[PipelineRun]) -> Table:
    table = Table(
        title="Runs: the pipeline under load",
        caption=(
            "processed/s: within the load's window · backlog: accepted, not yet processed · "
            "latency: POST sent to event processed · 202 p99: POST sent to its answer"
        ),
    )
    columns = ("run", "load", "accepted/s", "processed/s", "refused", "p50 ms", "p99 ms")
    for name in (*columns, "202 p99 ms", "max backlog", "backlog at end", "unprocessed", "CPU"):
        table.add_column(name, justify="right" if name in _NUMERIC else "left")
    for run in runs:
        table.add_row(
            run.label,
            load_text(run),
            f"{run.accepted_per_s:,.0f}",
            f"{run.processed_per_s:,.0f}",
            f"{run.refused:,}",
            ms_text(run.latency(0.5)),
            ms_text(run.latency(0.99)),
            ms_text(run.answer(0.99)),
            f"{run.max_backlog():,}",
            f"{run.backlog_at(run.ended):,}",
            f"{run.unprocessed:,}",
            cpu_text(run.cpu),
        )
    return table


def cpu_text(cpu: dict[str, float]) -> str:
    """CPUs used per process kind, e.g. "processor 97% · postgres 61%" (200%: two CPUs)."""
    return " · ".join(f"{kind} {share:.0%}" for kind, share in cpu.items())


def load_text(run: PipelineRun) -> str:
    if run.load == "fixed" and run.offered is not None:
        return f"fixed {run.offered:,.0f}/s"
    return run.load


def ms_text(seconds: float | None) -> str:
    if seconds is None:
        return ""
    ms = seconds * 1e3
    return f"{ms:,.1f}" if ms < 100 else f"{ms:,.0f}"


def write_json(results: Results, path: Path) -> None:
    """Write `results` for machines: every drain and run with its derived figures, each run's
    1-second series and a latency CDF of CDF_STEPS + 1 points, never the raw samples.

    Times, durations and latencies are in seconds, rates in events per second.
    """
    document = {
        "machine": results.machine,
        "drains": [_drain_json(results, drain) for drain in results.drains],
        "runs": [_run_json(run) for run in results.runs],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")


def _drain_json(results: Results, drain: Drain) -> dict[str, Any]:
    return {
        "path": drain.path,
        "bus": drain.bus,
        "events": drain.events,
        "seconds": round(drain.seconds, 4),
        "per_s": round(drain.per_s, 2),
        "baseline": drain.baseline,
        "ratio": _round(results.ratio(drain), 3),
        "cpu": _cpu_json(drain.cpu),
    }


def _cpu_json(cpu: dict[str, float]) -> dict[str, float]:
    return {kind: round(share, 3) for kind, share in cpu.items()}


def _run_json(run: PipelineRun) -> dict[str, Any]:
    ordered = run.latencies()
    quantiles, seconds = cdf(ordered, CDF_STEPS)
    return {
        "label": run.label,
        "bus": run.bus,
        "processors": run.processors,
        "load": run.load,
        "offered": run.offered,
        "started": round(run.started, 3),
        "ended": round(run.ended, 3),
        "duration": round(run.duration, 3),
        "accepted": len(run.samples),
        "accepted_per_s": round(run.accepted_per_s, 2),
        "processed_per_s": round(run.processed_per_s, 2),
        "refused": run.refused,
        "unprocessed": run.unprocessed,
        "latency": {name: _round(run.latency(q), 6) for name, q in LATENCY.items()},
        "answer": {name: _round(run.answer(q), 6) for name, q in LATENCY.items()},
        "max_backlog": run.max_backlog(),
        "backlog_at_end": run.backlog_at(run.ended),
        "cpu": _cpu_json(run.cpu),
        "series": _series_json(run.series(1.0)),
        "latency_cdf": {"quantile": quantiles, "seconds": [round(s, 6) for s in seconds]},
    }


def _series_json(series: Series) -> dict[str, Any]:
    return {
        "step": series.step,
        "time": [round(t, 3) for t in series.time],
        "accepted_per_s": [round(r, 2) for r in series.accepted_per_s],
        "processed_per_s": [round(r, 2) for r in series.processed_per_s],
        "backlog": series.backlog,
    }


def cdf(ordered: list[float], steps: int) -> tuple[list[float], list[float]]:
    """Quantiles 0, 1/steps, ..., 1 of sorted values and their nearest-rank values (none if
    empty); ranks are counted in integers, so 7/100 of 100 values is the 7th, not the 8th."""
    if not ordered:
        return [], []
    count = len(ordered)
    ranks = [max(1, -(-step * count // steps)) for step in range(steps + 1)]
    return [step / steps for step in range(steps + 1)], [ordered[rank - 1] for rank in ranks]


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def plot(results: Results, directory: Path) -> list[Path]:
    """Draw throughput.png, backlog.png, latency.png and drains.png into `directory`, each only
    when there is data for it; return the files written."""
    builders: dict[str, Callable[[Results], Figure | None]] = {
        "throughput.png": _throughput,
        "backlog.png": _backlog,
        "latency.png": _latency,
        "drains.png": _drains,
    }
    written = []
    for name, build in builders.items():
        figure = build(results)
        if figure is None:
            continue
        directory.mkdir(parents=True, exist_ok=True)
        figure.savefig(directory / name, dpi=DPI)
        written.append(directory / name)
    return written


def _figure(height: float) -> Figure:
    """A figure on Agg's canvas, outside pyplot's registry (so nothing to close)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415 - bench only
        from matplotlib.figure import Figure  # noqa: PLC0415
    except ImportError as error:
        raise ToolError("The benchmark's plots need matplotlib", "uv sync --group bench") from error
    figure = Figure(figsize=(WIDTH, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _throughput(results: Results) -> Figure | None:
    if not results.runs:
        return None
    figure = _figure(0.8 + 2.0 * len(results.runs))
    axes = figure.subplots(len(results.runs), 1, sharex=True, squeeze=False)[:, 0]
    for ax, run in zip(axes, results.runs, strict=True):
        series = run.series(1.0)
        edges = [0.0, *series.time]
        ax.stairs(series.accepted_per_s, edges, baseline=None, label="accepted/s", linewidth=2.5)
        ax.stairs(series.processed_per_s, edges, baseline=None, label="processed/s", linewidth=1.5)
        ax.axvline(run.duration, color="0.4", linestyle=":", label="end of load")
        ax.set_title(run.label, fontsize="medium", loc="left")
        ax.set_ylabel("events/s")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    figure.legend(*axes[0].get_legend_handles_labels(), loc="outside upper center", ncols=3)
    figure.supxlabel(LOAD_AXIS, fontsize="medium")
    return figure


def _backlog(results: Results) -> Figure | None:
    if not results.runs:
        return None
    figure = _figure(3.6)
    ax = figure.subplots()
    for run in results.runs:
        series = run.series(1.0)
        (line,) = ax.plot([0.0, *series.time], [0, *series.backlog], label=run.label)
        ax.axvline(run.duration, color=line.get_color(), linestyle=":")
    ax.set_title("Backlog: events accepted, not yet processed (dotted: end of load)")
    ax.set_xlabel(LOAD_AXIS)
    ax.set_ylabel("events")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return figure


def _latency(results: Results) -> Figure | None:
    measured = [(run.label, run.latencies()) for run in results.runs]
    measured = [(label, ordered) for label, ordered in measured if ordered]
    if not measured:
        return None
    figure = _figure(3.8)
    ax = figure.subplots()
    for label, ordered in measured:
        p50, p99 = percentile(ordered, 0.5), percentile(ordered, 0.99)
        text = f"{label}: p50 {ms_text(p50)} ms, p99 {ms_text(p99)} ms"
        line = ax.ecdf([seconds * 1e3 for seconds in ordered], label=text)
        ax.plot([p50 * 1e3, p99 * 1e3], [0.5, 0.99], "o", color=line.get_color(), markersize=5)
    ax.set_xscale("log")
    ax.set_title("POST sent to event processed (dots: p50 and p99)")
    ax.set_xlabel("milliseconds (log scale)")
    ax.set_ylabel("share of events processed")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize="small", loc="lower right")
    return figure


def _drains(results: Results) -> Figure | None:
    if not results.drains:
        return None
    drains = results.drains
    baselines = {drain.baseline for drain in drains}
    figure = _figure(1.0 + 0.45 * len(drains))
    ax = figure.subplots()
    rows = range(len(drains))
    colors = ["0.65" if drain.path in baselines else "C0" for drain in drains]
    bars = ax.barh(rows, [drain.per_s for drain in drains], color=colors, height=0.6)
    ax.bar_label(bars, [_drain_label(results, drain) for drain in drains], padding=4)
    ax.set_yticks(rows, [drain.path for drain in drains])
    ax.invert_yaxis()
    ax.margins(x=0.45)  # room for the labels right of the bars
    ax.set_xlim(left=0)
    ax.set_title("Drain rate (grey: a baseline)")
    ax.set_xlabel("events/s")
    ax.grid(alpha=0.3, axis="x")
    return figure


def _drain_label(results: Results, drain: Drain) -> str:
    ratio = results.ratio(drain)
    rate = f"{drain.per_s:,.0f}/s"
    return f"{rate} · {ratio:.2f}{TIMES} {drain.baseline}" if ratio is not None else rate
