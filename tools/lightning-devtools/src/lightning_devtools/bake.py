"""Read docker/docker-bake.hcl and resolve it the way `docker buildx bake` does.

Only the features the file uses: variables (defaults, overridden by the environment),
`${...}` templates over names, `a.b`, `a[b]`, lists, `cond ? x : y`, `split` and `equal`,
`matrix` targets (a target per combination, the block's name a group of them), `inherits`
(maps merge key by key), groups of groups, and targets linked as named contexts
(`target:<name>`). Paths resolve as bake's from the repository root.
tests/test_bake_print.py holds the result equal to `docker buildx bake --print`.
"""

from __future__ import annotations

import csv
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

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_TOKEN = re.compile(r'\s*(?:("(?:[^"\\]|\\.)*")|([A-Za-z_][A-Za-z0-9_-]*)|(\S))')
_MAP_ATTRIBUTES = frozenset({"args", "labels", "contexts"})
_BLOCK_KEYS = frozenset({"inherits", "matrix", "name"})
_TARGET_CONTEXT = "target:"
_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"')
_ESCAPE = re.compile(r'\\(["\\nrt])')
_ESCAPED = {'"': '"', "\\": "\\", "n": "\n", "r": "\r", "t": "\t"}

Value = str | bool | list[Any] | dict[str, Any]


@dataclass(frozen=True)
class BakeTarget:
    """One resolved bake target: everything needed to build it with any builder.

    `cache_from`, `cache_to` and `attest` hold each entry's key=value pairs, as bake parses
    them; `contexts` maps a named context to its source (`target:<name>` is another target).
    """

    name: str
    context: Path
    dockerfile: Path
    target: str | None
    args: dict[str, str]
    tags: list[str]
    platforms: list[str]
    labels: dict[str, str]
    description: str
    contexts: dict[str, str]
    cache_from: list[dict[str, str]]
    cache_to: list[dict[str, str]]
    attest: list[dict[str, str]]

    @property
    def linked(self) -> list[str]:
        """The targets this one's named contexts are built from (`target:<name>`)."""
        return [
            source.removeprefix(_TARGET_CONTEXT)
            for source in self.contexts.values()
            if source.startswith(_TARGET_CONTEXT)
        ]


@dataclass(frozen=True)
class BakePlan:
    """The targets a bake group (or a single target) builds, in bake's order, and the
    `stages`: targets built only as named contexts of those, each before its users."""

    group: str
    targets: list[BakeTarget]
    stages: list[BakeTarget]


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
    targets = [resolver.target(name) for name in resolver.expand(group)]
    stages: list[BakeTarget] = []
    for target in targets:
        resolver.add_stages(target, [t.name for t in targets], stages)
    return BakePlan(group=group, targets=targets, stages=stages)


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
    # Quotes kept: they tell the string "mode" from the expression `mode`.
    options = SerializationOptions(
        strip_string_quotes=False, explicit_blocks=False, with_comments=False
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
                blocks.setdefault(_unquote(name), {}).update(
                    body
                )  # repeated blocks merge, as in bake
        document[kind] = blocks
    return document


class _Resolver:
    """Evaluates variables, expressions, matrices, inheritance and groups of one bake file."""

    def __init__(
        self,
        document: dict[str, dict[str, dict[str, Any]]],
        bake_file: Path,
        env: Mapping[str, str],
    ) -> None:
        self._variables = document["variable"]
        self._bake_file = bake_file
        self._root = bake_file.resolve().parent.parent
        self._env = env
        self._values: dict[str, str] = {}
        self._resolving: list[str] = []
        self._groups = {
            name: self._texts(self._value(body.get("targets", []), {}))
            for name, body in document["group"].items()
        }
        # Each target's body with the matrix values it sees; a matrix target becomes one
        # target per combination, and its own name a group of them (as bake does).
        self._targets: dict[str, tuple[dict[str, Any], dict[str, Value]]] = {}
        for name, body in document["target"].items():
            if "matrix" not in body:
                self._targets[name] = (body, {})
                continue
            self._groups[name] = []
            for scope in self._combinations(self._value(body["matrix"], {})):
                expanded = self._string(body.get("name", name), scope)
                self._targets[expanded] = (body, scope)
                self._groups[name].append(expanded)

    def _combinations(self, matrix: Value) -> list[dict[str, Value]]:
        """Every combination of the matrix's values, the last key varying fastest."""
        if not isinstance(matrix, dict):
            raise self._unsupported(f"matrix {matrix!r}")
        combinations: list[dict[str, Value]] = [{}]
        for key, values in matrix.items():
            if not isinstance(values, list):
                raise self._unsupported(f"matrix value {values!r}")
            combinations = [{**done, key: value} for done in combinations for value in values]
        return combinations

    def expand(self, name: str, seen: tuple[str, ...] = ()) -> list[str]:
        """Target names of a group (recursively) or of a single target, without duplicates."""
        if name in seen:
            raise ToolError(
                f"bake group {name!r} contains itself ({' -> '.join((*seen, name))})",
                f"remove the cycle from {self._bake_file}",
            )
        if name in self._groups:
            names: list[str] = []
            for member in self._groups[name]:
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

    def add_stages(self, user: BakeTarget, planned: list[str], stages: list[BakeTarget]) -> None:
        """Append the targets `user` links as named contexts (theirs first) to `stages`."""
        for name in user.linked:
            if name in planned or name in [stage.name for stage in stages]:
                continue
            if name not in self._targets:
                raise ToolError(
                    f"bake target {user.name!r} takes a context from unknown target {name!r}",
                    f"fix `contexts` in {self._bake_file}",
                )
            stage = self.target(name)
            self.add_stages(stage, planned, stages)
            stages.append(stage)

    def target(self, name: str) -> BakeTarget:
        attributes = self._merged(name, ())
        context = self._root / self._text(attributes.get("context", "."))
        return BakeTarget(
            name=name,
            context=context,
            dockerfile=context / self._text(attributes.get("dockerfile", "Dockerfile")),
            target=self._text(attributes["target"]) if "target" in attributes else None,
            args=self._mapping(attributes.get("args", {})),
            tags=self._texts(attributes.get("tags", [])),
            platforms=self._texts(attributes.get("platforms", [])),
            labels=self._mapping(attributes.get("labels", {})),
            description=self._text(attributes.get("description", "")),
            contexts=self._mapping(attributes.get("contexts", {})),
            cache_from=self._entries(attributes.get("cache-from", [])),
            cache_to=self._entries(attributes.get("cache-to", [])),
            attest=self._entries(attributes.get("attest", [])),
        )

    def _merged(self, name: str, seen: tuple[str, ...]) -> dict[str, Value]:
        """The target's evaluated attributes after `inherits`, parents first, itself last."""
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
        body, scope = self._targets[name]
        merged: dict[str, Value] = {}
        for parent in self._texts(self._value(body.get("inherits", []), scope)):
            _merge_into(merged, self._merged(parent, (*seen, name)))
        own = {key: self._value(raw, scope) for key, raw in body.items() if key not in _BLOCK_KEYS}
        _merge_into(merged, own)
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
            value = self._env[name] if name in self._env else self._string(default, {})
        finally:
            self._resolving.pop()
        self._values[name] = value
        return value

    # -- values: HCL as python-hcl2 serializes it (expressions stay `${...}` strings) -------

    def _value(self, raw: Any, scope: Mapping[str, Value]) -> Value:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, int | float):
            return str(raw)
        if isinstance(raw, list):
            return [self._value(item, scope) for item in raw]
        if isinstance(raw, dict):
            return {_unquote(k): self._value(v, scope) for k, v in raw.items() if v is not None}
        if isinstance(raw, str):
            return self._text_value(raw, scope)
        raise self._unsupported(repr(raw))

    def _text_value(self, raw: str, scope: Mapping[str, Value]) -> Value:
        """A "string" (a template) or an expression, as python-hcl2 serialized it."""
        if _QUOTED.fullmatch(raw):
            return self._template(_unquote(raw), scope)
        whole = _template_parts(raw)  # an expression, `${...}`-wrapped unless a bare name
        if whole is not None and len(whole) == 1 and isinstance(whole[0], _Interpolation):
            return self._expression(whole[0].source, scope)
        return self._expression(raw, scope)

    def _template(self, text: str, scope: Mapping[str, Value]) -> Value:
        """A string with `${expr}` parts; one part spanning the whole string keeps its type."""
        parts = _template_parts(text)
        if parts is None:
            raise self._unsupported(text)
        if len(parts) == 1 and isinstance(parts[0], _Interpolation):
            return self._expression(parts[0].source, scope)
        pieces: list[str] = []
        for part in parts:
            value = (
                self._expression(part.source, scope) if isinstance(part, _Interpolation) else part
            )
            if not isinstance(value, str):
                raise self._unsupported(f"{text!r} (interpolates a non-string)")
            pieces.append(value)
        return "".join(pieces)

    def _expression(self, source: str, scope: Mapping[str, Value]) -> Value:
        return _Expression(source, self, scope).evaluate()

    def _string(self, raw: Any, scope: Mapping[str, Value]) -> str:
        return self._text(self._value(raw, scope))

    def lookup(self, name: str, scope: Mapping[str, Value]) -> Value:
        """A name in an expression: a matrix value of this target, else a variable."""
        return scope[name] if name in scope else self.variable(name)

    def _unsupported(self, expression: str) -> ToolError:
        return ToolError(
            f"{self._bake_file} uses {expression}, an expression lightning_devtools.bake "
            "does not evaluate",
            "use ${VAR}, split, equal, a condition or a matrix value, or extend bake.py",
        )

    def _text(self, value: Value) -> str:
        if not isinstance(value, str):
            raise self._unsupported(f"{value!r} where a string is expected")
        return value

    def _texts(self, value: Value) -> list[str]:
        """A list of strings; nested lists (a `split` inside a list) are flattened."""
        if isinstance(value, str):
            return [value]
        if not isinstance(value, list):
            raise self._unsupported(f"{value!r} where a list is expected")
        return [text for item in value for text in self._texts(item)]

    def _mapping(self, value: Value) -> dict[str, str]:
        if not isinstance(value, dict):
            raise self._unsupported(f"{value!r} where a map is expected")
        return {key: self._text(item) for key, item in value.items()}

    def _entries(self, value: Value) -> list[dict[str, str]]:
        """cache-from/cache-to/attest entries: `key=value,...` CSV, as buildx reads them."""
        entries: list[dict[str, str]] = []
        for text in self._texts(value):
            fields = next(csv.reader([text]), [])
            if not fields or not all("=" in field for field in fields):
                raise self._unsupported(f"{text!r} (an entry that is not key=value,...)")
            entries.append(dict(field.split("=", 1) for field in fields))
        return entries


def _unquote(text: str) -> str:
    """An HCL string literal's text (`"a\\"b"` -> `a"b`); other text as it is."""
    if not _QUOTED.fullmatch(text):
        return text
    return _ESCAPE.sub(lambda match: _ESCAPED[match.group(1)], text[1:-1])


@dataclass(frozen=True)
class _Interpolation:
    source: str


def _template_parts(text: str) -> list[str | _Interpolation] | None:
    """`a${x}b` -> ["a", _Interpolation("x"), "b"]; `$${` is a literal `${`. None when a
    `${` is never closed."""
    parts: list[str | _Interpolation] = []
    literal, index = "", 0
    while index < len(text):
        if text.startswith("$${", index):
            literal, index = literal + "${", index + 3
        elif text.startswith("${", index):
            end = _closing_brace(text, index + 2)
            if end is None:
                return None
            if literal:
                parts.append(literal)
            literal = ""
            parts.append(_Interpolation(text[index + 2 : end].strip()))
            index = end + 1
        else:
            literal, index = literal + text[index], index + 1
    if literal or not parts:
        parts.append(literal)
    return parts


def _closing_brace(text: str, start: int) -> int | None:
    depth, index = 0, start
    while index < len(text):
        char = text[index]
        if char == '"':
            match = _QUOTED.match(text, index)
            if match is None:
                return None
            index = match.end()
            continue
        if char == "{":
            depth += 1
        elif char == "}":
            if depth == 0:
                return index
            depth -= 1
        index += 1
    return None


class _Expression:
    """The HCL expressions the bake file uses: names (variables, matrix values), `a.b`,
    `a[b]`, "strings", [lists], `cond ? x : y`, and the functions split and equal."""

    def __init__(self, source: str, resolver: _Resolver, scope: Mapping[str, Value]) -> None:
        self._source = source
        self._resolver = resolver
        self._scope = scope
        self._tokens = self._tokenize(source)
        self._position = 0

    def _tokenize(self, source: str) -> list[str]:
        tokens: list[str] = []
        index = 0
        while source[index:].strip():
            match = _TOKEN.match(source, index)
            if match is None:
                raise self._unsupported()
            tokens.append(match.group(match.lastindex or 0))
            index = match.end()
        return tokens

    def evaluate(self) -> Value:
        value = self._conditional()
        if self._position != len(self._tokens):
            raise self._unsupported()
        return value

    def _unsupported(self) -> ToolError:
        return self._resolver._unsupported(f"${{{self._source}}}")

    def _peek(self) -> str | None:
        return self._tokens[self._position] if self._position < len(self._tokens) else None

    def _take(self, expected: str | None = None) -> str:
        token = self._peek()
        if token is None or (expected is not None and token != expected):
            raise self._unsupported()
        self._position += 1
        return token

    def _conditional(self) -> Value:
        condition = self._postfix()
        if self._peek() != "?":
            return condition
        self._take("?")
        when_true = self._conditional()
        self._take(":")
        when_false = self._conditional()
        if not isinstance(condition, bool):
            raise self._unsupported()
        return when_true if condition else when_false

    def _postfix(self) -> Value:
        value = self._primary()
        while self._peek() in (".", "["):
            if self._take() == ".":
                key: Value = self._take()
            else:
                key = self._conditional()
                self._take("]")
            if not isinstance(value, dict) or not isinstance(key, str) or key not in value:
                raise self._unsupported()
            value = value[key]
        return value

    def _primary(self) -> Value:
        token = self._take()
        if token.startswith('"'):
            text = _unquote(token)
            if "${" in text:
                raise self._unsupported()
            return text
        if token == "[":  # noqa: S105 - a bracket, not a password
            return self._items("]")
        if not _IDENTIFIER.fullmatch(token):
            raise self._unsupported()
        if self._peek() == "(":
            return self._call(token)
        return self._resolver.lookup(token, self._scope)

    def _items(self, close: str) -> list[Value]:
        """Comma-separated expressions up to and including `close`."""
        items: list[Value] = []
        while self._peek() != close:
            items.append(self._conditional())
            if self._peek() != close:
                self._take(",")
        self._take(close)
        return items

    def _call(self, function: str) -> Value:
        self._take("(")
        arguments = self._items(")")
        texts = [argument for argument in arguments if isinstance(argument, str)]
        if len(texts) != 2 or len(arguments) != 2:
            raise self._unsupported()
        if function == "split":
            separator, whole = texts
            return [part for part in whole.split(separator) if part]
        if function == "equal":
            return texts[0] == texts[1]
        raise self._unsupported()


def _merge_into(merged: dict[str, Value], attributes: Mapping[str, Value]) -> None:
    """Bake's inheritance: maps merge key by key, every other attribute replaces."""
    for key, value in attributes.items():
        previous = merged.get(key)
        if key in _MAP_ATTRIBUTES and isinstance(value, dict) and isinstance(previous, dict):
            merged[key] = {**previous, **value}
        else:
            merged[key] = value
