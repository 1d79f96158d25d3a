"""The images a deployment runs: the digests `invoke push` recorded in dist/images.json."""

from __future__ import annotations

import json
import re
from pathlib import Path

from lightning_core.topology import SERVICES
from lightning_infra.errors import DeployError

DIGEST_REFERENCE = re.compile(r"^(?P<server>[^/@\s]+)/[^@\s]+@sha256:[0-9a-f]{64}$")
PUSH_HINT = "run `invoke push --mode azure --registry <acr>.azurecr.io --tag <tag>` first"


def load_images(path: Path) -> dict[str, str]:
    """Service name -> `registry/name@sha256:...` for every declared service.

    DeployError for a missing or unreadable file, a service it lacks, or a reference that is
    not by digest: a tag could move between push and deploy.
    """
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DeployError(f"{path} does not exist: {PUSH_HINT}") from None
    except (OSError, ValueError) as error:
        raise DeployError(f"{path} is not readable JSON ({error}): {PUSH_HINT}") from None
    images = document.get("images") if isinstance(document, dict) else None
    if not isinstance(images, dict):
        raise DeployError(f"{path} has no `images` object: {PUSH_HINT}")
    deployed: dict[str, str] = {}
    for service in SERVICES:
        reference = images.get(service)
        if reference is None:
            raise DeployError(f"{path} has no image for {service!r}: {PUSH_HINT}")
        if not isinstance(reference, str) or not DIGEST_REFERENCE.match(reference):
            raise DeployError(
                f"{path}: the {service!r} image {reference!r} is not a reference by digest "
                f"(registry/name@sha256:<64 hex>): {PUSH_HINT}"
            )
        deployed[service] = reference
    return deployed


def registry_server(reference: str) -> str:
    """The registry host of an image reference load_images accepted."""
    match = DIGEST_REFERENCE.match(reference)
    if match is None:
        raise ValueError(f"{reference!r} is not an image reference by digest")
    return match["server"]


def require_registry(images: dict[str, str], server: str) -> None:
    """DeployError unless every image was pushed to `server`, the registry the apps pull from."""
    for service, reference in images.items():
        if registry_server(reference) != server:
            raise DeployError(
                f"the {service!r} image {reference!r} is not in this stack's registry {server}: "
                f"push to it (`invoke push --mode azure --registry {server} --tag <tag>`) or set "
                "registryName in the stack file"
            )
