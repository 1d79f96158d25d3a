"""The UI reads everything through the API, as any other client would."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass

import httpx

from lightning_core.records import EventRecord, EventStatus

# The API sends a heartbeat every 15 s: a stream silent for twice that is dead.
STREAM_TIMEOUT = httpx.Timeout(5.0, read=30.0)
STATUSES = frozenset(EventStatus)  # stream messages named after a status carry a record


class ApiUnavailable(Exception):
    """The API did not answer or answered with an error; the page says so instead of failing."""


@dataclass(frozen=True)
class Change:
    """One message of the API's event stream: `ready`, `heartbeat`, or a record's status."""

    kind: str
    record: EventRecord | None = None


class ApiClient:
    def __init__(self, base_url: str, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._client = httpx.AsyncClient(base_url=base_url, timeout=5.0, transport=transport)
        self.base_url = base_url

    async def recent_events(self, limit: int = 50) -> list[EventRecord]:
        try:
            response = await self._client.get("/api/events", params={"limit": limit})
            response.raise_for_status()
        except httpx.HTTPError as error:
            raise ApiUnavailable(f"API at {self.base_url} failed: {error}") from None
        return [EventRecord.model_validate(item) for item in response.json()["items"]]

    async def changes(self) -> AsyncGenerator[Change]:
        """The API's `/api/events/stream`, message by message, until it ends."""
        try:
            async with self._client.stream(
                "GET", "/api/events/stream", timeout=STREAM_TIMEOUT
            ) as response:
                response.raise_for_status()
                kind, data = "heartbeat", ""
                async for line in response.aiter_lines():
                    if line.startswith("event:"):
                        kind = line.removeprefix("event:").strip()
                    elif line.startswith("data:"):
                        data += line.removeprefix("data:").strip()
                    elif not line:
                        record = (
                            EventRecord.model_validate_json(data)
                            if kind
                            not in (
                                "ready",
                                "heartbeat",
                            )
                            else None
                        )
                        yield Change(kind, record)
                        kind, data = "heartbeat", ""
        except httpx.HTTPError as error:
            raise ApiUnavailable(f"API stream at {self.base_url} failed: {error}") from None

    async def aclose(self) -> None:
        await self._client.aclose()
