"""The one retry-through-an-outage loop, on a clock and a sleep the test drives."""

import asyncio
import logging
from collections.abc import Awaitable, Callable

import pytest

from lightning_core.backoff import backoff, retry
from lightning_core.testing.clock import Clock


class Sleeps:
    """A sleep that moves `clock` instead of waiting, remembering each pause."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.pauses: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.clock.now += seconds


def failing(times: int, error: Exception) -> Callable[[], Awaitable[str]]:
    """An operation raising `error` on its first `times` calls, then returning "done"."""
    calls = 0

    async def operation() -> str:
        nonlocal calls
        calls += 1
        if calls <= times:
            raise error
        return "done"

    return operation


def test_the_pause_doubles_from_first_up_to_the_cap() -> None:
    assert [backoff(n, 0.1, 1.0) for n in (1, 2, 3, 4, 5)] == [0.1, 0.2, 0.4, 0.8, 1.0]
    assert backoff(100_000, 0.2, 2.0) == 2.0  # an outage of any length stays at the cap


async def test_a_transient_error_is_retried_with_jittered_pauses_and_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    sleeps = Sleeps(clock)
    with caplog.at_level(logging.WARNING, "lightning_core.backoff"):
        result = await retry(
            failing(5, ConnectionError("refused")),
            (ConnectionError,),
            what="PostgreSQL",
            first=0.1,
            cap=1.0,
            sleep=sleeps,
            clock=clock,
        )
    assert result == "done"
    assert len(sleeps.pauses) == 5
    for n, pause in enumerate(sleeps.pauses, start=1):
        assert backoff(n, 0.1, 1.0) / 2 <= pause <= backoff(n, 0.1, 1.0)
    [warning] = caplog.messages
    assert warning == "PostgreSQL unreachable (ConnectionError: refused); retrying"


async def test_other_errors_are_raised_at_once() -> None:
    sleeps = Sleeps(Clock())
    with pytest.raises(ValueError, match="bad"):
        await retry(failing(1, ValueError("bad")), (ConnectionError,), what="x", sleep=sleeps)
    assert sleeps.pauses == []


async def test_the_error_is_raised_once_the_window_has_passed() -> None:
    clock = Clock()
    sleeps = Sleeps(clock)
    started = clock.now
    with pytest.raises(ConnectionError, match="down"):
        await retry(
            failing(10_000, ConnectionError("down")),
            (ConnectionError,),
            what="x",
            within=3.0,
            sleep=sleeps,
            clock=clock,
        )
    assert clock.now - started == pytest.approx(3.0)  # the last pause ends at the window's end
    assert max(sleeps.pauses) <= 2.0


async def test_a_set_stop_raises_instead_of_retrying() -> None:
    stop = asyncio.Event()
    stop.set()
    sleeps = Sleeps(Clock())
    with pytest.raises(ConnectionError):
        await retry(
            failing(1, ConnectionError()), (ConnectionError,), what="x", stop=stop, sleep=sleeps
        )
    assert sleeps.pauses == []
