"""Each page and form endpoint of the UI over the real API app (httpx, no browser)."""

import asyncio
import json
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from lightning_api.app import create_app as create_api
from lightning_core.bus.base import RetryPolicy
from lightning_core.bus.memory import MemoryBus
from lightning_core.domain import NOTIFICATIONS, PROCESSOR_GROUP, Notification
from lightning_core.events import CloudEvent
from lightning_core.heartbeats import Heart
from lightning_core.records import mark_failed, record_received
from lightning_core.service import ServiceContext
from lightning_ui.api_client import ApiClient
from lightning_ui.app import create_app as create_ui
from lightning_ui.forms import field_errors, format_mapping, parse_mapping

UiClient = Callable[[ApiClient], httpx.AsyncClient]  # the `ui_client` fixture


@pytest.fixture
async def bus(fast_retry: RetryPolicy) -> AsyncIterator[MemoryBus]:
    async with MemoryBus(fast_retry) as connected:
        yield connected


@pytest.fixture
def api_app(context: ServiceContext) -> httpx.ASGITransport:
    return httpx.ASGITransport(app=create_api(context))


@pytest.fixture
async def api(api_app: httpx.ASGITransport) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=api_app, base_url="http://api") as client:
        yield client


@pytest.fixture
async def ui(api_app: httpx.ASGITransport, ui_client: UiClient) -> AsyncIterator[httpx.AsyncClient]:
    client = ApiClient("http://api", transport=api_app)
    async with ui_client(client) as http:
        yield http
    await client.aclose()


NOTIFY_TASK = {
    "name": "Door alert",
    "event_type": "door.opened",
    "data_filter": "floor=1\nroom=lobby",
    "action_kind": "request_task",
    "task_kind": "notify",
    "task_params": "title=Door opened\nbody=Someone is in",
}


async def test_every_page_has_the_navigation(ui: httpx.AsyncClient) -> None:
    for path in ("/", "/instructions", "/tasks", "/notifications", "/dead-letters"):
        page = await ui.get(path)
        assert page.status_code == 200, path
        assert f'<a href="{path}" aria-current="page">' in page.text
        for other in ("/instructions", "/tasks", "/notifications", "/dead-letters"):
            assert f'<a href="{other}"' in page.text


async def test_dashboard_shows_health_counts_and_the_event_feed(
    ui: httpx.AsyncClient, api: httpx.AsyncClient
) -> None:
    await api.post("/api/events", json={"type": "door.opened"})
    await api.post("/api/tasks", json={"kind": "wait", "params": {"seconds": 0}})
    page = await ui.get("/")
    assert page.status_code == 200
    assert 'data-check="storage"' in page.text
    assert 'data-check="bus"' in page.text
    assert '<p class="big" data-count="events">1</p>' in page.text
    assert '<dd data-count="tasks-pending">1</dd>' in page.text
    assert '<dd data-count="tasks-succeeded">0</dd>' in page.text
    assert 'data-count="unread">0<' in page.text
    assert 'data-count="dead-letters">0<' in page.text
    assert 'data-stream="/stream"' in page.text  # the live feed stays
    assert "door.opened" in page.text
    partial = await ui.get("/partials/dashboard")
    assert 'data-count="events">1<' in partial.text
    assert "<html" not in partial.text


async def test_an_event_the_bus_did_not_take_shows_failed_with_its_reason(
    ui: httpx.AsyncClient, context: ServiceContext
) -> None:
    event = CloudEvent(type="door.opened", source="/tests", user="dev-user")
    await record_received(context.storage, event)
    assert await mark_failed(context.storage, event, "the bus did not answer <in time>")
    events = await ui.get("/partials/events")
    assert events.status_code == 200
    assert (
        '<td class="status status-failed">failed'
        '<small class="reason">the bus did not answer &lt;in time&gt;</small></td>'
    ) in events.text


async def test_a_record_this_ui_cannot_read_is_said_not_a_server_error(ui_client: UiClient) -> None:
    def newer_api(_request: httpx.Request) -> httpx.Response:
        record = {"event": {}, "status": "archived", "received_at": "2026-01-01T00:00:00Z"}
        return httpx.Response(200, json={"items": [record], "continuation": None})

    client = ApiClient("http://api", transport=httpx.MockTransport(newer_api))
    async with ui_client(client) as ui:
        events = await ui.get("/partials/events")
    await client.aclose()
    assert events.status_code == 503
    assert "API at http://api answered a EventRecord this UI cannot read: event." in events.text


async def test_create_instruction_forwards_to_the_api(
    ui: httpx.AsyncClient, api: httpx.AsyncClient
) -> None:
    created = await ui.post("/instructions", json=NOTIFY_TASK)
    assert created.status_code == 201
    [stored] = (await api.get("/api/instructions")).json()["items"]
    assert stored["id"] == created.json()["id"]
    assert stored["data_filter"] == {"floor": 1, "room": "lobby"}
    assert stored["action"] == {
        "kind": "request_task",
        "task": "notify",
        "params": {"title": "Door opened", "body": "Someone is in"},
    }
    page = await ui.get("/instructions")
    assert f'data-instruction-id="{stored["id"]}"' in page.text
    assert 'data-error-for="event_type"' in page.text
    partial = await ui.get("/partials/instructions")
    assert "Door alert" in partial.text


async def test_notify_and_emit_actions(ui: httpx.AsyncClient, api: httpx.AsyncClient) -> None:
    notify = {"name": "n", "event_type": "a.*", "action_kind": "notify", "notify_title": "Hi"}
    emit = {
        "name": "e",
        "event_type": "a.b",
        "action_kind": "emit",
        "emit_type": "c.d",
        "emit_data": '{"x": [1]}',
    }
    assert (await ui.post("/instructions", json=notify)).status_code == 201
    assert (await ui.post("/instructions", json=emit)).status_code == 201
    actions = [item["action"] for item in (await api.get("/api/instructions")).json()["items"]]
    assert {"kind": "notify", "title": "Hi", "body": ""} in actions
    assert {"kind": "emit", "type": "c.d", "data": {"x": [1]}} in actions


async def test_api_validation_errors_come_back_per_field(
    ui: httpx.AsyncClient, api: httpx.AsyncClient
) -> None:
    bad = {**NOTIFY_TASK, "name": "", "event_type": "door opened!", "task_kind": "dance"}
    answer = await ui.post("/instructions", json=bad)
    assert answer.status_code == 422
    errors = answer.json()["errors"]
    assert set(errors) == {"name", "event_type", "task_kind"}
    assert errors["event_type"].startswith("use letters, digits and . _ : / -")
    missing_title = {**NOTIFY_TASK, "action_kind": "notify", "notify_title": ""}
    answer = await ui.post("/instructions", json=missing_title)
    assert set(answer.json()["errors"]) == {"notify_title"}
    untitled_task = {**NOTIFY_TASK, "task_params": "body=no title"}
    answer = await ui.post("/instructions", json=untitled_task)
    assert answer.json()["errors"] == {"task_params": "title: Field required"}
    assert (await api.get("/api/instructions")).json()["items"] == []  # nothing written


async def test_unreadable_form_fields_are_refused_before_the_api(ui: httpx.AsyncClient) -> None:
    answer = await ui.post("/instructions", json={**NOTIFY_TASK, "data_filter": "{nope"})
    assert answer.status_code == 422
    assert answer.json()["errors"] == {
        "data_filter": "not valid JSON: Expecting property name enclosed in double quotes (line 1)"
    }
    answer = await ui.post("/instructions", json={**NOTIFY_TASK, "task_params": "no equals"})
    assert answer.json()["errors"] == {"task_params": "line 1: expected key=value"}
    answer = await ui.post("/instructions", json={**NOTIFY_TASK, "action_kind": "dance"})
    assert answer.json()["errors"] == {"action_kind": "choose an action"}
    assert (await ui.post("/instructions", json=[1])).status_code == 422
    as_json = {"content-type": "application/json"}
    assert (await ui.post("/instructions", content=b"{", headers=as_json)).status_code == 400
    # A cross-site HTML form can only send text/plain (or form encodings): refused.
    plain = await ui.post(
        "/instructions", content=json.dumps(NOTIFY_TASK), headers={"content-type": "text/plain"}
    )
    assert plain.status_code == 422
    assert plain.json()["errors"] == {"form": "expected a application/json body"}


async def test_changes_from_another_sites_page_are_refused(ui: httpx.AsyncClient) -> None:
    forged = await ui.post(
        "/instructions", json=NOTIFY_TASK, headers={"origin": "https://evil.example"}
    )
    assert forged.status_code == 403
    button = await ui.post("/tasks/t-1/cancel", headers={"origin": "https://evil.example"})
    assert button.status_code == 403
    for other in ("https://ui", "http://ui:8080", "null", "http://ui:x"):  # same host only
        refused = await ui.post("/tasks/t-1/cancel", headers={"origin": other})
        assert refused.status_code == 403, other
    ours = await ui.post("/instructions", json=NOTIFY_TASK, headers={"origin": "http://UI:80"})
    assert ours.status_code == 201


async def test_a_body_over_the_limit_is_refused_before_anything_reads_it(
    api_app: httpx.ASGITransport, api: httpx.AsyncClient
) -> None:
    client = ApiClient("http://api", transport=api_app)
    app = create_ui(client, max_request_bytes=2048)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://ui"
    ) as ui:
        oversized = {**NOTIFY_TASK, "name": "x" * 4096}
        declared = await ui.post("/instructions", json=oversized)
        assert declared.status_code == 413
        assert "LIGHTNING_MAX_REQUEST_BYTES" in declared.json()["detail"]

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as read
            for start in range(0, 4096, 512):
                yield json.dumps(oversized).encode()[start : start + 512]

        streamed = await ui.post(
            "/instructions", content=chunks(), headers={"content-type": "application/json"}
        )
        assert streamed.status_code == 413
        assert (await ui.post("/instructions", json=NOTIFY_TASK)).status_code == 201
    await client.aclose()
    assert [i["name"] for i in (await api.get("/api/instructions")).json()["items"]] == [
        NOTIFY_TASK["name"]
    ]


async def test_enable_disable_and_delete(ui: httpx.AsyncClient, api: httpx.AsyncClient) -> None:
    instruction_id = (await ui.post("/instructions", json=NOTIFY_TASK)).json()["id"]
    assert (await ui.post(f"/instructions/{instruction_id}/disable")).json() == {}
    assert (await api.get(f"/api/instructions/{instruction_id}")).json()["enabled"] is False
    assert "Enable</button>" in (await ui.get("/partials/instructions")).text
    assert (await ui.post(f"/instructions/{instruction_id}/enable")).status_code == 200
    assert (await api.get(f"/api/instructions/{instruction_id}")).json()["enabled"] is True
    assert (await ui.post(f"/instructions/{instruction_id}/delete")).status_code == 200
    assert (await api.get("/api/instructions")).json()["items"] == []
    gone = await ui.post(f"/instructions/{instruction_id}/delete")
    assert gone.status_code == 404
    assert instruction_id in gone.json()["error"]


async def test_tasks_page_and_cancel(ui: httpx.AsyncClient, api: httpx.AsyncClient) -> None:
    task = (await api.post("/api/tasks", json={"kind": "wait", "params": {"seconds": 1}})).json()
    page = await ui.get("/tasks")
    assert f'data-task-id="{task["id"]}"' in page.text
    assert 'data-poll="/partials/tasks"' in page.text
    assert "status-pending" in (await ui.get("/partials/tasks")).text
    assert (await ui.post(f"/tasks/{task['id']}/cancel")).status_code == 200
    assert "status-cancelled" in (await ui.get("/partials/tasks")).text
    assert (await ui.post(f"/tasks/{task['id']}/cancel")).status_code == 409


async def test_notifications_page_and_mark_read(
    ui: httpx.AsyncClient, context: ServiceContext
) -> None:
    user = context.settings.dev_user
    notification = Notification(user=user, title="<i>Door</i> opened", body="front")
    await context.storage.create(
        NOTIFICATIONS, user, notification.id, notification.model_dump(mode="json")
    )
    page = await ui.get("/notifications")
    assert f'data-notification-id="{notification.id}" class="unread"' in page.text
    assert "&lt;i&gt;Door&lt;/i&gt; opened" in page.text
    assert 'data-count="unread">1<' in (await ui.get("/partials/dashboard")).text
    assert (await ui.post(f"/notifications/{notification.id}/read")).status_code == 200
    partial = await ui.get("/partials/notifications")
    assert f'data-notification-id="{notification.id}" class="read"' in partial.text
    assert (await ui.post("/notifications/nope/read")).status_code == 404


async def test_dead_letters_page_and_replay(
    ui: httpx.AsyncClient, context: ServiceContext, bus: MemoryBus
) -> None:
    await bus.open_group(PROCESSOR_GROUP)
    event = CloudEvent(source="test", type="order.created", user=context.settings.dev_user)
    await bus.publish(event)
    stop = asyncio.Event()

    async def broken(_event: CloudEvent) -> None:
        raise RuntimeError("driver broke")

    consuming = asyncio.create_task(bus.consume(PROCESSOR_GROUP, broken, stop=stop))
    async with asyncio.timeout(5):
        while not await bus.dead_letters(PROCESSOR_GROUP):
            await asyncio.sleep(0.01)
    stop.set()
    await consuming

    page = await ui.get("/dead-letters")
    assert f'data-event-id="{event.id}"' in page.text
    assert "driver broke" in page.text
    assert 'data-count="dead-letters">1<' in (await ui.get("/partials/dashboard")).text
    assert (await ui.post(f"/dead-letters/{event.id}/replay")).status_code == 200
    assert "No dead letters" in (await ui.get("/partials/dead-letters")).text
    assert (await ui.post(f"/dead-letters/{event.id}/replay")).status_code == 404


async def test_api_down_is_shown_on_every_page_and_action(ui_client: UiClient) -> None:
    api = ApiClient("http://127.0.0.1:9")  # discard port: nothing listens
    async with ui_client(api) as http:
        for path in ("/", "/instructions", "/tasks", "/notifications", "/dead-letters"):
            page = await http.get(path)
            assert page.status_code == 503
            assert "API at http://127.0.0.1:9 failed" in page.text
        answer = await http.post("/tasks/x/cancel")
        assert answer.status_code == 503
        created = await http.post("/instructions", json=NOTIFY_TASK)
        assert created.status_code == 503
        assert "failed" in created.json()["errors"]["form"]
    await api.aclose()


def test_mappings_read_json_or_key_value_lines() -> None:
    assert parse_mapping("") == {}
    assert parse_mapping(' {"a": 1} ') == {"a": 1}
    assert parse_mapping("a = 1\n\nb=x y\nc=true\nd=[1]") == {
        "a": 1,
        "b": "x y",
        "c": True,
        "d": "[1]",
    }
    with pytest.raises(ValueError, match="JSON object"):
        parse_mapping("[1]")
    assert field_errors("boom") == {"form": "boom"}
    assert field_errors([{"loc": ["body", "action", "emit", "data", "x"], "msg": "m"}]) == {
        "emit_data": "m"
    }
    assert field_errors([{"loc": ["body", "other"], "msg": "m"}]) == {"form": "m"}
    emit_pattern = {"loc": ["body", "action", "emit", "type"], "msg": "m"}
    hint = field_errors([{**emit_pattern, "type": "string_pattern_mismatch"}])["emit_type"]
    assert "e.g. door.closed" in hint


@pytest.mark.parametrize(
    "mapping",
    [
        {},
        {"floor": 1, "room": "lobby", "open": True, "ratio": 0.5, "none": None},
        {"looks_like_a_number": "3", "padded": " x ", "json_text": "[1]", "quote": '"q"'},
        {"nested": {"a": [1, 2]}},
        {"has=equals": "v", "multi": "line\nvalue"},
    ],
)
def test_formatted_mappings_read_back_the_same(mapping: dict[str, object]) -> None:
    assert parse_mapping(format_mapping(mapping)) == mapping


async def test_edit_loads_the_form_and_saves_over_the_version_it_loaded(
    ui: httpx.AsyncClient, api: httpx.AsyncClient
) -> None:
    instruction_id = (await ui.post("/instructions", json=NOTIFY_TASK)).json()["id"]
    await ui.post(f"/instructions/{instruction_id}/disable")
    loaded = (await ui.get(f"/instructions/{instruction_id}/form")).json()
    fields = loaded["fields"]
    assert {k: fields[k] for k in NOTIFY_TASK} == NOTIFY_TASK
    assert fields["enabled"] == "false"

    edited = {**fields, "name": "Back door", "data_filter": "door=back", "etag": loaded["etag"]}
    saved = await ui.post(f"/instructions/{instruction_id}", json=edited)
    assert saved.status_code == 200, saved.text
    stored = (await api.get(f"/api/instructions/{instruction_id}")).json()
    assert (stored["name"], stored["data_filter"]) == ("Back door", {"door": "back"})
    assert stored["enabled"] is False  # an edit keeps the state it had

    stale = await ui.post(f"/instructions/{instruction_id}", json={**edited, "name": "Mine"})
    assert stale.status_code == 412  # the ETag loaded first is no longer current
    assert "changed elsewhere" in stale.json()["errors"]["form"]
    assert (await api.get(f"/api/instructions/{instruction_id}")).json()["name"] == "Back door"

    invalid = await ui.post(
        f"/instructions/{instruction_id}", json={**edited, "event_type": "no good!"}
    )
    assert set(invalid.json()["errors"]) == {"event_type"}
    missing = await ui.get("/instructions/nope/form")
    assert missing.status_code == 404


@pytest.mark.parametrize(
    "form",
    [
        {"name": "n", "event_type": "a.*", "action_kind": "notify", "notify_title": "Hi"},
        {
            "name": "e",
            "event_type": "a.b",
            "action_kind": "emit",
            "emit_type": "c.d",
            "emit_data": '{"x": [1]}',
        },
    ],
)
async def test_every_action_kind_loads_back_into_its_fields(
    ui: httpx.AsyncClient, form: dict[str, str]
) -> None:
    instruction_id = (await ui.post("/instructions", json=form)).json()["id"]
    fields = (await ui.get(f"/instructions/{instruction_id}/form")).json()["fields"]
    assert {k: fields[k] for k in form} == form


async def test_dashboard_shows_whether_the_processor_beats(
    ui: httpx.AsyncClient, context: ServiceContext
) -> None:
    silent = (await ui.get("/partials/dashboard")).text
    assert "not seen: is it running?" in silent
    await Heart(context.storage, PROCESSOR_GROUP, "host:1").beat()
    beating = (await ui.get("/partials/dashboard")).text
    assert 'data-service="event-processor"' in beating
    assert "1 running, last beat 0 s ago" in beating


class OlderApi(httpx.AsyncBaseTransport):
    """An API from before /api/services (as during a rolling deploy)."""

    def __init__(self, current: httpx.AsyncBaseTransport) -> None:
        self.current = current

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/services":
            return httpx.Response(404, json={"detail": "Not Found"})
        return await self.current.handle_async_request(request)


async def test_dashboard_still_shows_when_the_api_cannot_list_services(
    context: ServiceContext,
    ui_client: UiClient,
) -> None:
    client = ApiClient("http://api", transport=OlderApi(httpx.ASGITransport(create_api(context))))
    async with ui_client(client) as http:
        page = await http.get("/")
    await client.aclose()
    assert page.status_code == 200
    assert "unknown: the API did not say" in page.text
