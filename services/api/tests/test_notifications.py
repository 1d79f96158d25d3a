import httpx

from lightning_core.domain import NOTIFICATIONS, Notification
from lightning_core.storage.base import Storage


async def notify(storage: Storage, user: str, title: str) -> Notification:
    """What the notifier stores."""
    notification = Notification(user=user, title=title)
    await storage.create(NOTIFICATIONS, user, notification.id, notification.model_dump(mode="json"))
    return notification


async def test_listing_is_newest_first_filters_by_read_and_pages(
    alice: httpx.AsyncClient, storage: Storage
) -> None:
    ids = [(await notify(storage, "alice", f"note {n}")).id for n in range(4)]
    first = (await alice.get("/api/notifications", params={"limit": 3})).json()
    assert [item["id"] for item in first["items"]] == ids[::-1][:3]
    rest = (
        await alice.get("/api/notifications", params={"continuation": first["continuation"]})
    ).json()
    assert [item["id"] for item in rest["items"]] == [ids[0]]

    read = await alice.post(f"/api/notifications/{ids[1]}/read")
    assert read.status_code == 200
    assert read.json()["read"] is True
    assert (await alice.post(f"/api/notifications/{ids[1]}/read")).json() == read.json()

    unread = (await alice.get("/api/notifications", params={"read": "false"})).json()
    assert [item["id"] for item in unread["items"]] == [ids[3], ids[2], ids[0]]
    done = (await alice.get("/api/notifications", params={"read": "true"})).json()
    assert [item["id"] for item in done["items"]] == [ids[1]]
    assert (await alice.get("/api/notifications", params={"read": "maybe"})).status_code == 422
    assert (await alice.post("/api/notifications/nope/read")).status_code == 404


async def test_another_user_can_neither_see_nor_mark_them(
    alice: httpx.AsyncClient, bob: httpx.AsyncClient, storage: Storage
) -> None:
    note = await notify(storage, "alice", "private")
    assert (await bob.get("/api/notifications")).json()["items"] == []
    assert (await bob.post(f"/api/notifications/{note.id}/read")).status_code == 404
    [mine] = (await alice.get("/api/notifications")).json()["items"]
    assert mine["read"] is False
