"""Service Bus: the namespace, and the topic, subscriptions and rules lightning_core.topology
declares for the stack's bus namespace and retry policy."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pulumi
from pulumi_azure_native import servicebus

from lightning_core.topology import BusTopology


@dataclass(frozen=True)
class BusArgs:
    resource_group_name: pulumi.Input[str]
    location: pulumi.Input[str]
    topology: BusTopology


def iso_duration(duration: timedelta) -> str:
    """An ISO 8601 duration (`PT5M`) as ARM takes it, to the second."""
    minutes, seconds = divmod(int(duration.total_seconds()), 60)
    hours, minutes = divmod(minutes, 60)
    parts = [f"{value}{unit}" for value, unit in ((hours, "H"), (minutes, "M"), (seconds, "S"))]
    return "PT" + ("".join(part for part in parts if not part.startswith("0")) or "0S")


class Bus(pulumi.ComponentResource):
    """A Standard namespace without SAS keys (`namespace_id`, `namespace_name`, `host`).

    Azure gives every subscription a catch-all `$Default` rule, also when ARM creates it,
    and keeps it beside declared rules. Each subscription's `$Default` is therefore adopted
    (servicebus.DefaultRule) and narrowed to the declared replay filter, so no rule lets a
    replay reach another group; a message matching both rules is delivered once.
    """

    def __init__(
        self, name: str, args: BusArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("lightning:infra:Bus", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        namespace = servicebus.Namespace(
            name,
            resource_group_name=args.resource_group_name,
            location=args.location,
            sku=servicebus.SBSkuArgs(name=servicebus.SkuName.STANDARD),
            disable_local_auth=True,
            minimum_tls_version=servicebus.TlsVersion.TLS_VERSION_1_2,
            opts=child,
        )
        topic = servicebus.Topic(
            f"{name}-{args.topology.topic}",
            resource_group_name=args.resource_group_name,
            namespace_name=namespace.name,
            topic_name=args.topology.topic,
            opts=child,
        )
        for declared in args.topology.subscriptions:
            subscription = servicebus.Subscription(
                f"{name}-{declared.name}",
                resource_group_name=args.resource_group_name,
                namespace_name=namespace.name,
                topic_name=topic.name,
                subscription_name=declared.name,
                lock_duration=iso_duration(declared.lock_duration),
                max_delivery_count=declared.max_delivery_count,
                dead_lettering_on_message_expiration=True,
                opts=child,
            )
            replay_filter = servicebus.SqlFilterArgs(sql_expression=declared.rule_filter)
            rule_parent = pulumi.ResourceOptions(parent=self, depends_on=[subscription])
            servicebus.Rule(
                f"{name}-{declared.name}-{declared.rule_name}",
                resource_group_name=args.resource_group_name,
                namespace_name=namespace.name,
                topic_name=topic.name,
                subscription_name=subscription.name,
                rule_name=declared.rule_name,
                filter_type=servicebus.FilterType.SQL_FILTER,
                sql_filter=replay_filter,
                opts=rule_parent,
            )
            servicebus.DefaultRule(
                f"{name}-{declared.name}-default-rule",
                resource_group_name=args.resource_group_name,
                namespace_name=namespace.name,
                topic_name=topic.name,
                subscription_name=subscription.name,
                filter_type=servicebus.FilterType.SQL_FILTER,
                sql_filter=replay_filter,
                opts=rule_parent,
            )
        self.namespace_id: pulumi.Output[str] = namespace.id
        self.namespace_name: pulumi.Output[str] = namespace.name
        self.host: pulumi.Output[str] = namespace.name.apply(
            lambda namespace_name: f"{namespace_name}.servicebus.windows.net"
        )
        self.register_outputs({})
