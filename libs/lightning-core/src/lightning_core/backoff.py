"""Retrying through an outage: capped exponential backoff with jitter."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

_MAX_DOUBLINGS = 64  # beyond any cap; 2.0 ** 1024 would overflow a float


def backoff(attempt: int, first: float, cap: float) -> float:
    """The pause before retry number `attempt` (1-based): `first`, doubled for each retry
    before it, at most `cap`."""
    return float(min(cap, first * 2 ** min(attempt - 1, _MAX_DOUBLINGS)))


async def retry(
    operation: Callable[[], Awaitable[T]],
    transient: tuple[type[BaseException], ...],
    *,
    what: str,
    first: float = 0.05,
    cap: float = 2.0,
    within: float | None = None,
    stop: asyncio.Event | None = None,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """`await operation()`, run again while it raises one of `transient`.

    Retry n waits a random half to all of `backoff(n, first, cap)` (jitter). The error is
    re-raised once `within` seconds have passed (None: never) or `stop` is set.
    """
    deadline = None if within is None else clock() + within
    attempt = 0
    while True:
        try:
            return await operation()
        except transient as error:
            if stop is not None and stop.is_set():
                raise
            attempt += 1
            pause = backoff(attempt, first, cap) * random.uniform(0.5, 1.0)  # noqa: S311 - jitter
            if deadline is not None:
                pause = min(pause, deadline - clock())
                if pause <= 0:
                    raise
            if attempt == 1:
                log.warning(
                    "%s unreachable (%s: %s); retrying%s",
                    what,
                    type(error).__name__,
                    error,
                    "" if within is None else f" for up to {within:g} s",
                )
            await sleep(pause)
