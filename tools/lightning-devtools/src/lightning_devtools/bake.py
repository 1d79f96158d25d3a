"""Read docker/docker-bake.hcl and resolve it the way `docker buildx bake` does.

Only the features the file uses: variables (defaults, overridden by the environment),
`${VAR}` and `split("sep", VAR)`, `inherits` (maps merge key by key) and groups of groups.
Paths resolve as bake's from the repository root; attest and cache settings are buildx's.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hcl2
from hcl2 import SerializationOptions

from lightning_devtools.errors import ToolError

BAKE_FILE_IN_REPO = Path("docker") / "docker-bake.hcl"


def _find_bake_file() -> Path:
    """The repository's bake file, found above this module (editable install) or the cwd."""
    here = Path(__file__).resolve()
    for directory in (*here.parents, Path.cwd(), *Path.cwd().parents):
        candidate = directory / BAKE_FILE_IN_REPO
        if candidate.is_file():
            return candidate
    return Path.cwd() / BAKE_FILE_IN_REPO


BAKE_FILE: Path = _find_bake_file()

_IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_-]*"
_INTERPOLATION = re.compile(r"\$\{\s*(" + _IDENTIFIER + r")\s*\}")
_WHOLE_VARIABLE = re.compile(r"^\$\{\s*(" + _IDENTIFIER + r")\s*\}$")
_SPLIT_CALL = re.compile(
    r'^\$\{\s*split\(\s*"((?:[^"\\]|\\.)*)"\s*,\s*(' + _IDENTIFIER + r")\s*\)\s*\}$"
)
_MAP_ATTRIBUTES = frozenset({"args", "labels", "contexts"})


@dataclass(frozen=True)
class BakeTarget:
    """One resolved bake target: everything needed to build it with any builder."""

    name: str
    context: Path
    dockerfile: Path
    target: str | None
    args: dict[str, str]
    tags: list[str]
    platforms: list[str]
    labels: dict[str, str]
    description: str


@dataclass(frozen=True)
class BakePlan:
    """The targets a bake group (or a single target) builds, in bake's order."""

    group: str
    targets: list[BakeTarget]


def load_plan(
    group: str,
    *,
    bake_file: Path = BAKE_FILE,
    variables: Mapping[str, str] | None = None,
) -> BakePlan:
    """Resolve `group` (or one target name) of `bake_file` into a typed plan.

    `variables` stands in for the environment (None: the real one). ToolError for an unknown
    group or target, an undefined variable, or an expression this resolver does not evaluate.
    """
    document = _parse(bake_file)
    env = os.environ if variables is None else variables
    resolver = _Resolver(document, bake_file, env)
    names = resolver.expand(group)
    return BakePlan(group=group, targets=[resolver.target(name) for name in names])


def resolve_variables(
    overrides: Mapping[str, str] | None = None,
    *,
    bake_file: Path = BAKE_FILE,
    environ: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Every variable `bake_file` declares, with the value `docker buildx bake` gives it.

    `overrides` (the command line) beat `environ` (None: the real environment), which beats
    the file's default. Passed as `variables` to `load_plan` and as bake's environment, the
    result makes the plan shown and the images built the same.
    """
    document = _parse(bake_file)
    env = {**(os.environ if environ is None else environ), **(overrides or {})}
    resolver = _Resolver(document, bake_file, env)
    return {name: resolver.variable(name) for name in document["variable"]}


def _parse(bake_file: Path) -> dict[str, dict[str, dict[str, Any]]]:
    """Blocks by kind then name: {"variable": {...}, "target": {...}, "group": {...}}."""
    if not bake_file.is_file():
        raise ToolError(f"bake file {bake_file} does not exist", "run from the repository root")
    options = SerializationOptions(
        strip_string_quotes=True, explicit_blocks=False, with_comments=False
    )
    try:
        with bake_file.open(encoding="utf-8") as handle:
            raw: dict[str, Any] = hcl2.load(handle, serialization_options=options)
    except Exception as error:  # the HCL parser raises lark's many exception types
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else "parse error"
        raise ToolError(
            f"cannot parse {bake_file}: {first_line}", "fix the HCL syntax in that file"
        ) from None
    document: dict[str, dict[str, dict[str, Any]]] = {}
    for kind in ("variable", "target", "group"):
        blocks: dict[str, dict[str, Any]] = {}
        for block in raw.get(kind, []):
            for name, body in block.items():
                blocks.setdefault(name, {}).update(body)  # repeated blocks merge, as in bake
        document[kind] = blocks
    return document


class _Resolver:
    """Evaluates variables, expressions, inheritance and groups of one parsed bake file."""

    def __init__(
        self,
        document: dict[str, dict[str, dict[str, Any]]],
        bake_file: Path,
        env: Mapping[str, str],
    ) -> None:
        self._variables = document["variable"]
        self._targets = document["target"]
        self._groups = document["group"]
        self._bake_file = bake_file
        self._root = bake_file.resolve().parent.parent
        self._env = env
        self._values: dict[str, str] = {}
        self._resolving: list[str] = []

    def expand(self, name: str, seen: tuple[str, ...] = ()) -> list[str]:
        """Target names of a group (recursively) or of a single target, without duplicates."""
        if name in seen:
            raise ToolError(
                f"bake group {name!r} contains itself ({' -> '.join((*seen, name))})",
                f"remove the cycle from {self._bake_file}",
            )
        if name in self._groups:
            names: list[str] = []
            for member in self._groups[name].get("targets", []):
                names += [n for n in self.expand(member, (*seen, name)) if n not in names]
            return names
        if name in self._targets:
            return [name]
        if seen:
            raise ToolError(
                f"bake group {seen[-1]!r} names {name!r}, which is neither a group nor a target",
                f"fix the group in {self._bake_file}",
            )
        raise ToolError(
            f"bake group {name!r} is not defined in {self._bake_file}",
            f"use one of the groups {', '.join(sorted(self._groups))}"
            f" (or a target: {', '.join(t for t in sorted(self._targets) if t[0] != '_')})",
        )

    def target(self, name: str) -> BakeTarget:
        attributes = self._merged(name, ())
        context = self._root / self._string(attributes.get("context", "."))
        return BakeTarget(
            name=name,
            context=context,
            dockerfile=context / self._string(attributes.get("dockerfile", "Dockerfile")),
            target=self._string(attributes["target"]) if "target" in attributes else None,
            args=self._mapping(attributes.get("args", {})),
            tags=self._strings(attributes.get("tags", [])),
            platforms=self._strings(attributes.get("platforms", [])),
            labels=self._mapping(attributes.get("labels", {})),
            description=self._string(attributes.get("description", "")),
        )

    def _merged(self, name: str, seen: tuple[str, ...]) -> dict[str, Any]:
        """The target's raw attributes after `inherits`, parents first, the target last."""
        if name not in self._targets:
            raise ToolError(
                f"bake target {seen[-1] if seen else name!r} inherits unknown target {name!r}",
                f"fix `inherits` in {self._bake_file}",
            )
        if name in seen:
            raise ToolError(
                f"bake target {name!r} inherits itself ({' -> '.join((*seen, name))})",
                f"remove the cycle from {self._bake_file}",
            )
        own = self._targets[name]
        merged: dict[str, Any] = {}
        for parent in own.get("inherits", []):
            _merge_into(merged, self._merged(parent, (*seen, name)))
        _merge_into(merged, {key: value for key, value in own.items() if key != "inherits"})
        return merged

    def variable(self, name: str) -> str:
        """A variable's value: the environment's if set, else its default (interpolated)."""
        if name in self._values:
            return self._values[name]
        if name not in self._variables:
            raise ToolError(
                f"{self._bake_file} uses undefined variable {name!r}",
                f'declare it: variable "{name}" {{ default = "..." }}',
            )
        if name in self._resolving:
            raise ToolError(
                f"bake variable {name!r} refers to itself",
                f"fix its default in {self._bake_file}",
            )
        self._resolving.append(name)
        try:
            default = self._variables[name].get("default", "")
            value = self._env[name] if name in self._env else self._string(default)
        finally:
            self._resolving.pop()
        self._values[name] = value
        return value

    def _evaluate(self, value: Any) -> str | list[str]:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int | float):
            return str(value)
        if isinstance(value, list):
            return [item for element in value for item in self._as_list(self._evaluate(element))]
        if not isinstance(value, str):
            raise self._unsupported(repr(value))
        if split := _SPLIT_CALL.match(value):
            separator = split.group(1).encode().decode("unicode_escape")
            return [part for part in self.variable(split.group(2)).split(separator) if part]
        if whole := _WHOLE_VARIABLE.match(value):
            return self.variable(whole.group(1))
        text = _INTERPOLATION.sub(lambda match: self.variable(match.group(1)), value)
        if "${" in text.replace("$${", ""):
            raise self._unsupported(value)
        return text.replace("$${", "${")

    def _unsupported(self, expression: str) -> ToolError:
        return ToolError(
            f"{self._bake_file} uses {expression}, an expression lightning_devtools.bake "
            "does not evaluate",
            'use a string with ${VAR} or split(",", VAR), or extend bake.py',
        )

    @staticmethod
    def _as_list(value: str | list[str]) -> list[str]:
        return value if isinstance(value, list) else [value]

    def _string(self, value: Any) -> str:
        result = self._evaluate(value)
        if isinstance(result, list):
            raise self._unsupported(f"a list where a string is expected ({value!r})")
        return result

    def _strings(self, value: Any) -> list[str]:
        return self._as_list(self._evaluate(value))

    def _mapping(self, value: Any) -> dict[str, str]:
        if not isinstance(value, dict):
            raise self._unsupported(f"{value!r} where a map is expected")
        return {str(key): self._string(item) for key, item in value.items() if item is not None}


def _merge_into(merged: dict[str, Any], attributes: Mapping[str, Any]) -> None:
    """Bake's inheritance: maps merge key by key, every other attribute replaces."""
    for key, value in attributes.items():
        if key in _MAP_ATTRIBUTES and isinstance(value, dict):
            merged[key] = {**merged.get(key, {}), **value}
        else:
            merged[key] = value
