"""Azure Cosmos DB storage for azure mode: one container per collection, partitioned by user.

Each document is stored as `{"id", "partition", "body", "write"}`:
- the partition key path is `/partition` (the user), and every query both names it in its
  WHERE clause and passes it as the request's partition key, so a query is served by one
  logical partition and can never return another user's documents;
- the caller's JSON sits under `body`, so its field names never collide with ours or with
  Cosmos DB's system properties (`_etag`, `_ts`, ...); filters and ordering address
  `c.body["field"]` with bound parameters only;
- `write` is a random token per write: a write resent after its response was lost (by the
  retry loop here, or by the SDK, which resends writes after a dropped connection)
  recognises its own result instead of reporting a false Conflict or PreconditionFailed.
The etag is Cosmos DB's `_etag`, checked server-side with If-Match.

Ordering by a field and then by id needs a composite index (Cosmos DB refuses multi-property
ORDER BY without one). The first time a collection is ordered by a field in a direction, the
container's indexing policy gains `(/body/<field>, /id)` in that direction; the other
properties of the container are passed through unchanged, since a replace resets whatever it
omits. Containers and indexes are management operations, which Entra ID (managed identity)
data-plane roles may not perform: with a managed identity, declare each container
(partition key `/partition`) and composite index in the infrastructure program, and this
provider only checks that they are there, naming what is missing.

Losing the service is not fatal: an operation that failed on connection loss is retried with
backoff for up to `retry_for` seconds, on top of the SDK's own short retries.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar, cast

from azure.core import MatchConditions
from azure.core.async_paging import AsyncPageIterator
from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import ServiceRequestError, ServiceResponseError
from azure.cosmos import PartitionKey
from azure.cosmos.aio import ContainerProxy, CosmosClient, DatabaseProxy
from azure.cosmos.exceptions import (
    CosmosAccessConditionFailedError,
    CosmosHttpResponseError,
    CosmosResourceExistsError,
    CosmosResourceNotFoundError,
)
from azure.identity.aio import DefaultAzureCredential

from lightning_core.config import ConfigError, Settings
from lightning_core.ids import new_token
from lightning_core.lifecycle import Connectable
from lightning_core.storage.base import (
    Conflict,
    Document,
    JsonScalar,
    NotFound,
    Page,
    PreconditionFailed,
    StorageError,
    check_field_name,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

PARTITION_KEY = PartitionKey(path="/partition")
# Cosmos DB refuses these in an id (they are path separators in its REST addresses).
_ID_FORBIDDEN = frozenset("/\\?#")
# Container properties a replace would reset unless given again, by their keyword in the SDK.
_KEPT_PROPERTIES = {
    "defaultTtl": "default_ttl",
    "conflictResolutionPolicy": "conflict_resolution_policy",
    "analyticalStorageTtl": "analytical_storage_ttl",
    "computedProperties": "computed_properties",
    "fullTextPolicy": "full_text_policy",
}
_FORBIDDEN = 403
_INDEX_ATTEMPTS = 5
# The SDK reports connection loss as these: the first before the request was sent, the
# second after, when the write may or may not have landed.
_CONNECTION_ERRORS = (ServiceRequestError, ServiceResponseError)


def _check_id(doc_id: str) -> str:
    if not doc_id or _ID_FORBIDDEN.intersection(doc_id):
        raise ValueError(f"invalid document id {doc_id!r}: Cosmos DB ids cannot contain / \\ ? #")
    return doc_id


def _document(item: Mapping[str, Any]) -> Document:
    return Document(item["id"], item["partition"], item["body"], item["_etag"])


class CosmosStorage(Connectable):
    """Storage in one Cosmos DB database, reached with an account key (connection string)
    or with a managed identity (endpoint + DefaultAzureCredential).

    There is deliberately no switch for TLS certificate checks: the SDK skips them by itself
    for 127.0.0.1 and localhost only (its rule for the emulator), which is what the contract
    suite's local server needs, and no deployment can turn them off. `client_options` go
    to the SDK's client as they are (e.g. `preferred_locations`).
    """

    def __init__(
        self,
        database: str,
        *,
        connection_string: str | None = None,
        endpoint: str | None = None,
        retry_for: float = 30.0,
        **client_options: Any,
    ) -> None:
        super().__init__()
        if connection_string is not None and endpoint is None:
            self._address, self._managed_identity = connection_string, False
        elif endpoint is not None and connection_string is None:
            self._address, self._managed_identity = endpoint, True
        else:
            raise ValueError("CosmosStorage needs exactly one of connection_string or endpoint")
        self._database_name = database
        self._client_options = client_options
        self._retry_for = retry_for
        self._client: CosmosClient | None = None
        self._credential: AsyncTokenCredential | None = None
        self._database: DatabaseProxy | None = None
        self._containers: dict[str, ContainerProxy] = {}
        self._indexed: set[tuple[str, str, bool]] = set()
        self._management = asyncio.Lock()

    @property
    def database(self) -> DatabaseProxy:
        if self._database is None:
            raise RuntimeError("CosmosStorage is not connected: use `async with storage:`")
        return self._database

    async def _connect(self) -> None:
        if self._managed_identity:
            self._credential = DefaultAzureCredential()
            self._client = CosmosClient(self._address, self._credential, **self._client_options)
        else:
            self._client = CosmosClient.from_connection_string(
                self._address, **self._client_options
            )
        try:
            self._database = await self._manage(
                f"database {self._database_name!r}",
                functools.partial(self._client.create_database_if_not_exists, self._database_name),
            )
        except BaseException:
            await self._close()
            raise

    async def _close(self) -> None:
        if self._client is not None:
            await self._client.close()
        if self._credential is not None:
            await self._credential.close()
        self._client = self._credential = self._database = None
        self._containers.clear()
        self._indexed.clear()

    async def ping(self) -> None:
        # No retry: readiness reports the store as it is now.
        await self.database.read()

    async def _retrying(self, operation: Callable[[], Awaitable[T]]) -> T:
        """Run `operation`, retrying on connection loss with backoff until `retry_for`."""
        deadline = time.monotonic() + self._retry_for
        delay = 0.05
        while True:
            try:
                return await operation()
            except _CONNECTION_ERRORS as error:
                if time.monotonic() + delay > deadline:
                    raise
                log.warning("Cosmos DB unreachable (%s); retrying in %.2fs", error, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def _manage(self, what: str, operation: Callable[[], Awaitable[T]]) -> T:
        """A management operation (retried); when a data-plane identity is refused it, say
        what to declare instead."""
        try:
            return await self._retrying(operation)
        except CosmosHttpResponseError as error:
            if error.status_code != _FORBIDDEN:
                raise
            raise StorageError(
                f"Cosmos DB {what} is missing and this identity may not create it "
                f"({error.message}): declare it in the infrastructure program, or use "
                "COSMOS_CONNECTION_STRING (account key) where creating it is allowed"
            ) from None

    async def _container(self, collection: str) -> ContainerProxy:
        """The collection's container, created on first write."""
        container = self._containers.get(collection)
        if container is not None:
            return container
        async with self._management:
            if collection not in self._containers:
                self._containers[collection] = await self._manage(
                    f"container {collection!r} (partition key /partition)",
                    functools.partial(
                        self.database.create_container_if_not_exists,
                        collection,
                        partition_key=PARTITION_KEY,
                    ),
                )
        return self._containers[collection]

    async def _ensure_order_index(self, collection: str, field: str, descending: bool) -> bool:
        """Make sure `(body.field, id)` has a composite index in this direction; False if
        the collection does not exist yet (it has no documents to order)."""
        if (collection, field, descending) in self._indexed:
            return True
        order = "descending" if descending else "ascending"
        wanted = [{"path": f"/body/{field}", "order": order}, {"path": "/id", "order": order}]
        container = self.database.get_container_client(collection)
        async with self._management:
            # Read back after each replace: another process replacing the policy at the same
            # time may have dropped ours, so only seeing it in the stored policy counts.
            for _ in range(_INDEX_ATTEMPTS):
                try:
                    properties = await self._retrying(container.read)
                except CosmosResourceNotFoundError:
                    return False
                policy = dict(properties.get("indexingPolicy") or {})
                composites = [list(index) for index in policy.get("compositeIndexes") or []]
                if any(
                    [(part["path"], part.get("order", "ascending")) for part in index]
                    == [(part["path"], part["order"]) for part in wanted]
                    for index in composites
                ):
                    self._indexed.add((collection, field, descending))
                    return True
                policy["compositeIndexes"] = [*composites, wanted]
                kept = {
                    keyword: properties[name]
                    for name, keyword in _KEPT_PROPERTIES.items()
                    if properties.get(name) is not None
                }
                log.info("Cosmos DB: adding composite index %s to %r", wanted, collection)
                await self._manage(
                    f"composite index {wanted} on container {collection!r}",
                    functools.partial(
                        self.database.replace_container,
                        container,
                        PARTITION_KEY,
                        indexing_policy=policy,
                        **kept,
                    ),
                )
        raise StorageError(
            f"Cosmos DB container {collection!r} kept losing its composite index {wanted} "
            "to concurrent indexing-policy changes: declare it in the infrastructure program"
        )

    def _item(self, partition: str, doc_id: str, body: dict[str, Any]) -> dict[str, Any]:
        write = new_token()
        return {"id": _check_id(doc_id), "partition": partition, "body": body, "write": write}

    async def _own_write(
        self, container: ContainerProxy, item: dict[str, Any], refusal: StorageError
    ) -> Document:
        """A create refused as Conflict, or a replace as PreconditionFailed, may be this very
        write landing twice: retried by us or by the SDK (which resends writes after a lost
        connection). It is ours if the stored write token is ours; otherwise `refusal`."""
        try:
            stored = await self._retrying(
                functools.partial(container.read_item, item["id"], partition_key=item["partition"])
            )
        except CosmosResourceNotFoundError:
            raise refusal from None
        if stored.get("write") != item["write"]:
            raise refusal
        return _document(stored)

    async def create(
        self, collection: str, partition: str, doc_id: str, body: dict[str, Any]
    ) -> Document:
        item = self._item(partition, doc_id, body)
        container = await self._container(collection)
        try:
            return _document(await self._retrying(functools.partial(container.create_item, item)))
        except CosmosResourceExistsError:
            refusal = Conflict(f"{collection}/{doc_id} already exists")
        return await self._own_write(container, item, refusal)

    async def get(self, collection: str, partition: str, doc_id: str) -> Document:
        container = self.database.get_container_client(collection)
        try:
            item = await self._retrying(
                functools.partial(container.read_item, _check_id(doc_id), partition_key=partition)
            )
        except CosmosResourceNotFoundError:
            raise NotFound(f"{collection}/{doc_id} not found") from None
        return _document(item)

    async def replace(
        self,
        collection: str,
        partition: str,
        doc_id: str,
        body: dict[str, Any],
        *,
        if_match: str,
    ) -> Document:
        item = self._item(partition, doc_id, body)
        container = self.database.get_container_client(collection)
        write = functools.partial(
            container.replace_item,
            doc_id,
            item,
            etag=if_match,
            match_condition=MatchConditions.IfNotModified,
        )
        try:
            return _document(await self._retrying(write))
        except CosmosResourceNotFoundError:
            raise NotFound(f"{collection}/{doc_id} not found") from None
        except CosmosAccessConditionFailedError:
            refusal = PreconditionFailed(f"{collection}/{doc_id} changed since etag {if_match}")
        return await self._own_write(container, item, refusal)

    async def upsert(
        self, collection: str, partition: str, doc_id: str, body: dict[str, Any]
    ) -> Document:
        item = self._item(partition, doc_id, body)
        container = await self._container(collection)
        # Idempotent: a retry after a lost outcome writes the same document again.
        return _document(await self._retrying(functools.partial(container.upsert_item, item)))

    async def delete(
        self, collection: str, partition: str, doc_id: str, *, if_match: str | None = None
    ) -> None:
        container = self.database.get_container_client(collection)
        outcome_lost = False

        async def attempt() -> None:
            nonlocal outcome_lost
            try:
                await container.delete_item(
                    _check_id(doc_id),
                    partition_key=partition,
                    etag=if_match,
                    match_condition=None if if_match is None else MatchConditions.IfNotModified,
                )
            except ServiceResponseError:
                outcome_lost = True
                raise

        try:
            await self._retrying(attempt)
        except CosmosResourceNotFoundError:
            if outcome_lost:
                return  # our lost attempt deleted it: gone, as asked
            raise NotFound(f"{collection}/{doc_id} not found") from None
        except CosmosAccessConditionFailedError:
            raise PreconditionFailed(
                f"{collection}/{doc_id} changed since etag {if_match}"
            ) from None

    async def query(
        self,
        collection: str,
        partition: str,
        *,
        where: Mapping[str, JsonScalar] | None = None,
        order_by: str | None = None,
        descending: bool = False,
        limit: int = 100,
        continuation: str | None = None,
    ) -> Page:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        clauses = ["c.partition = @partition"]
        parameters: list[dict[str, Any]] = [{"name": "@partition", "value": partition}]
        for n, (field, value) in enumerate((where or {}).items()):
            path = f'c.body["{check_field_name(field)}"]'
            if value is None:
                clauses.append(f"(NOT IS_DEFINED({path}) OR IS_NULL({path}))")
            else:
                clauses.append(f"{path} = @v{n}")
                parameters.append({"name": f"@v{n}", "value": value})
        direction = "DESC" if descending else "ASC"
        order = f"c.id {direction}"
        if order_by is not None:
            order = f'c.body["{check_field_name(order_by)}"] {direction}, {order}'
        # Built from fixed fragments and checked field names; every value is a parameter.
        sql = f"SELECT * FROM c WHERE {' AND '.join(clauses)} ORDER BY {order}"  # noqa: S608
        fingerprint = hashlib.sha256(
            json.dumps([collection, partition, sql, parameters], sort_keys=True).encode()
        ).hexdigest()[:16]
        token = _decode_token(continuation, fingerprint) if continuation else None
        if order_by is not None and not await self._ensure_order_index(
            collection, order_by, descending
        ):
            return Page([], None)
        container = self.database.get_container_client(collection)
        items: list[Document] = []
        # Cosmos DB may end a page early (time or size budget): keep reading until full.
        while True:
            want = limit - len(items)
            try:
                page, token = await self._retrying(
                    functools.partial(
                        _one_page,
                        container,
                        sql,
                        parameters,
                        partition=partition,
                        size=want,
                        token=token,
                    )
                )
            except CosmosResourceNotFoundError:
                return Page([], None)  # no container: nothing was ever written here
            items.extend(_document(item) for item in page)
            if token is None or len(items) >= limit:
                break
        return Page(items, _encode_token(token, fingerprint) if token else None)


async def _one_page(
    container: ContainerProxy,
    sql: str,
    parameters: list[dict[str, Any]],
    *,
    partition: str,
    size: int,
    token: str | None,
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of at most `size` items from `token` on, and the token after it."""
    pages = cast(
        "AsyncPageIterator[dict[str, Any]]",
        container.query_items(
            sql, parameters=parameters, partition_key=partition, max_item_count=size
        ).by_page(token),
    )
    async for page in pages:
        return [item async for item in page], pages.continuation_token
    return [], None


def _encode_token(sdk_token: str, fingerprint: str) -> str:
    raw = json.dumps({"q": fingerprint, "c": sdk_token}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _decode_token(token: str, fingerprint: str) -> str:
    """The SDK's token inside ours; refused if made for another query or partition."""
    try:
        decoded = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ValueError("invalid continuation token") from None
    if (
        not isinstance(decoded, dict)
        or decoded.get("q") != fingerprint
        or not isinstance(decoded.get("c"), str)
    ):
        raise ValueError("invalid continuation token: it belongs to another query")
    sdk_token: str = decoded["c"]
    return sdk_token


def from_settings(settings: Settings) -> CosmosStorage:
    if settings.cosmos_connection_string:
        return CosmosStorage(
            settings.cosmos_database, connection_string=settings.cosmos_connection_string
        )
    if settings.cosmos_endpoint:
        return CosmosStorage(settings.cosmos_database, endpoint=settings.cosmos_endpoint)
    raise ConfigError(
        [
            "COSMOS_CONNECTION_STRING (or COSMOS_ENDPOINT with a managed identity) is missing "
            "(needed by LIGHTNING_STORAGE_PROVIDER=cosmos)"
        ]
    )
