"""lightning-core without extras: no provider SDK is imported, and asking for one names the
extra to install (one line, no traceback). An image installs the extras (the SDKs) only if
its service needs storage or bus."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lightning_core.testing.machine import require
from lightning_core.topology import SERVICES

REPO = Path(__file__).resolve().parents[1]

PROBE = """
import sys
from lightning_core.config import load_settings
from lightning_core.providers import build_bus, build_storage
from lightning_core.runtime import discover_services  # the entry point's imports
settings = load_settings()
build_storage(settings), build_bus(settings)
roots = {name.split(".")[0] for name in sys.modules}
sdks = sorted(roots & {"azure", "asyncpg", "redis", "aio_pika"})
print(",".join(sdks) or "none")
"""


ENTRA = {"ENTRA_TENANT_ID": "t", "ENTRA_AUDIENCE": "api://lightning-os"}


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh environment with lightning-core alone, as `pip install lightning-core` gives."""
    uv = shutil.which("uv")
    require(uv is not None, "uv", "python -m pip install uv")
    assert uv is not None
    venv = tmp_path_factory.mktemp("bare") / "venv"
    subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [
            uv,
            "pip",
            "install",
            "-q",
            "--python",
            str(python),
            str(REPO / "libs" / "lightning-core"),
        ],
        check=True,
    )
    return python


def run(python: Path, code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(python), "-c", code],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_embedded_mode_imports_no_provider_sdk(bare_python: Path, tmp_path: Path) -> None:
    result = run(bare_python, PROBE, LIGHTNING_SQLITE_PATH=str(tmp_path / "x.db"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "none"


@pytest.mark.parametrize(
    ("env", "extra", "sdk"),
    [
        (
            {
                "LIGHTNING_MODE": "azure",
                "COSMOS_ENDPOINT": "https://a",
                "SERVICE_BUS_NAMESPACE": "n",
                **ENTRA,
            },
            "azure",
            "azure",
        ),
        ({"LIGHTNING_EVENT_BUS_PROVIDER": "redis", "REDIS_URL": "redis://x"}, "local", "redis"),
        (
            {"LIGHTNING_STORAGE_PROVIDER": "postgres", "DATABASE_URL": "postgresql://x"},
            "local",
            "asyncpg",
        ),
    ],
)
def test_a_missing_extra_is_one_line_naming_it(
    bare_python: Path, env: dict[str, str], extra: str, sdk: str
) -> None:
    result = run(
        bare_python,
        "import sys; from lightning_core.runtime import main; sys.exit(main())",
        SERVICE_TYPE="api",  # not installed here: still named in the same line
        **env,
    )
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert f"install lightning-core[{extra}]" in line
    assert f"'{sdk}" in line


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_an_image_installs_the_provider_extras_only_if_its_service_needs_providers(
    service: str,
) -> None:
    dockerfile = (REPO / "docker" / f"{service}.Dockerfile").read_text()
    extras = set(re.findall(r"--extra (\w+)", dockerfile))
    needs = SERVICES[service]
    assert extras == ({"local", "azure"} if needs.storage or needs.bus else set())
