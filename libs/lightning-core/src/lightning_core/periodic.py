"""Maintenance sweeps run every so often until a stop, surviving their own failures."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping

log = logging.getLogger(__name__)

#: A sweep: does one round of its work and says how many things it handled.
Sweep = Callable[[], Awaitable[int]]


async def run_every(every: float, stop: asyncio.Event, sweeps: Mapping[str, Sweep]) -> None:
    """Run each sweep (named by what it does) now and every `every` seconds until `stop` is
    set; a failure is logged and the next round tries again."""
    while not stop.is_set():
        for what, sweep in sweeps.items():
            try:
                count = await sweep()
            except Exception as error:  # any provider's error: the next round tries again
                log.warning(
                    "%s failed (%s: %s); retrying in %g s", what, type(error).__name__, error, every
                )
            else:
                if count:
                    log.info("%s: %d", what, count)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)
