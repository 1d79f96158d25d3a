"""docker/compose.yaml runs exactly what the `local` bake group builds."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from lightning_core.topology import SERVICES
from lightning_devtools.bake import BAKE_FILE, BakeTarget, load_plan

COMPOSE_FILE = BAKE_FILE.parent / "compose.yaml"
SERVERS = ("postgres", "redis", "rabbitmq")
_DEFAULTED = re.compile(r"\$\{(\w+):-([^}]*)\}")


def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return document


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's `${VAR:-default}` (the only form compose.yaml uses)."""
    return _DEFAULTED.sub(lambda m: env.get(m.group(1)) or m.group(2), value)


def app_services() -> dict[str, dict[str, Any]]:
    """Services compose builds and starts (stage services are built, never started)."""
    return {
        name: svc
        for name, svc in compose()["services"].items()
        if "build" in svc and svc.get("scale") != 0
    }


def test_stage_services_build_the_stages_bake_links() -> None:
    stages = {stage.target: stage for stage in load_plan("local").stages}
    built = [svc["build"] for svc in compose()["services"].values() if svc.get("scale") == 0]
    assert {build["target"] for build in built} == set(stages)
    for build in built:
        context = (COMPOSE_FILE.parent / build["context"]).resolve()
        assert context / build["dockerfile"] == stages[build["target"]].dockerfile
    for service in app_services().values():
        assert service["build"]["additional_contexts"] == {
            "builder": "service:python-builder",
            "runtime": "service:python-runtime",
        }


def local_targets(env: dict[str, str]) -> dict[str, BakeTarget]:
    targets = load_plan("local", variables=env).targets
    return {target.dockerfile.name.removesuffix(".Dockerfile"): target for target in targets}


@pytest.mark.parametrize("env", [{}, {"REGISTRY": "acr.example.io", "TAG": "abc"}])
def test_each_app_service_runs_the_image_its_local_bake_target_tags(env: dict[str, str]) -> None:
    targets = local_targets(env)
    services = app_services()
    assert set(services) == set(targets)
    for name, service in services.items():
        target = targets[name]
        assert interpolate(service["image"], env) in target.tags
        build = service["build"]
        assert build["target"] == "local" == target.target
        context = (COMPOSE_FILE.parent / build["context"]).resolve()
        assert context == target.context
        assert context / build["dockerfile"] == target.dockerfile


def test_app_services_run_in_local_mode_against_the_servers_they_need() -> None:
    for name, service in app_services().items():
        env = service["environment"]
        assert env["LIGHTNING_MODE"] == "local"
        assert env["SERVICE_TYPE"] == name
        needs = SERVICES[name]
        servers = {"postgres"} if needs.storage else set()
        if needs.bus:
            servers |= {"redis", "rabbitmq"}
            assert env["REDIS_URL"].startswith("redis://redis:6379")
            assert "@rabbitmq:5672" in env["RABBITMQ_URL"]
        else:
            assert not {"REDIS_URL", "RABBITMQ_URL"} & set(env), name
        if needs.storage:
            assert "@postgres:5432/" in env["DATABASE_URL"]
        else:
            assert "DATABASE_URL" not in env, name
        waits_for = {server for server in service["depends_on"] if server in SERVERS}
        assert waits_for == servers, name
        for server in servers:
            assert service["depends_on"][server] == {"condition": "service_healthy"}
    ui = app_services()["ui"]
    assert ui["depends_on"] == {"api": {"condition": "service_healthy"}}
    assert ui["environment"]["LIGHTNING_API_URL"] == "http://api:8000"


def test_every_started_service_has_a_cmd_shell_healthcheck() -> None:
    for name, service in compose()["services"].items():
        if service.get("scale") == 0:
            continue
        test = service["healthcheck"]["test"]
        assert test[0] == "CMD-SHELL", f"{name}: podman 4.3 splits CMD arguments on spaces"
        assert len(test) == 2
        if name in ("api", "ui"):
            assert "urllib.request" in test[1], "python stdlib: slim images have no curl"
            assert "/healthz" in test[1]


def test_servers_are_official_images() -> None:
    services = compose()["services"]
    for server in SERVERS:
        image = services[server]["image"]
        assert image.split(":")[0] == server
        assert "/" not in image


def test_published_ports_are_the_services_ports_on_loopback() -> None:
    services = app_services()
    assert [interpolate(p, {}) for p in services["api"]["ports"]] == ["127.0.0.1:8000:8000"]
    assert [interpolate(p, {}) for p in services["ui"]["ports"]] == ["127.0.0.1:8080:8080"]
    assert "ports" not in services["event-processor"]


def test_the_servers_keep_their_data_on_named_volumes() -> None:
    """A crash or `compose down` loses no accepted event (docs/durability.md)."""
    document = compose()
    for name in SERVERS:
        mounts = document["services"][name].get("volumes", [])
        assert any(mount.split(":")[0] in document["volumes"] for mount in mounts), name
    command = document["services"]["redis"]["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--appendfsync") + 1] in {"always", "everysec"}
    assert document["services"]["rabbitmq"]["hostname"]  # its data directory is named after it
