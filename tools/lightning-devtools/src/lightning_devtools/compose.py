"""`invoke compose-up` / `compose-down` / `logs` for the local stack in docker/compose.yaml."""

from __future__ import annotations

import contextlib
import json
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from python_on_whales import DockerClient
from python_on_whales.exceptions import DockerException
from rich.console import Console
from rich.table import Table

from lightning_devtools import buildx
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


def diagnose(states: Sequence[ServiceState], timeout: int) -> ToolError | None:
    """Why a stack is not up: the services that failed, else those not yet healthy."""
    failed = sorted(state.service for state in states if state.failed)
    if failed:
        return ToolError(
            f"Compose service(s) {', '.join(failed)} failed to start",
            f"read `invoke logs --service {failed[0]}`, fix, then `invoke compose-up`",
        )
    waiting = sorted(state.service for state in states if not state.ready)
    if waiting:
        return ToolError(
            f"Compose service(s) {', '.join(waiting)} not healthy within {timeout}s",
            "check `invoke logs`, or wait longer with `invoke compose-up --timeout N`",
        )
    return None


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


def ca_secret_override(services: Iterable[str], ca_bundle: Path) -> dict[str, object]:
    """A compose file (as data) giving each of `services`' builds the PEM file `ca_bundle`
    as build secret `ca`, the one `invoke build --ca-cert` passes."""
    return {
        "secrets": {buildx.CA_ID: {"file": str(ca_bundle)}},
        "services": {name: {"build": {"secrets": [buildx.CA_ID]}} for name in services},
    }


@contextlib.contextmanager
def stack_client(root: Path, bundle: Path | None) -> Iterator[DockerClient]:
    """The stack's client; with a CA `bundle`, every service compose builds gets it."""
    if bundle is None:
        yield client(root)
        return
    try:
        config = client(root).compose.config(return_json=True)
    except DockerException as error:
        raise _failed("config", error) from None
    built = [name for name, service in config["services"].items() if "build" in service]
    override = ca_secret_override(built, bundle)
    with tempfile.TemporaryDirectory(prefix="lightning-compose-") as directory:
        override_file = Path(directory) / "ca-secret.compose.json"  # JSON is YAML
        override_file.write_text(json.dumps(override, indent=2), encoding="utf-8")
        yield DockerClient(compose_files=[root / COMPOSE_FILE, override_file])


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
    *, root: Path, build: bool, timeout: int, console: Console, ca_cert: Path | None = None
) -> Sequence[ServiceState]:
    """`docker compose up --wait --wait-timeout <timeout>`, then print the URLs table.

    The timeout bounds the start, compose's wait on dependencies and on health included
    (image builds are not counted). Images compose builds (all with `build`, else missing
    ones) get `ca_cert` as build secret `ca`, like `invoke build --ca-cert`.
    """
    bundle = buildx.ca_bundle(ca_cert) if ca_cert is not None else None
    preflight.require_compose_tools()
    with stack_client(root, bundle) as docker:
        try:
            docker.compose.up(detach=True, build=build, wait=True, wait_timeout=timeout)
        except DockerException as error:
            raise _not_up(docker, timeout, error) from None
        try:
            ready = states(docker)
        except DockerException as error:
            raise _failed("ps", error) from None
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


def _not_up(docker: DockerClient, timeout: int, error: DockerException) -> ToolError:
    """The service to blame when `compose up --wait` failed, else compose's own reason."""
    with contextlib.suppress(DockerException):
        reason = diagnose(states(docker), timeout)
        if reason is not None:
            return reason
    return _failed("up --wait", error)


def _failed(command: str, error: DockerException) -> ToolError:
    """One line: compose's first error line, or its exit code when it printed to the terminal."""
    reason = preflight.first_line(error.stderr or "") or f"exit {error.return_code}"
    return ToolError(
        f"`docker compose -f {COMPOSE_FILE} {command}` failed ({reason})",
        "read the output above and `invoke logs`",
    )
