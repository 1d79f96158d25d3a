"""The Azure Function, called the way the Functions host calls it, on embedded SQLite storage.

No Functions host runs here: each test imports `function_app` afresh under its own
environment (as the host's worker process does), takes the decorated function from the app's
index, and passes it the `ServiceBusMessage` type the Python worker decodes triggers into.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import sys
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from azure.functions import FunctionApp
from azure.functions.decorators.core import Trigger
from azure.functions.servicebus import ServiceBusMessage

from lightning_core.bus.servicebus import CONTENT_TYPE, GROUP_NAME, Clients, ServiceBusBus
from lightning_core.config import ConfigError
from lightning_core.domain import (
    INSTRUCTIONS,
    TASK_REQUESTED,
    TASKS,
    Instruction,
    RequestTask,
    TaskKind,
)
from lightning_core.events import CloudEvent
from lightning_core.heartbeats import recent
from lightning_core.records import EVENTS, EventRecord, EventStatus, record_received
from lightning_core.storage.base import Document
from lightning_processor.functions import NotACloudEvent
from lightning_processor.handler import CONSUMER_GROUP

MODULE = "lightning_processor.function_app"
BUS_NAMESPACE = "fn-test"


def import_function_app() -> ModuleType:
    """A fresh import, as in a new worker process: settings and storage are read again."""
    sys.modules.pop(MODULE, None)
    return importlib.import_module(MODULE)


@pytest.fixture
def sqlite_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Embedded settings in the environment, isolated from the developer's .env file."""
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "data" / "lightning.db"
    for name, value in {
        "LIGHTNING_MODE": "embedded",
        "LIGHTNING_STORAGE_PROVIDER": "sqlite",
        "LIGHTNING_EVENT_BUS_PROVIDER": "memory",
        "LIGHTNING_SQLITE_PATH": str(path),
        "LIGHTNING_BUS_NAMESPACE": BUS_NAMESPACE,
    }.items():
        monkeypatch.setenv(name, value)
    return path


@pytest.fixture
async def function_app(sqlite_path: Path) -> AsyncIterator[ModuleType]:
    module = import_function_app()
    assert module.process.settings.sqlite_path == sqlite_path  # read from the environment
    yield module
    await module.process.processor.context.storage.close()
    await module.process.processor.context.bus.close()
    sys.modules.pop(MODULE, None)


def the_functions(module: ModuleType) -> dict[str, tuple[Any, Trigger]]:
    """Each function by name, with its trigger (the app indexes only once per import)."""
    app: FunctionApp = module.app
    indexed: dict[str, tuple[Any, Trigger]] = {}
    for function in app.get_functions():
        trigger = function.get_trigger()
        assert trigger is not None
        indexed[str(function.get_function_name())] = (function.get_user_function(), trigger)
    return indexed


def the_function(module: ModuleType) -> tuple[Any, Trigger]:
    return the_functions(module)["process_event"]


def message(body: bytes, message_id: str, delivery_count: int = 0) -> ServiceBusMessage:
    return ServiceBusMessage(
        body=body,
        message_id=message_id,
        content_type=CONTENT_TYPE,
        delivery_count=delivery_count,
        application_properties={},
        user_properties={},
    )


def event_message(event: CloudEvent, delivery_count: int = 0) -> ServiceBusMessage:
    """Encoded as the Service Bus provider sends it: CloudEvent JSON, message id = event id."""
    return message(event.to_json(), event.id, delivery_count)


async def stored(module: ModuleType, event: CloudEvent) -> Document:
    document: Document = await module.process.processor.context.storage.get(
        EVENTS, event.user, event.id
    )
    return document


def make_event() -> CloudEvent:
    return CloudEvent(source="test", type="order.created", user="alice", data={"n": 1})


async def test_a_message_marks_its_event_processed(function_app: ModuleType) -> None:
    function, _trigger = the_function(function_app)
    event = make_event()
    await function(event_message(event))
    record = EventRecord.from_document(await stored(function_app, event))
    assert record.status is EventStatus.PROCESSED
    assert record.event == event


async def test_an_event_the_api_recorded_becomes_processed(function_app: ModuleType) -> None:
    function, _trigger = the_function(function_app)
    event = make_event()
    storage = function_app.process.processor.context.storage
    await storage.connect()
    await record_received(storage, event)
    await function(event_message(event))
    assert EventRecord.from_document(await stored(function_app, event)).status is (
        EventStatus.PROCESSED
    )


async def test_a_redelivered_message_changes_nothing(function_app: ModuleType) -> None:
    function, _trigger = the_function(function_app)
    event = make_event()
    await function(event_message(event))
    first = await stored(function_app, event)
    await function(event_message(event, delivery_count=1))
    assert await stored(function_app, event) == first  # same body, same etag: not rewritten


async def test_follow_ups_are_published_to_the_bus_built_from_the_settings(
    function_app: ModuleType,
) -> None:
    """The drivers run behind the Function too: a matching instruction requests a task."""
    function, _trigger = the_function(function_app)
    storage, bus = (
        function_app.process.processor.context.storage,
        function_app.process.processor.context.bus,
    )
    await storage.connect()
    instruction = Instruction(
        user="alice", name="rule", event_type="order.*", action=RequestTask(task=TaskKind.WAIT)
    )
    await storage.create(INSTRUCTIONS, "alice", instruction.id, instruction.model_dump(mode="json"))
    await bus.open_group("probe")
    event = make_event()
    await function(event_message(event))
    published: list[CloudEvent] = []
    stop = asyncio.Event()

    async def take(follow_up: CloudEvent) -> None:
        published.append(follow_up)
        stop.set()

    await asyncio.wait_for(bus.consume("probe", take, stop=stop), 5)
    [requested] = published
    assert (requested.type, requested.correlationid, requested.hops) == (
        TASK_REQUESTED,
        event.id,
        1,
    )
    task = await storage.get(TASKS, "alice", requested.data["task_id"])
    assert task.body["status"] == "pending"


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"not json", "body: Invalid JSON"),
        (b'{"source": "test", "type": "x"}', "user: Field required"),
        (b"\xff\xfe", "body: Invalid JSON"),
    ],
)
async def test_a_body_that_is_not_a_cloud_event_fails_before_storage_is_touched(
    function_app: ModuleType,
    sqlite_path: Path,
    caplog: pytest.LogCaptureFixture,
    body: bytes,
    problem: str,
) -> None:
    """The invocation fails, so the host abandons the message until Service Bus
    dead-letters it; each delivery logs one line naming the message and the problem."""
    function, _trigger = the_function(function_app)
    with caplog.at_level(logging.ERROR), pytest.raises(NotACloudEvent) as failure:
        await function(message(body, "poison-1"))
    assert "message poison-1 is not a CloudEvent" in str(failure.value)
    assert problem in str(failure.value)
    [line] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert str(failure.value) in line.getMessage()
    assert "\n" not in line.getMessage()
    assert not await asyncio.to_thread(sqlite_path.exists)  # storage was never connected


async def test_storage_is_built_once_and_reused_across_invocations(
    function_app: ModuleType,
) -> None:
    function, _trigger = the_function(function_app)
    storage = function_app.process.processor.context.storage
    events = [make_event() for _ in range(3)]
    for event in events:
        await function(event_message(event))
    assert function_app.process.processor.context.storage is storage
    for event in events:
        assert EventRecord.from_document(await stored(function_app, event)).status is (
            EventStatus.PROCESSED
        )


def test_the_trigger_names_the_topic_and_subscription_of_the_service_bus_provider(
    function_app: ModuleType,
) -> None:
    """The binding must name what the provider publishes to and what the worker consumes."""
    _function, trigger = the_function(function_app)
    binding = trigger.get_dict_repr()

    def no_clients() -> AbstractAsyncContextManager[Clients]:
        raise AssertionError("building the bus must not connect")

    provider = ServiceBusBus(no_clients, BUS_NAMESPACE)
    assert binding["type"] == "serviceBusTrigger"
    assert binding["topicName"] == provider.topic
    assert binding["subscriptionName"] == CONSUMER_GROUP
    assert GROUP_NAME.match(binding["subscriptionName"])
    assert binding["connection"] == "SERVICE_BUS"


@pytest.mark.usefixtures("sqlite_path")
def test_bad_settings_fail_the_import_with_one_logged_line(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The host then indexes no function, so no message is received and burnt."""
    monkeypatch.setenv("LIGHTNING_MODE", "azure")
    monkeypatch.delenv("LIGHTNING_STORAGE_PROVIDER")
    monkeypatch.delenv("LIGHTNING_EVENT_BUS_PROVIDER")
    for name in ("COSMOS_CONNECTION_STRING", "COSMOS_ENDPOINT", "ENTRA_TENANT_ID"):
        monkeypatch.delenv(name, raising=False)
    with caplog.at_level(logging.ERROR), pytest.raises(ConfigError) as failure:
        import_function_app()
    [line] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert line.getMessage() == str(failure.value)
    assert "COSMOS_CONNECTION_STRING" in line.getMessage()
    assert "\n" not in line.getMessage()
    assert MODULE not in sys.modules


async def test_invocations_beat_at_most_once_per_interval(function_app: ModuleType) -> None:
    function, _trigger = the_function(function_app)
    storage = function_app.process.processor.context.storage
    await function(event_message(make_event()))
    [first] = await recent(storage)
    assert first.service == CONSUMER_GROUP
    await function(event_message(make_event()))  # within the interval: no second write
    assert await recent(storage) == [first]


async def test_the_timer_publishes_again_what_the_api_stored_but_never_published(
    function_app: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An API that died between storing and publishing left the record `received`."""
    functions = the_functions(function_app)
    assert functions.keys() == {"process_event", "republish_stale"}
    sweep, trigger = functions["republish_stale"]
    binding = trigger.get_dict_repr()
    assert (binding["type"], binding["schedule"]) == ("timerTrigger", "0 * * * * *")
    settings = function_app.process.settings.model_copy(update={"republish_after_seconds": 0.05})
    monkeypatch.setattr(function_app.process, "settings", settings)
    storage = function_app.process.processor.context.storage
    bus = function_app.process.processor.context.bus
    await storage.connect()
    await bus.open_group("probe")
    orphan, fresh = make_event(), make_event()
    await record_received(storage, orphan)
    await asyncio.sleep(0.1)
    await record_received(storage, fresh)  # younger than the bound: left alone
    await sweep(None)
    published: list[CloudEvent] = []
    stop = asyncio.Event()

    async def take(event: CloudEvent) -> None:
        published.append(event)
        stop.set()

    await asyncio.wait_for(bus.consume("probe", take, stop=stop), 5)
    assert published == [orphan]
    function, _trigger = functions["process_event"]
    await function(event_message(published[0]))  # what the Service Bus trigger then does
    assert EventRecord.from_document(await stored(function_app, orphan)).status is (
        EventStatus.PROCESSED
    )
