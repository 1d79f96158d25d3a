"""dist/images.json: the images `invoke push --mode azure` pushed, by digest, for infra/.

    {"registry": "myacr.azurecr.io", "tag": "abc-azure",
     "images": {"api": "myacr.azurecr.io/lightning-api@sha256:<64 hex>", ...}}

One entry per bake target of the azure group, keyed by service, with the digest bake's
metadata file recorded, so infra deploys exactly the bytes pushed; `tag` is for people.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.table import Table

from lightning_devtools.docker import registry_of
from lightning_devtools.errors import ToolError

IMAGES_FILE = Path("dist") / "images.json"  # relative to the repository root
METADATA_FILE = Path("dist") / "bake-metadata.json"  # bake writes it on every push
RECORDED_MODE = "azure"  # the group infra deploys; a local push records nothing
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def service_of(target: str) -> str:
    """`api-azure` -> `api`."""
    return target.removesuffix(f"-{RECORDED_MODE}")


def split_reference(name: str) -> tuple[str, str]:
    """`host:5000/repo:tag` -> (`host:5000/repo`, `tag`); a reference without a tag is refused."""
    repository, separator, tag = name.rpartition(":")
    if not separator or "/" in tag:
        raise ToolError(
            f"bake reported pushed image {name!r} without a tag",
            "give every target in docker/docker-bake.hcl a `tags` entry",
        )
    return repository, tag


def pushed_images(
    metadata: Mapping[str, Any], targets: Sequence[str], source: Path
) -> dict[str, Any]:
    """The images.json document for `targets`, from bake's parsed metadata file `source`."""
    images: dict[str, str] = {}
    tags: list[str] = []
    for target in targets:
        result = metadata.get(target)
        if not isinstance(result, Mapping):
            raise ToolError(
                f"{source} has no result for bake target {target}",
                "push again with `invoke push --mode azure` (buildx writes one entry per target)",
            )
        digest = result.get("containerimage.digest")
        name = str(result.get("image.name", "")).split(",")[0].strip()
        if not isinstance(digest, str) or not DIGEST.fullmatch(digest) or not name:
            raise ToolError(
                f"{source} records no pushed image for {target} "
                f"(image.name {name!r}, containerimage.digest {digest!r})",
                "push to a registry: `invoke push --mode azure --registry <acr>.azurecr.io`",
            )
        repository, tag = split_reference(name)
        images[service_of(target)] = f"{repository}@{digest}"
        tags.append(tag)
    first = next(iter(images.values()))
    return {"registry": registry_of(first), "tag": tags[0], "images": images}


def read_metadata(metadata_file: Path) -> dict[str, Any]:
    """Bake's metadata file: one result per target, written when every target succeeded."""
    try:
        metadata = json.loads(metadata_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ToolError(
            f"cannot read bake's metadata file {metadata_file}: {error}",
            "build again; buildx 0.17+ writes it when given --metadata-file",
        ) from None
    if not isinstance(metadata, dict):
        raise ToolError(
            f"bake's metadata file {metadata_file} holds no results by target", "build again"
        )
    return metadata


def produced_ids(result: object) -> set[str]:
    """The image ids a target's metadata result names: the config digest (classic image
    store) and the manifest digest (containerd store). Empty when the build exported no
    image, e.g. a docker-container builder that only filled its cache."""
    if not isinstance(result, Mapping):
        return set()
    keys = ("containerimage.config.digest", "containerimage.digest")
    return {result[key] for key in keys if isinstance(result.get(key), str)}


def record(metadata_file: Path, images_file: Path, targets: Sequence[str]) -> dict[str, Any]:
    """Read bake's metadata, write images.json (whole or not at all), return what was written."""
    document = pushed_images(read_metadata(metadata_file), targets, metadata_file)
    images_file.parent.mkdir(parents=True, exist_ok=True)
    partial = images_file.with_name(f".{images_file.name}.partial")
    partial.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    os.replace(partial, images_file)  # infra never reads a half-written file
    return document


def images_table(document: Mapping[str, Any], images_file: Path) -> Table:
    table = Table(title=f"pushed images, recorded in {images_file}", title_justify="left")
    table.add_column("service")
    table.add_column("image by digest", overflow="fold")
    for service, reference in document["images"].items():
        table.add_row(service, reference)
    return table
