"""The UI's sessions travel sealed in the browser's cookies: any replica holding the secret
reads them, nothing else can read or change them, they expire, and they stay within what
browsers keep."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from lightning_core.testing.clock import Clock
from lightning_core.testing.entra_fake import EntraTokens
from lightning_ui.sessions import (
    CHUNK_SIZE,
    COOKIE,
    IDLE_TIMEOUT,
    PENDING_TIMEOUT,
    TOUCH_EVERY,
    Session,
    SessionMiddleware,
    SessionSeal,
    replace_session,
    session_of,
)

SECRET = secrets.token_urlsafe(32)
COOKIE_LIMIT = 4_096  # bytes of name and value a browser keeps in one cookie
# About the length of the refresh tokens Entra issues (opaque to clients: Entra's format).
ENTRA_REFRESH_TOKEN_LENGTH = 1_900


def signed_in(access_token: str, refresh_token: str) -> Session:
    return Session(
        account_id="alice-oid",
        user_name="alice@contoso.test",
        access_token=access_token,
        token_expires_at=4_000.0,
        refresh_token=refresh_token,
    )


def large_session() -> Session:
    """A signed-in session with tokens the size of Entra's: a v1 access token (the larger
    format) with every claim Entra puts in, and a refresh token of Entra's length."""
    tokens = EntraTokens(tenant="tenant-1", audience="api://lightning-os", version=1)
    access_token = tokens.user("alice-oid")
    return signed_in(access_token, secrets.token_urlsafe(ENTRA_REFRESH_TOKEN_LENGTH * 3 // 4))


def test_a_session_sealed_by_one_replica_reads_back_on_another_with_the_same_secret() -> None:
    session = signed_in("eyJhbGciOiJSUzI1NiJ9.secret-token", "refresh-secret")
    cookies = SessionSeal(SECRET).cookies(session)
    assert list(cookies) == [COOKIE]
    assert SessionSeal(SECRET).read(cookies) == session
    for readable in ("alice", "secret-token", "refresh-secret"):
        assert readable not in cookies[COOKIE]


def test_another_secret_a_changed_or_an_incomplete_cookie_reads_as_no_session() -> None:
    seal = SessionSeal(SECRET)
    cookies = seal.cookies(signed_in("at", "rt"))
    assert SessionSeal(secrets.token_urlsafe(32)).read(cookies) is None
    value = cookies[COOKIE]
    middle = len(value) // 2
    flipped = value[:middle] + ("A" if value[middle] != "A" else "B") + value[middle + 1 :]
    assert seal.read({COOKIE: flipped}) is None
    parts = seal.cookies(large_session())
    for broken in (
        {},
        {COOKIE: "made-up"},
        {COOKIE: "1."},
        {COOKIE: "1.!!!"},
        {COOKIE: value[:-4]},  # cut short
        {COOKIE: "2" + value[1:]},  # says a second part follows, none does
        {COOKIE: "123" + value[1:]},
        {name: part for name, part in parts.items() if name != f"{COOKIE}_1"},
    ):
        assert seal.read(broken) is None
    assert seal.read(parts) is not None


def test_sign_ins_in_progress_expire_sooner_than_signed_in_sessions_idle() -> None:
    clock = Clock()
    seal = SessionSeal(SECRET, clock=clock)
    pending = seal.cookies(Session(flow={"state": "s"}, next_path="/tasks"))
    active = seal.cookies(signed_in("at", "rt"))
    clock.now += PENDING_TIMEOUT + 1
    assert seal.read(pending) is None  # an abandoned sign-in
    assert seal.read(active) is not None
    clock.now += IDLE_TIMEOUT - PENDING_TIMEOUT - 2
    assert seal.read(active) is not None
    clock.now += 2
    assert seal.read(active) is None


def test_a_realistically_large_token_set_is_split_into_cookies_of_allowed_size() -> None:
    session = large_session()
    cookies = SessionSeal(SECRET).cookies(session)
    assert len(cookies) >= 2
    assert list(cookies) == [COOKIE] + [f"{COOKIE}_{index}" for index in range(1, len(cookies))]
    for name, value in cookies.items():
        assert len(value) <= CHUNK_SIZE + 3  # the first also says how many parts there are
        assert len(name) + len(value) < COOKIE_LIMIT
    assert cookies[COOKIE].startswith(f"{len(cookies)}.")
    assert SessionSeal(SECRET).read(cookies) == session


def set_cookies(response: httpx.Response) -> list[str]:
    return response.headers.get_list("set-cookie")


async def show(request: Request) -> PlainTextResponse:
    session = session_of(request)
    return PlainTextResponse(session.user_name if session else "signed out")


async def sign_in(request: Request) -> PlainTextResponse:
    large = "large" in request.query_params
    replace_session(request, large_session() if large else signed_in("at", "rt"))
    return PlainTextResponse("signed in")


async def sign_out(request: Request) -> PlainTextResponse:
    replace_session(request, None)
    return PlainTextResponse("signed out")


async def refuse(request: Request) -> PlainTextResponse:
    """What a refused renewal does to the session."""
    session = session_of(request)
    assert session is not None
    session.account_id = session.access_token = session.refresh_token = None
    return PlainTextResponse("refused")


def tiny_app(seal: SessionSeal, public_url: str | None) -> Starlette:
    return Starlette(
        routes=[
            Route("/", show),
            Route("/sign-in", sign_in),
            Route("/sign-out", sign_out),
            Route("/refuse", refuse),
        ],
        middleware=[Middleware(SessionMiddleware, seal=seal, public_url=public_url)],
    )


@pytest.fixture
def clock() -> Clock:
    return Clock(start=1_000.0)


@pytest.fixture
async def ui(clock: Clock) -> AsyncIterator[httpx.AsyncClient]:
    """A browser on `tiny_app`: `/` shows the session, `/sign-in` (`?large`: with tokens of
    Entra's size) and `/sign-out` replace it, `/refuse` empties it."""
    transport = httpx.ASGITransport(app=tiny_app(SessionSeal(SECRET, clock=clock), None))
    async with httpx.AsyncClient(transport=transport, base_url="http://ui") as client:
        yield client


async def test_the_cookie_is_httponly_lax_and_secure_when_the_public_url_is_https() -> None:
    for public_url, secure in (("https://ui.example", True), (None, False)):
        transport = httpx.ASGITransport(app=tiny_app(SessionSeal(SECRET), public_url))
        async with httpx.AsyncClient(transport=transport, base_url="http://ui") as client:
            [cookie] = (await client.get("/sign-in")).headers.get_list("set-cookie")
        attributes = {part.strip().lower() for part in cookie.split(";")[1:]}
        assert {"httponly", "samesite=lax", "path=/"} <= attributes
        assert ("secure" in attributes) is secure
        assert not any(name.startswith(("max-age", "expires")) for name in attributes)


async def test_a_session_in_use_is_sealed_again_only_when_due_and_expires_when_idle(
    ui: httpx.AsyncClient, clock: Clock
) -> None:
    assert set_cookies(await ui.get("/")) == []  # no session, nothing to say
    assert len(set_cookies(await ui.get("/sign-in"))) == 1
    shown = await ui.get("/")
    assert shown.text == "alice@contoso.test"
    assert set_cookies(shown) == []  # unchanged and fresh: no new cookie
    clock.now += TOUCH_EVERY
    assert len(set_cookies(await ui.get("/"))) == 1  # touched: idle restarts
    clock.now += IDLE_TIMEOUT - 1
    assert (await ui.get("/")).text == "alice@contoso.test"
    clock.now += IDLE_TIMEOUT + 1
    gone = await ui.get("/")
    assert gone.text == "signed out"
    [cleared] = set_cookies(gone)
    assert cleared.startswith(f'{COOKIE}=""')
    assert "Max-Age=0" in cleared
    assert ui.cookies.get(COOKIE) is None


async def test_fewer_parts_or_signing_out_clears_every_part_held(
    ui: httpx.AsyncClient,
) -> None:
    parts = len(set_cookies(await ui.get("/sign-in", params={"large": "1"})))
    assert parts >= 2
    smaller = set_cookies(await ui.get("/sign-in"))
    assert len(smaller) == parts  # one part set, the others cleared
    assert [name for name in ui.cookies] == [COOKIE]
    assert (await ui.get("/")).text == "alice@contoso.test"
    await ui.get("/sign-in", params={"large": "1"})
    assert len(set_cookies(await ui.get("/sign-out"))) == parts
    assert list(ui.cookies) == []
    await ui.get("/sign-in")
    assert "Max-Age=0" in set_cookies(await ui.get("/refuse"))[0]  # nothing left to keep
    assert list(ui.cookies) == []
    ui.cookies.set(COOKIE, "1.forged")
    shown = await ui.get("/")
    assert shown.text == "signed out"
    assert "Max-Age=0" in set_cookies(shown)[0]
