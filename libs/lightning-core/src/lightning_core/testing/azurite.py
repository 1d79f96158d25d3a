"""Azurite, the Azure Storage emulator, as npm runs it (no Docker).

`installed()` installs the version azurite_server/package-lock.json (beside this module)
locks, with `npm ci`, once per lock; `running(directory)` starts one Azurite with its Blob,
Queue and Table services on free ports of 127.0.0.1, keeping its data and log in
`directory`, and kills it afterwards. It accepts the well-known development account
(`devstoreaccount1` and its public key).
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from lightning_core.testing.backends import ServerProcess
from lightning_core.testing.machine import free_port
from lightning_core.testing.npm import installed_package, require_node

SERVER_FILES = Path(__file__).resolve().parent / "azurite_server"
MIN_NODE = 18  # azurite 3.35's dependencies
SERVICES = ("blob", "queue", "table")
READY_TIMEOUT = 60.0  # seconds


@dataclass(frozen=True)
class Azurite:
    """Where a running Azurite serves each storage service (`http://127.0.0.1:<port>`)."""

    blob: str
    queue: str
    table: str


def installed() -> Path:
    """Azurite's package directory (skips, or fails in CI, without Node.js)."""
    require_node(MIN_NODE)
    return installed_package(SERVER_FILES, "azurite")


@contextlib.contextmanager
def running(package: Path, directory: Path) -> Iterator[Azurite]:
    """An Azurite of its own, every service listening, its data and log in `directory`."""
    ports = {service: free_port() for service in SERVICES}
    command = [str(package / "node_modules" / ".bin" / "azurite")]
    for service, port in ports.items():
        command += [f"--{service}Host", "127.0.0.1", f"--{service}Port", str(port)]
    data = directory / "azurite"
    data.mkdir()
    command += ["--location", str(data), "--skipApiVersionCheck", "--silent"]
    server = ServerProcess(command, ports["blob"], log=directory / "azurite.log")
    server.start()
    try:
        for port in (ports["queue"], ports["table"]):
            _wait_for(port)
        yield Azurite(**{service: f"http://127.0.0.1:{port}" for service, port in ports.items()})
    finally:
        server.stop()


def _wait_for(port: int) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"azurite did not listen on {port}")
