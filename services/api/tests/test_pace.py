"""The event stream's pace: fast after activity, slow when idle; POSTs wake their user."""

import asyncio

from clock import Clock

from lightning_api.pace import ACTIVE_FOR, FAST, SLOW, Activity, Pace, first_of


def test_fast_for_a_while_after_activity_then_slow() -> None:
    clock = Clock()
    pace = Pace(clock)
    assert pace.interval() == SLOW
    pace.saw_activity()
    assert pace.interval() == FAST
    clock.now += ACTIVE_FOR - 0.1
    assert pace.interval() == FAST
    clock.now += 0.2
    assert pace.interval() == SLOW


async def test_a_notification_wakes_only_that_users_streams() -> None:
    activity = Activity()
    with activity.watch("alice") as first, activity.watch("alice") as second:
        with activity.watch("bob") as bobs:
            activity.notify("alice")
            assert first.is_set()
            assert second.is_set()
            assert not bobs.is_set()
        activity.notify("bob")  # nobody watching: nothing to do
    assert activity._streams == {}  # closed streams leave nothing behind


async def test_first_of_returns_when_one_is_set_or_the_time_is_up() -> None:
    stop, woken = asyncio.Event(), asyncio.Event()
    asyncio.get_running_loop().call_soon(woken.set)
    await asyncio.wait_for(first_of([stop, woken], within=60), 5)
    assert woken.is_set()
    await first_of([asyncio.Event()], within=0.01)  # nothing set: back after the time
