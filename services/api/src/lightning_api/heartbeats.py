"""The services resource: which background services are alive, from their heartbeats; it
describes the deployment, not anyone's records, so every signed-in user may read it."""

from __future__ import annotations

from itertools import groupby

from fastapi import APIRouter

from lightning_api.dependencies import CurrentUser, StorageDep
from lightning_api.door import DoorRoute
from lightning_api.resource import UNAUTHORIZED
from lightning_core.domain import now
from lightning_core.heartbeats import recent
from lightning_core.wire import InstanceOut, ServiceOut

router = APIRouter(
    prefix="/api/services", tags=["services"], responses=UNAUTHORIZED, route_class=DoorRoute
)


@router.get("")
async def list_services(_user: CurrentUser, storage: StorageDep) -> list[ServiceOut]:
    """Each service seen within the last hour, its instances newest beat first."""
    at = now()
    beats = sorted(await recent(storage), key=lambda beat: beat.service)
    services = []
    for name, group in groupby(beats, key=lambda beat: beat.service):
        instances = [
            InstanceOut(
                instance=beat.instance,
                started_at=beat.started_at,
                seen_at=beat.seen_at,
                alive=beat.alive(at),
            )
            for beat in sorted(group, key=lambda beat: beat.seen_at, reverse=True)
        ]
        alive = sum(instance.alive for instance in instances)
        services.append(ServiceOut(service=name, alive=alive, instances=instances))
    return services
