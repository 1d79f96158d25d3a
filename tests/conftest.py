"""The whole system's tests: the shared fixtures, every provider's test backend, the
storage + bus stacks, a headless Chromium, docker's plugins, and the runtime hosting
every service."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lightning_core.testing import backends
from lightning_core.testing.runtime import RunningSystem, start_runtime

pytest_plugins = [
    "lightning_core.testing.fixtures",
    *backends.PLUGINS,
    "lightning_core.testing.stacks",
    "lightning_core.testing.browser",
    "lightning_core.testing.commands",
]


@pytest.fixture
def embedded_system(tmp_path: Path) -> Iterator[RunningSystem]:
    """API, processor and UI in one runtime process (as `invoke dev` runs them)."""
    env = {"LIGHTNING_MODE": "embedded", "LIGHTNING_SQLITE_PATH": str(tmp_path / "system.db")}
    with start_runtime(env, tmp_path, services="api,event-processor,ui") as system:
        yield system
