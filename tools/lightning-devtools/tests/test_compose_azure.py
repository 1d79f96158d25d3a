"""`invoke compose-up --mode azure` and its helpers against a fake docker CLI: what it writes
for the emulators, when it builds the Function package, its one-line errors; the Service
Bus emulator's limits."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from datetime import timedelta
from pathlib import Path

import pytest
from rich.console import Console

from lightning_devtools import compose, compose_azure, servicebus_emulator
from lightning_devtools.compose import ServiceState, diagnose
from lightning_devtools.errors import ToolError
from lightning_devtools.function_package import FunctionPackage

ROOT = Path(__file__).resolve().parents[3]
#: What `compose config` answers, as far as compose-up reads it.
RESOLVED = {
    "services": {
        "event-processor": {
            "environment": {"LIGHTNING_MODE": "azure", "LIGHTNING_BUS_NAMESPACE": "lightning"}
        }
    }
}


def test_settings_past_the_emulators_limits_are_one_clear_error() -> None:
    env = {"LIGHTNING_BUS_MAX_ATTEMPTS": "11"}
    with pytest.raises(ToolError, match=r"max delivery count 11, above the Service Bus emul"):
        servicebus_emulator.emulator_config(servicebus_emulator.service_topology(env))
    with pytest.raises(ToolError, match=r"LIGHTNING_BUS_NAMESPACE is invalid"):
        servicebus_emulator.service_topology({"LIGHTNING_BUS_NAMESPACE": "Not Valid"})


@pytest.mark.parametrize(
    ("duration", "iso"),
    [
        (timedelta(minutes=5), "PT5M"),
        (timedelta(seconds=20), "PT20S"),
        (timedelta(hours=1, seconds=5), "PT1H5S"),
        (timedelta(minutes=10), "PT10M"),
    ],
)
def test_iso_durations(duration: timedelta, iso: str) -> None:
    assert servicebus_emulator.iso_duration(duration) == iso


# ---- invoke compose-up / compose-down / logs --mode azure (fake docker CLI) -------------------


@pytest.fixture
def azure_docker(fake_docker: Path) -> Path:
    """The fake docker CLI answering `compose config` as compose-up reads it."""
    (fake_docker / "config.json").write_text(json.dumps(RESOLVED))
    return fake_docker


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A repository root whose dist/ already holds a Function package."""
    root = tmp_path / "repo"
    package = root / compose_azure.FUNCTION_PACKAGE
    package.parent.mkdir(parents=True)
    with zipfile.ZipFile(package, "w") as archive:
        archive.writestr("function_app.py", "from lightning_processor.function_app import app\n")
        archive.writestr("host.json", "{}")
    return root


def test_compose_up_azure_writes_what_the_emulators_read_then_waits_longer(
    azure_docker: Path, workspace: Path
) -> None:
    stale = workspace / compose_azure.FUNCTION_ROOT / "gone.py"
    stale.parent.mkdir(parents=True)
    stale.write_text("")
    compose.up(root=workspace, build=False, timeout=None, console=Console(), mode="azure")
    calls = (azure_docker / "calls").read_text().splitlines()
    file = workspace / "docker" / "compose.azure.yaml"
    assert f"compose --file {file} config --format json" in calls
    assert f"compose --file {file} up --detach --wait --wait-timeout 900" in calls
    config = json.loads((workspace / compose_azure.EMULATOR_CONFIG).read_text())
    [topic] = config["UserConfig"]["Namespaces"][0]["Topics"]
    assert topic["Name"] == "lightning-events"
    unpacked = workspace / compose_azure.FUNCTION_ROOT
    assert sorted(p.name for p in unpacked.iterdir()) == ["function_app.py", "host.json"]


@pytest.mark.usefixtures("azure_docker")
def test_compose_up_azure_builds_the_function_package_when_asked_or_missing(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[tuple[Path, str]] = []
    package = workspace / compose_azure.FUNCTION_PACKAGE

    def build_package(_root: Path, output: Path, *, python: str) -> FunctionPackage:
        built.append((output, python))
        with zipfile.ZipFile(output, "w") as archive:
            archive.writestr("function_app.py", "rebuilt\n")
        return FunctionPackage(output, output.stat().st_size, 1, python)

    monkeypatch.setattr(compose_azure, "build_package", build_package)
    compose.up(root=workspace, build=False, timeout=30, console=Console(), mode="azure")
    assert built == []
    compose.up(root=workspace, build=True, timeout=30, console=Console(), mode="azure")
    assert built == [(package, compose_azure.FUNCTION_PYTHON)]
    package.unlink()
    compose.up(root=workspace, build=False, timeout=30, console=Console(), mode="azure")
    assert len(built) == 2
    app = workspace / compose_azure.FUNCTION_ROOT / "function_app.py"
    assert app.read_text() == "rebuilt\n"


def test_compose_up_azure_without_entra_says_what_to_set_before_anything_runs(
    azure_docker: Path, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = "required variable ENTRA_TENANT_ID is missing a value: set ENTRA_TENANT_ID"
    monkeypatch.setenv("FAKE_CONFIG_FAILS", missing)
    with pytest.raises(ToolError) as caught:
        compose.up(root=workspace, build=False, timeout=None, console=Console(), mode="azure")
    assert caught.value.what == (
        f"`docker compose -f docker/compose.azure.yaml config` failed ({missing})"
    )
    assert caught.value.fix.startswith("set what it names")
    assert " up " not in (azure_docker / "calls").read_text()
    assert not (workspace / compose_azure.STATE).exists()


def test_compose_down_and_logs_take_the_mode(azure_docker: Path, workspace: Path) -> None:
    compose.down(root=workspace, volumes=True, mode="azure")
    compose.logs(root=workspace, services=["cosmos"], follow=False, tail="5", mode="azure")
    calls = (azure_docker / "calls").read_text()
    file = workspace / "docker" / "compose.azure.yaml"
    assert f"compose --file {file} down --volumes" in calls
    assert f"compose --file {file} logs" in calls


def test_an_unknown_mode_or_timeout_is_one_clear_error(workspace: Path) -> None:
    with pytest.raises(ToolError, match=r"no 'embedded' compose stack\. Fix: use --mode local"):
        compose.down(root=workspace, volumes=False, mode="embedded")
    with pytest.raises(ToolError, match=r"--timeout 1m is not a number of seconds"):
        compose.seconds("1m")
    assert compose.seconds(None) is None
    assert compose.seconds("90") == 90


def test_a_completed_one_shot_is_done_not_failed() -> None:
    done = ServiceState("cosmos-ca", "exited", None, exit_code=0)
    broken = ServiceState("cosmos-ca", "exited", None, exit_code=1)
    assert done.ready
    assert not done.failed
    assert broken.failed
    reason = diagnose([done, broken, ServiceState("cosmos", "running", "starting")], 600, "azure")
    assert reason is not None
    assert reason.what == "Compose service(s) cosmos-ca failed to start"
    assert reason.fix == (
        "read `invoke logs --mode azure --service cosmos-ca`, fix, "
        "then `invoke compose-up --mode azure`"
    )
    assert diagnose([done], 600, "azure") is None


# ---- the azure-mode services, run for real on the emulators' stand-ins -----------------------
# No emulator runs here (no engine): the services run in this process with the environments
# compose resolved, the emulators' addresses rewritten to the Cosmos REST test server, the
# Service Bus fake (declared from the generated Config.json) and a local Azurite.


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--mode", "nope"], "there is no 'nope' compose stack. Fix: use --mode local or"),
        (["--mode", "azure", "--timeout", "soon"], "--timeout soon is not a number of seconds"),
    ],
)
def test_the_task_refuses_a_bad_option_in_one_line(arguments: list[str], message: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "invoke", "compose-up", *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    [line] = done.stderr.splitlines()
    assert message in line
