"""Developer commands: `invoke --list`. CI runs the same tasks (.github/workflows/ci.yml).

Each task parses its options and calls tested code in lightning_devtools. Those imports
live inside the tasks so `invoke --list` stays fast (no python-on-whales, rich, FastAPI).
Expected failures (no Docker engine, missing plugin, not logged in) end as one line on
stderr with the fix and exit code 1.
"""

# Lazy imports are the point (PLC0415); invoke hands every task its Context (ARG001) and
# maps each option to a parameter (PLR0917).
# ruff: noqa: PLC0415, ARG001, PLR0917

from __future__ import annotations

import shlex
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from invoke.context import Context
from invoke.exceptions import Exit
from invoke.tasks import task

ROOT = Path(__file__).resolve().parent


@contextmanager
def tool_errors() -> Iterator[None]:
    """Turn a ToolError into `Exit(one line, code=1)`; say how to get lightning_devtools."""
    try:
        from lightning_devtools.errors import ToolError
    except ModuleNotFoundError as error:
        raise Exit(
            f"{error.msg} for {sys.executable}. Fix: run `uv sync` and use `uv run invoke ...`",
            code=1,
        ) from None
    try:
        yield
    except ToolError as error:
        raise Exit(str(error), code=1) from None


def nox(c: Context, session: str) -> None:
    with tool_errors():
        from lightning_devtools.cli import run_session

        code = run_session(session, shlex.split(c.remainder), root=ROOT)
    if code:
        raise Exit(code=code)


def _build(*, dry_run: bool, ca_cert: str | None, **fields: Any) -> None:
    with tool_errors():
        from lightning_devtools.buildx import BuildRequest, build
        from lightning_devtools.cli import console

        request = BuildRequest(ca_cert=Path(ca_cert) if ca_cert else None, **fields)
        build(request, root=ROOT, dry_run=dry_run, console=console())


BUILD_HELP = {
    "mode": "local or azure: the bake group to build",
    "push": "push the images (needs a registry login)",
    "load": "load the images into the local image store",
    "dry-run": "print the resolved bake plan and command; Docker not needed",
    "tag": "image tag (bake variable TAG; beats the environment's TAG)",
    "registry": "registry prefix, e.g. myacr.azurecr.io (bake variable REGISTRY, likewise)",
    "python-image": "base image of every Dockerfile (bake variable PYTHON_IMAGE, likewise)",
    "ca-cert": "PEM bundle of a TLS-intercepting proxy, passed as build secret `ca`",
}


@task(help=BUILD_HELP)
def build(
    c: Context,
    mode: str = "local",
    push: bool = False,
    load: bool = False,
    dry_run: bool = False,
    tag: str | None = None,
    registry: str | None = None,
    python_image: str | None = None,
    ca_cert: str | None = None,
) -> None:
    """Build every image of a mode with `docker buildx bake` (docker/docker-bake.hcl)."""
    _build(
        dry_run=dry_run,
        ca_cert=ca_cert,
        mode=mode,
        push=push,
        load=load,
        tag=tag,
        registry=registry,
        python_image=python_image,
    )


@task(help={key: value for key, value in BUILD_HELP.items() if key not in ("push", "load")})
def push(
    c: Context,
    mode: str = "azure",
    dry_run: bool = False,
    tag: str | None = None,
    registry: str | None = None,
    python_image: str | None = None,
    ca_cert: str | None = None,
) -> None:
    """Build and push a mode's images (log in first: `az acr login --name <acr>`)."""
    build(
        c,
        mode,
        push=True,
        dry_run=dry_run,
        tag=tag,
        registry=registry,
        python_image=python_image,
        ca_cert=ca_cert,
    )


STACK_HELP = "Pulumi stack: infra/Pulumi.<stack>.yaml, e.g. production"


@task(
    help={
        "stack": STACK_HELP,
        "preview": "only show what would change (pulumi preview)",
        "registry-only": "a new stack's first deploy: only its registry, to push the images to",
    }
)
def deploy(c: Context, stack: str, preview: bool = False, registry_only: bool = False) -> None:
    """Deploy the pushed images (dist/images.json) to Azure: pulumi up for infra/."""
    with tool_errors():
        from lightning_devtools.deploy import deploy as run_deploy

        run_deploy(stack, preview=preview, root=ROOT, registry_only=registry_only)


@task(help={"stack": STACK_HELP})
def destroy(c: Context, stack: str) -> None:
    """Delete every Azure resource of a stack: pulumi destroy --yes for infra/."""
    with tool_errors():
        from lightning_devtools.deploy import destroy as run_destroy

        run_destroy(stack, root=ROOT)


@task(
    help={
        "url": "base URL to test, e.g. https://<front door host>",
        "stack": "test this deployed stack instead: its frontDoorUrl output (and API scope)",
        "scope": "token scope, e.g. api://lightning-os-prod/.default (az login / OIDC)",
        "token": "bearer token to send (or set LIGHTNING_SMOKE_TOKEN)",
        "timeout": "seconds for everything, waiting for the event to be processed included",
    }
)
def smoke(
    c: Context,
    url: str | None = None,
    stack: str | None = None,
    scope: str | None = None,
    token: str | None = None,
    timeout: int = 180,
) -> None:
    """Check a running Lightning OS: /healthz, /readyz, one event POSTed and processed."""
    with tool_errors():
        from lightning_devtools import smoke as checks
        from lightning_devtools.cli import console

        base, scope = checks.target(url=url, stack=stack, scope=scope, root=ROOT)
        bearer = checks.resolve_token(token, scope)
        checks.smoke(base, token=bearer, console=console(), timeout=timeout)


MODE_HELP = "the stack: local (docker/compose.yaml, default) or azure (docker/compose.azure.yaml)"


@task(
    name="compose-up",
    help={
        "mode": MODE_HELP,
        "build": "rebuild images (and, in azure mode, the Function package) before starting",
        "timeout": "seconds for the stack to start and be healthy (builds not counted); "
        "default 180, 900 in azure mode",
        "ca-cert": BUILD_HELP["ca-cert"],
    },
)
def compose_up(
    c: Context,
    mode: str = "local",
    build: bool = False,
    timeout: str | None = None,
    ca_cert: str | None = None,
) -> None:
    """Start a compose stack, wait until healthy, print the URLs."""
    with tool_errors():
        from lightning_devtools import compose
        from lightning_devtools.cli import console

        compose.up(
            root=ROOT,
            build=build,
            timeout=compose.seconds(timeout),
            console=console(),
            ca_cert=Path(ca_cert) if ca_cert else None,
            mode=mode,
        )


@task(
    name="compose-down",
    help={"mode": MODE_HELP, "volumes": "also delete the named volumes (database data)"},
)
def compose_down(c: Context, mode: str = "local", volumes: bool = False) -> None:
    """Stop and remove a compose stack."""
    with tool_errors():
        from lightning_devtools import compose

        compose.down(root=ROOT, volumes=volumes, mode=mode)


@task(
    iterable=["service"],
    help={
        "mode": MODE_HELP,
        "service": "only this service (repeatable)",
        "follow": "keep streaming",
        "tail": "lines per service",
    },
)
def logs(
    c: Context,
    service: list[str],
    mode: str = "local",
    follow: bool = False,
    tail: str | None = None,
) -> None:
    """Show a compose stack's logs."""
    with tool_errors():
        from lightning_devtools import compose

        compose.logs(root=ROOT, services=service, follow=follow, tail=tail, mode=mode)


@task
def lint(c: Context) -> None:
    """nox -s lint: uv lock --check, ruff, hadolint, actionlint."""
    nox(c, "lint")


@task
def typecheck(c: Context) -> None:
    """nox -s typecheck: mypy --strict."""
    nox(c, "typecheck")


@task
def test(c: Context) -> None:
    """nox -s tests; pytest arguments go after --, e.g. `invoke test -- -k bus`."""
    nox(c, "tests")


@task
def doctor(c: Context) -> None:
    """Report which tools are present, which are missing and how to get them."""
    with tool_errors():
        from lightning_devtools.cli import console
        from lightning_devtools.doctor import doctor as run_doctor

        code = run_doctor(console())
    if code:
        raise Exit(code=code)


@task
def dev(c: Context) -> None:
    """Run API, processor and UI in one process (embedded unless env/.env says); Ctrl-C stops."""
    with tool_errors():
        from lightning_devtools.dev import run_dev

        code = run_dev()
    if code:
        raise Exit(code=code)


@task(
    name="package-function",
    help={
        "output": "where to write the zip (relative to the repository root)",
        "python": "the Function App's Python version: 3.11, 3.12 or 3.13",
    },
)
def package_function(
    c: Context, output: str = "dist/event-processor-function.zip", python: str = "3.11"
) -> None:
    """Build the processor's Azure Functions zip: host files, Linux deps from uv.lock."""
    with tool_errors():
        from lightning_devtools.cli import console
        from lightning_devtools.function_package import build_package

        out = console()
        with out.status(f"Building the Function package for Python {python}..."):
            package = build_package(ROOT, ROOT / output, python=python)
        out.print(package.summary(), highlight=False)
