"""Build the storage and bus that the settings select, and open them at start-up.

Each provider module is imported only when chosen, so a provider's SDK is imported only by
the deployments that use it, and a missing SDK is reported as the extra to install (one
line, like every other configuration problem) instead of an ImportError. Every provider
module exposes `from_settings(settings)`.

Opening a provider on a server (`open_provider`) waits a bounded time for the server to
accept connections, saying once what it waits for; a URL the server refuses (no such
database, bad credentials) is a ConfigError at once, since waiting cannot fix it.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import time
from collections.abc import Mapping
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from lightning_core.bus.base import EventBus
from lightning_core.config import BusProvider, ConfigError, Settings, StorageProvider
from lightning_core.storage.base import Storage

log = logging.getLogger("lightning.runtime")

STARTUP_WAIT = 20.0  # seconds a starting service waits for its servers
PROBE_TIMEOUT = 2.0
RETRY_DELAY = 0.5


class Server(NamedTuple):
    """The server a provider connects to, as its setting names it."""

    name: str
    setting: str
    field: str  # the Settings attribute holding the URL
    ports: Mapping[str, int]  # URL scheme -> default port
    example: str
    packages: tuple[str, ...]  # the SDK's packages: their errors mean the server said no
    transient: tuple[str, ...] = ()  # ...except these (class names): the server is starting

    def address(self, url: str) -> tuple[str, int] | None:
        """Host and port to probe; None if the URL names none (a Unix socket, several hosts)."""
        parts = urlsplit(url)
        try:
            port = parts.port or self.ports[parts.scheme]
        except ValueError:
            return None
        return (parts.hostname, port) if parts.hostname and port else None

    def scheme_problem(self, url: str) -> str | None:
        scheme = urlsplit(url).scheme
        if scheme in self.ports:
            return None
        return (
            f"{self.setting} has the scheme {scheme!r}, which is not {self.name}'s: use "
            f"{' or '.join(f'{known}://' for known in self.ports)} (e.g. {self.example})"
        )


POSTGRES = Server(
    "PostgreSQL",
    "DATABASE_URL",
    "database_url",
    {"postgresql": 5432, "postgres": 5432},
    "postgresql://user:password@localhost:5432/lightning",
    ("asyncpg",),
    ("CannotConnectNowError", "TooManyConnectionsError"),
)
REDIS = Server(
    "Redis",
    "REDIS_URL",
    "redis_url",
    {"redis": 6379, "rediss": 6379, "unix": 0},  # unix://: a socket path, no port
    "redis://localhost:6379/0",
    ("redis",),
    ("ConnectionError", "TimeoutError", "BusyLoadingError"),
)
RABBITMQ = Server(
    "RabbitMQ",
    "RABBITMQ_URL",
    "rabbitmq_url",
    {"amqp": 5672, "amqps": 5671},
    "amqp://user:password@localhost:5672/",
    ("aio_pika", "aiormq", "pamqp"),
    ("AMQPConnectionError", "ConnectionChannelError"),
)


class ProviderModule(NamedTuple):
    module: str
    extra: str | None  # the lightning-core extra holding its SDK; None: no SDK needed
    server: Server | None = None  # None: no server, or one the provider checks itself


STORAGE_MODULES: dict[StorageProvider, ProviderModule] = {
    StorageProvider.SQLITE: ProviderModule("lightning_core.storage.sqlite", None),
    StorageProvider.POSTGRES: ProviderModule("lightning_core.storage.postgres", "local", POSTGRES),
    StorageProvider.COSMOS: ProviderModule("lightning_core.storage.cosmos", "azure"),
}

BUS_MODULES: dict[BusProvider, ProviderModule] = {
    BusProvider.MEMORY: ProviderModule("lightning_core.bus.memory", None),
    BusProvider.REDIS: ProviderModule("lightning_core.bus.redis", "local", REDIS),
    BusProvider.RABBITMQ: ProviderModule("lightning_core.bus.rabbitmq", "local", RABBITMQ),
    BusProvider.SERVICEBUS: ProviderModule("lightning_core.bus.servicebus", "azure"),
}

# A provider object's server, found by the module that defines its class.
SERVERS: dict[str, Server] = {
    spec.module: spec.server
    for spec in (*STORAGE_MODULES.values(), *BUS_MODULES.values())
    if spec.server is not None
}


def load_provider(setting: str, provider: str, spec: ProviderModule) -> Any:
    """Import a provider's module; a missing SDK becomes a ConfigError naming the extra."""
    try:
        return importlib.import_module(spec.module)
    except ModuleNotFoundError as error:
        if spec.extra is None or (error.name or "").startswith("lightning_core"):
            raise
        raise ConfigError(
            [
                f"{setting}={provider} needs the {error.name!r} package, which is not "
                f"installed: install lightning-core[{spec.extra}]"
            ]
        ) from None


def check_url(settings: Settings, spec: ProviderModule) -> None:
    """ConfigError if the provider's URL has a scheme its server does not speak."""
    url = getattr(settings, spec.server.field) if spec.server else None
    problem = spec.server.scheme_problem(url) if spec.server and url else None
    if problem:
        raise ConfigError([problem])


def build_storage(settings: Settings) -> Storage:
    spec = STORAGE_MODULES[settings.storage]
    check_url(settings, spec)
    module = load_provider("LIGHTNING_STORAGE_PROVIDER", settings.storage, spec)
    storage: Storage = module.from_settings(settings)
    return storage


def build_bus(settings: Settings) -> EventBus:
    spec = BUS_MODULES[settings.event_bus]
    check_url(settings, spec)
    module = load_provider("LIGHTNING_EVENT_BUS_PROVIDER", settings.event_bus, spec)
    bus: EventBus = module.from_settings(settings)
    return bus


async def open_provider(
    provider: Storage | EventBus, settings: Settings, wait: float = STARTUP_WAIT
) -> None:
    """Connect `provider` and, if it has a server, ping it, waiting up to `wait` seconds
    for the server to accept connections (one log line says what it waits for).

    ConfigError (one line naming the setting) when the server refuses the URL;
    ConnectionError (one line) when it did not answer in time.
    """
    server = SERVERS.get(type(provider).__module__)
    if server is None:
        await provider.connect()
        return
    url = getattr(settings, server.field)
    address = server.address(url)
    where = f"{address[0]}:{address[1]}" if address else server.setting
    deadline = time.monotonic() + wait
    waiting = False
    while True:
        try:
            if address:
                await _accepts(*address)
            async with asyncio.timeout(max(deadline - time.monotonic(), PROBE_TIMEOUT)):
                await provider.connect()
                await provider.ping()
            return
        except Exception as error:  # sorted below; anything else is re-raised
            reason = f"{type(error).__name__}: {error}".strip().rstrip(":")
            refused = type(error).__module__.partition(".")[0] in server.packages
            if refused and type(error).__name__ not in server.transient:
                raise ConfigError(
                    [
                        f"{server.name} at {where} refused {server.setting} ({reason}): fix "
                        f"{server.setting}, or create on the server what it names"
                    ]
                ) from None
            if not (refused or isinstance(error, OSError)):
                raise
            if time.monotonic() >= deadline:
                raise ConnectionError(
                    f"{server.name} at {where} ({server.setting}) did not answer within "
                    f"{wait:.0f} s ({reason}): start it, or point {server.setting} at a "
                    "running server"
                ) from None
            if not waiting:
                log.warning(
                    "waiting up to %.0f s for %s at %s (%s): %s",
                    wait,
                    server.name,
                    where,
                    server.setting,
                    reason,
                )
                waiting = True
        await asyncio.sleep(RETRY_DELAY)


async def _accepts(host: str, port: int) -> None:
    """Return once host:port accepts a TCP connection; OSError if it does not."""
    async with asyncio.timeout(PROBE_TIMEOUT):
        _, writer = await asyncio.open_connection(host, port)
    writer.close()
