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
from lightning_core.providers import STARTUP_WAIT
from lightning_core.runtime import EXIT_CONFIG
from lightning_core.topology import SERVICES as DECLARED_SERVICES

SERVICES = ",".join(DECLARED_SERVICES)
# The runtime may wait STARTUP_WAIT for its servers before it says why it cannot start.
READY_TIMEOUT = STARTUP_WAIT + 30.0


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
