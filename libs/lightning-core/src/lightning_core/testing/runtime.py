"""The runtime as a process of its own, hosting the services a test names."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from lightning_core.testing.health import wait_until_healthy
from lightning_core.testing.machine import free_port


@dataclass(frozen=True)
class RunningSystem:
    api_url: str
    ui_url: str


def clean_environment() -> dict[str, str]:
    """This process's environment without the Lightning settings it may carry (a developer's
    shell, CI's DATABASE_URL), so a runtime under test sees only what the test gives it."""
    connection = {"DATABASE_URL", "REDIS_URL", "RABBITMQ_URL", "SERVICE_TYPE"}
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("LIGHTNING_") and key not in connection
    }


@contextlib.contextmanager
def start_runtime(env: Mapping[str, str], cwd: Path, *, services: str) -> Iterator[RunningSystem]:
    """`python -m lightning_core.runtime` hosting `services` with `env` (over the clean
    environment), on free ports; yields once healthy and ready, and requires a clean stop
    (exit 0) on SIGTERM. Failures show the end of the runtime's log."""
    api_port, ui_port = free_port(), free_port()
    system = RunningSystem(f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{ui_port}")
    health = [f"{system.api_url}/healthz", f"{system.api_url}/readyz"]
    if "ui" in services.split(","):
        health.append(f"{system.ui_url}/healthz")
    cwd.mkdir(parents=True, exist_ok=True)
    log_path = cwd / "runtime.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "lightning_core.runtime"],
            env={
                **clean_environment(),
                **env,
                "SERVICE_TYPE": services,
                "LIGHTNING_API_PORT": str(api_port),
                "LIGHTNING_UI_PORT": str(ui_port),
                "LIGHTNING_API_URL": system.api_url,
            },
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            ready = wait_until_healthy(process, health)
            assert ready, f"the runtime ({services}) did not become ready:\n{_tail(log_path)}"
            yield system
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                code = process.wait(timeout=60)  # an embedded processor may drain for 30 s
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                raise
            assert code == 0, f"the runtime exited {code} on SIGTERM:\n{_tail(log_path)}"


def _tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
