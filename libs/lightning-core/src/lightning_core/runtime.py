"""`python -m lightning_core.runtime`: start the services named by SERVICE_TYPE.

One entry point for every image and for `invoke dev`: read and check the settings for what
the named services need (lightning_core.topology.SERVICES), connect only that storage and
bus, once, run each service in this process with a context holding only what it declared,
and on SIGTERM or SIGINT let each finish its in-flight work (in embedded mode the processor
first handles what the memory bus holds, for up to 30 s) and exit 0. Expected failures (bad
settings, unknown service, a server refusing its URL, a server not answering within
STARTUP_WAIT, busy port) print one line and exit non-zero, no traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import TypeVar

from lightning_core import telemetry
from lightning_core.config import ConfigError, Settings, load_settings
from lightning_core.providers import build_bus, build_storage, open_provider
from lightning_core.service import ENTRY_POINT_GROUP, Service, ServiceContext
from lightning_core.topology import service_needs

log = logging.getLogger("lightning.runtime")
T = TypeVar("T")

EXIT_CONFIG = 2
EXIT_UNAVAILABLE = 3


def discover_services(names: list[str]) -> dict[str, Service]:
    """Load the named services from installed entry points; ConfigError for unknown names."""
    found = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
    unknown = [name for name in names if name not in found]
    if not names or unknown:
        available = ", ".join(sorted(found)) or "none installed"
        wanted = ", ".join(unknown) if unknown else "(empty)"
        raise ConfigError([f"SERVICE_TYPE={wanted} is not an installed service ({available})"])
    services: dict[str, Service] = {name: found[name].load() for name in names}
    return services


def prepare(settings: Settings) -> tuple[ServiceContext, dict[str, Service]]:
    """Everything start-up can check before connecting, with every problem in one error;
    the context holds the providers the named services need together, and no others."""
    problems: list[str] = []

    def attempt(build: Callable[[], T]) -> T | None:
        try:
            return build()
        except ConfigError as error:
            problems.extend(error.problems)
            return None

    needs = service_needs(settings.service_types())
    storage = attempt(lambda: build_storage(settings)) if needs.storage else None
    bus = attempt(lambda: build_bus(settings)) if needs.bus else None
    services = attempt(lambda: discover_services(settings.service_types()))
    if services is None or problems:
        raise ConfigError(problems)
    return ServiceContext(settings, storage, bus), services


async def open_providers(context: ServiceContext, stop: asyncio.Event) -> bool:
    """Open the context's providers (`open_provider`); False if `stop` came first."""

    async def open_all() -> None:
        for provider in context.providers():
            await open_provider(provider, context.settings)

    opening = asyncio.create_task(open_all())
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({opening, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if not opening.done():
        opening.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await opening
        return False
    opening.result()
    return True


async def run(context: ServiceContext, services: dict[str, Service]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    settings = context.settings
    async with contextlib.AsyncExitStack() as stack:
        for provider in context.providers():
            stack.push_async_callback(provider.close)
        if not await open_providers(context, stop):
            return
        tasks = [
            asyncio.create_task(
                service(context.narrowed_to(service_needs([name])), stop), name=name
            )
            for name, service in services.items()
        ]
        await asyncio.sleep(0)  # one turn of the loop: a start refused at once is done by now
        if not any(task.done() for task in tasks):  # a refused start says only why (one line)
            log.info("started %s (%s mode)", ", ".join(services), settings.mode)
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        stop.set()  # one service failed or all returned: take the others down too
        results = await asyncio.gather(*tasks, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    log.info("stopped %s", ", ".join(services))


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop where it is installed (not on Windows), else asyncio's default."""
    try:
        import uvloop  # noqa: PLC0415 - optional by platform
    except ModuleNotFoundError:
        return None
    return uvloop.new_event_loop


def main() -> int:
    try:
        settings = load_settings()
        tracing = telemetry.configure(settings, "+".join(settings.service_types()))
        context, services = prepare(settings)
        try:
            with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
                runner.run(run(context, services))
        finally:
            tracing.shutdown()  # flush the spans still queued
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_CONFIG
    except OSError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    return 0


if __name__ == "__main__":
    sys.exit(main())
