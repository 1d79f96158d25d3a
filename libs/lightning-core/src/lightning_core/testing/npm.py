"""npm packages the tests run as servers, installed from a committed package-lock.json.

`installed_package` installs a directory's package.json + package-lock.json with `npm ci`
into a cache directory outside the repository, keyed by those files (a new lock installs
afresh, an unchanged one is reused across runs); `require_node` skips (fails in CI) a test
on a machine without a recent enough Node.js.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from lightning_core.testing.machine import require

LOCKED = ("package.json", "package-lock.json")


def node_major() -> int | None:
    """The major version of the `node` on PATH, None without node or npm."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        return None
    version = subprocess.run(["node", "--version"], capture_output=True, text=True, check=False)
    try:
        return int(version.stdout.strip().lstrip("v").split(".")[0])
    except ValueError:
        return None


def require_node(minimum: int) -> None:
    major = node_major()
    require(
        major is not None and major >= minimum,
        f"Node.js >= {minimum} with npm (found {major or 'none'})",
        f"install Node.js {minimum} or newer with npm (e.g. from nodejs.org or NodeSource)",
    )


def installed_package(source: Path, name: str, files: Sequence[str] = LOCKED) -> Path:
    """A directory holding `files` from `source` and their node_modules, installed on first
    use; `name` (and the files' digest) names it in the cache."""
    digest = hashlib.sha256()
    for file in files:
        digest.update((source / file).read_bytes())
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lightning-os"
    target = cache / f"{name}-{digest.hexdigest()[:16]}"
    if (target / "node_modules" / ".package-lock.json").exists():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    # Install beside the target and rename into place: concurrent sessions never see half an
    # install, and the first to finish wins.
    staging = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=cache))
    for file in files:
        shutil.copy2(source / file, staging / file)
    install = subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
        cwd=staging,
        capture_output=True,
        text=True,
        check=False,
    )
    if install.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        last = (install.stderr.strip().splitlines() or ["no output"])[-1]
        require(False, f"{name} (npm ci failed: {last})", "check npm can reach its registry")
    try:
        staging.rename(target)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)  # another session installed it first
    return target
