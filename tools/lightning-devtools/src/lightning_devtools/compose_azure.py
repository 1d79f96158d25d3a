"""What `invoke compose-up --mode azure` prepares before `compose up`, under dist/compose-azure/
(ignored by git, as all of dist/ is): the Service Bus emulator's Config.json, and the Function
package the deploy ships, unpacked for the Functions host (docker/compose.azure.yaml mounts
both).
"""

from __future__ import annotations

import shutil
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich.console import Console

from lightning_devtools import servicebus_emulator
from lightning_devtools.errors import ToolError
from lightning_devtools.function_package import build_package

STATE = Path("dist/compose-azure")
EMULATOR_CONFIG = STATE / "servicebus" / "Config.json"
FUNCTION_ROOT = STATE / "function"
#: Where `invoke package-function` writes the package by default (the deploy's).
FUNCTION_PACKAGE = Path("dist/event-processor-function.zip")
#: The Functions host image's Python (`azure-functions/python:4-python3.11`), and infra's.
FUNCTION_PYTHON = "3.11"
#: The service whose settings make the bus topology (the API's are the same: a test checks).
TOPOLOGY_SERVICE = "event-processor"


def prepare(root: Path, config: Mapping[str, Any], *, rebuild: bool, console: Console) -> None:
    """From compose's resolved `config`: write the emulator's Config.json; build the Function
    package if `rebuild` or missing, then unpack it afresh where the Functions host reads it."""
    try:
        environment = config["services"][TOPOLOGY_SERVICE]["environment"]
    except KeyError:
        raise ToolError(
            f"docker/compose.azure.yaml has no {TOPOLOGY_SERVICE} service with an environment",
            "restore the file from git",
        ) from None
    topology = servicebus_emulator.write_config(environment, root / EMULATOR_CONFIG)
    console.print(f"Service Bus emulator: topic {topology.topic} -> {EMULATOR_CONFIG}")
    package = root / FUNCTION_PACKAGE
    if rebuild or not package.is_file():
        with console.status(f"Building the Function package for Python {FUNCTION_PYTHON}..."):
            built = build_package(root, package, python=FUNCTION_PYTHON)
        console.print(built.summary(), highlight=False)
    unpack(package, root / FUNCTION_ROOT)


def unpack(package: Path, target: Path) -> None:
    """`target` holding exactly the files of the zip `package`."""
    try:
        with zipfile.ZipFile(package) as archive:
            shutil.rmtree(target, ignore_errors=True)
            archive.extractall(target)
    except zipfile.BadZipFile:
        raise ToolError(
            f"{package} is not a zip file",
            "rebuild it: `invoke compose-up --mode azure --build` (or `invoke package-function`)",
        ) from None
