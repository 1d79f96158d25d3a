"""Server-Sent Events both ways, lines ending only at CR LF, CR or LF: never at the other
line ends `str.splitlines` takes (U+2028, ...), which JSON and HTML carry unescaped."""

from __future__ import annotations

import re
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass

_LINE_END = re.compile(r"\r\n|\r|\n")


def lines_of(text: str) -> list[str]:
    """`text` split at SSE line ends only (a trailing one makes no empty last line)."""
    lines = _LINE_END.split(text)
    return lines[:-1] if len(lines) > 1 and lines[-1] == "" else lines


def message(event: str, data: str) -> str:
    """One message; each line of `data` gets its own `data:` field."""
    fields = "".join(f"data: {line}\n" for line in lines_of(data))
    return f"event: {event}\n{fields}\n"


@dataclass(frozen=True)
class Message:
    event: str  # "" when the message named none
    data: str


async def lines(chunks: AsyncIterable[str]) -> AsyncIterator[str]:
    """The complete lines of a stream of text chunks, split at SSE line ends only."""
    pending = ""
    async for chunk in chunks:
        pending += chunk
        # A CR at the end may be the first half of a CR LF: it waits for the next chunk.
        complete = len(pending) - 1 if pending.endswith("\r") else len(pending)
        start = 0
        for end in _LINE_END.finditer(pending, 0, complete):
            yield pending[start : end.start()]
            start = end.end()
        pending = pending[start:]


async def messages(chunks: AsyncIterable[str]) -> AsyncIterator[Message]:
    """Each blank-line-ended block: its `event` and its `data` lines joined by LF; comments,
    `id` and `retry` are skipped (a keep-alive comes as `Message("", "")`)."""
    event, seen = "", False
    data: list[str] = []
    async for line in lines(chunks):
        if not line:
            if seen:
                yield Message(event, "\n".join(data))
            event, seen, data = "", False, []
            continue
        seen = True
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
