"""CI runs exactly the commands developers run: every `run:` step of ci.yml is a nox session
from noxfile.py or an invoke task from tasks.py (or an allow-listed setup command), and
the gates that matter are all there."""

from __future__ import annotations

import json
import re
import runpy
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nox.registry
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"
DEPENDABOT = ROOT / ".github" / "dependabot.yml"
COMPOSE = ROOT / "docker" / "compose.yaml"

# Setup only: installing the locked tools, putting them on PATH, system packages (with a
# policy-rc.d that keeps their servers from starting), the runner's user-namespace switch,
# and the registry login that `az` does after azure/login. Anything else must be nox or invoke.
SETUP_COMMANDS = (
    re.compile(r"uv sync --locked( --[\w-]+(=\S+)?| --group \w+)*"),
    re.compile(r'echo "\$PWD/\.venv/bin" >> "\$GITHUB_PATH"'),
    re.compile(r"sudo apt-get update( -qq)?"),
    re.compile(r"sudo apt-get install -y( -qq)?( [\w.+-]+)+"),
    re.compile(
        r"printf '#!/bin/sh\\nexit 101\\n' \| sudo install -m 755 /dev/stdin /usr/sbin/policy-rc\.d"
    ),
    re.compile(r"sudo rm /usr/sbin/policy-rc\.d"),
    re.compile(r"sudo sysctl -w kernel\.apparmor_restrict_unprivileged_userns=0"),
    re.compile(r'az acr login --name "\$ACR_NAME"'),
)
REQUIRED = {
    ("nox", "lint"),
    ("nox", "typecheck"),
    ("nox", "tests"),
    ("nox", "infra"),
    ("nox", "containers"),
    ("invoke", "build --mode local"),
    ("invoke", "build --mode azure"),
    ("invoke", "push --mode azure"),
    ("invoke", "package-function"),
    ("invoke", "deploy --stack production"),
    ("invoke", "smoke --stack production"),
}


def commands(run: str) -> Iterator[str]:
    """Each command of a `run:` script (continuation lines joined, comments dropped)."""
    for raw in run.replace("\\\n", " ").splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            yield line


def run_steps(workflow: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for job_name, job in workflow["jobs"].items():
        for step in job.get("steps", []):
            if "run" in step:
                for command in commands(step["run"]):
                    yield job_name, command


@pytest.fixture(scope="module")
def workflow() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(WORKFLOW.read_text())
    return loaded


@pytest.fixture(scope="module")
def nox_sessions() -> set[str]:
    runpy.run_path(str(ROOT / "noxfile.py"))  # @nox.session registers each session
    return set(nox.registry.get())


@pytest.fixture(scope="module")
def invoke_tasks() -> set[str]:
    done = subprocess.run(
        [sys.executable, "-m", "invoke", "--list", "--list-format", "json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return {task["name"] for task in json.loads(done.stdout)["tasks"]}


def classify(command: str, nox_sessions: set[str], invoke_tasks: set[str]) -> tuple[str, str]:
    """("nox", session) / ("invoke", "task args") / ("setup", command); AssertionError if none."""
    words = shlex.split(command)
    if words[:2] == ["nox", "-s"] and len(words) >= 3:
        assert words[2] in nox_sessions, f"`{command}`: no nox session {words[2]!r}"
        return "nox", words[2]
    if words[0] == "invoke" and len(words) >= 2:
        assert words[1] in invoke_tasks, f"`{command}`: no invoke task {words[1]!r}"
        return "invoke", " ".join(words[1:])
    if any(pattern.fullmatch(command) for pattern in SETUP_COMMANDS):
        return "setup", command
    raise AssertionError(f"`{command}` is neither `nox -s <session>` nor `invoke <task>`")


def test_every_run_step_is_a_session_a_task_or_setup(
    workflow: dict[str, Any], nox_sessions: set[str], invoke_tasks: set[str]
) -> None:
    for job, command in run_steps(workflow):
        try:
            classify(command, nox_sessions, invoke_tasks)
        except AssertionError as error:
            raise AssertionError(f"job {job}: {error}") from None


def test_ci_runs_every_required_gate(
    workflow: dict[str, Any], nox_sessions: set[str], invoke_tasks: set[str]
) -> None:
    ran = {classify(command, nox_sessions, invoke_tasks) for _, command in run_steps(workflow)}
    for kind, required in REQUIRED:
        assert any(
            found_kind == kind and (found == required or found.startswith(required + " "))
            for found_kind, found in ran
        ), f"CI never runs `{kind} {required}`"


def test_checker_rejects_what_it_should() -> None:
    sessions, tasks = {"tests"}, {"build"}
    for bad in ("pytest -x", "nox -s bench", "invoke deploy", "curl https://x | sh"):
        with pytest.raises(AssertionError):
            classify(bad, sessions, tasks)
    assert classify("invoke build --mode local", sessions, tasks) == (
        "invoke",
        "build --mode local",
    )


def test_every_action_is_pinned_by_sha_with_a_version_comment() -> None:
    for line in WORKFLOW.read_text().splitlines():
        if "uses:" in line:
            assert re.search(r"uses: [\w.-]+/[\w./-]+@[0-9a-f]{40} # v\d", line), line


def test_every_job_has_a_timeout_and_read_only_default(workflow: dict[str, Any]) -> None:
    assert workflow["permissions"] == {"contents": "read"}
    assert "concurrency" in workflow
    for name, job in workflow["jobs"].items():
        assert "timeout-minutes" in job, name


def test_deploy_runs_on_main_after_push_with_oidc_and_no_stored_secret(
    workflow: dict[str, Any], nox_sessions: set[str], invoke_tasks: set[str]
) -> None:
    deploy = workflow["jobs"]["deploy"]
    assert workflow["jobs"]["push"]["if"] == deploy["if"]
    assert "refs/heads/main" in deploy["if"]
    assert deploy["needs"] == ["push"]
    assert deploy["environment"] == "production"
    assert deploy["permissions"] == {"contents": "read", "id-token": "write"}
    assert "secrets." not in yaml.safe_dump(deploy)
    assert deploy["env"]["ARM_USE_OIDC"] == "true"
    uses = [step["uses"].split("@")[0] for step in deploy["steps"] if "uses" in step]
    for action in ("pulumi/actions", "azure/login", "actions/download-artifact"):
        assert action in uses, action
    ran = [
        classify(command, nox_sessions, invoke_tasks)[1]
        for job, command in run_steps(workflow)
        if job == "deploy"
    ]
    package, deploy_step, smoke = (
        ran.index("package-function"),
        ran.index("deploy --stack production"),
        ran.index("smoke --stack production"),
    )
    assert package < deploy_step < smoke, ran


def test_the_images_push_records_reach_the_deploy_job(workflow: dict[str, Any]) -> None:
    """The push job uploads dist/images.json; the deploy job downloads it into dist/."""
    uploads = [
        step["with"]
        for step in workflow["jobs"]["push"]["steps"]
        if step.get("uses", "").startswith("actions/upload-artifact@")
    ]
    downloads = [
        step["with"]
        for step in workflow["jobs"]["deploy"]["steps"]
        if step.get("uses", "").startswith("actions/download-artifact@")
    ]
    assert [upload["path"] for upload in uploads] == ["dist/images.json"]
    assert [download["path"] for download in downloads] == ["dist"]
    assert uploads[0]["name"] == downloads[0]["name"]


def test_the_tests_job_uses_the_servers_compose_runs(workflow: dict[str, Any]) -> None:
    services = workflow["jobs"]["tests"]["services"]
    compose = yaml.safe_load(COMPOSE.read_text())["services"]
    for server in ("postgres", "redis", "rabbitmq"):
        assert services[server]["image"] == compose[server]["image"], server


def test_tests_run_on_the_images_python_and_the_oldest_supported(
    workflow: dict[str, Any],
) -> None:
    dockerfile = (ROOT / "docker" / "python.Dockerfile").read_text()
    images_python = re.search(r"^ARG PYTHON_IMAGE=python:(\d+\.\d+)-slim$", dockerfile, re.M)
    oldest = re.search(
        r'^requires-python = ">=(\d+\.\d+)"$', (ROOT / "pyproject.toml").read_text(), re.M
    )
    assert images_python
    assert oldest
    matrix = workflow["jobs"]["tests"]["strategy"]["matrix"]["python"]
    assert set(matrix) == {images_python[1], oldest[1]}
    assert workflow["jobs"]["tests"]["env"]["UV_PYTHON"] == "${{ matrix.python }}"


def test_the_containers_job_builds_on_the_official_image_the_dockerfiles_name(
    workflow: dict[str, Any],
) -> None:
    dockerfile = (ROOT / "docker" / "python.Dockerfile").read_text()
    default = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", dockerfile, re.M)
    assert default
    image = workflow["jobs"]["containers"]["env"]["PYTHON_IMAGE"]
    assert image == f"docker.io/library/{default[1]}"


def test_dependabot_updates_the_actions_and_the_lock() -> None:
    updates = yaml.safe_load(DEPENDABOT.read_text())["updates"]
    assert {(update["package-ecosystem"], update["directory"]) for update in updates} == {
        ("github-actions", "/"),
        ("uv", "/"),
    }
