"""The fan-out bound: how many follow-ups one user's event may cause, in total."""

from __future__ import annotations

from lightning_core.events import CloudEvent

#: The budget of a follow-up that causes nothing further (a report, a notification).
LEAF = 0


class FanOutBound(Exception):
    """An event asked for more follow-ups than its budget has left (the message names both)."""


def left(event: CloudEvent, limit: int) -> int:
    """What `event` may still publish: its budget, at most `limit` (a user's event: `limit`)."""
    return limit if event.budget is None else min(event.budget, limit)


def allot(event: CloudEvent, asked: int, limit: int) -> int:
    """Each of `asked` follow-ups' equal share of what `event` has left; FanOutBound if too few."""
    remaining = left(event, limit)
    if asked > remaining:
        raise FanOutBound(
            f"fan-out bound: {asked} follow-ups asked, {remaining} left of "
            f"LIGHTNING_MAX_FOLLOW_UPS_PER_EVENT={limit}"
        )
    return (remaining - asked) // max(asked, 1)
