"""The event processor's Azure Functions package: the zip a Function App runs from.

Layout as docs/processor.md describes it; the dependencies are uv.lock's, as Linux x86_64
wheels for the chosen Python whatever machine builds it. The zip is reproducible.
"""

from __future__ import annotations

import shutil
import stat
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from lightning_devtools.cli import find_tool
from lightning_devtools.errors import ToolError

#: Pythons Azure Functions 4.x runs (3.10-3.13) that the workspace supports (>= 3.11).
SUPPORTED_PYTHONS = ("3.11", "3.12", "3.13")
PLATFORM = "x86_64-manylinux_2_28"  # the Functions Linux images (Debian 12, glibc 2.36)
PROJECT = Path("services/event-processor")
ROOT_FILES = ("function_app.py", "host.json")
SITE_PACKAGES = PurePosixPath(".python_packages/lib/site-packages")
WORKSPACE_PACKAGES = ("lightning-core", "lightning-processor")
EXPORT = ("--no-dev", "--no-emit-workspace", "--package", "lightning-processor")
EXTRA = "functions"
ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can carry
REACH_INDEX = (
    "check that the package index is reachable (a TLS-intercepting proxy needs "
    "SSL_CERT_FILE) and run it again"
)


@dataclass(frozen=True)
class FunctionPackage:
    """A built package: where it is, how big, how many files, for which Python."""

    path: Path
    size: int
    files: int
    python: str

    def summary(self) -> str:
        return (
            f"{self.path}: {self.size / 1_000_000:.1f} MB, {self.files} files "
            f"(Python {self.python}, Linux x86_64)"
        )


def build_package(root: Path, output: Path, *, python: str = "3.11") -> FunctionPackage:
    """Build the zip at `output` from the workspace at `root`; ToolError when uv is missing,
    the Python is not one Functions runs, or a download or build fails."""
    if python not in SUPPORTED_PYTHONS:
        raise ToolError(
            f"Python {python} is not a version this Function package can target",
            f"use one of {', '.join(SUPPORTED_PYTHONS)} (Azure Functions 4.x runs 3.10-3.13; "
            "the workspace needs 3.11 or newer)",
        )
    uv = find_tool("uv")
    if uv is None:
        raise ToolError("uv is not installed", "`python -m pip install uv`, then run it again")
    with tempfile.TemporaryDirectory(prefix="function-package-") as scratch_dir:
        scratch = Path(scratch_dir)
        package = scratch / "package"
        site_packages = package / SITE_PACKAGES
        requirements = scratch / "requirements.txt"
        _uv(
            [uv, "export", "--frozen", *EXPORT, "--extra", EXTRA, "--output-file", requirements],
            root,
            "exporting the Function's dependencies from uv.lock",
            f"run `uv lock` and check that services/event-processor defines the `{EXTRA}` extra",
        )
        _uv(
            [*_install_command(uv, site_packages, python), "--requirements", requirements],
            root,
            f"downloading the Function's dependencies for Python {python} on {PLATFORM}",
            REACH_INDEX,
        )
        for name in WORKSPACE_PACKAGES:
            wheel = _build_wheel(uv, root, name, scratch / "wheels")
            with zipfile.ZipFile(wheel) as archive:
                archive.extractall(site_packages)
        for name in ROOT_FILES:
            shutil.copyfile(root / PROJECT / name, package / name)
        files = write_zip(package, output)
    return FunctionPackage(output, output.stat().st_size, files, python)


def _install_command(uv: str, target: Path, python: str) -> list[str | Path]:
    """`uv pip install` of wheels only, for the Function's platform, without resolving (the
    lock's set is complete); under this interpreter, so uv never fetches another."""
    return [
        uv,
        "pip",
        "install",
        "--python",
        sys.executable,
        "--target",
        target,
        "--python-platform",
        PLATFORM,
        "--python-version",
        python,
        "--only-binary",
        ":all:",
        "--no-deps",
    ]


def _build_wheel(uv: str, root: Path, name: str, out_dir: Path) -> Path:
    """The workspace member's wheel, pure Python: unpacking it into site-packages installs it."""
    _uv(
        [uv, "build", "--wheel", "--package", name, "--out-dir", out_dir, "--no-create-gitignore"],
        root,
        f"building the {name} wheel",
        REACH_INDEX,
    )
    [wheel] = out_dir.glob(f"{name.replace('-', '_')}-*.whl")
    return wheel


def _uv(command: Sequence[str | Path], root: Path, what: str, fix: str) -> None:
    done = subprocess.run(  # noqa: S603 - uv with arguments built here
        [str(part) for part in command],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise ToolError(f"{what} failed: {uv_reason(done.stderr)}", fix)


def uv_reason(stderr: str) -> str:
    """uv's error on one line: its `error:` line and, when given, the innermost `cause:`."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    error = next((line for line in lines if line.startswith("error:")), None)
    if error is None:
        return lines[-1] if lines else "(no output)"
    causes = [line.removeprefix("cause:").strip() for line in lines if line.startswith("cause:")]
    reason = error.removeprefix("error:").strip()
    return f"{reason} ({causes[-1]})" if causes else reason


def belongs_in_package(relative: PurePosixPath) -> bool:
    """False for what the build machine leaves behind and the Function never uses."""
    if "__pycache__" in relative.parts or relative.suffix == ".pyc":
        return False
    if relative.is_relative_to(SITE_PACKAGES / "bin"):
        return False  # console scripts, whose first line is the build machine's interpreter
    return relative != SITE_PACKAGES / ".lock"  # uv's lock on the directory while it installs


def write_zip(directory: Path, output: Path) -> int:
    """Zip `directory`'s files that belong in the package, reproducibly (sorted, one fixed
    timestamp); return their count. A failed build never leaves half a zip at `output`."""
    entries = sorted(
        (path.relative_to(directory).as_posix(), path)
        for path in directory.rglob("*")
        if path.is_file()
    )
    kept = [(name, path) for name, path in entries if belongs_in_package(PurePosixPath(name))]
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(f"{output.name}.partial")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, path in kept:
            info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
            info.create_system = 3  # Unix: the permission bits below are read on Linux
            executable = path.stat().st_mode & stat.S_IXUSR
            info.external_attr = (stat.S_IFREG | (0o755 if executable else 0o644)) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())
    partial.replace(output)
    return len(kept)
