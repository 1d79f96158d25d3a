"""Waiting for a runtime started as a process (`python -m lightning_core.runtime`) to answer."""

from __future__ import annotations

import subprocess
import time

import httpx

from lightning_core.providers import STARTUP_WAIT

# The runtime may wait STARTUP_WAIT for its servers before it says why it cannot start.
READY_TIMEOUT = STARTUP_WAIT + 30.0


def wait_until_healthy(
    process: subprocess.Popen[bytes], urls: list[str], timeout: float = READY_TIMEOUT
) -> bool:
    """Poll the health URLs until all answer 200; False if the runtime exits or time runs out."""
    deadline = time.monotonic() + timeout
    pending = list(dict.fromkeys(urls))
    while pending and time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(pending[0], timeout=1.0).status_code == 200:
                pending.pop(0)
                continue
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    return not pending
