"""What uv.lock pins, for installs that resolve the rest another way (`nox -s lowest`)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def group_pins(project: Path, group: str) -> list[str]:
    """`name==version` for each requirement of the root project's dependency `group` (its
    included groups too), at the version `uv.lock` beside it holds."""
    groups = tomllib.loads((project / "pyproject.toml").read_text())["dependency-groups"]
    locked = {
        _normalized(package["name"]): package["version"]
        for package in tomllib.loads((project / "uv.lock").read_text())["package"]
        if "version" in package
    }
    return [f"{name}=={locked[_normalized(name)]}" for name in _names(groups, group)]


def _names(groups: dict[str, list[str | dict[str, str]]], group: str) -> list[str]:
    names: list[str] = []
    for entry in groups[group]:
        if isinstance(entry, dict):
            names.extend(_names(groups, entry["include-group"]))
        else:
            match = _NAME.match(entry)
            if match:
                names.append(match.group())
    return names


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()
