"""The endpoints behind the UI's buttons and instruction form: JSON from the page's fetch
in, the API called as the caller, JSON out."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from lightning_core.domain import Instruction
from lightning_ui.api_client import ApiClient, ApiRejected, ApiUnavailable
from lightning_ui.auth import caller_of
from lightning_ui.forms import FORM, FormErrors, field_errors, form_from_instruction, spec_from_form

JSON = "application/json"
STALE_EDIT = (
    "this instruction was changed elsewhere since you opened it (another tab or a script): "
    "open it again to edit the current version"
)


def button(
    call: Callable[[ApiClient, str], Awaitable[None]],
) -> Callable[[Request], Awaitable[JSONResponse]]:
    """A button's POST: `call` the API with the path's `{id}`; `{}` or `{"error": ...}` back."""

    async def endpoint(request: Request) -> JSONResponse:
        caller = await caller_of(request)
        try:
            await call(caller.api, request.path_params["id"])
        except ApiRejected as rejected:
            return JSONResponse({"error": str(rejected.detail)}, rejected.status_code)
        except ApiUnavailable as problem:
            return JSONResponse({"error": str(problem)}, 503)
        return JSONResponse({})

    return endpoint


async def create_instruction(request: Request) -> JSONResponse:
    """A new instruction from the form: 201 `{id}`, else `{"errors": {field: message}}`."""
    return await _save(request, lambda api, form: api.create_instruction(spec_from_form(form)), 201)


async def replace_instruction(request: Request) -> JSONResponse:
    """The instruction `{id}` replaced by the form, if still the version its `etag` names."""
    instruction_id = request.path_params["id"]
    return await _save(
        request,
        lambda api, form: api.replace_instruction(
            instruction_id, spec_from_form(form), str(form.get("etag", ""))
        ),
        200,
    )


async def instruction_form(request: Request) -> JSONResponse:
    """The form's fields for one instruction, and the ETag its save must match."""
    caller = await caller_of(request)
    try:
        instruction, etag = await caller.api.instruction(request.path_params["id"])
    except ApiRejected as rejected:
        return JSONResponse({"error": str(rejected.detail)}, rejected.status_code)
    except ApiUnavailable as problem:
        return JSONResponse({"error": str(problem)}, 503)
    return JSONResponse({"fields": form_from_instruction(instruction), "etag": etag})


async def _save(
    request: Request,
    call: Callable[[ApiClient, dict[str, Any]], Awaitable[Instruction]],
    status_code: int,
) -> JSONResponse:
    caller = await caller_of(request)
    try:
        form = await _read_form(request)
        saved = await call(caller.api, form)
    except ValueError:
        return JSONResponse({"errors": {FORM: "expected a JSON object"}}, 400)
    except FormErrors as invalid:
        return JSONResponse({"errors": invalid.errors}, 422)
    except ApiRejected as rejected:
        errors = (
            {FORM: STALE_EDIT} if rejected.status_code == 412 else field_errors(rejected.detail)
        )
        return JSONResponse({"errors": errors}, rejected.status_code)
    except ApiUnavailable as problem:
        return JSONResponse({"errors": {FORM: str(problem)}}, 503)
    return JSONResponse({"id": saved.id}, status_code)


async def _read_form(request: Request) -> dict[str, Any]:
    # Only JSON: a cross-site HTML form can send text/plain that happens to parse.
    if request.headers.get("content-type", "").partition(";")[0].strip() != JSON:
        raise FormErrors({FORM: f"expected a {JSON} body"})
    form = await request.json()  # ValueError: not JSON at all
    if not isinstance(form, dict):
        raise FormErrors({FORM: "expected a JSON object"})
    return form
