"""Quality gates. Every session installs from uv.lock, the same lock CI and the images use.

`nox -l` lists them; CI runs exactly these sessions (see .github/workflows/ci.yml).
"""

from __future__ import annotations

from pathlib import Path

import nox

nox.needs_version = ">=2025.5.1"
nox.options.default_venv_backend = "uv"
nox.options.sessions = ["lint", "typecheck", "tests"]

ROOT = Path(__file__).parent
# tools: tests drive invoke, nox and hatch themselves; bench: the benchmarks have tests too
TEST_GROUPS = ("test", "tools", "bench")
# One mypy run per member: every member's tests have a conftest.py, which mypy names plain
# `conftest` wherever its path is not a dotted module path (libs/lightning-core/tests).
TYPECHECK_RUNS = [
    ["libs/lightning-core"],
    ["services/api"],
    ["services/event-processor"],
    ["services/ui"],
    ["tools/lightning-devtools"],
    ["infra"],
    ["tests", "noxfile.py", "tasks.py", "docker/azure"],
]


def sync(session: nox.Session, *groups: str, members: bool = True) -> None:
    """Install the named dependency groups exactly as locked, with the workspace members and
    every provider SDK (pyproject's `members` group; infra has its own session) unless
    `members` is False."""
    session.run_install(
        "uv",
        "sync",
        "--locked",
        "--no-default-groups",
        *(f"--group={group}" for group in (*(("members",) if members else ()), *groups)),
        env={"UV_PROJECT_ENVIRONMENT": session.virtualenv.location},
        silent=True,
    )


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite (pass pytest arguments after --)."""
    sync(session, *TEST_GROUPS)
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """Lock freshness, ruff, hadolint on every Dockerfile, actionlint and GitHub's schemas on
    .github/."""
    session.run("uv", "lock", "--check", external=True)
    sync(session, "lint", members=False)
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("hadolint", *sorted(str(p) for p in ROOT.glob("docker/*.Dockerfile")))
    session.run("actionlint", "-shellcheck=", "-pyflakes=")
    workflows = sorted(str(p) for p in ROOT.glob(".github/workflows/*.yml"))
    session.run("check-jsonschema", "--builtin-schema", "vendor.github-workflows", *workflows)
    session.run(
        "check-jsonschema", "--builtin-schema", "vendor.dependabot", ".github/dependabot.yml"
    )


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict over every package, the tests, noxfile.py and tasks.py."""
    sync(session, "typecheck", "test")
    for sources in TYPECHECK_RUNS:
        session.run("mypy", *sources)


# The members at the floors their pyproject.toml files declare, with their extras.
MEMBERS_AT_FLOORS = [
    "libs/lightning-core[local,azure]",
    "services/api",
    "services/event-processor[functions]",
    "services/ui",
]


@nox.session(default=False)
def lowest(session: nox.Session) -> None:
    """The members' tests with every direct dependency at its floor (uv's lowest-direct) and
    the test tools as locked."""
    from lightning_devtools.lock import group_pins  # noqa: PLC0415 - in nox's own environment

    session.run_install(
        "uv",
        "pip",
        "install",
        "--resolution=lowest-direct",
        *(f"--editable={member}" for member in MEMBERS_AT_FLOORS),
        *group_pins(ROOT, "test"),
        env={"VIRTUAL_ENV": session.virtualenv.location},
        silent=True,
    )
    members = [member.partition("[")[0] for member in MEMBERS_AT_FLOORS]
    session.run("pytest", *(session.posargs or members))


@nox.session(default=False)
def infra(session: nox.Session) -> None:
    """The Pulumi program's policy tests under mocks (installs the Azure providers)."""
    sync(session, "infra", *TEST_GROUPS)
    session.run("pytest", "infra", *session.posargs)


@nox.session(default=False)
def containers(session: nox.Session) -> None:
    """Build every local and azure bake target for real with buildah, then run each image."""
    sync(session, *TEST_GROUPS)
    session.run("pytest", "-m", "containers", "--capture=no", *session.posargs)


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """The real pipeline (API, processor, storage, bus as processes) under saturation and a
    fixed rate, beside a plain consumer and FastStream; JSON and plots (`-- --help`)."""
    sync(session, "bench")
    session.run("python", "-m", "lightning_devtools.bench.pipeline", *session.posargs)


@nox.session(name="bench-providers", default=False)
def bench_providers(session: nox.Session) -> None:
    """Provider throughput next to the raw client ceiling; list queries next to the old
    offset query; measured in the same run."""
    sync(session)
    session.run("python", "-m", "lightning_devtools.bench.providers", *session.posargs)


@nox.session(name="bench-api", default=False)
def bench_api(session: nox.Session) -> None:
    """POST /api/events req/s next to a bare FastAPI endpoint; POST-to-processed p50/p99."""
    sync(session, "bench")
    session.run("python", "-m", "lightning_devtools.bench.api", *session.posargs)


@nox.session(name="bench-streams", default=False)
def bench_streams(session: nox.Session) -> None:
    """PostgreSQL transactions/s with idle event streams and after a POST; POST p99 under
    hundreds of open streams."""
    sync(session)
    session.run("python", "-m", "lightning_devtools.bench.streams", *session.posargs)
