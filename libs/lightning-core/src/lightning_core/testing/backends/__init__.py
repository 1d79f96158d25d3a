"""Test backends: one module per provider, found here by the contract and fault suites.

A module defines pytest fixtures and lists them, so adding a provider never edits a suite:
- `STORAGE = ["storage_<name>"]`: fixtures yielding a connected, isolated Storage (own
  database, schema or container), cleaned up afterwards;
- `BUSES = ["bus_<name>"]`: fixtures yielding a connected, isolated EventBus built with
  the `fast_retry` policy (own key prefix, vhost, queue or topic names), cleaned up;
- `FAULTY = ["faulty_<name>"]`: fixtures yielding a `Faulty` whose private server (never the
  shared one) the fault suite kills and restarts;
- `BACK_EMPTY = ["faulty_<name>"]`: those of the FAULTY bus fixtures whose `Faulty` can
  also `wipe` the server's data while it is down, so it comes back empty.
A package's conftest.py registers them, after the fixtures they build on:
`pytest_plugins = ["lightning_core.testing.fixtures", *backends.PLUGINS]`.
"""

from __future__ import annotations

import contextlib
import importlib
import pkgutil
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Literal, Protocol

# Names only: pytest imports the modules itself (as plugins) so it can rewrite their asserts.
PLUGINS = [f"{__name__}.{info.name}" for info in pkgutil.iter_modules(__path__)]


def listed(kind: Literal["STORAGE", "BUSES", "FAULTY", "BACK_EMPTY"]) -> list[str]:
    """Every fixture name the backend modules list under `kind`, sorted."""
    modules: list[ModuleType] = [importlib.import_module(name) for name in PLUGINS]
    return sorted(name for module in modules for name in getattr(module, kind, []))


class PrivateServer(Protocol):
    """A server process of our own on a free port."""

    def stop(self) -> None:
        """Kill it hard (SIGKILL): clients see the connection drop mid-operation."""

    def start(self) -> None:
        """Start it again on the same port and data directory; return once it listens."""


@dataclass
class Faulty:
    """A provider bound to a private server the fault suite kills and restarts."""

    kind: Literal["storage", "bus"]
    server: PrivateServer
    make: Callable[[], object]  # a new, unconnected provider talking to that server
    wipe: Callable[[], None] | None = None  # while stopped: forget everything it stored


def emptier(data: Path) -> Callable[[], None]:
    """A `Faulty.wipe` for a server keeping all its state under `data`."""

    def wipe() -> None:
        shutil.rmtree(data)
        data.mkdir()

    return wipe


class ServerProcess:
    """A PrivateServer run as a child process listening on `port` (redis-server, postgres,
    rabbitmq-server, cosmosdb-server). `stop` kills it with SIGKILL, as a crash would."""

    def __init__(
        self,
        command: list[str],
        port: int,
        *,
        env: dict[str, str] | None = None,
        log: Path | None = None,
        ready_timeout: float = 60.0,
    ) -> None:
        self.command = command
        self.port = port
        self.env = env
        self.log = log
        self.ready_timeout = ready_timeout
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        output = self.log.open("ab") if self.log else subprocess.DEVNULL
        self._process = subprocess.Popen(
            self.command, env=self.env, stdout=output, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"{self.command[0]} exited with {self._process.returncode}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5),
            ):
                return
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"{self.command[0]} did not listen on {self.port}")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait(timeout=30)
        self._process = None
