"""The devtools' tests: the shared servers the benchmarks and the Function package run
against, the storage + bus stacks the smoke test runs on, the command-line tools, and a docker CLI
stand-in for the compose tasks."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

pytest_plugins = [
    "lightning_core.testing.backends.postgres",
    "lightning_core.testing.backends.redis",
    "lightning_core.testing.backends.cosmos",
    "lightning_core.testing.stacks",
    "lightning_core.testing.commands",
]

# The docker CLI stand-in of the compose tasks' tests: engine up, compose v2 when
# FAKE_COMPOSE is set; `compose config` answers $FAKE_STATE/config.json (or fails with
# $FAKE_CONFIG_FAILS); `compose up` copies a second compose file to
# $FAKE_STATE/override.json and fails when FAKE_UP_FAILS is set; `compose ps` lists the ids
# in $FAKE_STATE/ids; `container inspect ID` answers $FAKE_STATE/ID.json. Every call is
# appended to $FAKE_STATE/calls.
FAKE_DOCKER = r"""#!/bin/sh
echo "$*" >> "$FAKE_STATE/calls"
case "$1" in
--version) echo "Docker version 28.2.2, build fake" ;;
info) echo 28.2.2 ;;
compose)
  if [ "$2" = version ]; then
    [ -n "$FAKE_COMPOSE" ] && { echo "$FAKE_COMPOSE"; exit 0; }
    echo "docker: unknown command: docker compose" >&2; exit 1
  fi
  case " $* " in
  *" up "*)
    [ "$4" = --file ] && cp "$5" "$FAKE_STATE/override.json"
    [ -n "$FAKE_UP_FAILS" ] && { echo "$FAKE_UP_FAILS" >&2; exit 1; }
    exit 0 ;;
  *" config "*)
    [ -n "$FAKE_CONFIG_FAILS" ] && { echo "$FAKE_CONFIG_FAILS" >&2; exit 15; }
    cat "$FAKE_STATE/config.json" ;;
  *" ps "*) cat "$FAKE_STATE/ids" ;;
  esac ;;
container) cat "$FAKE_STATE/$3.json" ;;
esac
"""


@pytest.fixture
def fake_docker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_command: Callable[[str, str], Path]
) -> Path:
    """FAKE_DOCKER first on PATH with compose 2.40.3 and no containers; returns $FAKE_STATE."""
    state = tmp_path / "state"
    state.mkdir()
    (state / "ids").write_text("")
    fake_command("docker", FAKE_DOCKER)
    monkeypatch.setenv("FAKE_STATE", str(state))
    monkeypatch.setenv("FAKE_COMPOSE", "2.40.3")
    for failure in ("FAKE_UP_FAILS", "FAKE_CONFIG_FAILS"):
        monkeypatch.delenv(failure, raising=False)
    return state
