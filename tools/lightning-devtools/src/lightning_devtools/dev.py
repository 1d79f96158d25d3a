"""`invoke dev`: the whole system on a laptop with nothing but Python.

The images' entry point with every service in one process (embedded mode's bus is in-process);
Ctrl-C or SIGTERM stops the runtime gracefully.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from types import FrameType

from rich.console import Console
from rich.table import Table

from lightning_core.config import ConfigError, Settings, load_settings
from lightning_core.runtime import EXIT_CONFIG
from lightning_core.testing.health import READY_TIMEOUT, wait_until_healthy
from lightning_core.topology import SERVICES as DECLARED_SERVICES

SERVICES = ",".join(DECLARED_SERVICES)


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
    """The runtime's environment: every service; the mode and providers are the caller's
    (the environment, then .env; embedded by default)."""
    return {**base, "SERVICE_TYPE": SERVICES}


def api_url(settings: Settings) -> str:
    """Where the UI reaches the API in this process: LIGHTNING_API_URL if set (environment
    or .env), else the API's own address (LIGHTNING_HOST, LIGHTNING_API_PORT)."""
    if "api_url" in settings.model_fields_set:
        return settings.api_url
    return f"http://{settings.host}:{settings.api_port}"


def banner(settings: Settings) -> str:
    """What `invoke dev` runs, as the loaded settings chose it."""
    return (
        f"Lightning OS, {settings.mode} mode: storage {settings.storage}, bus {settings.event_bus}"
    )


def run_dev(console: Console | None = None) -> int:
    console = console or Console()
    env = dev_environment(os.environ)
    try:
        settings = load_settings(SERVICE_TYPE=SERVICES)
    except ConfigError as error:
        console.print(f"error: {error}", style="red", highlight=False)
        return EXIT_CONFIG
    env["LIGHTNING_API_URL"] = api_url(settings)
    process = subprocess.Popen([sys.executable, "-m", "lightning_core.runtime"], env=env)

    def forward(_signum: int, _frame: FrameType | None) -> None:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        links = endpoints(settings)
        if wait_until_healthy(process, [link.health for link in links]):
            table = Table(title=banner(settings), caption="Ctrl-C stops")
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
