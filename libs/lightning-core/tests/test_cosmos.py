"""What only the Cosmos DB provider does: containers from the declaration (provisioned with
an account key, verified with a managed identity), ids Cosmos refuses, writes whose
response was lost. The shared behaviour is the storage contract suite's."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from azure.cosmos import PartitionKey
from azure.cosmos.aio import CosmosClient

from lightning_core.config import ConfigError
from lightning_core.idempotency import LEDGER
from lightning_core.records import EVENTS
from lightning_core.storage.base import Conflict, PreconditionFailed
from lightning_core.storage.cosmos import CosmosStorage
from lightning_core.testing.backends.cosmos import (
    COLLECTIONS_UNDER_TEST,
    StaticToken,
    cosmos_endpoint,
)
from lightning_core.topology import COLLECTIONS, Collection


def composite_indexes(properties: dict[str, object]) -> list[list[tuple[str, str]]]:
    policy = properties["indexingPolicy"]
    assert isinstance(policy, dict)
    return [[(p["path"], p["order"]) for p in index] for index in policy["compositeIndexes"]]


async def test_ordering_both_ways_is_served_by_the_declared_index(
    storage_cosmos: CosmosStorage,
) -> None:
    for n in [2, 1, 3]:
        await storage_cosmos.create("things", "alice", f"t{n}", {"n": n})
    await storage_cosmos.create("things", "alice", "t9", {"other": 1})
    ascending = await storage_cosmos.query("things", "alice", order_by="n", where={"x": None})
    descending = await storage_cosmos.query("things", "alice", order_by="n", descending=True)
    numbered = [doc.id for doc in ascending.items if "n" in doc.body]
    assert numbered == ["t1", "t2", "t3"]
    assert [doc.id for doc in descending.items if "n" in doc.body] == numbered[::-1]
    properties = await storage_cosmos.database.get_container_client("things").read()
    assert composite_indexes(properties) == [[("/body/n", "descending"), ("/id", "descending")]]


async def test_undeclared_orderings_and_collections_are_refused(
    storage_cosmos: CosmosStorage,
) -> None:
    with pytest.raises(ValueError, match="'things' declares no ordering by 'name'"):
        await storage_cosmos.query("things", "alice", order_by="name")
    with pytest.raises(ValueError, match="collection 'never' is not declared"):
        await storage_cosmos.create("never", "alice", "t1", {})


async def test_ids_cosmos_cannot_address_are_refused(storage_cosmos: CosmosStorage) -> None:
    with pytest.raises(ValueError, match="invalid document id"):
        await storage_cosmos.create("things", "alice", "a/b", {})


def with_inner_token(token: str, inner: str) -> str:
    """Our continuation token for the same query, carrying another SDK token."""
    wrapper = json.loads(base64.urlsafe_b64decode(token))
    wrapper["c"] = inner
    return base64.urlsafe_b64encode(json.dumps(wrapper).encode()).decode()


async def test_a_forged_sdk_token_inside_ours_is_an_invalid_token(
    storage_cosmos: CosmosStorage,
) -> None:
    for n in range(3):
        await storage_cosmos.create("things", "alice", f"t{n}", {"n": n})
    page = await storage_cosmos.query("things", "alice", order_by="n", limit=1)
    assert page.continuation is not None
    # The service refuses the first three; the others could not even travel in a header.
    for inner in ["{}", '{"token": 7}', "99", "line\nbreak", "\u00e9"]:
        with pytest.raises(ValueError, match=r"^invalid continuation token$"):
            await storage_cosmos.query(
                "things",
                "alice",
                order_by="n",
                limit=1,
                continuation=with_inner_token(page.continuation, inner),
            )


# -- the declared containers: provisioned with an account key, verified with an identity --


def verifying(
    connection_string: str, database: str, collections: tuple[Collection, ...] = COLLECTIONS
) -> CosmosStorage:
    """The storage a managed identity connects: endpoint and an Entra token, no key."""
    return CosmosStorage(
        database,
        endpoint=cosmos_endpoint(connection_string),
        credential=StaticToken(),
        collections=collections,
    )


async def test_a_managed_identity_on_an_empty_account_names_every_missing_container(
    cosmos_connection_string: str, cosmos_database: str
) -> None:
    with pytest.raises(ConfigError) as failure:
        await verifying(cosmos_connection_string, cosmos_database).connect()
    message = str(failure.value)
    assert f"database '{cosmos_database}'" in message
    for collection in COLLECTIONS:
        assert f"container '{collection.name}'" in message
    assert "`invoke deploy --stack NAME`" in message
    assert "COSMOS_CONNECTION_STRING" in message
    assert "\n" not in message
    async with CosmosClient.from_connection_string(cosmos_connection_string) as client:
        names = [database["id"] async for database in client.list_databases()]
    assert cosmos_database not in names  # verifying created nothing


async def test_a_managed_identity_uses_a_provisioned_database(
    cosmos_connection_string: str, storage_cosmos: CosmosStorage
) -> None:
    database = storage_cosmos.database.id
    async with verifying(cosmos_connection_string, database, COLLECTIONS_UNDER_TEST) as storage:
        await storage.create("things", "alice", "t1", {"n": 1})
        page = await storage.query("things", "alice", order_by="n")
        assert [doc.id for doc in page.items] == ["t1"]
        await storage.ping()


async def test_a_managed_identity_names_a_missing_index_and_a_missing_container(
    cosmos_connection_string: str, storage_cosmos: CosmosStorage
) -> None:
    wanted = (
        *COLLECTIONS_UNDER_TEST[:-2],
        Collection("things", orderings=("n", "m")),
        Collection("others"),
        Collection("later"),
    )
    with pytest.raises(ConfigError) as failure:
        await verifying(cosmos_connection_string, storage_cosmos.database.id, wanted).connect()
    message = str(failure.value)
    assert "composite index (/body/m descending, /id descending) on container 'things'" in message
    assert "container 'later'" in message
    assert message.count("container '") == 2  # nothing else is reported missing


async def test_an_account_key_adds_missing_indexes_and_keeps_documents(
    cosmos_connection_string: str, cosmos_database: str
) -> None:
    async with CosmosClient.from_connection_string(cosmos_connection_string) as client:
        database = await client.create_database(cosmos_database)
        container = await database.create_container(
            "things", partition_key=PartitionKey(path="/partition")
        )
        await container.create_item({"id": "t1", "partition": "alice", "body": {"n": 1}})
        async with CosmosStorage(
            cosmos_database,
            connection_string=cosmos_connection_string,
            collections=COLLECTIONS_UNDER_TEST,
        ) as storage:
            assert (await storage.get("things", "alice", "t1")).body == {"n": 1}
        properties = await container.read()
    assert composite_indexes(properties) == [[("/body/n", "descending"), ("/id", "descending")]]
    async with verifying(cosmos_connection_string, cosmos_database, COLLECTIONS_UNDER_TEST):
        pass  # everything declared is there now


async def test_expiring_containers_get_the_retention_as_their_default_ttl(
    cosmos_connection_string: str, cosmos_database: str
) -> None:
    """Provisioning sets it on new containers and corrects an existing one; a managed
    identity names a container whose TTL differs."""
    retention = timedelta(days=2)
    async with CosmosClient.from_connection_string(cosmos_connection_string) as client:
        database = await client.create_database(cosmos_database)
        await database.create_container(LEDGER, partition_key=PartitionKey(path="/partition"))
        async with CosmosStorage(
            cosmos_database, connection_string=cosmos_connection_string, retention=retention
        ):
            pass
        ttls = {
            collection.name: (await database.get_container_client(collection.name).read()).get(
                "defaultTtl"
            )
            for collection in COLLECTIONS
        }
    expiring = {collection.name for collection in COLLECTIONS if collection.expires}
    assert expiring == {EVENTS, LEDGER}
    assert ttls == {name: 2 * 86_400 if name in expiring else None for name in ttls}
    endpoint = cosmos_endpoint(cosmos_connection_string)
    async with CosmosStorage(
        cosmos_database, endpoint=endpoint, credential=StaticToken(), retention=retention
    ):
        pass
    with pytest.raises(ConfigError) as failure:
        await CosmosStorage(
            cosmos_database, endpoint=endpoint, credential=StaticToken(), retention=2 * retention
        ).connect()
    message = str(failure.value)
    assert f"default TTL 345600 s on container '{EVENTS}' (it has 172800)" in message
    assert f"container '{LEDGER}'" in message
    assert message.count("container '") == 2


async def test_a_container_on_another_partition_key_is_named(
    cosmos_connection_string: str, cosmos_database: str
) -> None:
    async with CosmosClient.from_connection_string(cosmos_connection_string) as client:
        database = await client.create_database(cosmos_database)
        await database.create_container("things", partition_key=PartitionKey(path="/user"))
    provisioning = CosmosStorage(
        cosmos_database,
        connection_string=cosmos_connection_string,
        collections=COLLECTIONS_UNDER_TEST,
    )
    with pytest.raises(ConfigError, match="partition key '/partition' on container 'things'"):
        await provisioning.connect()
    with pytest.raises(ConfigError, match="partition key '/partition' on container 'things'"):
        await verifying(cosmos_connection_string, cosmos_database, COLLECTIONS_UNDER_TEST).connect()


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
            collections=COLLECTIONS_UNDER_TEST,
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
