"""The UI reads everything through the API, as any other client would."""

from __future__ import annotations

import httpx

from lightning_core.records import EventRecord


class ApiUnavailable(Exception):
    """The API did not answer or answered with an error; the page says so instead of failing."""


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

    async def aclose(self) -> None:
        await self._client.aclose()
