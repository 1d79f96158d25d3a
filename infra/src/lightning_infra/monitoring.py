"""Log Analytics and a workspace-based Application Insights for every app's telemetry."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_azure_native import applicationinsights, operationalinsights


@dataclass(frozen=True)
class MonitoringArgs:
    resource_group_name: pulumi.Input[str]
    location: pulumi.Input[str]
    retention_days: int = 30


class Monitoring(pulumi.ComponentResource):
    """`workspace_customer_id` and secret `workspace_shared_key` (for the Container Apps
    environment's logs) and secret `connection_string` (Application Insights)."""

    def __init__(
        self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("lightning:infra:Monitoring", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        workspace = operationalinsights.Workspace(
            f"{name}-logs",
            resource_group_name=args.resource_group_name,
            location=args.location,
            sku=operationalinsights.WorkspaceSkuArgs(name="PerGB2018"),
            retention_in_days=args.retention_days,
            opts=child,
        )
        insights = applicationinsights.Component(
            f"{name}-insights",
            resource_group_name=args.resource_group_name,
            location=args.location,
            kind="web",
            application_type="web",
            ingestion_mode="LogAnalytics",
            workspace_resource_id=workspace.id,
            opts=child,
        )
        keys = operationalinsights.get_shared_keys_output(
            resource_group_name=args.resource_group_name,
            workspace_name=workspace.name,
            opts=pulumi.InvokeOutputOptions(parent=self),
        )
        self.workspace_customer_id: pulumi.Output[str] = workspace.customer_id
        self.workspace_shared_key: pulumi.Output[str] = pulumi.Output.secret(
            keys.primary_shared_key
        )
        self.connection_string: pulumi.Output[str] = pulumi.Output.secret(
            insights.connection_string
        )
        self.register_outputs({})
