"""The Service Bus emulator's Config.json, made from lightning_core.topology's declaration.

The emulator cannot create entities over AMQP and the bus only verifies them there, so the
topic, subscriptions and rules the bus expects are written here, from the same
`bus_topology` call the bus makes with the services' settings: never typed a second time.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from lightning_core.config import Settings
from lightning_core.topology import BusTopology, Subscription, bus_topology
from lightning_devtools.errors import ToolError

#: The one namespace name the emulator accepts.
NAMESPACE = "sbemulatorns"
#: The emulator's limits (its Config-schema.json): the service's own are wider.
MAX_DELIVERY_COUNT = 10
LOCK_DURATION = (timedelta(minutes=1), timedelta(minutes=5))
#: Its longest message time-to-live (1 hour; the service's is unlimited): an event left
#: unread that long expires, and the orphan sweep publishes it again while it is `received`.
MESSAGE_TTL = "PT1H"


def iso_duration(duration: timedelta) -> str:
    """`PT5M`-style ISO 8601 duration of whole seconds, as the emulator's schema wants."""
    seconds = int(duration.total_seconds())
    if seconds != duration.total_seconds() or seconds <= 0:
        raise ValueError(f"{duration} is not a positive whole number of seconds")
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{value}{unit}" for value, unit in ((hours, "H"), (minutes, "M"), (seconds, "S"))]
    return "PT" + "".join(part for part in parts if not part.startswith("0"))


def _subscription(subscription: Subscription) -> dict[str, Any]:
    if subscription.max_delivery_count > MAX_DELIVERY_COUNT:
        raise ToolError(
            f"subscription {subscription.name!r} needs max delivery count "
            f"{subscription.max_delivery_count}, above the Service Bus emulator's "
            f"{MAX_DELIVERY_COUNT}",
            f"set LIGHTNING_BUS_MAX_ATTEMPTS to {MAX_DELIVERY_COUNT} or less for the azure stack",
        )
    shortest, longest = LOCK_DURATION
    if not shortest <= subscription.lock_duration <= longest:
        raise ToolError(
            f"subscription {subscription.name!r} locks for {subscription.lock_duration}, "
            "outside the Service Bus emulator's 1-5 minutes",
            "change LOCK_DURATION in lightning_core.topology",
        )
    return {
        "Name": subscription.name,
        "Properties": {
            "DeadLetteringOnMessageExpiration": False,
            "DefaultMessageTimeToLive": MESSAGE_TTL,
            "LockDuration": iso_duration(subscription.lock_duration),
            "MaxDeliveryCount": subscription.max_delivery_count,
            "ForwardDeadLetteredMessagesTo": "",
            "ForwardTo": "",
            "RequiresSession": False,
        },
        "Rules": [
            {
                "Name": subscription.rule_name,
                "Properties": {
                    "FilterType": "Sql",
                    "SqlFilter": {"SqlExpression": subscription.rule_filter},
                },
            }
        ],
    }


def emulator_config(topology: BusTopology) -> dict[str, Any]:
    """The emulator's Config.json (as data) declaring `topology`; ToolError past its limits."""
    topic = {
        "Name": topology.topic,
        "Properties": {
            "DefaultMessageTimeToLive": MESSAGE_TTL,
            "DuplicateDetectionHistoryTimeWindow": "PT20S",
            "RequiresDuplicateDetection": False,
        },
        "Subscriptions": [_subscription(s) for s in topology.subscriptions],
    }
    return {
        "UserConfig": {
            "Namespaces": [{"Name": NAMESPACE, "Queues": [], "Topics": [topic]}],
            "Logging": {"Type": "File"},
        }
    }


def service_topology(environment: Mapping[str, str | None]) -> BusTopology:
    """The topology a service with this environment (compose's, resolved) connects to; the
    environment's settings win over this process's, and no .env file is read."""
    try:
        given: dict[str, Any] = {k: v for k, v in environment.items() if v is not None}
        settings = Settings(_env_file=None, **given)
    except ValidationError as error:
        problem = error.errors()[0]
        setting = ".".join(str(part) for part in problem["loc"])
        raise ToolError(
            f"the azure stack's {setting} is invalid ({problem['msg']})",
            "fix it in the environment or docker/compose.azure.yaml",
        ) from None
    return bus_topology(settings.bus_namespace, settings.bus_max_attempts)


def write_config(environment: Mapping[str, str | None], path: Path) -> BusTopology:
    """Write the emulator's Config.json for a service's environment to `path`."""
    topology = service_topology(environment)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(emulator_config(topology), indent=2) + "\n", encoding="utf-8")
    return topology
