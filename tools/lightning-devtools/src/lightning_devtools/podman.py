"""buildah and podman without a Docker engine: private storage, config, and a base image.

`Engine` keeps images in an overlay graphroot of its own cache directory, never the
machine's shared storage. Where a registry is reachable (GitHub's runners), $PYTHON_IMAGE
names the Python base image to pull; otherwise it is built once with debootstrap and saved
as a tarball later runs load.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from lightning_devtools.errors import ToolError

REQUIRED_TOOLS = ("buildah", "podman", "runc", "debootstrap")
INSTALL_FIX = "apt-get install -y buildah podman runc debootstrap"

BASE_IMAGE = "localhost/lightning-python:3.13-trixie"
BASE_SUITE = "trixie"  # Debian trixie ships Python 3.13, the images' Python
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
DEBIAN_MIRROR = "http://deb.debian.org/debian"

# crun fails on these machines' hybrid cgroups and runc cannot raise the default rlimits;
# without systemd, journald logging and events do not work either.
CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]
log_driver = "k8s-file"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
"""

STORAGE_CONF = """\
[storage]
driver = "overlay"
graphroot = "{graphroot}"
runroot = "{runroot}"
"""


def check_tools(tools: Sequence[str] = REQUIRED_TOOLS) -> None:
    """ToolError naming every missing tool, with the one command that installs them."""
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        raise ToolError(f"{', '.join(missing)} not found on PATH", INSTALL_FIX)


@dataclass(frozen=True)
class Engine:
    """buildah/podman bound to the storage and config files under `cache_dir`."""

    cache_dir: Path

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "CONTAINERS_CONF": str(self.cache_dir / "containers.conf"),
            "CONTAINERS_STORAGE_CONF": str(self.cache_dir / "storage.conf"),
        }

    def run(
        self, *command: str, check: bool = True, timeout: float | None = 900
    ) -> subprocess.CompletedProcess[str]:
        """Run a buildah/podman command with our config; ToolError (with its output) on failure."""
        result = subprocess.run(  # noqa: S603 - fixed tools, arguments built here
            command,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise ToolError(
                f"`{' '.join(command[:3])} ...` failed ({result.returncode}): "
                f"{last_line(result.stderr or result.stdout)}",
                "see the output above; `podman system reset -f` with CONTAINERS_STORAGE_CONF="
                f"{self.cache_dir / 'storage.conf'} wipes this cache's storage",
            )
        return result

    def image_exists(self, image: str) -> bool:
        return self.run("podman", "image", "exists", image, check=False).returncode == 0


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def setup_engine(cache_dir: Path) -> Engine:
    """Check the tools, then write containers.conf and storage.conf into `cache_dir`."""
    check_tools()
    cache_dir = cache_dir.resolve()  # podman refuses relative storage paths
    storage = cache_dir / "storage"
    cache_dir.mkdir(parents=True, exist_ok=True)
    (cache_dir / "containers.conf").write_text(CONTAINERS_CONF, encoding="utf-8")
    (cache_dir / "storage.conf").write_text(
        STORAGE_CONF.format(graphroot=storage / "graph", runroot=storage / "run"),
        encoding="utf-8",
    )
    return Engine(cache_dir)


def base_image() -> str:
    """The image builds start from: $PYTHON_IMAGE (the bake variable) if set, else BASE_IMAGE."""
    return os.environ.get("PYTHON_IMAGE") or BASE_IMAGE


def ensure_base_image(engine: Engine, image: str = BASE_IMAGE) -> str:
    """Make `image` present in the engine's storage: already there, pulled (any image but
    BASE_IMAGE), saved tarball, or built."""
    tarball = engine.cache_dir / "lightning-python-3.13-trixie.tar"
    if engine.image_exists(image):
        return "present"
    if image != BASE_IMAGE:
        engine.run("podman", "pull", "--quiet", image)
        return "pulled"
    if tarball.is_file():
        engine.run("podman", "load", "--input", str(tarball))
        if engine.image_exists(image):
            return "loaded from cache"
    build_base_image(engine, image)
    engine.run("podman", "save", "--format", "docker-archive", "--output", str(tarball), image)
    return "built with debootstrap"


def build_base_image(engine: Engine, image: str) -> None:
    """debootstrap a minimal Debian with Python, strip apt caches, import it as `image`."""
    if os.geteuid() != 0:
        raise ToolError(
            "building the Python base image needs root (debootstrap)",
            f"run as root once; later runs load {engine.cache_dir}/*.tar",
        )
    with tempfile.TemporaryDirectory(dir=engine.cache_dir, prefix="rootfs-") as tmp:
        rootfs = Path(tmp)
        debootstrap = [
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(BASE_PACKAGES)}",
            BASE_SUITE,
            str(rootfs),
            DEBIAN_MIRROR,
        ]
        result = subprocess.run(debootstrap, capture_output=True, text=True, check=False)  # noqa: S603
        if result.returncode != 0:
            raise ToolError(
                f"debootstrap {BASE_SUITE} failed: {last_line(result.stdout + result.stderr)}",
                f"check that {DEBIAN_MIRROR} is reachable",
            )
        for leftovers in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for path in (rootfs / leftovers).glob("*"):
                if path.is_file():
                    path.unlink()
        tar = subprocess.Popen(  # noqa: S603
            ["tar", "-C", str(rootfs), "-c", "."],  # noqa: S607
            stdout=subprocess.PIPE,
        )
        imported = subprocess.run(  # noqa: S603
            ["podman", "import", "--change", "ENV LANG=C.UTF-8", "-", image],  # noqa: S607
            stdin=tar.stdout,
            env=engine.env,
            capture_output=True,
            text=True,
            check=False,
        )
        if tar.stdout is not None:
            tar.stdout.close()  # so tar stops (SIGPIPE) if podman gave up early
        tar.wait()
        if imported.returncode != 0 or tar.returncode != 0:
            raise ToolError(
                f"podman import of {image} failed: {last_line(imported.stderr)}",
                f"check podman works with CONTAINERS_CONF={engine.cache_dir}/containers.conf",
            )
