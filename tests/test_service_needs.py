"""Each service gets only the providers lightning_core.topology.SERVICES declares for it: the
UI, which talks only to the API, starts in azure mode without storage or bus settings and
never imports a provider SDK, even where every SDK is installed."""

import importlib.util
import signal
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from lightning_core.config import load_settings
from lightning_core.runtime import prepare
from lightning_core.service import ENTRY_POINT_GROUP
from lightning_core.testing.health import wait_until_healthy
from lightning_core.testing.machine import free_port, require
from lightning_core.testing.runtime import clean_environment
from lightning_core.topology import SERVICES

PROVIDER_SDKS = ("azure", "asyncpg", "redis", "aio_pika")
# What the UI's Entra ID sign-in needs to start (nothing is asked of Entra until a sign-in).
UI_SIGN_IN = {
    "ENTRA_TENANT_ID": "00000000-0000-0000-0000-000000000001",
    "ENTRA_UI_CLIENT_ID": "00000000-0000-0000-0000-000000000002",
    "ENTRA_UI_CLIENT_SECRET": "ui-secret",
    "ENTRA_API_SCOPE": "api://lightning-os/access_as_user",
    "LIGHTNING_UI_PUBLIC_URL": "https://ui.example.com",
    "LIGHTNING_UI_SESSION_SECRET": "bGlnaHRuaW5nLXVpLXRlc3Qtc2Vzc2lvbi1rZXktMzI=",
}
# The runtime as the image runs it; on the way out, the SDK packages this process imported.
PROBE = """
import runpy, sys
try:
    runpy.run_module("lightning_core.runtime", run_name="__main__")
finally:
    roots = {name.split(".")[0] for name in sys.modules}
    print(",".join(sorted(roots & set(sys.argv[1].split(",")))) or "none")
"""


def test_every_installed_service_declares_its_needs_and_every_declared_one_is_installed() -> None:
    installed = {entry.name for entry in entry_points(group=ENTRY_POINT_GROUP)}
    assert installed == set(SERVICES)


def test_the_ui_alone_gets_neither_storage_nor_bus(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env
    settings = load_settings(LIGHTNING_MODE="azure", SERVICE_TYPE="ui", **UI_SIGN_IN)
    context, services = prepare(settings)
    assert list(services) == ["ui"]
    assert context.providers() == ()


def test_the_ui_runs_in_azure_mode_without_a_provider_sdk(tmp_path: Path) -> None:
    missing = [sdk for sdk in PROVIDER_SDKS if importlib.util.find_spec(sdk) is None]
    require(not missing, ", ".join(missing), "uv sync --all-extras (the probe needs every SDK)")
    port = free_port()
    url = f"http://127.0.0.1:{port}/healthz"
    inherited = {
        key: value
        for key, value in clean_environment().items()
        if not key.startswith(("COSMOS_", "SERVICE_BUS_", "ENTRA_"))
    }
    env = {
        **inherited,
        **UI_SIGN_IN,
        "LIGHTNING_MODE": "azure",
        "SERVICE_TYPE": "ui",
        "LIGHTNING_UI_PORT": str(port),
    }
    process = subprocess.Popen(
        [sys.executable, "-c", PROBE, ",".join(PROVIDER_SDKS)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        healthy = wait_until_healthy(process, [url])
    finally:
        process.send_signal(signal.SIGTERM)
        output, errors = process.communicate(timeout=60)
    assert healthy, f"the UI did not answer {url}: {errors.decode()}"
    assert process.returncode == 0, errors.decode()
    assert output.decode().strip() == "none"
