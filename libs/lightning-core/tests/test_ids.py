import time
import uuid

from lightning_core.domain import Task
from lightning_core.events import CloudEvent
from lightning_core.ids import new_id, new_token


def test_ids_are_uuid7_carrying_the_millisecond_they_were_made() -> None:
    before = time.time_ns() // 1_000_000
    text = new_id()
    after = time.time_ns() // 1_000_000
    made = uuid.UUID(text)
    assert str(made) == text  # the canonical form: lower-case hex, dashes in place
    assert made.version == 7
    assert made.variant == uuid.RFC_4122
    assert before <= made.int >> 80 <= after


def test_later_ids_sort_after_earlier_ones_and_none_repeat() -> None:
    first = [new_id() for _ in range(1000)]
    time.sleep(0.002)  # the next millisecond at least
    later = new_id()
    assert all(earlier < later for earlier in first)
    assert len(set(first)) == len(first)


def test_events_and_records_take_their_ids_from_it() -> None:
    event = CloudEvent(source="test", type="t", user="alice")
    task = Task(user="alice", kind="wait", params={"seconds": 0})
    assert uuid.UUID(event.id).version == uuid.UUID(task.id).version == 7


def test_tokens_are_128_random_bits_in_hex() -> None:
    tokens = [new_token() for _ in range(1000)]
    assert all(len(token) == 32 and int(token, 16) >= 0 for token in tokens)
    assert len(set(tokens)) == len(tokens)
