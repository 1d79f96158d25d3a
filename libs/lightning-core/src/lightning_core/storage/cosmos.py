"""Azure Cosmos DB storage for azure mode: a container per collection, partitioned by user;
a write token per document lets a resent write recognise its own result (docs/core.md).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import suppress
from datetime import datetime, timedelta
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

from lightning_core.backoff import retry
from lightning_core.config import ConfigError
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
    check_document,
    check_field_name,
    check_filter_values,
    check_keys,
)
from lightning_core.topology import COLLECTIONS, PARTITION_KEY_PATH, Collection

log = logging.getLogger(__name__)

T = TypeVar("T")

PARTITION_KEY = PartitionKey(path=PARTITION_KEY_PATH)
# Path separators in Cosmos DB's REST addresses: refused in an id.
_ID_FORBIDDEN = frozenset("/\\?#")
# Container properties a replace would reset unless given again, by their keyword in the SDK.
_KEPT_PROPERTIES = {
    "defaultTtl": "default_ttl",
    "conflictResolutionPolicy": "conflict_resolution_policy",
    "analyticalStorageTtl": "analytical_storage_ttl",
    "computedProperties": "computed_properties",
    "fullTextPolicy": "full_text_policy",
}
_BAD_REQUEST = 400
_FORBIDDEN = 403
_INDEX_ATTEMPTS = 5
# Connection loss before the request was sent, and after (the write may have landed).
_CONNECTION_ERRORS = (ServiceRequestError, ServiceResponseError)
DATA_ROLE = "Cosmos DB Built-in Data Contributor"
DEPLOY_FIX = (
    "deploy the infrastructure: `invoke deploy --stack NAME`, or use "
    "COSMOS_CONNECTION_STRING (an account key) to create them"
)

Index = list[tuple[str, str]]


def _check_id(doc_id: str) -> str:
    if not doc_id or _ID_FORBIDDEN.intersection(doc_id):
        raise ValueError(f"invalid document id {doc_id!r}: Cosmos DB ids cannot contain / \\ ? #")
    return doc_id


def _document(item: Mapping[str, Any]) -> Document:
    return Document(item["id"], item["partition"], item["body"], item["_etag"])


def _index_json(index: Index) -> list[dict[str, str]]:
    return [{"path": path, "order": order} for path, order in index]


def _missing_indexes(collection: Collection, properties: Mapping[str, Any]) -> list[Index]:
    """The declared composite indexes the container's stored policy lacks."""
    policy = properties.get("indexingPolicy") or {}
    stored: Iterable[Iterable[Mapping[str, str]]] = policy.get("compositeIndexes") or []
    present = [
        [(part["path"], part.get("order", "ascending")) for part in index] for index in stored
    ]
    return [index for index in collection.composite_indexes() if index not in present]


def _wrong_partition_key(properties: Mapping[str, Any]) -> bool:
    return bool((properties.get("partitionKey") or {}).get("paths") != [PARTITION_KEY_PATH])


def _describe(index: Index) -> str:
    return "(" + ", ".join(f"{path} {order}" for path, order in index) + ")"


class CosmosStorage(Connectable):
    """One database holding the declared `collections`, provisioned through a
    `connection_string` or verified through an `endpoint` and `credential` (by default
    DefaultAzureCredential). Expiring collections get the default TTL `retention`."""

    def __init__(
        self,
        database: str,
        *,
        connection_string: str | None = None,
        endpoint: str | None = None,
        credential: AsyncTokenCredential | None = None,
        collections: Sequence[Collection] = COLLECTIONS,
        retention: timedelta | None = None,
        retry_for: float = 30.0,
        **client_options: Any,
    ) -> None:
        super().__init__()
        if connection_string is not None and endpoint is None and credential is None:
            self._address, self._managed_identity = connection_string, False
        elif endpoint is not None and connection_string is None:
            self._address, self._managed_identity = endpoint, True
        else:
            raise ValueError(
                "CosmosStorage needs exactly one of connection_string or endpoint "
                "(and a credential only with the endpoint)"
            )
        self._database_name = database
        self._declared = {collection.name: collection for collection in collections}
        self._ttl = None if retention is None else round(retention.total_seconds())
        self._client_options = client_options
        self._retry_for = retry_for
        self._given_credential = credential
        self._client: CosmosClient | None = None
        self._credential: AsyncTokenCredential | None = None
        self._database: DatabaseProxy | None = None
        self._containers: dict[str, ContainerProxy] = {}

    @property
    def database(self) -> DatabaseProxy:
        if self._database is None:
            raise RuntimeError("CosmosStorage is not connected: use `async with storage:`")
        return self._database

    async def _connect(self) -> None:
        if not self._managed_identity:
            self._client = CosmosClient.from_connection_string(
                self._address, **self._client_options
            )
        else:
            credential = self._given_credential
            if credential is None:
                credential = self._credential = DefaultAzureCredential()
            self._client = CosmosClient(self._address, credential, **self._client_options)
        database = self._client.get_database_client(self._database_name)
        try:
            if self._managed_identity:
                await self._verify(database)
            else:
                await self._provision(self._client, database)
        except BaseException:
            await self._close()
            raise
        self._database = database
        self._containers = {name: database.get_container_client(name) for name in self._declared}

    async def _close(self) -> None:
        if self._client is not None:
            await self._client.close()
        if self._credential is not None:  # the one made here; a given one is the caller's
            await self._credential.close()
        self._client = self._credential = self._database = None
        self._containers.clear()

    async def ping(self) -> None:
        # No retry: readiness reports the store as it is now.
        await self.database.read()

    async def _retrying(self, operation: Callable[[], Awaitable[T]]) -> T:
        """Run `operation`, retrying on connection loss for up to `retry_for`."""
        return await retry(operation, _CONNECTION_ERRORS, what="Cosmos DB", within=self._retry_for)

    async def _provision(self, client: CosmosClient, database: DatabaseProxy) -> None:
        """Create the database and the declared containers, add missing indexes."""
        try:
            with suppress(CosmosResourceExistsError):  # another process created it first
                await self._retrying(
                    functools.partial(client.create_database_if_not_exists, self._database_name)
                )
            problems: list[str] = []
            for collection in self._declared.values():
                with suppress(CosmosResourceExistsError):
                    await self._retrying(
                        functools.partial(
                            database.create_container_if_not_exists,
                            collection.name,
                            partition_key=PARTITION_KEY,
                            **self._ttl_option(collection),
                            indexing_policy={
                                "compositeIndexes": [
                                    _index_json(index) for index in collection.composite_indexes()
                                ]
                            },
                        )
                    )
                problems += await self._add_missing_indexes(database, collection)
        except CosmosHttpResponseError as error:
            if error.status_code != _FORBIDDEN:
                raise
            raise ConfigError(
                [
                    "the COSMOS_CONNECTION_STRING key may not create the database or its "
                    f"containers ({_first_line(error)}): use the account's read-write key"
                ]
            ) from None
        if problems:
            raise ConfigError(
                [
                    f"Cosmos DB database {self._database_name!r} lacks {'; '.join(problems)}, "
                    "and a container's partition key cannot change: delete the container (its "
                    "documents with it) to have it created again"
                ]
            )

    def _ttl_option(self, collection: Collection) -> dict[str, int]:
        declared = self._declared_ttl(collection)
        return {} if declared is None else {"default_ttl": declared}

    def _declared_ttl(self, collection: Collection) -> int | None:
        return self._ttl if collection.expires else None

    def _wrong_ttl(self, collection: Collection, properties: Mapping[str, Any]) -> bool:
        declared = self._declared_ttl(collection)
        return declared is not None and properties.get("defaultTtl") != declared

    async def _add_missing_indexes(
        self, database: DatabaseProxy, collection: Collection
    ) -> list[str]:
        """Give the container the declared indexes and TTL it lacks (re-reading after each
        replace, which a concurrent one may undo); the problems no replace can fix."""
        container = database.get_container_client(collection.name)
        for _ in range(_INDEX_ATTEMPTS):
            properties = await self._retrying(container.read)
            if _wrong_partition_key(properties):
                return [_partition_problem(collection, properties)]
            missing = _missing_indexes(collection, properties)
            if not missing and not self._wrong_ttl(collection, properties):
                return []
            policy = dict(properties.get("indexingPolicy") or {})
            policy["compositeIndexes"] = [
                *(policy.get("compositeIndexes") or []),
                *(_index_json(index) for index in missing),
            ]
            kept = {
                keyword: properties[name]
                for name, keyword in _KEPT_PROPERTIES.items()
                if properties.get(name) is not None
            }
            kept.update(self._ttl_option(collection))
            log.info(
                "Cosmos DB: giving %r composite indexes %s, default TTL %s",
                collection.name,
                ", ".join(_describe(index) for index in missing) or "(none missing)",
                kept.get("default_ttl"),
            )
            await self._retrying(
                functools.partial(
                    database.replace_container,
                    container,
                    PARTITION_KEY,
                    indexing_policy=policy,
                    **kept,
                )
            )
        raise StorageError(
            f"Cosmos DB container {collection.name!r} kept losing its composite indexes to "
            "concurrent indexing-policy changes: declare them in the infrastructure program"
        )

    async def _verify(self, database: DatabaseProxy) -> None:
        """Check the database and each declared container with metadata reads only."""
        try:
            await self._verify_containers(database)
        except CosmosHttpResponseError as error:
            if error.status_code != _FORBIDDEN:
                raise
            raise ConfigError(
                [
                    f"Cosmos DB refused this identity reading database {self._database_name!r} "
                    f"({_first_line(error)}): give it the {DATA_ROLE} role on the account"
                ]
            ) from None

    async def _verify_containers(self, database: DatabaseProxy) -> None:
        try:
            await self._retrying(database.read)
        except CosmosResourceNotFoundError:
            missing = [f"database {self._database_name!r}"]
            missing += [f"its container {name!r}" for name in self._declared]
            raise _missing_pieces(missing) from None
        problems: list[str] = []
        for collection in self._declared.values():
            container = database.get_container_client(collection.name)
            try:
                properties = await self._retrying(container.read)
            except CosmosResourceNotFoundError:
                problems.append(f"container {collection.name!r}")
                continue
            if _wrong_partition_key(properties):
                problems.append(_partition_problem(collection, properties))
            problems += [
                f"composite index {_describe(index)} on container {collection.name!r}"
                for index in _missing_indexes(collection, properties)
            ]
            if self._wrong_ttl(collection, properties):
                problems.append(
                    f"default TTL {self._declared_ttl(collection)} s on container "
                    f"{collection.name!r} (it has {properties.get('defaultTtl')})"
                )
        if problems:
            raise _missing_pieces(problems)

    def _container(self, collection: str) -> ContainerProxy:
        """The declared collection's container; ValueError for one that is not declared."""
        container = self._containers.get(collection)
        if container is not None:
            return container
        if self._database is None:
            raise RuntimeError("CosmosStorage is not connected: use `async with storage:`")
        raise ValueError(
            f"collection {collection!r} is not declared (declared: "
            f"{', '.join(sorted(self._declared))}): add it to lightning_core.topology.COLLECTIONS"
        )

    def _item(self, partition: str, doc_id: str, body: dict[str, Any]) -> dict[str, Any]:
        check_document(body)
        write = new_token()
        return {"id": _check_id(doc_id), "partition": partition, "body": body, "write": write}

    async def _own_write(
        self, container: ContainerProxy, item: dict[str, Any], refusal: StorageError
    ) -> Document:
        """The stored document if this very write landed before (resent); else raise `refusal`."""
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
        check_keys(partition=partition, id=doc_id)
        item = self._item(partition, doc_id, body)
        container = self._container(collection)
        try:
            return _document(await self._retrying(functools.partial(container.create_item, item)))
        except CosmosResourceExistsError:
            refusal = Conflict(f"{collection}/{doc_id} already exists")
        return await self._own_write(container, item, refusal)

    async def get(self, collection: str, partition: str, doc_id: str) -> Document:
        check_keys(partition=partition, id=doc_id)
        container = self._container(collection)
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
        check_keys(partition=partition, id=doc_id)
        item = self._item(partition, doc_id, body)
        container = self._container(collection)
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
        check_keys(partition=partition, id=doc_id)
        item = self._item(partition, doc_id, body)
        container = self._container(collection)
        return _document(await self._retrying(functools.partial(container.upsert_item, item)))

    async def delete(
        self, collection: str, partition: str, doc_id: str, *, if_match: str | None = None
    ) -> None:
        check_keys(partition=partition, id=doc_id)
        container = self._container(collection)
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
        container = self._container(collection)
        sql, parameters = self._query_text(collection, partition, where, order_by, descending)
        fingerprint = hashlib.sha256(
            json.dumps([collection, partition, sql, parameters], sort_keys=True).encode()
        ).hexdigest()[:16]
        token = given = _decode_token(continuation, fingerprint) if continuation else None
        items: list[Document] = []
        # Cosmos DB may end a page early (a time or size budget).
        while True:
            want = limit - len(items)
            try:
                page, next_token = await self._retrying(
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
            except CosmosHttpResponseError as error:
                # A well-formed token of ours whose inner token the service refuses: forged.
                if given is None or token != given or error.status_code != _BAD_REQUEST:
                    raise
                raise ValueError("invalid continuation token") from None
            token = next_token
            items.extend(_document(item) for item in page)
            if token is None or len(items) >= limit:
                break
        return Page(items, _encode_token(token, fingerprint) if token else None)

    async def query_all(
        self,
        collection: str,
        *,
        where: Mapping[str, JsonScalar] | None = None,
        order_by: str | None = None,
        descending: bool = False,
        limit: int = 100,
    ) -> list[Document]:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        container = self._container(collection)
        sql, parameters = self._query_text(collection, None, where, order_by, descending)

        async def read() -> list[Document]:
            found: list[Document] = []
            async for item in container.query_items(
                sql, parameters=parameters, max_item_count=limit
            ):
                found.append(_document(item))
                if len(found) == limit:
                    break
            return found

        return await self._retrying(read)

    async def purge(self, collection: str, *, before: datetime, limit: int = 1000) -> int:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        container = self._container(collection)
        # `_ts` counts whole seconds: a document is expired once its second ended before.
        query = "SELECT c.id, c.partition FROM c WHERE c._ts < @before"
        parameters: list[dict[str, Any]] = [{"name": "@before", "value": int(before.timestamp())}]

        async def expired() -> list[dict[str, Any]]:
            found: list[dict[str, Any]] = []
            async for item in container.query_items(
                query, parameters=parameters, max_item_count=limit
            ):
                found.append(item)
                if len(found) == limit:
                    break
            return found

        purged = 0
        for item in await self._retrying(expired):
            with suppress(CosmosResourceNotFoundError):  # another sweep deleted it first
                await self._retrying(
                    functools.partial(
                        container.delete_item, item["id"], partition_key=item["partition"]
                    )
                )
                purged += 1
        return purged

    def _query_text(
        self,
        collection: str,
        partition: str | None,
        where: Mapping[str, JsonScalar] | None,
        order_by: str | None,
        descending: bool,
    ) -> tuple[str, list[dict[str, Any]]]:
        """The query text and its parameters, for one partition or (None) all."""
        check_filter_values(where)
        clauses: list[str] = []
        parameters: list[dict[str, Any]] = []
        if partition is not None:
            check_keys(partition=partition)
            clauses.append("c.partition = @partition")
            parameters.append({"name": "@partition", "value": partition})
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
            declared = self._declared[collection]
            if check_field_name(order_by) not in declared.orderings:
                raise ValueError(
                    f"collection {collection!r} declares no ordering by {order_by!r} (it "
                    f"declares {', '.join(declared.orderings) or 'none'}): add it to the "
                    "collection's orderings in lightning_core.topology.COLLECTIONS"
                )
            order = f'c.body["{order_by}"] {direction}, {order}'
        condition = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        # Built from fixed fragments and checked field names; every value is a parameter.
        return f"SELECT * FROM c{condition} ORDER BY {order}", parameters  # noqa: S608


def _partition_problem(collection: Collection, properties: Mapping[str, Any]) -> str:
    paths = (properties.get("partitionKey") or {}).get("paths")
    return f"partition key {PARTITION_KEY_PATH!r} on container {collection.name!r} (it has {paths})"


def _missing_pieces(problems: Sequence[str]) -> ConfigError:
    return ConfigError(
        [
            f"the Cosmos DB account lacks {'; '.join(problems)} (this identity has data-plane "
            f"rights only, so it may not create them): {DEPLOY_FIX}"
        ]
    )


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


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
    except (ValueError, RecursionError):  # binascii and Unicode errors are ValueErrors
        raise ValueError("invalid continuation token") from None
    if not isinstance(decoded, dict) or decoded.get("q") != fingerprint:
        raise ValueError("invalid continuation token: it belongs to another query")
    sdk_token = decoded.get("c")
    # It travels in a request header: printable ASCII only.
    if not isinstance(sdk_token, str) or not (sdk_token.isascii() and sdk_token.isprintable()):
        raise ValueError("invalid continuation token")
    return sdk_token
