"""The benchmarks' processes: free ports, CPU placement, servers started and stopped, CPU
time read back from /proc."""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from lightning_core.testing.health import wait_until_healthy

RUNTIME = [sys.executable, "-m", "lightning_core.runtime"]
Pids = Callable[[], list[int]]  # the processes of one kind, as they are when called


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def cpu_split() -> tuple[frozenset[int] | None, frozenset[int] | None]:
    """One CPU for the server under test and the others for the load generator (Linux, two
    or more CPUs); (None, None) elsewhere, and everything shares every CPU."""
    if not hasattr(os, "sched_getaffinity"):
        return None, None
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None, None
    return frozenset(cpus[:1]), frozenset(cpus[1:])


SERVER_CPUS, LOAD_CPUS = cpu_split()


@contextlib.contextmanager
def started_on(cpus: frozenset[int] | None) -> Iterator[None]:
    """Processes started inside run on `cpus`: a child inherits its parent's CPU affinity."""
    if cpus is None:
        yield
        return
    previous = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, previous)


def runtime_env(**settings: str) -> dict[str, str]:
    """This environment without LIGHTNING_ settings or SERVICE_TYPE, plus `settings`."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("LIGHTNING_")}
    env.pop("SERVICE_TYPE", None)
    env.update(settings)
    return env


@contextlib.contextmanager
def running(
    argv: list[str],
    env: Mapping[str, str],
    *,
    health: str | None = None,
    cpus: frozenset[int] | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """A process started with `argv`, ready once `health` (a URL) answers 200 if given;
    stopped with SIGTERM afterwards (killed if it takes over 30 s)."""
    with tempfile.TemporaryDirectory(prefix="lightning-bench-") as work:
        log_path = Path(work) / "process.log"
        with log_path.open("wb") as log, started_on(cpus):
            process = subprocess.Popen(  # noqa: S603 - argv built by the benchmarks: this python
                argv, env=dict(env), cwd=work, stdout=subprocess.DEVNULL, stderr=log
            )
        try:
            if health is not None and not wait_until_healthy(process, [health]):
                tail = log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{' '.join(argv)} did not become healthy:\n{tail}")
            yield process
        finally:
            stop(process)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextlib.contextmanager
def server(argv: list[str], env: Mapping[str, str], port: int) -> Iterator[str]:
    """Start a server process on `port` (on SERVER_CPUS), yield its URL once /healthz
    answers, stop it after."""
    url = f"http://127.0.0.1:{port}"
    with running(argv, env, health=f"{url}/healthz", cpus=SERVER_CPUS):
        yield url


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds the process has used so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def named(name: str) -> Pids:
    """The processes whose command name is `name`, listed again at each call."""
    return functools.partial(pids_named, name)


def pids_named(name: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip() == name:
                    found.append(int(entry.name))
    return found


class CpuMeter:
    """The CPUs each kind of process, and the host, used between construction and `shares`.
    Call `sample` often: a process that ends counts up to its last sample."""

    def __init__(self, kinds: Mapping[str, Pids]) -> None:
        self.kinds = kinds
        self.started = time.monotonic()
        self.seen: dict[str, dict[int, float]] = {kind: {} for kind in kinds}
        self.sample()
        self.before = {pid: spent for seen in self.seen.values() for pid, spent in seen.items()}
        self.host = host_ticks()

    def sample(self) -> None:
        for kind, pids in self.kinds.items():
            for pid in pids():
                if spent := cpu_seconds(pid):
                    self.seen[kind][pid] = spent

    def shares(self) -> dict[str, float]:
        self.sample()
        wall = time.monotonic() - self.started
        shares = {
            kind: round(
                sum(spent - self.before.get(pid, 0.0) for pid, spent in seen.items()) / wall, 2
            )
            for kind, seen in self.seen.items()
        }
        busy, total = (now - then for now, then in zip(host_ticks(), self.host, strict=True))
        shares["host"] = round(busy / total * (os.cpu_count() or 1), 2) if total else 0.0
        return shares


def host_ticks() -> tuple[int, int]:
    """(busy, all) CPU ticks of the host since boot (/proc/stat; zeros elsewhere)."""
    with contextlib.suppress(OSError):
        ticks = [int(n) for n in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = ticks[3] + ticks[4]  # idle, iowait
        return sum(ticks) - idle, sum(ticks)
    return 0, 0
