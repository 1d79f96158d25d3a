"""The buildah/podman driver's pure parts: commands from the bake plan, one-line failures."""

from __future__ import annotations

import shutil
from pathlib import Path
from subprocess import CompletedProcess

import pytest
from rich.console import Console

from lightning_devtools import containers, podman
from lightning_devtools.bake import load_plan
from lightning_devtools.containers import (
    bud_command,
    expected_refusal,
    image_of,
    service_of,
    stages_of,
    targets_of,
)


def test_every_local_and_azure_target_is_built_from_the_bake_plan() -> None:
    names = [target.name for target in targets_of(containers.GROUPS)]
    expected = [t.name for group in ("local", "azure") for t in load_plan(group).targets]
    assert names == expected
    assert len(names) == 6
    assert [stage.name for stage in stages_of(containers.GROUPS)] == ["_builder", "_runtime"]


def test_the_build_uses_the_base_image_this_machine_can_build(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PYTHON_IMAGE", raising=False)
    for stage in stages_of(["local"]):
        assert stage.args["PYTHON_IMAGE"] == podman.BASE_IMAGE


def test_a_python_image_named_in_the_environment_is_pulled_not_built(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    image = "docker.io/library/python:3.13-slim"
    monkeypatch.setenv("PYTHON_IMAGE", image)
    ran: list[tuple[str, ...]] = []

    def run(_engine: podman.Engine, *command: str, **_: object) -> CompletedProcess[str]:
        ran.append(command)
        missing = command[1:3] == ("image", "exists")
        return CompletedProcess(command, 1 if missing else 0, "", "")

    monkeypatch.setattr(podman.Engine, "run", run)
    assert {stage.args["PYTHON_IMAGE"] for stage in stages_of(["local"])} == {image}
    assert podman.ensure_base_image(podman.Engine(tmp_path), podman.base_image()) == "pulled"
    assert ran[-1] == ("podman", "pull", "--quiet", image)


def test_bud_command_is_the_bake_target_in_buildah_terms() -> None:
    plan = load_plan("api-azure", variables={"TAG": "t"})
    target = plan.targets[0]
    stage_images = {stage.name: image_of(stage) for stage in plan.stages}
    command = bud_command(target, ca_bundle=Path("/ca.crt"), stage_images=stage_images)
    assert command[:6] == ["buildah", "bud", "--layers", "--format", "docker", "--force-rm"]
    assert command[command.index("--file") + 1] == str(target.dockerfile)
    assert command[command.index("--target") + 1] == "azure"
    assert "VERSION=0.1.0" in command
    assert "io.lightning-os.mode=azure" in command
    assert command[command.index("--tag") + 1] == "localhost/lightning-api:t-azure"
    assert command[command.index("--secret") + 1] == "id=ca,src=/ca.crt"
    assert command[-1] == str(target.context)
    contexts = [command[i + 1] for i, word in enumerate(command) if word == "--build-context"]
    assert contexts == [
        "builder=container-image://localhost/lightning-stage-builder:latest",
        "runtime=container-image://localhost/lightning-stage-runtime:latest",
    ]
    assert "--secret" not in bud_command(target, ca_bundle=None, stage_images=stage_images)


def test_a_stage_is_built_from_the_shared_dockerfile_under_a_local_name() -> None:
    stage = load_plan("ui-local", variables={"PYTHON_IMAGE": "base:1"}).stages[0]
    command = bud_command(stage, ca_bundle=None, stage_images={})
    assert command[command.index("--file") + 1].endswith("docker/python.Dockerfile")
    assert command[command.index("--target") + 1] == "builder"
    assert "PYTHON_IMAGE=base:1" in command
    assert command[command.index("--tag") + 1] == "localhost/lightning-stage-builder:latest"
    assert "--build-context" not in command


def test_service_comes_from_the_dockerfile_name() -> None:
    services = {service_of(target) for target in targets_of(["local"])}
    assert services == {"api", "event-processor", "ui"}
    assert set(containers.HTTP_PORTS) < services


def test_missing_tools_are_one_line_with_the_install_command(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("LIGHTNING_CONTAINERS_CACHE", str(tmp_path))
    monkeypatch.setattr("shutil.which", lambda _tool: None)
    assert containers.main([]) == 1
    out, err = capsys.readouterr()
    lines = [line for line in (out + err).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert "buildah, podman, runc, debootstrap not found" in lines[0]
    assert "apt-get install -y buildah podman runc debootstrap" in lines[0]
    assert not list(tmp_path.iterdir()), "nothing is written before the tools are there"


def test_an_unknown_group_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(containers, "run", lambda groups, _console: targets_of(groups))
    assert containers.main(["staging"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("error: bake group 'staging' is not defined")


def test_engine_config_points_at_private_overlay_storage(tmp_path: Path) -> None:
    if not shutil.which("podman"):
        pytest.skip("podman is not installed (apt-get install -y buildah podman runc debootstrap)")
    engine = podman.setup_engine(tmp_path)
    storage = (tmp_path / "storage.conf").read_text()
    assert 'driver = "overlay"' in storage
    assert f'graphroot = "{tmp_path}/storage/graph"' in storage
    assert 'runtime = "runc"' in (tmp_path / "containers.conf").read_text()
    assert engine.env["CONTAINERS_STORAGE_CONF"] == str(tmp_path / "storage.conf")
    assert engine.env["CONTAINERS_CONF"] == str(tmp_path / "containers.conf")


def test_an_image_started_without_settings_must_name_what_its_service_needs() -> None:
    refusals = {target.name: expected_refusal(target) for target in targets_of(["local", "azure"])}
    assert refusals == {
        "api-local": "DATABASE_URL",
        "api-azure": "COSMOS_CONNECTION_STRING",
        "event-processor-local": "DATABASE_URL",
        "event-processor-azure": "COSMOS_CONNECTION_STRING",
        "ui-local": None,  # needs no server: it starts on defaults (the healthz check)
        "ui-azure": "ENTRA_TENANT_ID",  # the sign-in's settings
    }


def test_an_image_whose_stage_did_not_build_is_not_built(tmp_path: Path) -> None:
    target = load_plan("api-local").targets[0]
    outcome = containers.Outcome(target.name, image_of(target))
    console = Console(quiet=True)
    assert not containers.build(podman.Engine(tmp_path), target, outcome, console, {})
    assert outcome.failure == "build: needs stage _builder, which did not build"
