"""The instruction form: its fields to an InstructionSpec body, an Instruction back to its
fields (for editing), and the API's 422 to messages per field."""

from __future__ import annotations

import json
from typing import Any

from lightning_core.domain import Emit, Instruction, Notify, RequestTask, TaskKind

#: The form's fields, in page order; `form` is for messages about no one field.
FIELDS = (
    "name",
    "event_type",
    "data_filter",
    "action_kind",
    "task_kind",
    "task_params",
    "notify_title",
    "notify_body",
    "emit_type",
    "emit_data",
)
FORM = "form"
TASK_KINDS = frozenset(TaskKind)

# Where the API's `loc` (after "body") points, to the form field that holds it.
_LOCATIONS: dict[tuple[str, ...], str] = {
    ("name",): "name",
    ("event_type",): "event_type",
    ("data_filter",): "data_filter",
    ("action",): "action_kind",
    ("action", "request_task", "task"): "task_kind",
    ("action", "request_task", "params"): "task_params",
    ("action", "notify", "title"): "notify_title",
    ("action", "notify", "body"): "notify_body",
    ("action", "emit", "type"): "emit_type",
    ("action", "emit", "data"): "emit_data",
}


# Where an unknown kind points: a union's tag is checked at the union's own location.
_KIND_FIELDS: dict[tuple[str, ...], str] = {("action", "request_task"): "task_kind"}


# A pattern mismatch in words: the API's own message quotes the regular expression.
_PATTERN_HINTS = {
    "event_type": (
        "use letters, digits and . _ : / - (starting with a letter or digit), with * ? [ ]"
        " as wildcards, e.g. door.* or door.opened"
    ),
    "emit_type": (
        "use letters, digits and . _ : / - (starting with a letter or digit), e.g. door.closed"
    ),
}


class FormErrors(Exception):
    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__(errors)
        self.errors = errors


def parse_mapping(text: str) -> dict[str, Any]:
    """A JSON object, or `key=value` lines (values that read as JSON scalars, e.g. `3` or
    `true`, are those; anything else is a string). Empty text is an empty mapping."""
    text = text.strip()
    if not text:
        return {}
    if text.startswith(("{", "[")):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"not valid JSON: {error.msg} (line {error.lineno})") from None
        if not isinstance(value, dict):
            raise ValueError("must be a JSON object")
        return value
    mapping: dict[str, Any] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        key, equals, raw = line.partition("=")
        if not equals or not key.strip():
            raise ValueError(f"line {number}: expected key=value")
        mapping[key.strip()] = _scalar(raw.strip())
    return mapping


def _scalar(raw: str) -> Any:
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        return raw
    return value if isinstance(value, (int, float, bool, str)) or value is None else raw


def format_mapping(mapping: dict[str, Any]) -> str:
    """`mapping` as the text parse_mapping reads back to it: `key=value` lines where each
    value survives that, else a JSON object."""
    lines = [f"{key}={_format_scalar(value)}" for key, value in mapping.items()]
    text = "\n".join(lines)
    try:
        readable = parse_mapping(text) == mapping
    except ValueError:
        readable = False
    return text if readable else json.dumps(mapping, ensure_ascii=False)


def _format_scalar(value: Any) -> str:
    """A string as itself unless it would read as something else (`3`, `true`, padded)."""
    if isinstance(value, str) and _scalar(value.strip()) == value:
        return value
    return json.dumps(value, ensure_ascii=False)


def form_from_instruction(instruction: Instruction) -> dict[str, str]:
    """The form's fields showing `instruction`, for editing it (and `enabled` kept)."""
    form = dict.fromkeys(FIELDS, "")
    form.update(
        name=instruction.name,
        event_type=instruction.event_type,
        data_filter=format_mapping(dict(instruction.data_filter)),
        action_kind=instruction.action.kind,
        enabled="true" if instruction.enabled else "false",
    )
    action = instruction.action
    if isinstance(action, RequestTask):
        form.update(task_kind=action.task.value, task_params=format_mapping(action.params))
    elif isinstance(action, Notify):
        form.update(notify_title=action.title, notify_body=action.body)
    elif isinstance(action, Emit):
        form.update(emit_type=action.type, emit_data=format_mapping(action.data))
    return form


def spec_from_form(form: dict[str, Any]) -> dict[str, Any]:
    """The InstructionSpec body the form describes; FormErrors for what cannot be read."""
    values = {name: str(form.get(name) or "") for name in FIELDS}
    errors: dict[str, str] = {}

    def mapping(field: str) -> dict[str, Any]:
        try:
            return parse_mapping(values[field])
        except ValueError as error:
            errors[field] = str(error)
            return {}

    kind = values["action_kind"]
    action: dict[str, Any] = {"kind": kind}
    if kind == "request_task":
        action.update(task=values["task_kind"], params=mapping("task_params"))
    elif kind == "notify":
        action.update(title=values["notify_title"], body=values["notify_body"])
    elif kind == "emit":
        action.update(type=values["emit_type"], data=mapping("emit_data"))
    else:
        errors["action_kind"] = "choose an action"
    spec = {
        "name": values["name"].strip(),
        "event_type": values["event_type"].strip(),
        "data_filter": mapping("data_filter"),
        "action": action,
        # Absent on a new instruction; "true"/"false" when an edited one keeps its state.
        "enabled": str(form.get("enabled", "true")).lower() != "false",
    }
    if errors:
        raise FormErrors(errors)
    return spec


def _without_task_kind(loc: tuple[str, ...]) -> tuple[str, ...]:
    """`loc` without the task kind in a task's params' location (`request_task.notify.params`)."""
    head = ("action", "request_task")
    if loc[:2] == head and len(loc) > 3 and loc[2] in TASK_KINDS and loc[3] == "params":
        return (*head, *loc[3:])
    return loc


def field_errors(detail: Any) -> dict[str, str]:
    """The API's 422 `detail` ([{loc, msg}, ...] or a string) as messages per form field."""
    if not isinstance(detail, list):
        return {FORM: str(detail)}
    errors: dict[str, str] = {}
    for item in detail:
        loc = _without_task_kind(tuple(str(part) for part in item.get("loc", ()) if part != "body"))
        depth = next((n for n in range(len(loc), 0, -1) if loc[:n] in _LOCATIONS), 0)
        field = _LOCATIONS[loc[:depth]] if depth else FORM
        if item.get("type") == "union_tag_invalid":
            field = _KIND_FIELDS.get(loc, field)
        message = str(item.get("msg", "invalid"))
        if field == "task_params" and loc[depth:]:  # which param: the field holds them all
            message = f"{'.'.join(loc[depth:])}: {message}"
        if item.get("type") == "string_pattern_mismatch" and field in _PATTERN_HINTS:
            message = _PATTERN_HINTS[field]
        errors[field] = f"{errors[field]}; {message}" if field in errors else message
    return errors
