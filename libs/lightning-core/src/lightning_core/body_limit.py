"""`BodyLimit`: an ASGI middleware answering 413 to a request body over a byte limit.

A declared `Content-Length` over the limit is refused before the app runs; otherwise the
body is counted as the app reads it, and past the limit the app sees the client gone.
"""

from __future__ import annotations

import json

from lightning_core.asgi import ASGIApp, Message, Receive, Scope, Send

_DISCONNECT: Message = {"type": "http.disconnect"}


class BodyLimit:
    """Wrap `app` so that no HTTP request body over `max_bytes` reaches it; `setting` names
    the limit in the 413's message."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, setting: str) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.setting = setting

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self.refuse(send)
            return
        await _Limited(self, receive, send).run(scope)

    async def refuse(self, send: Send) -> None:
        """Answer 413 naming the limit and its setting."""
        detail = (
            f"the request body is over {self.max_bytes} bytes, the most this service takes "
            f"({self.setting})"
        )
        body = json.dumps({"detail": detail}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),  # the rest of the body is never read
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class _Limited:
    """One request: counts what the app receives; refuses once past the limit."""

    def __init__(self, limit: BodyLimit, receive: Receive, send: Send) -> None:
        self.limit = limit
        self.receive_from_client = receive
        self.send_to_client = send
        self.received = 0
        self.response_started = False
        self.refused = False

    async def run(self, scope: Scope) -> None:
        try:
            await self.limit.app(scope, self.receive, self.send)
        except Exception:
            if not self.refused:
                raise
            # The app failed on the disconnect it was handed (Starlette's ClientDisconnect).

    async def receive(self) -> Message:
        if self.refused:
            return _DISCONNECT
        message = await self.receive_from_client()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.limit.max_bytes:
                self.refused = True
                if not self.response_started:
                    await self.limit.refuse(self.send_to_client)
                return _DISCONNECT
        return message

    async def send(self, message: Message) -> None:
        if self.refused and not self.response_started:
            return  # the client has its 413
        if message["type"] == "http.response.start":
            self.response_started = True
        await self.send_to_client(message)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
