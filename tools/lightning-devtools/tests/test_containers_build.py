"""Build every local and azure bake target with buildah and run each image (slow: minutes).

Marked `containers`: `nox -s containers` runs the same thing as a command, and
`pytest -m containers` runs it as a test. On a laptop without buildah it skips saying how
to install; in CI (CI=true) a missing tool is a failure, never a silent skip.
"""

from __future__ import annotations

import os
import shutil

import pytest

from lightning_devtools import containers, podman

pytestmark = [pytest.mark.containers, pytest.mark.timeout(1800)]


def require_tools() -> None:
    missing = [tool for tool in podman.REQUIRED_TOOLS if shutil.which(tool) is None]
    if not missing:
        return
    reason = f"{', '.join(missing)} missing; install: {podman.INSTALL_FIX}"
    if os.environ.get("CI", "").lower() in ("true", "1"):
        pytest.fail(f"CI must build the images: {reason}")
    pytest.skip(reason)


def test_every_bake_target_builds_runs_and_is_cleaned_up() -> None:
    require_tools()
    assert containers.main([]) == 0
    engine = podman.setup_engine(containers.cache_dir())
    listed = engine.run("podman", "ps", "--all", "--format", "{{.Names}}").stdout.split()
    assert not [name for name in listed if name.startswith("lightning-check-")]
