"""tasks.py as a developer meets it: `invoke --list` stays fast, expected failures are one
line without a traceback, options reach the tested code, extra args reach nox."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from invoke.context import Context
from invoke.exceptions import Exit

from lightning_core.testing.commands import write_executable

ROOT = Path(__file__).resolve().parents[3]
HEAVY = ("python_on_whales", "rich", "fastapi", "pydantic", "hcl2", "lightning_devtools.bake")

FAKE_DOCKER = r"""#!/bin/sh
case "$1" in
--version) echo "Docker version 28.2.2, build fake" ;;
info) [ "$FAKE_ENGINE" = up ] && { echo 28.2.2; exit 0; }
  echo "Cannot connect to the Docker daemon at unix:///var/run/docker.sock." >&2; exit 1 ;;
buildx|compose) echo "docker: unknown command: docker $1" >&2; exit 1 ;;
esac
"""


def invoke(*args: str, path: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, **env, "COLUMNS": "200"}
    if path is not None:
        environment["PATH"] = path
    return subprocess.run(
        [sys.executable, "-m", "invoke", *args],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def assert_one_line_failure(done: subprocess.CompletedProcess[str], expected: str) -> None:
    assert done.returncode == 1, done
    assert "Traceback" not in done.stderr + done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(expected), lines[0]
    assert ". Fix: " in lines[0]


@pytest.fixture
def fake_path(tmp_path: Path) -> Path:
    directory = tmp_path / "bin"
    directory.mkdir()
    return directory


def with_fake_docker(directory: Path) -> str:
    write_executable(directory / "docker", FAKE_DOCKER)
    return str(directory)


def load_tasks() -> ModuleType:
    spec = importlib.util.spec_from_file_location("tasks", ROOT / "tasks.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_importing_tasks_imports_nothing_heavy() -> None:
    code = f"import sys, tasks; print([m for m in {HEAVY!r} if m in sys.modules])"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"


def test_list_shows_every_task() -> None:
    done = invoke("--list", "--list-format", "json")
    assert done.returncode == 0, done.stderr
    names = {entry["name"] for entry in json.loads(done.stdout)["tasks"]}
    assert names == {
        "build",
        "push",
        "compose-up",
        "compose-down",
        "logs",
        "lint",
        "typecheck",
        "test",
        "doctor",
        "dev",
        "deploy",
        "destroy",
        "smoke",
        "package-function",
    }


def test_build_on_this_machine_fails_in_one_line() -> None:
    """The real environment: a docker CLI without an engine (skipped where Docker runs)."""
    engine = (
        subprocess.run(["docker", "info"], capture_output=True, timeout=30, check=False).returncode
        if os.path.exists("/usr/local/bin/docker")
        else 1
    )
    if engine == 0:
        pytest.skip("a Docker engine is running here; this checks machines without one")
    done = invoke("build", "--mode", "azure")
    assert_one_line_failure(done, "Docker")
    assert done.stdout == ""


def test_build_without_docker_cli(fake_path: Path) -> None:
    done = invoke("build", "--mode", "azure", path=str(fake_path))
    assert_one_line_failure(done, "Docker CLI is missing (`docker` not found on PATH)")


def test_build_without_engine(fake_path: Path) -> None:
    done = invoke("build", "--mode", "local", path=with_fake_docker(fake_path))
    assert_one_line_failure(done, "Docker engine is not reachable (Cannot connect")


def test_build_without_buildx(fake_path: Path) -> None:
    done = invoke("build", "--mode", "azure", path=with_fake_docker(fake_path), FAKE_ENGINE="up")
    assert_one_line_failure(
        done, "docker buildx 0.17.0+ is required (docker: unknown command: docker buildx)"
    )


def test_compose_up_without_compose_v2(fake_path: Path) -> None:
    done = invoke("compose-up", path=with_fake_docker(fake_path), FAKE_ENGINE="up")
    assert_one_line_failure(
        done, "docker compose v2 is required (docker: unknown command: docker compose)"
    )


def test_push_to_localhost_is_refused_before_docker_is_asked(fake_path: Path) -> None:
    done = invoke("push", "--mode", "azure", path=str(fake_path), REGISTRY="localhost")
    assert_one_line_failure(done, "Cannot push localhost/lightning-api:dev-azure")


def test_deploy_without_pulumi(fake_path: Path) -> None:
    done = invoke("deploy", "--stack", "production", path=str(fake_path))
    assert_one_line_failure(done, "Pulumi CLI is not available (`pulumi` not found on PATH)")


def test_destroy_without_an_azure_login(fake_path: Path) -> None:
    write_executable(fake_path / "pulumi", "#!/bin/sh\necho v3.272.0\n")
    environment = {name: "" for name in ("ARM_USE_OIDC", "ARM_CLIENT_SECRET")}
    done = invoke("destroy", "--stack", "production", path=str(fake_path), **environment)
    assert_one_line_failure(done, "Not logged in to Azure (no Azure CLI on PATH")


def test_smoke_needs_a_url_or_a_stack(fake_path: Path) -> None:
    done = invoke("smoke", path=str(fake_path))
    assert_one_line_failure(done, "pass exactly one of --url and --stack")


def test_unknown_mode(fake_path: Path) -> None:
    done = invoke("build", "--mode", "prod", path=str(fake_path))
    assert_one_line_failure(done, "Unknown build mode 'prod'")


def test_dry_run_needs_no_docker(fake_path: Path) -> None:
    done = invoke(
        "build",
        "--mode",
        "azure",
        "--dry-run",
        "--tag",
        "abc",
        "--registry",
        "r.azurecr.io",
        "--python-image",
        "mirror.example/python:3.13-slim",
        path=str(fake_path),
        TAG="from-env",
    )
    assert done.returncode == 0, done.stderr
    for expected in (
        *("ui-azure", "docker/ui.Dockerfile", "r.azurecr.io/lightning-ui:abc-azure"),
        *("PYTHON_IMAGE=mirror.example/python:3.13-slim", "REGISTRY=r.azurecr.io", "TAG=abc "),
        "bake -f docker/docker-bake.hcl --metadata-file dist/bake-metadata.json azure",
    ):
        assert expected in done.stdout


def test_push_takes_the_registry_from_the_environment(fake_path: Path) -> None:
    done = invoke(
        "push", "--mode", "azure", "--dry-run", path=str(fake_path), REGISTRY="myacr.azurecr.io"
    )
    assert done.returncode == 0, done.stderr
    assert "myacr.azurecr.io/lightning-api:" in done.stdout
    assert "--push" in done.stdout


def test_compose_up_checks_the_ca_cert_first(fake_path: Path) -> None:
    done = invoke("compose-up", "--build", "--ca-cert", "no-such.pem", path=str(fake_path))
    assert_one_line_failure(done, f"CA certificate {ROOT / 'no-such.pem'} does not exist")


def test_test_task_forwards_arguments_to_nox(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = tmp_path / "argv"
    fake_nox = write_executable(tmp_path / "nox", f'#!/bin/sh\necho "$PWD $*" > {record}\nexit 3\n')
    monkeypatch.setattr("lightning_devtools.cli.find_tool", lambda _name: str(fake_nox))
    tasks = load_tasks()
    with pytest.raises(Exit) as caught:
        tasks.test(Context(remainder="-k 'bus and redis' -x"))
    assert caught.value.code == 3
    assert record.read_text().strip() == f"{ROOT} -s tests -- -k bus and redis -x"
