"""`invoke dev`: the whole system on a laptop with nothing but Python.

Runs the same entry point the images run (`python -m lightning_core.runtime`) with every
declared service in one process, because embedded mode's in-memory bus only reaches within a
process; the runtime builds the storage and bus they need together. Prints the URLs once the
services answer, and turns Ctrl-C or SIGTERM into a graceful stop of the runtime with exit 0.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import FrameType

import httpx
from rich.console import Console
from rich.table import Table

from lightning_core.config import ConfigError, Settings, load_settings
from lightning_core.runtime import EXIT_CONFIG
from lightning_core.topology import SERVICES as DECLARED_SERVICES

SERVICES = ",".join(DECLARED_SERVICES)
READY_TIMEOUT = 30.0
CHOSEN_HERE = ("LIGHTNING_MODE", "SERVICE_TYPE", "LIGHTNING_API_URL")


@dataclass(frozen=True)
class Endpoint:
    name: str
    url: str
    health: str


def endpoints(settings: Settings) -> list[Endpoint]:
    api = f"http://{settings.host}:{settings.api_port}"
    ui = f"http://{settings.host}:{settings.ui_port}"
    return [
        Endpoint("UI", ui, f"{ui}/healthz"),
        Endpoint("API", api, f"{api}/healthz"),
        Endpoint("API docs", f"{api}/docs", f"{api}/healthz"),
    ]


def dev_environment(base: Mapping[str, str]) -> dict[str, str]:
    """The runtime's environment: embedded mode and all services unless the caller chose."""
    env = dict(base)
    env.setdefault("LIGHTNING_MODE", "embedded")
    env["SERVICE_TYPE"] = SERVICES
    if "LIGHTNING_API_URL" not in env:
        host = env.get("LIGHTNING_HOST", "127.0.0.1")
        env["LIGHTNING_API_URL"] = f"http://{host}:{env.get('LIGHTNING_API_PORT', '8000')}"
    return env


def wait_until_healthy(
    process: subprocess.Popen[bytes], urls: list[str], timeout: float = READY_TIMEOUT
) -> bool:
    """Poll the health URLs until all answer 200; False if the runtime exits or time runs out."""
    deadline = time.monotonic() + timeout
    pending = list(dict.fromkeys(urls))
    while pending and time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(pending[0], timeout=1.0).status_code == 200:
                pending.pop(0)
                continue
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    return not pending


def run_dev(console: Console | None = None) -> int:
    console = console or Console()
    env = dev_environment(os.environ)
    try:
        settings = load_settings(**{key: env[key] for key in CHOSEN_HERE})
    except ConfigError as error:
        console.print(f"error: {error}", style="red", highlight=False)
        return EXIT_CONFIG
    process = subprocess.Popen([sys.executable, "-m", "lightning_core.runtime"], env=env)

    def forward(_signum: int, _frame: FrameType | None) -> None:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        links = endpoints(settings)
        if wait_until_healthy(process, [link.health for link in links]):
            table = Table(title=f"Lightning OS, {settings.mode} mode", caption="Ctrl-C stops")
            table.add_column("service")
            table.add_column("url")
            for link in links:
                table.add_row(link.name, link.url)
            console.print(table)
        elif process.poll() is None:
            console.print(f"[red]services did not answer within {READY_TIMEOUT:.0f} s[/]")
            process.send_signal(signal.SIGTERM)
        return process.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
