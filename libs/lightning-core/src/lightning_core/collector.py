"""The cyclic garbage collector, set for a long-running service.

CPython collects its youngest generation every 700 net allocations of container objects.
A service under load keeps many objects alive for a few milliseconds (requests waiting
for their commit, events queued for the processor), so nearly every young collection
finds survivors and promotes them; the older generations then fill and get collected
over and over, and a full collection walks every object the process holds, including
the hundred thousand or so that importing FastAPI, pydantic and the SDKs created. Under
the load of `nox -s bench-api` this was the largest cost the API had over a bare endpoint:
POST /api/events ran at 0.62 of bare with the default settings and at 0.74 with these
(server and load generator on cores of their own, medians of 5 runs each, one session;
young collections fell from 1,897 to 200 and full ones from 15 to 2 over about 20,000
requests).

Two standard server settings:
- `gc.freeze()` once start-up is done: what it created lives as long as the process, so
  no collection walks it again;
- a young generation of `YOUNG_GENERATION` objects: most of a request's objects are gone
  before it fills, so few are promoted. Cyclic garbage waits for at most that many
  allocations before it is freed; memory held by objects without cycles is freed at once,
  as always (reference counting).
"""

from __future__ import annotations

import gc

YOUNG_GENERATION = 10_000


def settle_after_startup() -> None:
    """Collect start-up's garbage, freeze what is left, and widen the young generation."""
    gc.collect()
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION, middle, oldest)
