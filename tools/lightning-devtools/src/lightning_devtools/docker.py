"""Is the Docker toolchain ready? Cheap probes with short timeouts (`invoke doctor` shows
them); the `require_*` functions raise one `ToolError` per gap before a build starts."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from lightning_devtools.errors import ToolError

PROBE_TIMEOUT = 10.0
# The first buildx that reads bake targets' `description`: older ones reject the bake file.
MIN_BUILDX = (0, 17, 0)
# The first compose whose `up --wait-timeout` also bounds its wait on dependencies.
MIN_COMPOSE = (2, 30, 0)

INSTALL_DOCKER = "install Docker Engine or Docker Desktop (https://docs.docker.com/get-docker/)"
NO_DOCKER_HINT = "without Docker, `nox -s containers` builds the same images with buildah"
INSTALL_BUILDX = (
    "install the buildx plugin: `apt-get install docker-buildx-plugin` from Docker's apt "
    "repository, or update Docker Desktop (https://github.com/docker/buildx#installing)"
)
INSTALL_COMPOSE = (
    "install the compose v2 plugin: `apt-get install docker-compose-plugin` from Docker's apt "
    "repository, or update Docker Desktop (the Python docker-compose v1 is not supported)"
)
LOCAL_REGISTRIES = ("localhost", "127.0.0.1", "[::1]")


@dataclass(frozen=True)
class Probe:
    """The answer to "is this tool usable?": a version when it is, the reason when not."""

    ok: bool
    detail: str


def run_quietly(argv: Sequence[str], *, timeout: float = PROBE_TIMEOUT, stdin: str = "") -> Probe:
    """Run a probe command; `ok` when it exits 0, `detail` is its first meaningful line."""
    executable = shutil.which(argv[0])
    if executable is None:
        return Probe(ok=False, detail=f"`{argv[0]}` not found on PATH")
    try:
        done = subprocess.run(  # noqa: S603 - argv is a fixed probe, never user text
            [executable, *argv[1:]],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return Probe(ok=False, detail=f"`{' '.join(argv)}` did not answer within {timeout:g}s")
    except OSError as error:
        return Probe(ok=False, detail=f"`{' '.join(argv)}` could not run: {error.strerror}")
    # Some tools print their version on stderr (nox); errors go there too.
    output = (done.stdout or done.stderr) if done.returncode == 0 else (done.stderr or done.stdout)
    return Probe(ok=done.returncode == 0, detail=first_line(output))


def first_line(text: str) -> str:
    """The first non-empty line: CLI errors put the reason there."""
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def parse_version(text: str) -> tuple[int, int, int] | None:
    """`github.com/docker/buildx v0.17.1 abc` or `2.26.1-desktop.1` -> (0, 17, 1)."""
    match = re.search(r"v?(\d+)\.(\d+)(?:\.(\d+))?", text)
    if match is None:
        return None
    major, minor, patch = match.groups()
    return int(major), int(minor), int(patch or 0)


def show(version: tuple[int, int, int]) -> str:
    return ".".join(str(part) for part in version)


def docker_cli() -> Probe:
    return run_quietly(["docker", "--version"])


def docker_engine() -> Probe:
    probe = run_quietly(["docker", "info", "--format", "{{.ServerVersion}}"])
    if probe.ok and probe.detail:
        return Probe(ok=True, detail=f"server {probe.detail}")
    return Probe(ok=False, detail=probe.detail or "`docker info` reported no server")


def buildx() -> Probe:
    return _plugin(["docker", "buildx", "version"], MIN_BUILDX)


def compose() -> Probe:
    # No `--short`: without the plugin docker rejects it as an unknown flag, hiding the cause.
    return _plugin(["docker", "compose", "version"], MIN_COMPOSE)


def _plugin(argv: list[str], minimum: tuple[int, int, int]) -> Probe:
    probe = run_quietly(argv)
    if not probe.ok:
        return probe
    version = parse_version(probe.detail)
    if version is None:
        return Probe(ok=False, detail=f"unrecognised version output {probe.detail!r}")
    if version < minimum:
        return Probe(ok=False, detail=f"version {show(version)} is older than {show(minimum)}")
    return Probe(ok=True, detail=show(version))


def require_docker_cli() -> None:
    probe = docker_cli()
    if not probe.ok:
        raise ToolError(
            f"Docker CLI is missing ({probe.detail})", f"{INSTALL_DOCKER}; {NO_DOCKER_HINT}"
        )


def require_engine() -> None:
    probe = docker_engine()
    if not probe.ok:
        raise ToolError(
            f"Docker engine is not reachable ({probe.detail})",
            "start Docker (Docker Desktop, or `sudo systemctl start docker`) or point "
            f"DOCKER_HOST / `docker context use` at a running engine; {NO_DOCKER_HINT}",
        )


def require_buildx() -> None:
    probe = buildx()
    if not probe.ok:
        raise ToolError(
            f"docker buildx {show(MIN_BUILDX)}+ is required ({probe.detail})", INSTALL_BUILDX
        )


def require_compose() -> None:
    probe = compose()
    if not probe.ok:
        raise ToolError(f"docker compose v2 is required ({probe.detail})", INSTALL_COMPOSE)


def require_build_tools() -> None:
    """Everything `docker buildx bake` needs, cheapest check first."""
    require_docker_cli()
    require_engine()
    require_buildx()


def require_compose_tools() -> None:
    """Everything `docker compose up` needs, cheapest check first."""
    require_docker_cli()
    require_engine()
    require_compose()


DOCKER_HUB = "docker.io"
DOCKER_HUB_AUTH_KEY = "https://index.docker.io/v1/"


def registry_of(image: str) -> str:
    """The registry host an image reference pushes to (`docker.io` when it names none)."""
    first, _, rest = image.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return first
    return DOCKER_HUB


def docker_config_file() -> Path:
    """Where `docker login` / `az acr login` store credentials (honours DOCKER_CONFIG)."""
    return Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker") / "config.json"


def registry_login(registry: str, config_file: Path | None = None) -> Probe:
    """Whether the Docker config holds credentials for `registry` (asks its credential helper)."""
    config_file = config_file or docker_config_file()
    try:
        config = json.loads(config_file.read_text()) if config_file.exists() else {}
    except (OSError, ValueError) as error:
        return Probe(ok=False, detail=f"cannot read {config_file}: {error}")
    key = DOCKER_HUB_AUTH_KEY if registry == DOCKER_HUB else registry
    helper = (config.get("credHelpers") or {}).get(key) or config.get("credsStore")
    if helper:
        probe = run_quietly([f"docker-credential-{helper}", "get"], stdin=key)
        if probe.ok:
            return Probe(ok=True, detail=f"credentials from docker-credential-{helper}")
        return Probe(ok=False, detail=f"docker-credential-{helper} has none ({probe.detail})")
    auths = config.get("auths") or {}
    for name in (key, f"https://{key}", f"http://{key}"):
        entry = auths.get(name) or {}
        if entry.get("auth") or entry.get("identitytoken"):
            return Probe(ok=True, detail=f"credentials in {config_file}")
    return Probe(ok=False, detail=f"no credentials for {registry} in {config_file}")


def require_registry_login(images: Iterable[str]) -> None:
    """Fail before a long build when a push would be refused for lack of a login."""
    for registry in sorted({registry_of(image) for image in images}):
        if registry.split(":")[0] in LOCAL_REGISTRIES:
            continue
        probe = registry_login(registry)
        if not probe.ok:
            acr = registry.removesuffix(".azurecr.io")
            fix = (
                f"run `az acr login --name {acr}`"
                if acr != registry
                else f"run `docker login {registry}`, or pass --registry <name>.azurecr.io"
            )
            raise ToolError(f"Not logged in to registry {registry} ({probe.detail})", fix)
