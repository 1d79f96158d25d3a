"""Terminal plumbing shared by the tasks: finding the lock-installed tools and running nox."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from lightning_devtools.errors import ToolError

LOG_WIDTH = 160  # CI logs and pipes: wide enough that plan and URL tables never wrap


def console() -> Console:
    """A rich console for results; full width in a terminal, LOG_WIDTH when piped."""
    return Console(width=None if sys.stdout.isatty() else LOG_WIDTH)


def find_tool(name: str) -> str | None:
    """A tool installed from uv.lock next to this interpreter wins over one on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    return shutil.which(name)


def nox_command(session: str, args: Sequence[str] = ()) -> list[str]:
    """`nox -s SESSION [-- ARGS]`: the exact command CI runs for that gate."""
    nox = find_tool("nox")
    if nox is None:
        raise ToolError(
            "nox is not installed",
            "run `uv sync` (installs the run group from uv.lock) and use `uv run invoke ...`",
        )
    return [nox, "-s", session, *(["--", *args] if args else [])]


def run_session(session: str, args: Sequence[str], *, root: Path) -> int:
    """Run one nox session from the repository root; returns its exit code."""
    command = nox_command(session, args)
    print("$ " + " ".join(["nox", *command[1:]]), file=sys.stderr, flush=True)
    return subprocess.run(command, cwd=root, check=False).returncode  # noqa: S603
