"""A pytest plugin of command-line tools for tests: docker's real buildx and compose v2
plugins (which need no engine for `bake --print` and `compose config`), and stand-ins on PATH.

Load it from a conftest.py: `pytest_plugins = ["lightning_core.testing.commands"]`.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from lightning_core.testing.machine import require


def docker_plugin_env(plugin: str) -> dict[str, str]:
    """The environment under which `docker <plugin>` is the real plugin: the machine's, or
    the one in LIGHTNING_DOCKER_CONFIG (what `.ci/docker-plugins` prints)."""
    env = dict(os.environ)
    if config := os.environ.get("LIGHTNING_DOCKER_CONFIG"):
        env["DOCKER_CONFIG"] = config
    docker = shutil.which("docker")
    works = docker is not None and (
        subprocess.run(
            [docker, plugin, "version"], env=env, capture_output=True, timeout=30, check=False
        ).returncode
        == 0
    )
    require(
        works,
        f"the real `docker {plugin}` plugin",
        "install Docker's buildx and compose plugins, or run "
        "`export LIGHTNING_DOCKER_CONFIG=$(bash .ci/docker-plugins)` (Debian's, no engine needed)",
    )
    return env


@pytest.fixture(scope="session")
def real_buildx() -> dict[str, str]:
    """Environment for the real `docker buildx` (`bake --print` needs no engine)."""
    return docker_plugin_env("buildx")


@pytest.fixture(scope="session")
def real_compose() -> dict[str, str]:
    """Environment for the real compose v2 (`compose config` needs no engine)."""
    return docker_plugin_env("compose")


def write_executable(path: Path, script: str) -> Path:
    """Write `script` to `path` and make it executable: a stand-in for a command."""
    path.write_text(script)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


@pytest.fixture
def fake_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str, str], Path]:
    """Install a stand-in: `fake_command(name, script)` writes an executable `name` into a
    directory that PATH then lists first, before only /usr/bin and /bin."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")

    def install(name: str, script: str) -> Path:
        return write_executable(bin_dir / name, script)

    return install
