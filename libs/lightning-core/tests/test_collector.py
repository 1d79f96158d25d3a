import gc
import weakref
from collections.abc import Iterator

import pytest

from lightning_core.collector import YOUNG_GENERATION, settle_after_startup


@pytest.fixture
def restored_collector() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("restored_collector")
def test_start_up_objects_are_frozen_and_the_young_generation_widened() -> None:
    _, middle, oldest = gc.get_threshold()
    settle_after_startup()
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == (YOUNG_GENERATION, middle, oldest)


@pytest.mark.usefixtures("restored_collector")
def test_cyclic_garbage_made_later_is_still_collected_on_its_own() -> None:
    settle_after_startup()

    class Node:
        partner: object

    first, second = Node(), Node()
    first.partner, second.partner = second, first
    freed = weakref.finalize(first, lambda: None)
    del first, second
    # Enough allocations of container objects for the young generation to be collected.
    kept: list[list[None]] = [[] for _ in range(2 * YOUNG_GENERATION)]
    assert not freed.alive
    assert len(kept) == 2 * YOUNG_GENERATION
