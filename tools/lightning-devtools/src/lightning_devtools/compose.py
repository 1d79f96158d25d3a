"""`invoke compose-up` / `compose-down` / `logs` for a stack: `local` (docker/compose.yaml) or
`azure` (docker/compose.azure.yaml: the azure images on Microsoft's emulators)."""

from __future__ import annotations

import contextlib
import json
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from python_on_whales import DockerClient
from python_on_whales.exceptions import DockerException
from rich.console import Console
from rich.table import Table

from lightning_devtools import buildx, compose_azure
from lightning_devtools import docker as preflight
from lightning_devtools.errors import ToolError

SERVICE_LABEL = "com.docker.compose.service"
# How to address a published port; anything else is assumed to speak HTTP.
SCHEMES = {5432: "postgresql", 6379: "redis", 5672: "amqp", 8081: "https"}


@dataclass(frozen=True)
class Stack:
    """A compose stack: its mode, its file and how long it may take to start by default."""

    mode: str
    file: Path
    timeout: int  # seconds


STACKS = {
    "local": Stack("local", Path("docker/compose.yaml"), 180),
    # The Cosmos DB emulator alone can take minutes to start the first time.
    "azure": Stack("azure", Path("docker/compose.azure.yaml"), 900),
}


def stack(mode: str) -> Stack:
    """The stack of `mode`; ToolError naming the modes there are."""
    try:
        return STACKS[mode]
    except KeyError:
        raise ToolError(
            f"there is no {mode!r} compose stack", f"use --mode {' or --mode '.join(STACKS)}"
        ) from None


def seconds(option: str | None) -> int | None:
    """`--timeout`'s value as whole seconds; None when not given (the stack's default)."""
    if option is None:
        return None
    if not option.isdigit() or int(option) == 0:
        raise ToolError(
            f"--timeout {option} is not a number of seconds", "give a whole number, e.g. 600"
        )
    return int(option)


@dataclass(frozen=True)
class ServiceState:
    """One container of the stack as the engine reports it."""

    service: str
    status: str  # created | running | exited | dead | ...
    health: str | None  # starting | healthy | unhealthy, None without a healthcheck
    ports: tuple[tuple[int, int], ...] = ()  # (container port, host port)
    exit_code: int | None = None  # once exited

    @property
    def completed(self) -> bool:
        """A one-shot service (the azure stack's `cosmos-ca`) that did its job."""
        return self.status == "exited" and self.exit_code == 0

    @property
    def ready(self) -> bool:
        return self.completed or (self.status == "running" and self.health in (None, "healthy"))

    @property
    def failed(self) -> bool:
        exited = self.status == "exited" and not self.completed
        return exited or self.status == "dead" or self.health == "unhealthy"


def diagnose(states: Sequence[ServiceState], timeout: int, mode: str = "local") -> ToolError | None:
    """Why a stack is not up: the services that failed, else those not yet healthy."""
    option = "" if mode == "local" else f" --mode {mode}"
    failed = sorted(state.service for state in states if state.failed)
    if failed:
        return ToolError(
            f"Compose service(s) {', '.join(failed)} failed to start",
            f"read `invoke logs{option} --service {failed[0]}`, fix, "
            f"then `invoke compose-up{option}`",
        )
    waiting = sorted(state.service for state in states if not state.ready)
    if waiting:
        return ToolError(
            f"Compose service(s) {', '.join(waiting)} not healthy within {timeout}s",
            f"check `invoke logs{option}`, or wait longer with "
            f"`invoke compose-up{option} --timeout N`",
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


def urls_table(states: Iterable[ServiceState], mode: str = "local") -> Table:
    table = Table(title=f"{mode} stack", title_justify="left")
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


def client(root: Path, chosen: Stack) -> DockerClient:
    return DockerClient(compose_files=[root / chosen.file])


def resolved_config(docker: DockerClient, chosen: Stack) -> dict[str, Any]:
    """`docker compose config --format json`: the file with every variable substituted."""
    try:
        config: dict[str, Any] = docker.compose.config(return_json=True)
    except DockerException as error:
        fix = f"set what it names (the environment or a .env file beside {chosen.file})"
        raise _failed(chosen, "config", error, fix) from None
    return config


def ca_secret_override(services: Iterable[str], ca_bundle: Path) -> dict[str, object]:
    """A compose file (as data) giving each of `services`' builds the PEM file `ca_bundle`
    as build secret `ca`, the one `invoke build --ca-cert` passes."""
    return {
        "secrets": {buildx.CA_ID: {"file": str(ca_bundle)}},
        "services": {name: {"build": {"secrets": [buildx.CA_ID]}} for name in services},
    }


@contextlib.contextmanager
def stack_client(
    root: Path, chosen: Stack, bundle: Path | None, config: Mapping[str, Any]
) -> Iterator[DockerClient]:
    """The stack's client; with a CA `bundle`, every service compose builds (as compose's
    resolved `config` lists them) gets it."""
    if bundle is None:
        yield client(root, chosen)
        return
    built = [name for name, service in config["services"].items() if "build" in service]
    override = ca_secret_override(built, bundle)
    with tempfile.TemporaryDirectory(prefix="lightning-compose-") as directory:
        override_file = Path(directory) / "ca-secret.compose.json"  # JSON is YAML
        override_file.write_text(json.dumps(override, indent=2), encoding="utf-8")
        yield DockerClient(compose_files=[root / chosen.file, override_file])


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
                exit_code=container.state.exit_code,
            )
        )
    return found


def up(
    *,
    root: Path,
    build: bool,
    timeout: int | None,
    console: Console,
    ca_cert: Path | None = None,
    mode: str = "local",
) -> Sequence[ServiceState]:
    """`docker compose up --wait --wait-timeout <timeout>` of the `mode` stack, then print
    the URLs table.

    The timeout (by default the stack's) bounds the start, compose's wait on dependencies and
    on health included (image builds are not counted). Images compose builds (all with
    `build`, else missing ones) get `ca_cert` as build secret `ca`, like `invoke build
    --ca-cert`. The azure stack first gets what its emulators and Functions host read
    (compose_azure.prepare; `build` rebuilds the Function package too).
    """
    chosen = stack(mode)
    wait = chosen.timeout if timeout is None else timeout
    bundle = buildx.ca_bundle(ca_cert) if ca_cert is not None else None
    preflight.require_compose_tools()
    needs_config = bundle is not None or chosen.mode == "azure"
    config = resolved_config(client(root, chosen), chosen) if needs_config else {}
    if chosen.mode == "azure":
        compose_azure.prepare(root, config, rebuild=build, console=console)
    with stack_client(root, chosen, bundle, config) as docker:
        try:
            docker.compose.up(detach=True, build=build, wait=True, wait_timeout=wait)
        except DockerException as error:
            raise _not_up(docker, chosen, wait, error) from None
        try:
            ready = states(docker)
        except DockerException as error:
            raise _failed(chosen, "ps", error) from None
    console.print(urls_table(ready, chosen.mode))
    return ready


def down(*, root: Path, volumes: bool, mode: str = "local") -> None:
    chosen = stack(mode)
    preflight.require_compose_tools()
    try:
        client(root, chosen).compose.down(volumes=volumes)
    except DockerException as error:
        raise _failed(chosen, "down", error) from None


def logs(
    *, root: Path, services: Sequence[str], follow: bool, tail: str | None, mode: str = "local"
) -> None:
    """Stream the stack's logs to stdout (Ctrl-C stops following)."""
    chosen = stack(mode)
    preflight.require_compose_tools()
    try:
        stream = client(root, chosen).compose.logs(
            services=list(services), follow=follow, tail=tail, stream=True
        )
        for _source, line in stream:
            print(line.decode(errors="replace"), end="", flush=True)
    except DockerException as error:
        raise _failed(chosen, "logs", error) from None


def _not_up(docker: DockerClient, chosen: Stack, timeout: int, error: DockerException) -> ToolError:
    """The service to blame when `compose up --wait` failed, else compose's own reason."""
    with contextlib.suppress(DockerException):
        reason = diagnose(states(docker), timeout, chosen.mode)
        if reason is not None:
            return reason
    return _failed(chosen, "up --wait", error)


def _failed(
    chosen: Stack, command: str, error: DockerException, fix: str | None = None
) -> ToolError:
    """One line: compose's first error line, or its exit code when it printed to the terminal."""
    reason = preflight.first_line(error.stderr or "") or f"exit {error.return_code}"
    option = "" if chosen.mode == "local" else f" --mode {chosen.mode}"
    return ToolError(
        f"`docker compose -f {chosen.file} {command}` failed ({reason})",
        fix or f"read the output above and `invoke logs{option}`",
    )
