"""Where the benchmarks' processes run, and what they are charged."""

import os
import subprocess
import sys
import time

import pytest

from lightning_devtools.bench import processes

BUSY_THEN_IDLE = """
import time
end = time.process_time() + 0.3
while time.process_time() < end:
    pass
time.sleep(30)
"""


@pytest.mark.skipif(processes.SERVER_CPUS is None, reason="needs Linux CPU affinity and 2+ CPUs")
def test_servers_and_load_start_on_cpus_of_their_own() -> None:
    server, load = processes.SERVER_CPUS, processes.LOAD_CPUS
    assert server is not None
    assert load is not None
    assert not server & load
    mine = os.sched_getaffinity(0)
    for cpus in (server, load):
        with processes.started_on(cpus):
            child = subprocess.run(
                [sys.executable, "-c", "import os; print(sorted(os.sched_getaffinity(0)))"],
                check=True,
                capture_output=True,
                text=True,
            )
        assert child.stdout.strip() == str(sorted(cpus))
        assert os.sched_getaffinity(0) == mine


def test_cpu_seconds_grow_with_work_and_are_zero_once_gone() -> None:
    child = subprocess.Popen([sys.executable, "-c", BUSY_THEN_IDLE])
    try:
        deadline = time.monotonic() + 10
        while processes.cpu_seconds(child.pid) < 0.25 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert processes.cpu_seconds(child.pid) >= 0.25
        assert child.pid not in processes.pids_named("postgres")
    finally:
        child.kill()
        child.wait()
    assert processes.cpu_seconds(child.pid) == 0.0


def test_the_meter_charges_each_kind_its_cpu_and_counts_processes_started_meanwhile() -> None:
    started: list[int] = []
    meter = processes.CpuMeter({"busy": lambda: started, "none": list})
    child = subprocess.Popen([sys.executable, "-c", BUSY_THEN_IDLE])  # after the meter
    started.append(child.pid)
    try:
        deadline = time.monotonic() + 10
        while processes.cpu_seconds(child.pid) < 0.25 and time.monotonic() < deadline:
            time.sleep(0.05)
        shares = meter.shares()
    finally:
        child.kill()
        child.wait()
    assert shares["busy"] > 0.1
    assert shares["none"] == 0
    assert 0 < shares["host"] <= (os.cpu_count() or 1)
