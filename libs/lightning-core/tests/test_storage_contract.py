"""The storage contract, written once; every provider runs it unchanged.

Providers come from provider_backends (one module each); nothing here names one.
"""

import pytest

from lightning_core.storage.base import Conflict, NotFound, PreconditionFailed, Storage
from provider_backends import listed


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
