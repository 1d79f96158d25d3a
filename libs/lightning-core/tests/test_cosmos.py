"""What only the Cosmos DB provider does: indexes on demand, ids Cosmos refuses, writes whose
response was lost. The shared behaviour is the storage contract suite's."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import pytest
from azure.cosmos.aio import CosmosClient

from lightning_core.storage.base import Conflict, PreconditionFailed
from lightning_core.storage.cosmos import CosmosStorage


async def test_ordering_both_ways_adds_indexes_and_keeps_documents(
    storage_cosmos: CosmosStorage,
) -> None:
    for n, name in enumerate(["b", "a", "c", "a"]):
        await storage_cosmos.create("things", "alice", f"t{n}", {"name": name})
    await storage_cosmos.create("things", "alice", "t9", {"other": 1})
    ascending = await storage_cosmos.query("things", "alice", order_by="name", where={"x": None})
    descending = await storage_cosmos.query("things", "alice", order_by="name", descending=True)
    named = [doc.id for doc in ascending.items if "name" in doc.body]
    assert named == ["t1", "t3", "t0", "t2"]
    assert [doc.id for doc in descending.items if "name" in doc.body] == named[::-1]
    properties = await storage_cosmos.database.get_container_client("things").read()
    assert [
        [part["order"] for part in index]
        for index in properties["indexingPolicy"]["compositeIndexes"]
    ] == [
        ["ascending", "ascending"],
        ["descending", "descending"],
    ]


async def test_ids_cosmos_cannot_address_are_refused(storage_cosmos: CosmosStorage) -> None:
    with pytest.raises(ValueError, match="invalid document id"):
        await storage_cosmos.create("things", "alice", "a/b", {})


async def test_query_of_a_collection_never_written_is_empty(storage_cosmos: CosmosStorage) -> None:
    page = await storage_cosmos.query("never", "alice", order_by="n")
    assert page.items == []
    assert page.continuation is None


class LosingRelay:
    """A TCP relay in front of the Cosmos server that can lose a response: the request
    reaches the server and is applied, then the client's connection drops before the
    answer arrives, as when a network path fails mid-request."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.lose_next_response = False
        self.lost = 0
        self.connections = 0

    async def serve(self, client: asyncio.StreamReader, client_out: asyncio.StreamWriter) -> None:
        self.connections += 1
        server, server_out = await asyncio.open_connection("127.0.0.1", self.upstream_port)

        async def pump(
            source: asyncio.StreamReader, sink: asyncio.StreamWriter, answers: bool
        ) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await source.read(65536):
                    if answers and self.lose_next_response:
                        self.lose_next_response = False
                        self.lost += 1
                        break
                    sink.write(data)
                    await sink.drain()
            for writer in (client_out, server_out):
                writer.close()

        await asyncio.gather(pump(client, server_out, False), pump(server, client_out, True))


@pytest.fixture
async def relayed(
    cosmos_connection_string: str,
) -> AsyncIterator[tuple[CosmosStorage, LosingRelay]]:
    port = int(cosmos_connection_string.split("127.0.0.1:")[1].split("/", maxsplit=1)[0])
    relay = LosingRelay(port)
    server = await asyncio.start_server(relay.serve, "127.0.0.1", 0)
    relay_port = server.sockets[0].getsockname()[1]
    database = f"lightning_test_{uuid.uuid4().hex[:12]}"
    try:
        async with CosmosStorage(
            database,
            connection_string=cosmos_connection_string.replace(f":{port}/", f":{relay_port}/"),
            # The server names its own port as the account's write region: stay on the relay.
            enable_endpoint_discovery=False,
        ) as storage:
            yield storage, relay
    finally:
        server.close()
        async with CosmosClient.from_connection_string(cosmos_connection_string) as client:
            await client.delete_database(database)


async def test_a_create_whose_response_was_lost_is_not_a_conflict(
    relayed: tuple[CosmosStorage, LosingRelay],
) -> None:
    storage, relay = relayed
    await storage.create("things", "alice", "warm-up", {})
    relay.lose_next_response = True
    created = await storage.create("things", "alice", "t1", {"v": 1})
    assert relay.lost == 1
    assert created == await storage.get("things", "alice", "t1")
    with pytest.raises(Conflict):
        await storage.create("things", "alice", "t1", {"v": 1})


async def test_a_replace_whose_response_was_lost_is_not_a_precondition_failure(
    relayed: tuple[CosmosStorage, LosingRelay],
) -> None:
    storage, relay = relayed
    created = await storage.create("things", "alice", "t1", {"v": 1})
    relay.lose_next_response = True
    replaced = await storage.replace("things", "alice", "t1", {"v": 2}, if_match=created.etag)
    assert relay.lost == 1
    assert replaced == await storage.get("things", "alice", "t1")
    with pytest.raises(PreconditionFailed):
        await storage.replace("things", "alice", "t1", {"v": 3}, if_match=created.etag)
