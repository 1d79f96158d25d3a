"""The instructions resource: the caller's rules. GET, POST and PUT return the `ETag`; PUT
requires it in `If-Match` (412 when stale), DELETE takes it optionally, enable and disable
need none; a user has at most LIGHTNING_MAX_INSTRUCTIONS_PER_USER (409)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Response, status

from lightning_api.dependencies import ContextDep, CurrentUser, StorageDep
from lightning_api.door import DoorRoute
from lightning_api.models import ErrorDetail, InstructionIn
from lightning_api.resource import (
    BAD_BODY,
    BAD_CONTINUATION,
    CONTENDED,
    NOT_FOUND,
    STALE,
    UNAUTHORIZED,
    Continuation,
    Limit,
    Page,
    get_or_404,
    list_page,
    modify,
    unquote_etag,
    with_etag,
)
from lightning_core.domain import INSTRUCTIONS, Instruction, now
from lightning_core.storage.base import NotFound, PreconditionFailed, Storage

router = APIRouter(
    prefix="/api/instructions", tags=["instructions"], responses=UNAUTHORIZED, route_class=DoorRoute
)

IfMatch = Annotated[str, Header(description="The ETag of the version being replaced")]


def _instruction(body: dict[str, Any]) -> Instruction:
    return Instruction.model_validate(body)


async def _check_room(storage: Storage, user: str, cap: int) -> None:
    """409 when `user` already has `cap` instructions."""
    page = await storage.query(INSTRUCTIONS, user, limit=cap)
    if len(page.items) >= cap:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"you have {cap} instructions, the most one user may have "
            "(LIGHTNING_MAX_INSTRUCTIONS_PER_USER): delete one first",
        )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={
        **BAD_BODY,
        409: {"model": ErrorDetail, "description": "LIGHTNING_MAX_INSTRUCTIONS_PER_USER reached"},
    },
)
async def create_instruction(
    spec: InstructionIn,
    user: CurrentUser,
    context: ContextDep,
    storage: StorageDep,
    response: Response,
) -> Instruction:
    await _check_room(storage, user, context.settings.max_instructions_per_user)
    instruction = Instruction.model_validate({**spec.model_dump(), "user": user})
    document = await storage.create(
        INSTRUCTIONS, user, instruction.id, instruction.model_dump(mode="json")
    )
    response.headers["Location"] = f"{router.prefix}/{instruction.id}"
    return _instruction(with_etag(response, document).body)


@router.get("", responses=BAD_CONTINUATION)
async def list_instructions(
    user: CurrentUser,
    storage: StorageDep,
    limit: Limit = 50,
    continuation: Continuation = None,
) -> Page[Instruction]:
    """The caller's instructions, newest first."""
    return await list_page(
        storage, INSTRUCTIONS, user, Instruction, where=None, limit=limit, continuation=continuation
    )


@router.get("/{instruction_id}", responses=NOT_FOUND)
async def get_instruction(
    instruction_id: str, user: CurrentUser, storage: StorageDep, response: Response
) -> Instruction:
    document = await get_or_404(storage, INSTRUCTIONS, user, instruction_id)
    return _instruction(with_etag(response, document).body)


@router.put("/{instruction_id}", responses={**BAD_BODY, **NOT_FOUND, **STALE})
async def replace_instruction(
    instruction_id: str,
    *,
    spec: InstructionIn,
    if_match: IfMatch,
    user: CurrentUser,
    storage: StorageDep,
    response: Response,
) -> Instruction:
    """Replace the spec (name, pattern, filter, action, enabled); id and creation stay."""
    current = _instruction((await get_or_404(storage, INSTRUCTIONS, user, instruction_id)).body)
    replaced = Instruction.model_validate(
        {**current.model_dump(), **spec.model_dump(), "updated_at": now()}
    )
    try:
        document = await storage.replace(
            INSTRUCTIONS,
            user,
            instruction_id,
            replaced.model_dump(mode="json"),
            if_match=unquote_etag(if_match),
        )
    except PreconditionFailed:
        raise HTTPException(
            status.HTTP_412_PRECONDITION_FAILED, "changed since that ETag"
        ) from None
    except NotFound:  # deleted between our read and the write
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no instruction {instruction_id}") from None
    return _instruction(with_etag(response, document).body)


@router.delete(
    "/{instruction_id}", status_code=status.HTTP_204_NO_CONTENT, responses={**NOT_FOUND, **STALE}
)
async def delete_instruction(
    instruction_id: str,
    user: CurrentUser,
    storage: StorageDep,
    if_match: Annotated[str | None, Header(description="Delete only this version")] = None,
) -> None:
    try:
        await storage.delete(
            INSTRUCTIONS,
            user,
            instruction_id,
            if_match=unquote_etag(if_match) if if_match is not None else None,
        )
    except NotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no instruction {instruction_id}") from None
    except PreconditionFailed:
        raise HTTPException(
            status.HTTP_412_PRECONDITION_FAILED, "changed since that ETag"
        ) from None


async def _set_enabled(
    instruction_id: str, user: str, storage: StorageDep, response: Response, enabled: bool
) -> Instruction:
    def change(body: dict[str, Any]) -> dict[str, Any]:
        instruction = _instruction(body)
        if instruction.enabled is enabled:
            return body
        switched = instruction.model_copy(update={"enabled": enabled, "updated_at": now()})
        return switched.model_dump(mode="json")

    document = await modify(storage, INSTRUCTIONS, user, instruction_id, change)
    return _instruction(with_etag(response, document).body)


@router.post("/{instruction_id}/enable", responses={**NOT_FOUND, **CONTENDED})
async def enable_instruction(
    instruction_id: str, user: CurrentUser, storage: StorageDep, response: Response
) -> Instruction:
    return await _set_enabled(instruction_id, user, storage, response, enabled=True)


@router.post("/{instruction_id}/disable", responses={**NOT_FOUND, **CONTENDED})
async def disable_instruction(
    instruction_id: str, user: CurrentUser, storage: StorageDep, response: Response
) -> Instruction:
    return await _set_enabled(instruction_id, user, storage, response, enabled=False)
