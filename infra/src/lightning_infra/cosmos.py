"""Cosmos DB: the account, the database and every collection lightning_core.topology declares."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_azure_native import cosmosdb

from lightning_core.topology import COLLECTIONS, PARTITION_KEY_PATH, Collection


@dataclass(frozen=True)
class CosmosStoreArgs:
    resource_group_name: pulumi.Input[str]
    location: pulumi.Input[str]
    database_name: str
    serverless: bool
    #: The expiring collections' default TTL (the services' LIGHTNING_RETENTION_DAYS).
    retention_days: int


def default_ttl(collection: Collection, retention_days: int) -> int | None:
    """Seconds an expiring collection keeps a document after its last write; None: forever."""
    return retention_days * 86_400 if collection.expires else None


def indexing_policy(collection: Collection) -> cosmosdb.IndexingPolicyArgs:
    """Consistent indexing of every path plus the composite indexes its orderings need."""
    return cosmosdb.IndexingPolicyArgs(
        automatic=True,
        indexing_mode=cosmosdb.IndexingMode.CONSISTENT,
        included_paths=[cosmosdb.IncludedPathArgs(path="/*")],
        composite_indexes=[
            [cosmosdb.CompositePathArgs(path=path, order=order) for path, order in index]
            for index in collection.composite_indexes()
        ],
    )


class CosmosStore(pulumi.ComponentResource):
    """`account_id`, `account_name`, `endpoint`; local (key) auth is off: apps use identities."""

    def __init__(
        self, name: str, args: CosmosStoreArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("lightning:infra:CosmosStore", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        account = cosmosdb.DatabaseAccount(
            name,
            resource_group_name=args.resource_group_name,
            location=args.location,
            database_account_offer_type=cosmosdb.DatabaseAccountOfferType.STANDARD,
            kind=cosmosdb.DatabaseAccountKind.GLOBAL_DOCUMENT_DB,
            locations=[cosmosdb.LocationArgs(location_name=args.location, failover_priority=0)],
            consistency_policy=cosmosdb.ConsistencyPolicyArgs(
                default_consistency_level=cosmosdb.DefaultConsistencyLevel.SESSION
            ),
            capabilities=[cosmosdb.CapabilityArgs(name="EnableServerless")]
            if args.serverless
            else [],
            disable_local_auth=True,
            opts=child,
        )
        database = cosmosdb.SqlResourceSqlDatabase(
            f"{name}-{args.database_name}",
            resource_group_name=args.resource_group_name,
            account_name=account.name,
            database_name=args.database_name,
            resource=cosmosdb.SqlDatabaseResourceArgs(id=args.database_name),
            opts=child,
        )
        for collection in COLLECTIONS:
            cosmosdb.SqlResourceSqlContainer(
                f"{name}-{collection.name}",
                resource_group_name=args.resource_group_name,
                account_name=account.name,
                database_name=database.name,
                container_name=collection.name,
                resource=cosmosdb.SqlContainerResourceArgs(
                    id=collection.name,
                    partition_key=cosmosdb.ContainerPartitionKeyArgs(
                        paths=[PARTITION_KEY_PATH], kind=cosmosdb.PartitionKind.HASH
                    ),
                    indexing_policy=indexing_policy(collection),
                    default_ttl=default_ttl(collection, args.retention_days),
                ),
                opts=child,
            )
        self.account_id: pulumi.Output[str] = account.id
        self.account_name: pulumi.Output[str] = account.name
        self.endpoint: pulumi.Output[str] = account.document_endpoint
        self.register_outputs({})
