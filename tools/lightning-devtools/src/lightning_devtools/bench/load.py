"""`python -m lightning_devtools.bench.load URL OUT`: POST events to the API and write down,
for each accepted one, its id and when it was sent and accepted, and the CPU seconds the
generator used (JSON to OUT).

As fast as `--connections` keep-alive connections go, or at `--rate` events/s on an open
schedule (each POST timed from when it was due). 503s are counted, not retried. Plain
asyncio streams: an HTTP client library's CPU per request would set the pace on two cores.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:  # at run time the generator imports no pydantic: its CPU time is the load's
    from lightning_devtools.bench.body import EventBody

CONNECTIONS = 64
SUBJECTS = 100
EVENT_TYPE = "bench.pipeline"


@dataclass
class Tally:
    """What the generator saw: (id, sent, accepted) per 202, and the other answers."""

    accepted: list[tuple[str, float, float]] = field(default_factory=list)
    refused: int = 0  # 503
    failed: dict[str, int] = field(default_factory=dict)  # any other status line: count


class Connection:
    """One keep-alive HTTP/1.1 connection that POSTs JSON and reads whole answers."""

    def __init__(self, target: str) -> None:
        self.url = urlsplit(target)

    async def __aenter__(self) -> Connection:
        host, port = self.url.hostname or "127.0.0.1", self.url.port or 80
        self.reader, self.writer = await asyncio.open_connection(host, port)
        return self

    async def __aexit__(self, *_: object) -> None:
        self.writer.close()
        await self.writer.wait_closed()

    async def post(self, body: bytes, content_type: str = "application/json") -> tuple[int, bytes]:
        """(status, answer body) of one POST to the target's path."""
        self.writer.write(
            (
                f"POST {self.url.path} HTTP/1.1\r\nHost: {self.url.netloc}\r\n"
                f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode()
            + body
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        status_line, *headers = head.decode("latin-1").split("\r\n")
        length = next(
            int(value)
            for name, _, value in (header.partition(":") for header in headers)
            if name.lower() == "content-length"
        )
        return int(status_line.split()[1]), await self.reader.readexactly(length)


def event_body(number: int, subjects: int = SUBJECTS) -> bytes:
    body: EventBody = {
        "type": EVENT_TYPE,
        "source": "bench",
        "subject": f"s{number % subjects}",
        "data": {"n": number},
    }
    return json.dumps(body).encode()


async def generate(
    target: str,
    duration: float,
    *,
    rate: float | None = None,
    connections: int = CONNECTIONS,
    subjects: int = SUBJECTS,
) -> tuple[Tally, float, float]:
    """POST for `duration` seconds; the tally and the load's first and last wall-clock second."""
    tally = Tally()
    numbers = itertools.count()
    started = time.time()
    until = started + duration

    def due(number: int) -> float:
        return started + number / rate if rate else time.time()

    async def worker() -> None:
        async with Connection(target) as connection:
            while True:
                number = next(numbers)
                when = due(number)
                if when >= until:
                    return
                if (wait := when - time.time()) > 0:
                    await asyncio.sleep(wait)
                status, answer = await connection.post(event_body(number, subjects))
                if status == 202:
                    tally.accepted.append((json.loads(answer)["event"]["id"], when, time.time()))
                elif status == 503:
                    tally.refused += 1
                else:
                    line = f"{status} {answer[:200].decode(errors='replace')}"
                    tally.failed[line] = tally.failed.get(line, 0) + 1

    await asyncio.gather(*(worker() for _ in range(connections)))
    return tally, started, min(time.time(), until)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lightning_devtools.bench.load", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("target", help="the API's POST /api/events URL")
    parser.add_argument("out", type=Path, help="where to write the JSON tally")
    parser.add_argument("--duration", type=float, required=True, help="seconds of load")
    parser.add_argument("--rate", type=float, help="events/s (default: as fast as it goes)")
    parser.add_argument("--connections", type=int, default=CONNECTIONS)
    parser.add_argument("--subjects", type=int, default=SUBJECTS)
    args = parser.parse_args(argv)
    try:
        tally, started, ended = asyncio.run(
            generate(
                args.target,
                args.duration,
                rate=args.rate,
                connections=args.connections,
                subjects=args.subjects,
            )
        )
    except OSError as error:
        print(f"bench.load: cannot reach {args.target}: {error}", file=sys.stderr)
        return 1
    args.out.write_text(
        json.dumps(
            {
                "started": started,
                "ended": ended,
                "accepted": tally.accepted,
                "refused": tally.refused,
                "failed": tally.failed,
                "cpu_seconds": time.process_time(),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
