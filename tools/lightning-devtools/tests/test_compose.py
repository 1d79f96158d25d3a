"""`invoke compose-up` logic: the bounded `compose up --wait`, who to blame when it fails,
the URL table, the CA build secret, through a real python-on-whales run against a fake
docker CLI (there is no engine here) that serves containers' inspect JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from lightning_devtools import compose
from lightning_devtools.compose import ServiceState, diagnose
from lightning_devtools.errors import ToolError

ROOT = Path(__file__).resolve().parents[3]


def inspect_json(
    container_id: str, service: str, status: str, health: str | None, ports: dict[str, int]
) -> str:
    state: dict[str, object] = {"Status": status}
    if health is not None:
        state["Health"] = {"Status": health}
    return json.dumps(
        [
            {
                "Id": container_id,
                "Name": f"/lightning-{service}-1",
                "State": state,
                "Config": {"Labels": {"com.docker.compose.service": service}},
                "NetworkSettings": {
                    "Ports": {
                        spec: [{"HostIp": "127.0.0.1", "HostPort": str(port)}]
                        for spec, port in ports.items()
                    }
                },
            }
        ]
    )


@pytest.fixture
def fake_state(fake_docker: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The fake docker CLI with compose 2.30 (the minimum), an API and a PostgreSQL up."""
    state = fake_docker
    monkeypatch.setenv("FAKE_COMPOSE", "2.30.0")
    (state / "ids").write_text("c1\nc2\n")
    (state / "c1.json").write_text(
        inspect_json("c1", "api", "running", "healthy", {"8000/tcp": 8000})
    )
    (state / "c2.json").write_text(
        inspect_json("c2", "postgres", "running", "healthy", {"5432/tcp": 15432})
    )
    return state


COMPOSE_FILE = ROOT / "docker" / "compose.yaml"


def test_up_waits_within_the_timeout_then_prints_urls(fake_state: Path) -> None:
    console = Console(record=True, width=120)
    ready = compose.up(root=ROOT, build=False, timeout=30, console=console)
    assert [(s.service, s.health) for s in ready] == [("api", "healthy"), ("postgres", "healthy")]
    calls = (fake_state / "calls").read_text()
    # --wait-timeout bounds compose's wait on dependencies as well as the final one.
    assert f"compose --file {COMPOSE_FILE} up --detach --wait --wait-timeout 30\n" in calls
    assert not (fake_state / "override.json").exists()
    text = console.export_text()
    assert "http://localhost:8000" in text
    assert "postgresql://localhost:15432" in text


def test_up_names_the_unhealthy_service(fake_state: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_UP_FAILS", "dependency failed to start: container is unhealthy")
    (fake_state / "c2.json").write_text(
        inspect_json("c2", "postgres", "running", "unhealthy", {"5432/tcp": 5432})
    )
    with pytest.raises(ToolError) as caught:
        compose.up(root=ROOT, build=False, timeout=30, console=Console())
    assert caught.value.what == "Compose service(s) postgres failed to start"
    assert caught.value.fix.startswith("read `invoke logs --service postgres`")


def test_up_names_who_was_not_healthy_in_time(
    fake_state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_UP_FAILS", "application not healthy after 30s")
    (fake_state / "c1.json").write_text(
        inspect_json("c1", "api", "running", "starting", {"8000/tcp": 8000})
    )
    with pytest.raises(ToolError) as caught:
        compose.up(root=ROOT, build=False, timeout=30, console=Console())
    assert caught.value.what == "Compose service(s) api not healthy within 30s"
    assert "--timeout N" in caught.value.fix


def test_up_without_containers_reports_what_compose_said(
    fake_state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_UP_FAILS", "Bind for 127.0.0.1:8000 failed: port is already allocated")
    (fake_state / "ids").write_text("")
    with pytest.raises(ToolError, match=r"compose.yaml up --wait` failed \(exit 1\)\. Fix: read"):
        compose.up(root=ROOT, build=False, timeout=30, console=Console())


def test_a_ca_cert_reaches_every_build_as_the_ca_secret(fake_state: Path, tmp_path: Path) -> None:
    cert = tmp_path / "proxy-ca.pem"
    cert.write_text("-----BEGIN CERTIFICATE-----\n")
    services = {"postgres": {"image": "postgres:16"}, "api": {"build": {"context": ".."}}}
    (fake_state / "config.json").write_text(json.dumps({"services": services}))
    compose.up(root=ROOT, build=True, timeout=30, console=Console(), ca_cert=cert)
    calls = (fake_state / "calls").read_text()
    assert f"compose --file {COMPOSE_FILE} config --format json" in calls
    assert " up --build --detach --wait --wait-timeout 30\n" in calls
    assert json.loads((fake_state / "override.json").read_text()) == {
        "secrets": {"ca": {"file": str(cert)}},
        "services": {"api": {"build": {"secrets": ["ca"]}}},
    }


def test_a_missing_ca_cert_is_refused_before_docker_is_asked(
    fake_state: Path, tmp_path: Path
) -> None:
    with pytest.raises(ToolError, match=r"CA certificate .*nope\.pem does not exist"):
        compose.up(
            root=ROOT, build=True, timeout=30, console=Console(), ca_cert=tmp_path / "nope.pem"
        )
    assert not (fake_state / "calls").exists()


def test_compose_v1_only_machines_get_the_plugin_fix(
    fake_state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FAKE_COMPOSE")
    with pytest.raises(ToolError) as caught:
        compose.up(root=ROOT, build=False, timeout=30, console=Console())
    assert caught.value.what == (
        "docker compose v2 is required (docker: unknown command: docker compose)"
    )
    assert "docker-compose-plugin" in caught.value.fix
    assert " up " not in (fake_state / "calls").read_text()


def test_compose_older_than_2_30_is_refused(
    fake_state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_COMPOSE", "Docker Compose version v2.29.7")
    with pytest.raises(ToolError, match=r"version 2\.29\.7 is older than 2\.30\.0"):
        compose.up(root=ROOT, build=False, timeout=30, console=Console())
    assert " up " not in (fake_state / "calls").read_text()


def test_diagnose_blames_failed_services_first() -> None:
    states = [
        ServiceState("ui", "exited", None),
        ServiceState("api", "running", "starting"),
        ServiceState("redis", "running", None),
    ]
    reason = diagnose(states, 60)
    assert reason is not None
    assert reason.what == "Compose service(s) ui failed to start"
    waiting = diagnose(states[1:], 60)
    assert waiting is not None
    assert waiting.what == "Compose service(s) api not healthy within 60s"
    assert diagnose(states[2:], 60) is None
    assert diagnose([], 60) is None


def test_urls_use_the_protocol_of_well_known_ports() -> None:
    states = [
        ServiceState("rabbitmq", "running", "healthy", ((5672, 5672), (15672, 15672))),
        ServiceState("api", "running", "healthy", ((8000, 8000),)),
        ServiceState("redis", "running", "healthy", ((6379, 6379),)),
        ServiceState("event-processor", "running", "healthy"),
    ]
    assert compose.service_urls(states) == [
        ("api", "http://localhost:8000"),
        ("rabbitmq", "amqp://localhost:5672"),
        ("rabbitmq", "http://localhost:15672"),
        ("redis", "redis://localhost:6379"),
    ]


def test_published_ports_skip_unpublished_and_udp() -> None:
    ports = {
        "8000/tcp": [
            {"HostIp": "127.0.0.1", "HostPort": "8080"},
            {"HostIp": "::", "HostPort": "8080"},
        ],
        "9000/tcp": None,
        "53/udp": [{"HostIp": "127.0.0.1", "HostPort": "53"}],
    }
    assert compose.published_ports(ports) == ((8000, 8080),)
