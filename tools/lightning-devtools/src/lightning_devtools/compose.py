"""`invoke compose-up` / `compose-down` / `logs` for the local stack in docker/compose.yaml."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from python_on_whales import DockerClient
from python_on_whales.exceptions import DockerException
from rich.console import Console
from rich.table import Table

from lightning_devtools import docker as preflight
from lightning_devtools.errors import ToolError

COMPOSE_FILE = Path("docker/compose.yaml")
SERVICE_LABEL = "com.docker.compose.service"
# How to address a published port; anything else is assumed to speak HTTP.
SCHEMES = {5432: "postgresql", 6379: "redis", 5672: "amqp"}


@dataclass(frozen=True)
class ServiceState:
    """One container of the stack as the engine reports it."""

    service: str
    status: str  # created | running | exited | dead | ...
    health: str | None  # starting | healthy | unhealthy, None without a healthcheck
    ports: tuple[tuple[int, int], ...] = ()  # (container port, host port)

    @property
    def ready(self) -> bool:
        return self.status == "running" and self.health in (None, "healthy")

    @property
    def failed(self) -> bool:
        return self.status in ("exited", "dead") or self.health == "unhealthy"


def wait_until_ready(
    probe: Callable[[], Sequence[ServiceState]],
    *,
    timeout: float,
    interval: float = 2.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    on_poll: Callable[[Sequence[ServiceState]], None] = lambda _states: None,
) -> Sequence[ServiceState]:
    """Poll until every service is ready; ToolError naming the culprit on failure/timeout."""
    deadline = clock() + timeout
    while True:
        states = probe()
        on_poll(states)
        failed = [state.service for state in states if state.failed]
        if failed:
            raise ToolError(
                f"Compose service(s) {', '.join(sorted(failed))} failed to start",
                f"read `invoke logs --service {sorted(failed)[0]}`, fix, then `invoke compose-up`",
            )
        if states and all(state.ready for state in states):
            return states
        if clock() >= deadline:
            waiting = sorted(state.service for state in states if not state.ready)
            raise ToolError(
                f"Compose services {', '.join(waiting) or '(none started)'} not healthy "
                f"after {timeout:g}s",
                "check `invoke logs`, or wait longer with `invoke compose-up --timeout N`",
            )
        sleep(interval)


def service_urls(states: Iterable[ServiceState]) -> list[tuple[str, str]]:
    """(service, URL) for every published port, ordered by service name."""
    urls = []
    for state in sorted(states, key=lambda state: state.service):
        for container_port, host_port in state.ports:
            scheme = SCHEMES.get(container_port, "http")
            urls.append((state.service, f"{scheme}://localhost:{host_port}"))
    return urls


def urls_table(states: Iterable[ServiceState]) -> Table:
    table = Table(title="local stack", title_justify="left")
    table.add_column("service")
    table.add_column("url")
    for service, url in service_urls(states):
        table.add_row(service, url)
    return table


def published_ports(ports: Mapping[str, object] | None) -> tuple[tuple[int, int], ...]:
    """`{"8000/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8000"}]}` -> ((8000, 8000),)."""
    found: set[tuple[int, int]] = set()
    for spec, bindings in (ports or {}).items():
        number, _, protocol = spec.partition("/")
        if protocol not in ("", "tcp") or not isinstance(bindings, list):
            continue
        for binding in bindings:
            host_port = binding.get("HostPort") if isinstance(binding, dict) else None
            if host_port:
                found.add((int(number), int(host_port)))
    return tuple(sorted(found))


def client(root: Path) -> DockerClient:
    return DockerClient(compose_files=[root / COMPOSE_FILE])


def states(docker: DockerClient) -> list[ServiceState]:
    found = []
    for container in docker.compose.ps(all=True):
        labels = container.config.labels or {}
        health = container.state.health
        found.append(
            ServiceState(
                service=labels.get(SERVICE_LABEL, container.name),
                status=container.state.status or "unknown",
                health=health.status if health is not None else None,
                ports=published_ports(container.network_settings.ports),
            )
        )
    return found


def up(
    *, root: Path, build: bool, timeout: float, console: Console, interval: float = 2.0
) -> Sequence[ServiceState]:
    """`docker compose up -d`, wait until every service is healthy, print the URLs table."""
    preflight.require_compose_tools()
    docker = client(root)
    try:
        docker.compose.up(detach=True, build=build)
        with console.status("waiting for services to be healthy") as status:
            ready = wait_until_ready(
                lambda: states(docker),
                timeout=timeout,
                interval=interval,
                on_poll=lambda current: status.update(_progress(current)),
            )
    except DockerException as error:
        raise _failed("up -d", error) from None
    console.print(urls_table(ready))
    return ready


def down(*, root: Path, volumes: bool) -> None:
    preflight.require_compose_tools()
    try:
        client(root).compose.down(volumes=volumes)
    except DockerException as error:
        raise _failed("down", error) from None


def logs(*, root: Path, services: Sequence[str], follow: bool, tail: str | None) -> None:
    """Stream the stack's logs to stdout (Ctrl-C stops following)."""
    preflight.require_compose_tools()
    try:
        stream = client(root).compose.logs(
            services=list(services), follow=follow, tail=tail, stream=True
        )
        for _source, line in stream:
            print(line.decode(errors="replace"), end="", flush=True)
    except DockerException as error:
        raise _failed("logs", error) from None


def _progress(current: Sequence[ServiceState]) -> str:
    waiting = sorted(f"{s.service} ({s.health or s.status})" for s in current if not s.ready)
    return "waiting for " + (", ".join(waiting) or "containers to appear")


def _failed(command: str, error: Exception) -> ToolError:
    reason = preflight.first_line(str(getattr(error, "stderr", "") or "")) or str(error)
    return ToolError(
        f"`docker compose -f {COMPOSE_FILE} {command}` failed ({reason})",
        "read the output above and `invoke logs`",
    )
