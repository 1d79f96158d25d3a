"""The storage contract, written once; every provider runs it unchanged.

Providers come from lightning_core.testing.backends (one module each); nothing here names one.
"""

import asyncio
import base64
import re
from datetime import UTC, datetime
from typing import Any

import pytest

from lightning_core.events import MAX_DATA_DEPTH, CloudEvent
from lightning_core.records import EVENTS, EventRecord, EventStatus
from lightning_core.storage.base import (
    STORAGE_MAX_DEPTH,
    Conflict,
    InvalidDocument,
    JsonScalar,
    NotFound,
    PreconditionFailed,
    Storage,
)
from lightning_core.testing.backends import listed


@pytest.fixture(params=listed("STORAGE"))
def store(request: pytest.FixtureRequest) -> Storage:
    storage: Storage = request.getfixturevalue(request.param)
    return storage


async def test_create_then_get_returns_the_body_and_an_etag(store: Storage) -> None:
    created = await store.create("things", "alice", "t1", {"name": "one", "n": 1})
    fetched = await store.get("things", "alice", "t1")
    assert fetched == created
    assert fetched.body == {"name": "one", "n": 1}
    assert fetched.etag


async def test_create_refuses_an_existing_id(store: Storage) -> None:
    await store.create("things", "alice", "t1", {})
    with pytest.raises(Conflict):
        await store.create("things", "alice", "t1", {})


async def test_get_of_a_missing_document_raises_not_found(store: Storage) -> None:
    with pytest.raises(NotFound):
        await store.get("things", "alice", "missing")


async def test_replace_needs_the_current_etag(store: Storage) -> None:
    created = await store.create("things", "alice", "t1", {"v": 1})
    replaced = await store.replace("things", "alice", "t1", {"v": 2}, if_match=created.etag)
    assert replaced.etag != created.etag
    with pytest.raises(PreconditionFailed):
        await store.replace("things", "alice", "t1", {"v": 3}, if_match=created.etag)
    assert (await store.get("things", "alice", "t1")).body == {"v": 2}
    with pytest.raises(NotFound):
        await store.replace("things", "alice", "gone", {}, if_match=created.etag)


async def test_upsert_creates_and_overwrites(store: Storage) -> None:
    first = await store.upsert("things", "alice", "t1", {"v": 1})
    second = await store.upsert("things", "alice", "t1", {"v": 2})
    assert second.etag != first.etag
    assert (await store.get("things", "alice", "t1")).body == {"v": 2}


async def test_delete_honours_if_match(store: Storage) -> None:
    created = await store.create("things", "alice", "t1", {})
    await store.upsert("things", "alice", "t1", {"changed": True})
    with pytest.raises(PreconditionFailed):
        await store.delete("things", "alice", "t1", if_match=created.etag)
    await store.delete("things", "alice", "t1")
    with pytest.raises(NotFound):
        await store.delete("things", "alice", "t1")


async def test_partitions_and_collections_are_isolated(store: Storage) -> None:
    await store.create("things", "alice", "t1", {"owner": "alice"})
    await store.create("things", "bob", "t1", {"owner": "bob"})
    await store.create("others", "alice", "t1", {"owner": "alice-other"})
    page = await store.query("things", "alice")
    assert [doc.body["owner"] for doc in page.items] == ["alice"]
    assert (await store.get("things", "bob", "t1")).body == {"owner": "bob"}


async def test_query_filters_orders_and_pages(store: Storage) -> None:
    for n in range(7):
        await store.create("things", "alice", f"t{n}", {"n": n, "even": n % 2 == 0})
    page = await store.query(
        "things", "alice", where={"even": True}, order_by="n", descending=True, limit=3
    )
    assert [doc.body["n"] for doc in page.items] == [6, 4, 2]
    assert page.continuation is not None
    rest = await store.query(
        "things",
        "alice",
        where={"even": True},
        order_by="n",
        descending=True,
        limit=3,
        continuation=page.continuation,
    )
    assert [doc.body["n"] for doc in rest.items] == [0]
    assert rest.continuation is None


async def test_query_rejects_unsafe_field_names_and_bad_tokens(store: Storage) -> None:
    with pytest.raises(ValueError, match="invalid field name"):
        await store.query("things", "alice", where={"n') OR 1=1 --": 1})
    with pytest.raises(ValueError, match="continuation"):
        await store.query("things", "alice", continuation="not-a-token")


async def test_a_page_continues_after_its_last_item_whatever_was_written_since(
    store: Storage,
) -> None:
    for n in range(6):
        await store.create("things", "alice", f"t{n}", {"n": n // 2, "even": True})
    first = await store.query("things", "alice", order_by="n", descending=True, limit=3)
    assert [doc.id for doc in first.items] == ["t5", "t4", "t3"]
    await store.create("things", "alice", "t9", {"n": 9, "even": True})  # sorts first
    rest = await store.query(
        "things", "alice", order_by="n", descending=True, limit=3, continuation=first.continuation
    )
    assert [doc.id for doc in rest.items] == ["t2", "t1", "t0"]


async def test_pages_of_ties_follow_the_ids_in_the_same_direction(store: Storage) -> None:
    for n in range(7):
        await store.create("things", "alice", f"t{n}", {"n": n % 2, "even": True})
    for descending in (False, True):
        ids: list[str] = []
        continuation = None
        while True:
            page = await store.query(
                "things",
                "alice",
                where={"even": True},
                order_by="n",
                descending=descending,
                limit=2,
                continuation=continuation,
            )
            ids += [doc.id for doc in page.items]
            if page.continuation is None:
                break
            continuation = page.continuation
        expected = ["t0", "t2", "t4", "t6", "t1", "t3", "t5"]
        assert ids == (expected[::-1] if descending else expected)


async def test_a_continuation_serves_only_the_query_it_came_from(store: Storage) -> None:
    for n in range(3):
        await store.create("things", "alice", f"t{n}", {"n": n, "even": True})
    page = await store.query("things", "alice", order_by="n", limit=1)
    other_queries: list[dict[str, Any]] = [
        {"order_by": "n", "descending": True},
        {"order_by": "n", "where": {"even": True}},
        {},
    ]
    for query in other_queries:
        with pytest.raises(ValueError, match=r"^invalid continuation token"):
            await store.query("things", "alice", continuation=page.continuation, **query)
    with pytest.raises(ValueError, match=r"^invalid continuation token"):
        await store.query("things", "bob", order_by="n", continuation=page.continuation)


async def test_purge_deletes_what_was_last_written_before_the_cutoff(store: Storage) -> None:
    await store.create("things", "alice", "old", {})
    await store.create("things", "bob", "old", {})
    replaced = await store.create("things", "alice", "replaced", {})
    await store.create("things", "alice", "upserted", {})
    await store.create("others", "alice", "old", {})
    await asyncio.sleep(1.05)  # Cosmos DB stamps writes in whole seconds
    cutoff = datetime.now(UTC)
    await store.replace("things", "alice", "replaced", {"v": 2}, if_match=replaced.etag)
    await store.upsert("things", "alice", "upserted", {"v": 2})
    await store.create("things", "alice", "fresh", {})

    assert await store.purge("things", before=cutoff, limit=1) == 1
    assert await store.purge("things", before=cutoff) == 1
    assert await store.purge("things", before=cutoff) == 0
    for partition, doc_id in [("alice", "old"), ("bob", "old")]:
        with pytest.raises(NotFound):
            await store.get("things", partition, doc_id)
    for doc_id in ["replaced", "upserted", "fresh"]:
        await store.get("things", "alice", doc_id)
    await store.get("others", "alice", "old")


def token_of(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


MALFORMED_TOKENS = [
    "not-a-token",
    token_of(str(2**63)),  # one past the largest offset a database takes
    token_of(str(10**30)),
    token_of("-1"),
    token_of("9" * 5000),  # beyond int()'s digit limit
    token_of("[" * 100_000),  # beyond the JSON parser's recursion
    token_of('{"q": "another query", "c": "x"}'),
    "\ud800",
]


async def test_any_malformed_continuation_token_is_a_value_error(store: Storage) -> None:
    for token in MALFORMED_TOKENS:
        with pytest.raises(ValueError, match=r"^invalid continuation token"):
            await store.query("things", "alice", continuation=token)


def nested(levels: int) -> Any:
    """`levels` lists, one inside the other."""
    value: Any = "bottom"
    for _ in range(levels):
        value = [value]
    return value


UNSTORABLE: list[tuple[dict[str, Any], str]] = [
    ({"data": {"a": {"b": [0, 1, 2, "x\x00y"]}}}, "data.a.b[3]: NUL character"),
    ({"data": {"by": "ok \ud800"}}, "data.by: lone surrogate U+D800"),
    ({"data": {"a\x00b": 1}}, 'data["a\\u0000b"]: NUL character in a field name'),
    ({"data": {"\udfff": 1}}, 'data["\\udfff"]: lone surrogate U+DFFF in a field name'),
    (
        {"data": {"n": [1.5, float("nan")]}},
        "data.n[1]: not a finite number (JSON has no NaN or Infinity)",
    ),
    (
        {"data": nested(STORAGE_MAX_DEPTH)},
        "data"
        + "[0]" * (STORAGE_MAX_DEPTH - 1)
        + f": nested deeper than {STORAGE_MAX_DEPTH} levels",
    ),
]


async def test_every_write_refuses_a_body_no_provider_stores_alike(store: Storage) -> None:
    created = await store.create("things", "alice", "t1", {"v": 1})
    for body, message in UNSTORABLE:
        writes = {
            "create": store.create("things", "alice", "t2", body),
            "upsert": store.upsert("things", "alice", "t2", body),
            "replace": store.replace("things", "alice", "t1", body, if_match=created.etag),
        }
        for name, write in writes.items():
            with pytest.raises(InvalidDocument) as refused:
                await write
            assert str(refused.value) == message, name
    assert await store.get("things", "alice", "t1") == created
    with pytest.raises(NotFound):
        await store.get("things", "alice", "t2")


async def test_bodies_at_the_limits_round_trip(store: Storage) -> None:
    body = {
        "deepest": nested(STORAGE_MAX_DEPTH - 1),
        "text": "escaped \\u0000 and \\ud800, é, \u2028, \U0001f600",
    }
    created = await store.create("things", "alice", "t1", body)
    assert (await store.get("things", "alice", "t1")).body == body == created.body


UNMATCHABLE: list[tuple[JsonScalar, str]] = [
    ("a\x00", "NUL character"),
    ("\ud800", "lone surrogate U+D800"),
    (float("inf"), "not a finite number"),
]


async def test_the_record_of_the_deepest_event_accepted_is_stored(store: Storage) -> None:
    event = CloudEvent(
        source="test", type="t", user="alice", data={"d": nested(MAX_DATA_DEPTH - 1)}
    )
    record = EventRecord(event=event, status=EventStatus.RECEIVED, received_at=event.time)
    await store.create(EVENTS, "alice", event.id, record.to_body())
    stored = EventRecord.from_document(await store.get(EVENTS, "alice", event.id))
    assert stored.event == event


async def test_filter_values_no_provider_matches_alike_are_value_errors(store: Storage) -> None:
    for value, problem in UNMATCHABLE:
        with pytest.raises(ValueError, match=f"^filter even: {re.escape(problem)}"):
            await store.query("things", "alice", where={"even": value})
        with pytest.raises(ValueError, match=f"^filter even: {re.escape(problem)}"):
            await store.query_all("things", where={"even": value})


async def test_query_all_reads_every_partition(store: Storage) -> None:
    for n, user in enumerate(["alice", "bob", "carol", "alice", "bob"]):
        await store.create("things", user, f"t{n}", {"n": n, "even": n % 2 == 0})
    await store.create("others", "alice", "o1", {"n": 9, "even": True})
    found = await store.query_all("things", where={"even": True}, order_by="n")
    assert [(doc.partition, doc.id, doc.body["n"]) for doc in found] == [
        ("alice", "t0", 0),
        ("carol", "t2", 2),
        ("bob", "t4", 4),
    ]
    newest = await store.query_all("things", order_by="n", descending=True, limit=2)
    assert [doc.id for doc in newest] == ["t4", "t3"]
    assert all(doc.etag for doc in newest)
    with pytest.raises(ValueError, match="limit"):
        await store.query_all("things", limit=0)


async def test_keys_no_provider_stores_alike_are_refused_by_every_operation(
    store: Storage,
) -> None:
    for partition, doc_id, message in [
        ("alice", "t\x00", "document id: NUL character"),
        ("alice", "\ud800", "document id: lone surrogate U+D800"),
        ("al\x00ice", "t1", "document partition: NUL character"),
    ]:
        operations = {
            "create": store.create("things", partition, doc_id, {}),
            "upsert": store.upsert("things", partition, doc_id, {}),
            "replace": store.replace("things", partition, doc_id, {}, if_match="x"),
            "get": store.get("things", partition, doc_id),
            "delete": store.delete("things", partition, doc_id),
        }
        for name, operation in operations.items():
            with pytest.raises(InvalidDocument) as refused:
                await operation
            assert str(refused.value) == message, name
    with pytest.raises(InvalidDocument, match="document partition: NUL character"):
        await store.query("things", "al\x00ice")
