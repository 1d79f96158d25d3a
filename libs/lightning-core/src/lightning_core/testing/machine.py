"""What the machine running the tests provides: its tools and servers, and free ports."""

from __future__ import annotations

import os
import socket

import pytest


def require(available: bool, what: str, fix: str) -> None:
    """Skip a test whose tool or server is missing, saying how to get it; in CI, fail."""
    if available:
        return
    if os.environ.get("CI", "").lower() in ("1", "true"):
        pytest.fail(f"{what} is not available and CI must not skip this test: {fix}")
    pytest.skip(f"{what} is not available: {fix}")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
