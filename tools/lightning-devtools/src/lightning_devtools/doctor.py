"""`invoke doctor`: which tools this machine has, which it lacks, and how to get them.

Only the default workflow's tools are required (Python >= 3.11, uv, nox, invoke); the others
are reported, and the commands that need them say so when run.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import metadata

from rich.console import Console
from rich.table import Table

from lightning_devtools import azure, docker, podman
from lightning_devtools.cli import find_tool
from lightning_devtools.docker import Probe

MIN_PYTHON = (3, 11)
FROM_LOCK = "run `uv sync` (installs it from uv.lock into .venv)"


@dataclass(frozen=True)
class Check:
    name: str
    needed_for: str
    required: bool
    probe: Callable[[], Probe]
    how_to_get: str


def version_of(*names: str, args: Sequence[str] = ("--version",)) -> Callable[[], Probe]:
    """Probe the first of `names` found (lock-installed first, then PATH)."""

    def probe() -> Probe:
        for name in names:
            path = find_tool(name)
            if path is not None:
                found = docker.run_quietly([path, *args])
                return Probe(ok=found.ok, detail=found.detail or path)
        return Probe(ok=False, detail="not found")

    return probe


def on_path(name: str) -> Callable[[], Probe]:
    """Probe for a tool that has no version flag exiting 0 (wrk)."""

    def probe() -> Probe:
        path = find_tool(name)
        return Probe(ok=path is not None, detail=path or "not found")

    return probe


def python_version() -> Probe:
    version = ".".join(str(part) for part in sys.version_info[:3])
    return Probe(ok=sys.version_info[:2] >= MIN_PYTHON, detail=f"{version} ({sys.executable})")


def invoke_version() -> Probe:
    try:
        return Probe(ok=True, detail=metadata.version("invoke"))
    except metadata.PackageNotFoundError:
        return Probe(ok=False, detail="not installed")


def default_checks() -> list[Check]:
    default = "nox sessions, invoke dev"
    build = "invoke build / push"
    stack = "invoke compose-up"
    here = "nox -s containers (no Docker engine)"
    deploy = "invoke deploy / destroy"
    return [
        Check("python", default, True, python_version, "install Python 3.11+ (pyenv, apt)"),
        Check(
            "uv", default, True, version_of("uv"), "`pip install uv` or https://docs.astral.sh/uv/"
        ),
        Check("nox", default, True, version_of("nox"), FROM_LOCK),
        Check("invoke", default, True, invoke_version, FROM_LOCK),
        Check("pre-commit", "git hooks", False, version_of("pre-commit"), FROM_LOCK),
        Check("docker CLI", f"{build}, {stack}", False, docker.docker_cli, docker.INSTALL_DOCKER),
        Check(
            "docker engine",
            f"{build}, {stack}",
            False,
            docker.docker_engine,
            "start Docker Desktop / `sudo systemctl start docker`",
        ),
        Check("docker buildx", build, False, docker.buildx, docker.INSTALL_BUILDX),
        Check("docker compose v2", stack, False, docker.compose, docker.INSTALL_COMPOSE),
        *(
            Check(tool, here, False, version_of(tool), f"`{podman.INSTALL_FIX}`")
            for tool in podman.REQUIRED_TOOLS
        ),
        Check("wrk", "nox -s bench-api", False, on_path("wrk"), "`apt-get install wrk`"),
        Check("hadolint", "nox -s lint, pre-commit", False, version_of("hadolint"), FROM_LOCK),
        Check("actionlint", "nox -s lint, pre-commit", False, version_of("actionlint"), FROM_LOCK),
        Check(
            "chromium",
            "UI browser tests",
            False,
            version_of("chromium", "chromium-browser", "google-chrome"),
            "`apt-get install chromium chromium-driver` (never `playwright install`)",
        ),
        Check("pulumi", deploy, False, azure.pulumi_cli, azure.INSTALL_PULUMI),
        Check(
            "az",
            f"invoke push --mode azure (ACR login), {deploy}",
            False,
            version_of("az"),
            azure.INSTALL_AZ,
        ),
        Check("Azure login", f"{deploy}, smoke --scope", False, azure.azure_login, azure.LOGIN_FIX),
    ]


def run_checks(checks: Sequence[Check]) -> list[tuple[Check, Probe]]:
    """Probe everything concurrently: a hung engine must not make the report slow."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        probes = list(pool.map(lambda check: check.probe(), checks))
    return list(zip(checks, probes, strict=True))


def report(results: Sequence[tuple[Check, Probe]]) -> Table:
    table = Table(title="lightning doctor", title_justify="left")
    for column in ("tool", "status", "version / reason", "needed for", "how to get it"):
        table.add_column(column, overflow="fold")
    for check, probe in results:
        if probe.ok:
            status = "[green]ok[/]"
        else:
            status = "[red]MISSING[/]" if check.required else "[yellow]missing[/]"
        table.add_row(
            check.name,
            status,
            probe.detail,
            check.needed_for + (" (required)" if check.required else ""),
            "" if probe.ok else check.how_to_get,
        )
    return table


def doctor(console: Console, checks: Sequence[Check] | None = None) -> int:
    """Print the report; 1 if a required tool is missing, else 0."""
    results = run_checks(default_checks() if checks is None else checks)
    console.print(report(results))
    missing = [check.name for check, probe in results if check.required and not probe.ok]
    if missing:
        console.print(f"[red]Missing for the default workflow:[/] {', '.join(missing)}")
        return 1
    console.print("[green]Everything the default workflow needs is here.[/]")
    return 0
