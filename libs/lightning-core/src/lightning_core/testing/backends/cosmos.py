"""Cosmos DB: a real Cosmos REST server (npm `@vercel/cosmosdb-server`) for the contract suite.

The session installs the server with `npm ci` from the committed lock file into a cache
directory outside the repository (keyed by the lock, so a new lock installs afresh and an
unchanged one is reused across runs), starts it on a free port, and gives each test a
database of its own, deleted afterwards, provisioned (as an account key provisions it) with
`COLLECTIONS_UNDER_TEST`: core's declaration plus the collections the tests use, declared
the same way. `cosmos_server/serve.js` (beside this module) starts it with the fixes that
make it answer like the real service (see that file). It serves HTTPS with a self-signed
certificate, which the SDK accepts because the address is 127.0.0.1 (the SDK's own rule
for the emulator); its `--no-ssl` mode does not work with the SDK. The server does
not check credentials, so an Entra token from `StaticToken` stands in for a managed identity
when a test connects through `cosmos_endpoint` (the verifying path).

No fault fixture: the server keeps its data in memory, so killing it loses every document.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.core.credentials import AccessToken
from azure.cosmos.aio import CosmosClient
from azure.cosmos.exceptions import CosmosResourceNotFoundError

from lightning_core.storage.cosmos import CosmosStorage
from lightning_core.testing.backends import ServerProcess
from lightning_core.testing.machine import free_port
from lightning_core.testing.npm import installed_package, require_node
from lightning_core.topology import COLLECTIONS, Collection

STORAGE = ["storage_cosmos"]

#: Core's collections and the ones test_storage_contract.py and test_cosmos.py use.
COLLECTIONS_UNDER_TEST: tuple[Collection, ...] = (
    *COLLECTIONS,
    Collection("things", filters=("even",), orderings=("n",)),
    Collection("others"),
)

SERVER_FILES = Path(__file__).resolve().parent / "cosmos_server"
SOURCES = ("package.json", "package-lock.json", "serve.js")
MIN_NODE = 20  # the package's engines field
# The server accepts any key; the SDK only needs a valid base64 string to sign requests.
ACCOUNT_KEY = (
    "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw=="
)


@pytest.fixture(scope="session")
def cosmos_connection_string(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Cosmos REST server of this session's own, on a free port (HTTPS, self-signed)."""
    require_node(MIN_NODE)
    server_dir = installed_package(SERVER_FILES, "cosmosdb-server", SOURCES)
    port = free_port()
    server = ServerProcess(
        ["node", str(server_dir / "serve.js"), str(port)],
        port,
        log=tmp_path_factory.mktemp("cosmos") / "server.log",
    )
    server.start()
    try:
        yield f"AccountEndpoint=https://127.0.0.1:{port}/;AccountKey={ACCOUNT_KEY};"
    finally:
        server.stop()


def cosmos_endpoint(connection_string: str) -> str:
    """The account endpoint a managed identity would be given (COSMOS_ENDPOINT)."""
    return connection_string.split("AccountEndpoint=")[1].split(";", maxsplit=1)[0]


class StaticToken:
    """An AsyncTokenCredential whose token the test server accepts, as it accepts any."""

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:  # noqa: ARG002 (the protocol's)
        return AccessToken("test-token", 2**31 - 1)

    async def close(self) -> None:
        """Nothing to release."""

    async def __aenter__(self) -> StaticToken:
        return self

    async def __aexit__(self, *args: object) -> None:
        await self.close()


@pytest.fixture
async def cosmos_database(cosmos_connection_string: str) -> AsyncIterator[str]:
    """A database name of this test's own, deleted afterwards if anything created it."""
    database = f"lightning_test_{uuid.uuid4().hex[:12]}"
    try:
        yield database
    finally:
        async with CosmosClient.from_connection_string(cosmos_connection_string) as client:
            with contextlib.suppress(CosmosResourceNotFoundError):
                await client.delete_database(database)


@pytest.fixture
async def storage_cosmos(
    cosmos_connection_string: str, cosmos_database: str
) -> AsyncIterator[CosmosStorage]:
    async with CosmosStorage(
        cosmos_database,
        connection_string=cosmos_connection_string,
        collections=COLLECTIONS_UNDER_TEST,
    ) as storage:
        yield storage
