"""The Container Apps environment the services run in, logging to Log Analytics."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_azure_native import app


@dataclass(frozen=True)
class AppEnvironmentArgs:
    resource_group_name: pulumi.Input[str]
    location: pulumi.Input[str]
    workspace_customer_id: pulumi.Input[str]
    workspace_shared_key: pulumi.Input[str]


class AppEnvironment(pulumi.ComponentResource):
    """`id` of a consumption-plan managed environment."""

    def __init__(
        self, name: str, args: AppEnvironmentArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("lightning:infra:AppEnvironment", name, None, opts)
        environment = app.ManagedEnvironment(
            name,
            resource_group_name=args.resource_group_name,
            location=args.location,
            app_logs_configuration=app.AppLogsConfigurationArgs(
                destination="log-analytics",
                log_analytics_configuration=app.LogAnalyticsConfigurationArgs(
                    customer_id=args.workspace_customer_id,
                    shared_key=args.workspace_shared_key,
                ),
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.id: pulumi.Output[str] = environment.id
        self.register_outputs({})
