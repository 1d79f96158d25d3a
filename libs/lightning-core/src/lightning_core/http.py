"""Serve an ASGI app inside the runtime's event loop, stopping when the runtime says so.

HTTP/1.1 is parsed by uvicorn's httptools protocol where httptools is installed, else by
its h11 one, as uvicorn's `http="auto"` chooses; the guards below are mixed into either.

uvicorn normally owns SIGINT/SIGTERM and re-raises them after shutdown; here the runtime
owns the signals (several services share one process in `invoke dev`), so the server only
watches the shared stop event.

Every app is served behind the same guards, so no client can take a service down:
- a Host check (`allowed_hosts`): in embedded and local modes only the names the service
  is reached by, so a web page cannot reach it through a rebound DNS name;
- at most LIGHTNING_MAX_CONNECTIONS connections (fewer if the open-file limit is lower):
  past it a new connection closes the one that has waited longest for its next request
  head (an idle or slow client), or is answered 503 if every connection is busy;
- a connection has HEADER_TIMEOUT seconds to send each request head, else it is closed,
  and a head still incomplete after MAX_HEAD_BYTES is answered 400; idle keep-alive
  connections close after KEEP_ALIVE_TIMEOUT;
- the log lines a flood of connections repeats are written at most once per
  REPEAT_INTERVAL, with the count of those left out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import time
from collections.abc import Generator
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from lightning_core.asgi import ASGIApp
from lightning_core.config import Mode, Settings

log = logging.getLogger("lightning.http")

HEADER_TIMEOUT = 10.0  # seconds from connecting (or the previous response) to a request head
KEEP_ALIVE_TIMEOUT = 5  # seconds an idle keep-alive connection stays open
MAX_HEAD_BYTES = 16 * 1024  # received without a complete request head: answered 400
# asyncio accepts up to `backlog` connections at a time, and a connection closed to make
# room frees its file only on the next turn of the loop: the open files kept for
# everything but clients cover one such batch and the process's own files.
BACKLOG = 128
RESERVED_FILES = 2 * BACKLOG
REPEAT_INTERVAL = 10.0

# The names a service is reached by on a laptop and in docker/compose.yaml (the UI calls
# the API at http://api:8000; health checks use 127.0.0.1).
LOCAL_NAMES = ("localhost", "127.0.0.1", "::1", "api", "ui")
# Orchestrators probe these with the container's address as Host; they reveal nothing.
PROBE_PATHS = frozenset({"/healthz", "/readyz"})
REFUSED_HOST = b"Host not allowed: add it to LIGHTNING_ALLOWED_HOSTS\n"
TOO_LARGE = (
    b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: 23\r\nconnection: close\r\n\r\nrequest head too large\n"
)
BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: 21\r\nconnection: close\r\n\r\ntoo many connections\n"
)


def host_name(value: str) -> str:
    """The lower-case host of a Host header or LIGHTNING_ALLOWED_HOSTS entry: no port, no
    IPv6 brackets, no trailing dot ('' if there is none)."""
    value = value.strip().lower()
    if value.startswith("["):
        name, bracket, _ = value[1:].partition("]")
        return name if bracket else ""
    return value.partition(":")[0].rstrip(".")


def allowed_hosts(settings: Settings) -> frozenset[str] | None:
    """The Host names the services answer (None: any): LIGHTNING_ALLOWED_HOSTS, plus in
    embedded and local modes the loopback and compose names, LIGHTNING_HOST and the host of
    LIGHTNING_API_URL. Azure's ingress sets public names, so there only the listed ones
    are checked, if any. An entry `*` allows any name, `*.example.com` its subdomains."""
    listed = {host_name(entry) for entry in settings.allowed_hosts.split(",") if entry.strip()}
    if "*" in listed:
        return None
    if settings.mode is Mode.AZURE:
        return frozenset(listed) or None
    local = {*LOCAL_NAMES, host_name(settings.host), urlsplit(settings.api_url).hostname or ""}
    return frozenset(listed | local) - {""}


def host_allowed(name: str, allowed: frozenset[str]) -> bool:
    return name in allowed or any(
        entry.startswith("*.") and name.endswith(entry[1:]) for entry in allowed
    )


class HostCheck:
    """ASGI middleware answering 400 to a request whose Host is not allowed (health probes
    excepted)."""

    def __init__(self, app: ASGIApp, allowed: frozenset[str]) -> None:
        self.app = app
        self.allowed = allowed

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket") and scope["path"] not in PROBE_PATHS:
            host = next((value for key, value in scope["headers"] if key == b"host"), b"")
            if not host_allowed(host_name(host.decode("latin-1")), self.allowed):
                await _refuse(scope["type"], send)
                return
        await self.app(scope, receive, send)


async def _refuse(scope_type: str, send: Any) -> None:
    if scope_type == "websocket":
        await send({"type": "websocket.close", "code": 1008})
        return
    headers = [(b"content-type", b"text/plain; charset=utf-8")]
    await send({"type": "http.response.start", "status": 400, "headers": headers})
    await send({"type": "http.response.body", "body": REFUSED_HOST})


class RepeatFilter(logging.Filter):
    """Lets through one record per `interval` seconds of each message starting with one of
    `prefixes`, and says in the next one how many were left out."""

    def __init__(self, prefixes: tuple[str, ...], interval: float = REPEAT_INTERVAL) -> None:
        super().__init__()
        self.prefixes = prefixes
        self.interval = interval
        self._next: dict[str, float] = {}
        self._dropped: dict[str, int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        key = next((prefix for prefix in self.prefixes if message.startswith(prefix)), None)
        if key is None:
            return True
        now = time.monotonic()
        if now < self._next.get(key, 0.0):
            self._dropped[key] = self._dropped.get(key, 0) + 1
            return False
        self._next[key] = now + self.interval
        dropped = self._dropped.pop(key, 0)
        if dropped:
            record.msg = f"{message} ({dropped} more like it in the last {self.interval:.0f} s)"
            record.args = ()
        return True


REFUSING = "refusing connections: all"
HEAD_TOO_LARGE = "request head incomplete after"
# The lines a flood of connections makes asyncio, uvicorn and this module repeat.
FLOOD_FILTER = RepeatFilter(
    (
        "socket.accept() out of system resource",  # asyncio, once per refused accept
        "Invalid HTTP request received.",
        "Exceeded concurrency limit.",
        REFUSING,
        HEAD_TOO_LARGE,
    )
)


def _filter_floods() -> None:
    for name in ("asyncio", "uvicorn.error", log.name):
        logger = logging.getLogger(name)
        if FLOOD_FILTER not in logger.filters:
            logger.addFilter(FLOOD_FILTER)


def connection_cap(wanted: int) -> int:
    """`wanted`, lowered (with a warning) to what the open-file limit leaves for clients,
    after raising this process's soft limit to its hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        with contextlib.suppress(ValueError, OSError):  # some systems cap below `hard`
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
    if soft == resource.RLIM_INFINITY or wanted <= soft - RESERVED_FILES:
        return wanted
    cap = max(soft - RESERVED_FILES, 1)
    log.warning(
        "LIGHTNING_MAX_CONNECTIONS=%d is more than the open-file limit (%d) allows: serving "
        "at most %d connections; raise `ulimit -n` or lower LIGHTNING_MAX_CONNECTIONS",
        wanted,
        soft,
        cap,
    )
    return cap


if TYPE_CHECKING:

    class UvicornHTTP(asyncio.Protocol):
        """What HeadGuard uses of the uvicorn protocol it is mixed into (httptools' or h11's)."""

        connections: set[Any]
        cycle: Any  # the request's RequestResponseCycle; None before the first head
        loop: asyncio.AbstractEventLoop
        transport: asyncio.Transport

        def on_response_complete(self) -> None: ...

else:
    UvicornHTTP = asyncio.Protocol


class HeadGuard(UvicornHTTP):
    """Mixed into a uvicorn HTTP protocol: a connection cap, a deadline for each request head
    and a bound on its size, through the protocol's public callbacks only.

    `waiting` (per server, oldest first) holds the connections between connecting or a
    response and their next request head, each with the timer that closes it; a request
    head has arrived when the protocol has started a new request cycle.
    """

    limit: ClassVar[int]
    waiting: ClassVar[dict[HeadGuard, asyncio.TimerHandle]]
    head_bytes = 0  # received since the wait for the current head began

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limit:
            if not self.waiting:
                log.warning(
                    "%s %d connections are busy (LIGHTNING_MAX_CONNECTIONS)", REFUSING, self.limit
                )
                transport.write(BUSY)
                transport.close()
                return
            oldest = next(iter(self.waiting))
            self._stop_waiting(oldest)
            oldest.transport.close()
        self._await_head()

    def data_received(self, data: bytes) -> None:
        if self not in self.waiting:  # a request is under way: its body, or pipelined heads
            super().data_received(data)
            return
        cycle = self.cycle
        # Not between messages: the rest of a body the app answered without reading.
        between_messages = cycle is None or not cycle.more_body
        super().data_received(data)
        if self.cycle is not cycle:
            self._stop_waiting(self)
        elif between_messages:
            self.head_bytes += len(data)
            if self.head_bytes > MAX_HEAD_BYTES and not self.transport.is_closing():
                log.warning("%s %d bytes", HEAD_TOO_LARGE, MAX_HEAD_BYTES)
                self.transport.write(TOO_LARGE)
                self.transport.close()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # h11 starts a pipelined request here, httptools queued it on arrival: either way a
        # cycle under way has its head already.
        if self.cycle.response_complete and not self.transport.is_closing():
            self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_waiting(self)
        super().connection_lost(exc)

    def _await_head(self) -> None:
        self._stop_waiting(self)
        self.head_bytes = 0
        self.waiting[self] = self.loop.call_later(HEADER_TIMEOUT, self.transport.close)

    def _stop_waiting(self, protocol: HeadGuard) -> None:
        timer = self.waiting.pop(protocol, None)
        if timer is not None:
            timer.cancel()


class GuardedH11(HeadGuard, H11Protocol):
    """uvicorn's pure-Python protocol (h11) behind the guards."""


def http_protocol() -> type[HeadGuard]:
    """uvicorn's httptools protocol behind the guards where httptools is installed (what
    uvicorn's `http="auto"` picks), else GuardedH11."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol  # noqa: PLC0415
    except ImportError:  # no httptools build for this platform
        return GuardedH11

    class GuardedHttpTools(HeadGuard, HttpToolsProtocol):
        """uvicorn's httptools protocol behind the guards."""

    return GuardedHttpTools


def guarded_protocol(max_connections: int, base: type[HeadGuard]) -> type[HeadGuard]:
    """`base` for one server: its own cap and `waiting`."""
    server: type[HeadGuard] = type(
        base.__name__, (base,), {"limit": max_connections, "waiting": {}}
    )
    return server


class _EmbeddedServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None]:
        yield


async def serve_asgi(
    app: ASGIApp, host: str, port: int, stop: asyncio.Event, *, settings: Settings | None = None
) -> None:
    """Serve `app` on host:port until `stop` is set, behind the guards above as `settings`
    choose them (without settings: embedded mode's names and limits); OSError if the port
    cannot be bound."""
    if settings is None:
        hosts: frozenset[str] | None = frozenset({*LOCAL_NAMES, host_name(host)})
        wanted = Settings.model_fields["max_connections"].default
        access_log = False
    else:
        hosts, wanted = allowed_hosts(settings), settings.max_connections
        access_log = (
            settings.mode is not Mode.EMBEDDED
            if settings.access_log is None
            else settings.access_log
        )
    cap = connection_cap(wanted)
    config = uvicorn.Config(
        app if hosts is None else HostCheck(app, hosts),
        host=host,
        port=port,
        log_config=None,  # the root logger's format (lightning_core.telemetry) applies
        log_level="warning",
        access_log=access_log,
        lifespan="off",
        http=guarded_protocol(cap, http_protocol()),
        # uvicorn answers 503 once connections or request tasks reach this; connections
        # stop at `cap`, so this catches only tasks outliving their connections.
        limit_concurrency=cap + 1,
        timeout_keep_alive=KEEP_ALIVE_TIMEOUT,
        h11_max_incomplete_event_size=MAX_HEAD_BYTES,  # h11 bounds its own buffer alike
        backlog=BACKLOG,
    )
    if access_log:  # a line per request, below log_level's "warning"
        logging.getLogger("uvicorn.access").setLevel(logging.INFO)
    _filter_floods()
    server = _EmbeddedServer(config)
    serving = asyncio.create_task(server.serve())
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
    server.should_exit = True
    stopping.cancel()
    try:
        await serving  # uvicorn calls sys.exit(1) when it cannot bind
    except SystemExit:
        raise OSError(f"cannot listen on {host}:{port}: is the port already in use?") from None
