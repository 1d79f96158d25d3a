"""The pytest plugin of a headless Chromium driven by Playwright, for the tests of the UI.

Playwright drives the machine's Chromium (it never downloads one): Debian's by default,
or the binary LIGHTNING_TEST_CHROMIUM names (CI runners point it at the Chrome they ship).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from lightning_core.testing.machine import require

CHROMIUM = Path(os.environ.get("LIGHTNING_TEST_CHROMIUM", "/usr/bin/chromium"))
# Flags that keep Chromium quiet on a closed network.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


@pytest.fixture
def browser() -> Iterator[Browser]:
    require(
        CHROMIUM.exists(),
        f"a Chromium at {CHROMIUM}",
        "install Chromium (apt-get install -y chromium, brew install --cask chromium) or set "
        "LIGHTNING_TEST_CHROMIUM to a Chrome or Chromium binary",
    )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


@pytest.fixture
def artifacts(pytestconfig: pytest.Config) -> Path:
    """test-artifacts/ at the repository's root (created): where screenshots go."""
    directory = pytestconfig.rootpath / "test-artifacts"
    directory.mkdir(exist_ok=True)
    return directory
