"""`invoke compose-up` logic: health polling, URL table, and a real python-on-whales run
against a fake docker CLI (there is no engine here) that serves containers' inspect JSON."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from rich.console import Console

from lightning_devtools import compose
from lightning_devtools.compose import ServiceState, wait_until_ready
from lightning_devtools.errors import ToolError

ROOT = Path(__file__).resolve().parents[3]

# A docker CLI stand-in: engine up, compose v2 when FAKE_COMPOSE is set; `compose ps`
# lists the ids in $FAKE_STATE/ids and counts polls; `container inspect ID` answers
# $FAKE_STATE/ID.json, or ID.later.json from the third poll on (health changes over time).
FAKE_DOCKER = r"""#!/bin/sh
echo "$*" >> "$FAKE_STATE/calls"
case "$1" in
--version) echo "Docker version 28.2.2, build fake" ;;
info) echo 28.2.2 ;;
compose)
  if [ "$2" = version ]; then
    [ -n "$FAKE_COMPOSE" ] && { echo "$FAKE_COMPOSE"; exit 0; }
    echo "docker: unknown command: docker compose" >&2; exit 1
  fi
  case " $* " in
  *" ps "*) echo x >> "$FAKE_STATE/polls"; cat "$FAKE_STATE/ids" ;;
  esac ;;
container)
  polls=$(wc -l < "$FAKE_STATE/polls")
  if [ "$polls" -ge 3 ] && [ -f "$FAKE_STATE/$3.later.json" ]; then
    cat "$FAKE_STATE/$3.later.json"
  else
    cat "$FAKE_STATE/$3.json"
  fi ;;
esac
"""


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
def fake_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir, state = tmp_path / "bin", tmp_path / "state"
    bin_dir.mkdir()
    state.mkdir()
    docker = bin_dir / "docker"
    docker.write_text(FAKE_DOCKER)
    docker.chmod(docker.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.setenv("FAKE_STATE", str(state))
    monkeypatch.setenv("FAKE_COMPOSE", "2.26.1")
    (state / "polls").write_text("")
    (state / "ids").write_text("c1\nc2\n")
    (state / "c1.json").write_text(
        inspect_json("c1", "api", "running", "starting", {"8000/tcp": 8000})
    )
    (state / "c1.later.json").write_text(
        inspect_json("c1", "api", "running", "healthy", {"8000/tcp": 8000})
    )
    (state / "c2.json").write_text(
        inspect_json("c2", "postgres", "running", "healthy", {"5432/tcp": 15432})
    )
    return state


def test_up_waits_for_health_then_prints_urls(fake_state: Path) -> None:
    console = Console(record=True, width=120)
    ready = compose.up(root=ROOT, build=False, timeout=30, console=console, interval=0.01)
    assert [(s.service, s.health) for s in ready] == [("api", "healthy"), ("postgres", "healthy")]
    assert len((fake_state / "polls").read_text().split()) == 3
    calls = (fake_state / "calls").read_text()
    assert f"compose --file {ROOT / 'docker/compose.yaml'} up --detach" in calls
    text = console.export_text()
    assert "http://localhost:8000" in text
    assert "postgresql://localhost:15432" in text


def test_up_names_the_unhealthy_service(fake_state: Path) -> None:
    (fake_state / "c2.json").write_text(
        inspect_json("c2", "postgres", "running", "unhealthy", {"5432/tcp": 5432})
    )
    with pytest.raises(ToolError) as caught:
        compose.up(root=ROOT, build=False, timeout=30, console=Console(), interval=0.01)
    assert caught.value.what == "Compose service(s) postgres failed to start"
    assert caught.value.fix.startswith("read `invoke logs --service postgres`")


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


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_wait_times_out_naming_who_is_not_ready() -> None:
    clock = FakeClock()
    states = [
        ServiceState("api", "running", "starting"),
        ServiceState("redis", "running", None),
    ]
    with pytest.raises(ToolError) as caught:
        wait_until_ready(lambda: states, timeout=10, interval=2, clock=clock, sleep=clock.sleep)
    assert caught.value.what == "Compose services api not healthy after 10s"
    assert clock.now == 10


def test_wait_fails_fast_on_an_exited_container() -> None:
    clock = FakeClock()
    states = [ServiceState("ui", "exited", None), ServiceState("api", "running", "healthy")]
    with pytest.raises(ToolError, match=r"service\(s\) ui failed"):
        wait_until_ready(lambda: states, timeout=60, clock=clock, sleep=clock.sleep)
    assert clock.now == 0


def test_wait_needs_at_least_one_container() -> None:
    clock = FakeClock()
    with pytest.raises(ToolError, match=r"\(none started\) not healthy"):
        wait_until_ready(lambda: [], timeout=4, interval=1, clock=clock, sleep=clock.sleep)


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
