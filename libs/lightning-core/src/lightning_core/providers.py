"""Build the storage and bus that the settings select, importing each provider's SDK only
when chosen, and open them at start-up.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Generic, NamedTuple, TypeVar
from urllib.parse import urlsplit

from lightning_core.bus.base import BusBase, EventBus, RetryPolicy
from lightning_core.config import BusProvider, ConfigError, Settings, StorageProvider
from lightning_core.storage.base import Storage

log = logging.getLogger("lightning.runtime")

P = TypeVar("P")

STARTUP_WAIT = 20.0  # seconds
PROBE_TIMEOUT = 2.0
RETRY_DELAY = 0.5


class Server(NamedTuple):
    name: str
    setting: str
    url: Callable[[Settings], str | None]
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
    lambda settings: settings.database_url,
    {"postgresql": 5432, "postgres": 5432},
    "postgresql://user:password@localhost:5432/lightning",
    ("asyncpg",),
    ("CannotConnectNowError", "TooManyConnectionsError"),
)
REDIS = Server(
    "Redis",
    "REDIS_URL",
    lambda settings: settings.redis_url,
    {"redis": 6379, "rediss": 6379, "unix": 0},  # unix://: a socket path, no port
    "redis://localhost:6379/0",
    ("redis",),
    ("ConnectionError", "TimeoutError", "BusyLoadingError"),
)
RABBITMQ = Server(
    "RabbitMQ",
    "RABBITMQ_URL",
    lambda settings: settings.rabbitmq_url,
    {"amqp": 5672, "amqps": 5671},
    "amqp://user:password@localhost:5672/",
    ("aio_pika", "aiormq", "pamqp"),
    ("AMQPConnectionError", "ConnectionChannelError"),
)


def _sqlite(settings: Settings) -> Storage:
    from lightning_core.storage.sqlite import SqliteStorage  # noqa: PLC0415 - only when chosen

    return SqliteStorage(settings.sqlite_path)


def _postgres(settings: Settings) -> Storage:
    from lightning_core.storage.postgres import PostgresStorage  # noqa: PLC0415 - asyncpg

    return PostgresStorage(
        _required(settings.database_url, "DATABASE_URL", "LIGHTNING_STORAGE_PROVIDER=postgres")
    )


def _cosmos(settings: Settings) -> Storage:
    from lightning_core.storage.cosmos import CosmosStorage  # noqa: PLC0415 - the Azure SDK

    database, retention = settings.cosmos_database, timedelta(days=settings.retention_days)
    if settings.cosmos_connection_string:
        return CosmosStorage(
            database, connection_string=settings.cosmos_connection_string, retention=retention
        )
    if settings.cosmos_endpoint:
        return CosmosStorage(database, endpoint=settings.cosmos_endpoint, retention=retention)
    raise ConfigError(
        [
            "COSMOS_CONNECTION_STRING (or COSMOS_ENDPOINT with a managed identity) is missing "
            "(needed by LIGHTNING_STORAGE_PROVIDER=cosmos)"
        ]
    )


def _memory(settings: Settings) -> EventBus:
    from lightning_core.bus.memory import HIGH_WATER, MemoryBus  # noqa: PLC0415 - only when chosen

    return MemoryBus(
        _retry(settings), concurrency=settings.processor_concurrency, high_water=HIGH_WATER
    )


def _redis(settings: Settings) -> EventBus:
    from lightning_core.bus.redis import RedisBus  # noqa: PLC0415 - redis-py

    url = _required(settings.redis_url, "REDIS_URL", "LIGHTNING_EVENT_BUS_PROVIDER=redis")
    return RedisBus(
        url,
        settings.bus_namespace,
        _retry(settings),
        concurrency=settings.processor_concurrency,
    )


def _rabbitmq(settings: Settings) -> EventBus:
    from lightning_core.bus.rabbitmq import RabbitMqBus  # noqa: PLC0415 - aio-pika

    url = _required(settings.rabbitmq_url, "RABBITMQ_URL", "LIGHTNING_EVENT_BUS_PROVIDER=rabbitmq")
    return RabbitMqBus(
        url,
        settings.bus_namespace,
        _retry(settings),
        concurrency=settings.processor_concurrency,
    )


def _servicebus(settings: Settings) -> EventBus:
    from lightning_core.bus.servicebus import (  # noqa: PLC0415 - the Azure SDK
        ClientFactory,
        ServiceBusBus,
        connection_string_clients,
        managed_identity_clients,
    )

    clients: ClientFactory
    if settings.service_bus_connection_string:
        clients = functools.partial(
            connection_string_clients, settings.service_bus_connection_string
        )
    elif settings.service_bus_namespace:
        clients = functools.partial(managed_identity_clients, settings.service_bus_namespace)
    else:
        raise ConfigError(
            [
                "SERVICE_BUS_CONNECTION_STRING (or SERVICE_BUS_NAMESPACE with a managed "
                "identity) is missing (needed by LIGHTNING_EVENT_BUS_PROVIDER=servicebus)"
            ]
        )
    return ServiceBusBus(
        clients,
        settings.bus_namespace,
        _retry(settings),
        concurrency=settings.processor_concurrency,
    )


def _retry(settings: Settings) -> RetryPolicy:
    return RetryPolicy(max_attempts=settings.bus_max_attempts)


def _required(url: str | None, setting: str, needed_by: str) -> str:
    """The URL; ConfigError if missing (settings load_settings did not check)."""
    if not url:
        raise ConfigError([f"{setting} is missing (needed by {needed_by})"])
    return url


@dataclass(frozen=True)
class Provider(Generic[P]):
    build: Callable[[Settings], P]
    extra: str | None  # the lightning-core extra holding its SDK; None: no SDK needed
    server: Server | None = None  # None: no server, or one the provider checks itself


STORAGES: dict[StorageProvider, Provider[Storage]] = {
    StorageProvider.SQLITE: Provider(_sqlite, None),
    StorageProvider.POSTGRES: Provider(_postgres, "local", POSTGRES),
    StorageProvider.COSMOS: Provider(_cosmos, "azure"),
}

BUSES: dict[BusProvider, Provider[EventBus]] = {
    BusProvider.MEMORY: Provider(_memory, None),
    BusProvider.REDIS: Provider(_redis, "local", REDIS),
    BusProvider.RABBITMQ: Provider(_rabbitmq, "local", RABBITMQ),
    BusProvider.SERVICEBUS: Provider(_servicebus, "azure"),
}


def build_storage(settings: Settings) -> Storage:
    chosen = f"LIGHTNING_STORAGE_PROVIDER={settings.storage}"
    return _build(STORAGES[settings.storage], chosen, settings)


def build_bus(settings: Settings) -> EventBus:
    chosen = f"LIGHTNING_EVENT_BUS_PROVIDER={settings.event_bus}"
    return _build(BUSES[settings.event_bus], chosen, settings)


def _build(provider: Provider[P], chosen: str, settings: Settings) -> P:
    """Check the URL's scheme, then build; a missing SDK is a ConfigError naming the extra."""
    server = provider.server
    url = server.url(settings) if server else None
    problem = server.scheme_problem(url) if server and url else None
    if problem:
        raise ConfigError([problem])
    try:
        return provider.build(settings)
    except ModuleNotFoundError as error:
        if provider.extra is None or (error.name or "").startswith("lightning_core"):
            raise
        raise ConfigError(
            [
                f"{chosen} needs the {error.name!r} package, which is not installed: "
                f"install lightning-core[{provider.extra}]"
            ]
        ) from None


async def open_provider(
    provider: Storage | EventBus, settings: Settings, wait: float = STARTUP_WAIT
) -> None:
    """Connect `provider` (built from `settings`) and ping its server, waiting up to `wait` s;
    ConfigError if the server refuses the URL, ConnectionError if it did not answer."""
    chosen = (
        BUSES[settings.event_bus] if isinstance(provider, BusBase) else STORAGES[settings.storage]
    )
    server = chosen.server
    if server is None:
        await provider.connect()
        return
    url = server.url(settings)
    address = server.address(url) if url else None
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
