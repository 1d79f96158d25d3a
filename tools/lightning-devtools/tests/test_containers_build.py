"""Build every local and azure bake target with buildah and run each image (slow: minutes).

Marked `containers`, so the default test run leaves it out and `nox -s containers` runs it
(`pytest -m containers`). On a laptop without buildah it skips saying how to install; in
CI (CI=true) a missing tool is a failure, never a silent skip.
"""

from __future__ import annotations

import shutil

import pytest

from lightning_core.testing.machine import require
from lightning_devtools import containers, podman

pytestmark = [pytest.mark.containers, pytest.mark.timeout(1800)]


def test_every_bake_target_builds_runs_and_is_cleaned_up() -> None:
    missing = [tool for tool in podman.REQUIRED_TOOLS if shutil.which(tool) is None]
    require(not missing, ", ".join(missing), podman.INSTALL_FIX)
    assert containers.main([]) == 0
    engine = podman.setup_engine(containers.cache_dir())
    listed = engine.run("podman", "ps", "--all", "--format", "{{.Names}}").stdout.split()
    assert not [name for name in listed if name.startswith("lightning-check-")]
