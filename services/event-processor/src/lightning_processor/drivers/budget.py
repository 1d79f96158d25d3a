"""The fan-out bound: how many follow-ups one user's event may cause, in total.

Each event carries what it and everything it causes may still publish (`CloudEvent.budget`;
a user's event has None, which means the whole LIGHTNING_MAX_FOLLOW_UPS_PER_EVENT). An
event that publishes k counted follow-ups needs k <= what it has left, and each follow-up
carries an equal share of the rest, `(left - k) // k`, so the tree one user's event grows
holds at most the limit in counted follow-ups, whatever its depth and breadth.

Counted: what instructions publish and what emit tasks emit. Not counted: a task's own
lifecycle (its retries, its succeeded/failed report, a notify task's notification), which
its `max_attempts` bounds and which makes no instruction run; those carry a budget of 0,
except a retry, which is the same request again and keeps the request's budget.
"""

from __future__ import annotations

from lightning_core.events import CloudEvent

#: The budget of a follow-up that causes nothing further (a report, a notification).
LEAF = 0


class FanOutBound(Exception):
    """An event asked for more follow-ups than its budget has left; the message says how
    many of each and names the setting."""


def left(event: CloudEvent, limit: int) -> int:
    """What `event` may still publish: its budget, at most `limit` (a user's event: `limit`)."""
    return limit if event.budget is None else min(event.budget, limit)


def allot(event: CloudEvent, asked: int, limit: int) -> int:
    """The budget each of `asked` follow-ups of `event` carries; FanOutBound when `asked`
    is more than `event` has left."""
    remaining = left(event, limit)
    if asked > remaining:
        raise FanOutBound(
            f"fan-out bound: {asked} follow-ups asked, {remaining} left of "
            f"LIGHTNING_MAX_FOLLOW_UPS_PER_EVENT={limit}"
        )
    return (remaining - asked) // max(asked, 1)
