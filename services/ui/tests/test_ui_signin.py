"""Azure-mode sign-in: the UI signs users in with the authorization code flow and PKCE
(MSAL), against a local Entra ID stand-in served over TLS (entra_fake.py), and calls the
API with the signed-in user's access token, which the API validates as it would Entra's.

The browser test walks the real redirects in headless Chromium: the UI sends an unsigned
browser to the authorize endpoint with a PKCE challenge, the user picks an account, the
UI redeems the code (the stand-in checks the verifier, the client secret and the redirect
URI) and the pages then show and change only that user's records. The replica test signs
in through two UI instances behind one address, as Container Apps runs them.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import ssl
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import uvicorn
from playwright.sync_api import Browser, BrowserContext, expect
from pydantic import SecretStr

from lightning_api.app import create_app as create_api
from lightning_api.auth import TokenValidator
from lightning_core.asgi import ASGIApp
from lightning_core.bus.memory import MemoryBus
from lightning_core.config import ConfigError, Mode, Settings
from lightning_core.service import ServiceContext
from lightning_core.storage.sqlite import SqliteStorage
from lightning_core.testing.entra_fake import KEY_ID, FakeEntra, jwks, self_signed_tls
from lightning_core.testing.machine import free_port
from lightning_ui.api_client import ApiClient
from lightning_ui.app import create_app as create_ui
from lightning_ui.auth import Gate
from lightning_ui.sessions import COOKIE, Session, SessionSeal
from lightning_ui.signin import (
    RENEW_BEFORE,
    EntraSignIn,
    EntraUnavailable,
    SignInFailed,
    SignInRequired,
    entra_sign_in,
)

AUDIENCE = "api://lightning-os"
SCOPE = f"{AUDIENCE}/access_as_user"
USERS = {"alice-oid": "alice@contoso.test", "bob-oid": "bob@contoso.test"}
SESSION_SECRET = secrets.token_urlsafe(32)  # what every replica of one UI shares


@dataclass
class Tls:
    cert: Path
    key: Path

    def context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.cert)

    def server_options(self) -> dict[str, Any]:
        return {"ssl_certfile": str(self.cert), "ssl_keyfile": str(self.key)}


@pytest.fixture
def tls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Tls:
    """The stand-in's certificate; requests (under MSAL) would prefer a CA bundle named in
    the environment to the `verify` MSAL is given, so those variables are dropped."""
    for variable in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(variable, raising=False)
    return Tls(*self_signed_tls(tmp_path))


def fake_entra(port: int) -> FakeEntra:
    return FakeEntra(
        base_url=f"https://127.0.0.1:{port}",
        client_id="lightning-ui",
        client_secret="ui-secret-for-tests",  # the stand-in's, not a real one
        audience=AUDIENCE,
        users=USERS,
    )


@contextlib.asynccontextmanager
async def sign_in_for(
    entra: FakeEntra, tls: Tls, session_secret: str = SESSION_SECRET
) -> AsyncIterator[EntraSignIn]:
    sign_in = EntraSignIn(
        authority=entra.authority,
        client_id=entra.client_id,
        client_secret=entra.client_secret,
        scope=SCOPE,
        session_secret=session_secret,
        verify=str(tls.cert),
    )
    try:
        yield sign_in
    finally:
        await sign_in.aclose()


async def serve_until(stop: asyncio.Event, apps: list[tuple[ASGIApp, int, dict[str, Any]]]) -> None:
    """Serve each (app, port, uvicorn options) on 127.0.0.1 until `stop` is set."""
    servers = [
        uvicorn.Server(
            uvicorn.Config(
                app, host="127.0.0.1", port=port, log_level="warning", lifespan="off", **options
            )
        )
        for app, port, options in apps
    ]
    serving = [asyncio.create_task(server.serve()) for server in servers]
    await stop.wait()
    for server in servers:
        server.should_exit = True
    await asyncio.gather(*serving)


@contextlib.contextmanager
def in_thread(
    main: Callable[[asyncio.Event], Awaitable[None]], probes: list[str]
) -> Iterator[None]:
    """Run `main(stop)` on an event loop of its own thread until the block ends; enter once
    every probe URL answers (TLS not verified: the probes only ask "is it up?")."""
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    thread = threading.Thread(target=lambda: loop.run_until_complete(main(stop)), daemon=True)
    thread.start()
    try:
        for url in probes:
            for _ in range(200):
                with contextlib.suppress(httpx.HTTPError):
                    httpx.get(url, verify=False, timeout=1.0)  # noqa: S501
                    break
                assert thread.is_alive(), "the servers stopped before they were up"
                thread.join(0.05)
            else:
                raise AssertionError(f"{url} did not answer")
        yield
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)
        assert not thread.is_alive(), "the servers did not stop within 30 s"
        loop.close()


@pytest.fixture
def entra(tls: Tls) -> Iterator[FakeEntra]:
    """The stand-in alone, served over TLS."""
    fake = fake_entra(free_port())
    port = int(fake.base_url.rsplit(":", 1)[1])

    async def main(stop: asyncio.Event) -> None:
        await serve_until(stop, [(fake.app(), port, tls.server_options())])

    with in_thread(main, [f"{fake.issuer}/.well-known/openid-configuration"]):
        yield fake


async def approve(auth_url: str, user: str, tls: Tls) -> dict[str, str]:
    """What a browser brings back to the callback after `user` signs in at `auth_url`
    (httpx standing in for the browser: open the page, press the user's button)."""
    async with httpx.AsyncClient(verify=tls.context()) as browser:
        page = await browser.get(auth_url)
        assert page.status_code == 200, page.text
        request_id = re.search(r'name="request" value="([^"]+)"', page.text)
        assert request_id is not None
        approve_url = auth_url.split("/authorize?", 1)[0] + "/approve"
        back = await browser.post(approve_url, data={"request": request_id[1], "user": user})
    assert back.status_code == 303, back.text
    return {
        key: values[0] for key, values in parse_qs(urlsplit(back.headers["location"]).query).items()
    }


async def start(sign_in: EntraSignIn, next_path: str = "/") -> tuple[Session, str]:
    session = Session()
    return session, await sign_in.start(session, "https://ui.test/auth/callback", next_path)


async def test_code_is_redeemed_with_pkce_and_the_token_renewed_when_due(
    entra: FakeEntra, tls: Tls
) -> None:
    async with sign_in_for(entra, tls) as sign_in:
        await sign_in_and_renew(entra, tls, sign_in)


async def sign_in_and_renew(entra: FakeEntra, tls: Tls, sign_in: EntraSignIn) -> None:
    session, url = await start(sign_in, "/tasks")
    query = parse_qs(urlsplit(url).query)
    assert query["code_challenge_method"] == ["S256"]
    assert query["redirect_uri"] == ["https://ui.test/auth/callback"]
    assert SCOPE in query["scope"][0].split()

    assert await sign_in.finish(session, await approve(url, "alice-oid", tls)) == "/tasks"
    assert session.user_name == "alice@contoso.test"
    assert [e["grant_type"] for e in entra.exchanges] == ["authorization_code"]
    assert entra.exchanges[0]["code_verifier"]  # the stand-in checked it against the challenge

    token = await sign_in.token(session)  # the code's answer carried it
    validator = api_validator(entra)
    assert await validator.user(token) == "alice-oid"
    assert await sign_in.token(session) == token  # kept in the session: no second exchange
    assert len(entra.exchanges) == 1
    assert (await sign_in._msal()).get_accounts() == []  # this process keeps no user's tokens

    used_refresh_token = session.refresh_token
    session.token_expires_at = time.time() + RENEW_BEFORE - 1  # due: renewed with the RT
    renewed = await sign_in.token(session)
    assert [e["grant_type"] for e in entra.exchanges[1:]] == ["refresh_token"]
    assert await validator.user(renewed) == "alice-oid"
    assert session.refresh_token != used_refresh_token  # Entra's new one, for the next time
    assert (await sign_in._msal()).get_accounts() == []

    session.refresh_token = used_refresh_token  # refused (the stand-in honours each once)
    session.token_expires_at = 0.0
    with pytest.raises(SignInRequired):
        await sign_in.token(session)
    assert (session.account_id, session.access_token, session.refresh_token) == (None,) * 3
    with pytest.raises(SignInRequired):
        await sign_in.token(session)
    logout = sign_in.sign_out_url("https://ui.test/")
    assert logout.startswith(f"{entra.authority}/oauth2/v2.0/logout?post_logout_redirect_uri=")


async def test_an_unreachable_entra_at_renewal_keeps_the_user_signed_in(
    entra: FakeEntra, tls: Tls, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with sign_in_for(entra, tls) as sign_in:
        session, url = await start(sign_in)
        await sign_in.finish(session, await approve(url, "alice-oid", tls))
        app = await sign_in._msal()
        session.token_expires_at = 0.0  # due

        def unreachable(*_args: object, **_kwargs: object) -> None:
            raise ConnectionError("Entra is down")

        with monkeypatch.context() as down:  # not monkeypatch.undo(): `tls` patched too
            down.setattr(app, "acquire_token_by_refresh_token", unreachable)
            with pytest.raises(EntraUnavailable, match="cannot be renewed right now"):
                await sign_in.token(session)
        assert session.account_id == "alice-oid"  # still signed in: try again later
        token = await sign_in.token(session)
        monkeypatch.setattr(app, "acquire_token_by_refresh_token", unreachable)
        assert await sign_in.token(session) == token  # kept in the session: Entra not asked


@pytest.mark.parametrize(
    "wanted", ["//evil.example/x", "/\\evil.example", "/a\tb", "https://evil.example/"]
)
async def test_after_sign_in_only_plain_local_paths_are_followed(
    ui_api: ApiClient, tls: Tls, wanted: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with sign_in_for(fake_entra(free_port()), tls) as sign_in:
        monkeypatch.setattr(sign_in, "start", _remember_next)  # no Entra needed
        app = create_ui(ui_api, gate=Gate(ui_api, sign_in))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ui") as browser:
            answer = await browser.get("/auth/login", params={"next": wanted})
        assert answer.headers["location"] == "https://entra.test/authorize?next=/"


async def _remember_next(_session: Session, _redirect_uri: str, next_path: str) -> str:
    return f"https://entra.test/authorize?next={next_path}"


async def test_a_signed_in_browser_sent_to_sign_in_by_another_site_stays_signed_in(
    ui_api: ApiClient, tls: Tls, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with sign_in_for(fake_entra(free_port()), tls) as sign_in:
        monkeypatch.setattr(sign_in, "start", _remember_next)  # no Entra needed
        app = create_ui(ui_api, gate=Gate(ui_api, sign_in))
        alice = Session(
            account_id="alice-oid",
            user_name="alice@contoso.test",
            access_token="alice-token",
            token_expires_at=time.time() + 3600,
        )
        cookies = SessionSeal(SESSION_SECRET).cookies(alice)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://ui", cookies=cookies
        ) as browser:
            # A link on another site's page: a top-level navigation, no Origin header.
            sent = await browser.get(
                "/auth/login",
                params={"next": "/tasks"},
                headers={"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"},
            )
            assert (sent.status_code, sent.headers["location"]) == (303, "/tasks")
            assert "set-cookie" not in sent.headers  # the session is untouched
            page = await browser.get("/tasks")
            assert page.status_code == 200
            assert "alice@contoso.test" in page.text
            # The sign-out form's post ends at Entra's sign-out: the policy lets it go there.
            entra_origin = sign_in.authority.removesuffix("/tenant-1")
            assert f"form-action 'self' {entra_origin}" in page.headers["content-security-policy"]


async def test_a_thousand_other_sign_ins_leave_one_in_progress_alone(
    entra: FakeEntra, tls: Tls, ui_api: ApiClient
) -> None:
    async with sign_in_for(entra, tls) as sign_in:
        app = create_ui(ui_api, gate=Gate(ui_api, sign_in))
        transport = httpx.ASGITransport(app=app)
        async with (
            httpx.AsyncClient(transport=transport, base_url="http://ui") as browser,
            httpx.AsyncClient(transport=transport, base_url="http://ui") as others,
        ):
            login = await browser.get("/auth/login", params={"next": "/tasks"})
            assert login.status_code == 303
            for _ in range(1_000):
                others.cookies.clear()  # each one a new anonymous browser
                assert (await others.get("/auth/login")).status_code == 303
            answer = await approve(login.headers["location"], "alice-oid", tls)
            back = await browser.get("/auth/callback", params=answer)
            assert (back.status_code, back.headers["location"]) == (303, "/tasks")
            page = await browser.get("/tasks")
            assert page.status_code == 200
            assert "alice@contoso.test" in page.text


async def test_a_wrong_verifier_or_state_fails_the_sign_in(entra: FakeEntra, tls: Tls) -> None:
    async with sign_in_for(entra, tls) as sign_in:
        await refused_sign_ins(tls, sign_in)


async def refused_sign_ins(tls: Tls, sign_in: EntraSignIn) -> None:
    session, url = await start(sign_in)
    answer = await approve(url, "alice-oid", tls)
    assert session.flow is not None
    session.flow["code_verifier"] = "x" * 43  # not the one the challenge was made from
    with pytest.raises(SignInFailed, match="PKCE code_verifier does not match"):
        await sign_in.finish(session, answer)
    assert session.account_id is None

    session, url = await start(sign_in)
    answer = await approve(url, "alice-oid", tls)
    with pytest.raises(SignInFailed, match="does not match this browser"):
        await sign_in.finish(session, {**answer, "state": "forged"})
    with pytest.raises(SignInFailed, match="no sign-in is in progress"):
        await sign_in.finish(session, answer)  # a flow is used once


async def test_an_unreachable_authority_is_one_clear_error(tls: Tls) -> None:
    nowhere = fake_entra(free_port())  # nothing listens there
    async with sign_in_for(nowhere, tls) as sign_in:
        with pytest.raises(SignInFailed, match=r"Entra ID at https://127\.0\.0\.1:\d+/tenant-1"):
            await start(sign_in)


def api_validator(entra: FakeEntra) -> TokenValidator:
    """The API's check of the stand-in's access tokens."""

    async def fetch() -> dict[str, Any]:
        return jwks((KEY_ID, entra.key))

    return TokenValidator(issuer=entra.issuer, audience=AUDIENCE, fetch_jwks=fetch)


def test_azure_mode_without_the_ui_registration_refuses_to_start(settings: Settings) -> None:
    azure = settings.model_copy(update={"mode": Mode.AZURE})
    with pytest.raises(ConfigError) as refused:
        entra_sign_in(azure)
    assert refused.value.problems == [
        "ENTRA_TENANT_ID (or ENTRA_AUTHORITY) is missing (the UI signs users in there)",
        "ENTRA_UI_CLIENT_ID is missing (the UI's app registration)",
        "ENTRA_UI_CLIENT_SECRET is missing (the UI's client secret)",
        "ENTRA_API_SCOPE (or ENTRA_AUDIENCE) is missing (the API scope the UI asks for)",
        "LIGHTNING_UI_PUBLIC_URL is missing (the UI's https address as browsers reach it)",
        refused.value.problems[-1],
    ]
    assert refused.value.problems[-1].startswith("LIGHTNING_UI_SESSION_SECRET is missing")
    configured = azure.model_copy(
        update={
            "entra_tenant_id": "tenant-9",
            "entra_audience": AUDIENCE,
            "entra_ui_client_id": "ui",
            "entra_ui_client_secret": SecretStr("s"),
            "ui_public_url": "https://ui.example",
            "ui_session_secret": SecretStr("a guessable phrase"),
        }
    )
    with pytest.raises(ConfigError, match="LIGHTNING_UI_SESSION_SECRET is too short"):
        entra_sign_in(configured)
    made = entra_sign_in(
        configured.model_copy(update={"ui_session_secret": SecretStr(SESSION_SECRET)})
    )
    assert made.authority == "https://login.microsoftonline.com/tenant-9"
    assert made.session_secret == SESSION_SECRET
    assert configured.api_scope == f"{AUDIENCE}/.default"


async def test_signed_out_requests_are_answered_for_what_they_asked(
    ui_api: ApiClient, tls: Tls
) -> None:
    async with sign_in_for(fake_entra(free_port()), tls) as sign_in:  # never reached
        app = create_ui(ui_api, gate=Gate(ui_api, sign_in))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ui") as browser:
            page = await browser.get("/tasks")
            assert page.status_code == 303
            assert page.headers["location"] == "/auth/login?next=%2Ftasks"
            polled = await browser.get("/partials/tasks")
            assert polled.status_code == 401
            assert 'href="/auth/login?next=%2Fpartials%2Ftasks"' in polled.text
            button = await browser.post("/tasks/t-1/cancel")
            assert button.status_code == 401
            assert "sign in" in button.json()["error"]
            browser.cookies.set(COOKIE, "made-up")
            assert (await browser.get("/tasks")).status_code == 303
            assert (await browser.get("/healthz")).status_code == 200


class Ingress(httpx.AsyncBaseTransport):
    """UI replicas behind one address with no session affinity: each request lands on the
    replica `to` names, whichever served the browser before."""

    def __init__(self, *replicas: ASGIApp) -> None:
        self._replicas = [httpx.ASGITransport(app=replica) for replica in replicas]
        self.to = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self._replicas[self.to].handle_async_request(request)


async def test_a_sign_in_holds_on_every_replica_with_the_secret_and_on_no_other(
    entra: FakeEntra, tls: Tls, settings: Settings, storage: SqliteStorage, bus: MemoryBus
) -> None:
    azure = settings.model_copy(update={"mode": Mode.AZURE})
    api_app = create_api(ServiceContext(azure, storage, bus), api_validator(entra))
    api = ApiClient("http://api", transport=httpx.ASGITransport(app=api_app))
    entra.token_lifetime = 60  # due at once: every request below renews the token
    async with (
        sign_in_for(entra, tls) as first,
        sign_in_for(entra, tls) as second,  # its own MSAL: nothing shared but the secret
        sign_in_for(entra, tls, secrets.token_urlsafe(32)) as another_uis,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=api_app)) as as_alice,
    ):
        ingress = Ingress(*(create_ui(api, gate=Gate(api, s)) for s in (first, second)))
        async with httpx.AsyncClient(transport=ingress, base_url="http://ui") as browser:
            login = await browser.get("/auth/login", params={"next": "/instructions"})
            answer = await approve(login.headers["location"], "alice-oid", tls)
            ingress.to = 1  # the flow came along with the browser
            back = await browser.get("/auth/callback", params=answer)
            assert (back.status_code, back.headers["location"]) == (303, "/instructions")
            ingress.to = 0
            door_alert = {
                "name": "Door alert",
                "event_type": "door.opened",
                "action_kind": "notify",
                "notify_title": "Door opened",
            }
            created = await browser.post("/instructions", json=door_alert)
            assert created.status_code == 201, created.text
            ingress.to = 1
            page = await browser.get("/instructions")
            assert page.status_code == 200
            assert "alice@contoso.test" in page.text
            assert "Door alert" in page.text
            held = dict(browser.cookies)
        grants = [e["grant_type"] for e in entra.exchanges]
        assert grants == ["authorization_code", "refresh_token", "refresh_token"]
        as_alice.headers.update(bearer(entra.access_token("alice-oid")))
        [stored] = (await as_alice.get("http://api/api/instructions")).json()["items"]
        assert (stored["name"], stored["user"]) == ("Door alert", "alice-oid")

        value = held[COOKIE]
        tampered = value[:-8] + ("A" if value[-8] != "A" else "B") + value[-7:]
        for replica, cookies in (
            (create_ui(api, gate=Gate(api, another_uis)), held),  # another key
            (create_ui(api, gate=Gate(api, second)), {**held, COOKIE: tampered}),
        ):
            transport = httpx.ASGITransport(app=replica)
            async with httpx.AsyncClient(transport=transport, cookies=cookies) as browser:
                page = await browser.get("http://ui/instructions")
                assert page.status_code == 303  # signed out: to the sign-in
                assert page.headers["location"] == "/auth/login?next=%2Finstructions"
                [cleared] = page.headers.get_list("set-cookie")  # and its cookie cleared
                assert cleared.startswith(f'{COOKIE}=""; expires=Thu, 01 Jan 1970')
    await api.aclose()


@dataclass(frozen=True)
class AzureSystem:
    ui_url: str
    api_url: str
    entra: FakeEntra


@pytest.fixture
def azure_system(settings: Settings, tls: Tls) -> Iterator[AzureSystem]:
    """The API (azure mode, validating the stand-in's tokens) and the UI signing users in
    at the stand-in, each on its own port, over SQLite and the memory bus."""
    entra = fake_entra(free_port())
    entra_port = int(entra.base_url.rsplit(":", 1)[1])
    api_port, ui_port = free_port(), free_port()
    system = AzureSystem(f"http://127.0.0.1:{ui_port}", f"http://127.0.0.1:{api_port}", entra)
    azure = settings.model_copy(update={"mode": Mode.AZURE})

    async def main(stop: asyncio.Event) -> None:
        entra_stop = asyncio.Event()  # the stand-in stops last: MSAL is connected to it
        entra_served = asyncio.create_task(
            serve_until(entra_stop, [(entra.app(), entra_port, tls.server_options())])
        )
        try:
            async with (
                SqliteStorage(azure.sqlite_path) as storage,
                MemoryBus() as bus,
                sign_in_for(entra, tls) as sign_in,
            ):
                api_app = create_api(ServiceContext(azure, storage, bus), api_validator(entra))
                api = ApiClient(system.api_url)
                try:
                    ui_app = create_ui(api, stop=stop, gate=Gate(api, sign_in))
                    await serve_until(stop, [(api_app, api_port, {}), (ui_app, ui_port, {})])
                finally:
                    await api.aclose()
        finally:
            entra_stop.set()
            await entra_served

    probes = [f"{entra.issuer}/.well-known/openid-configuration"]
    probes += [f"{system.api_url}/healthz", f"{system.ui_url}/healthz"]
    with in_thread(main, probes):
        yield system


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_the_browser_signs_in_with_entra_and_the_ui_acts_as_that_user(
    browser: Browser, azure_system: AzureSystem, artifacts: Path
) -> None:
    entra = azure_system.entra
    authorize = re.compile(re.escape(f"{entra.authority}/oauth2/v2.0/authorize?"))
    # Contexts of their own (one per user), closed before the servers stop: the stand-in's
    # TLS connections would otherwise hold its shutdown up. It has its own certificate.
    with contexts(browser, 2) as (alice, bob):
        signed_in_story(alice, bob, azure_system, authorize, artifacts)


def signed_in_story(
    alice: BrowserContext,
    bob: BrowserContext,
    system: AzureSystem,
    authorize: re.Pattern[str],
    artifacts: Path,
) -> None:
    ui, api, entra = system.ui_url, system.api_url, system.entra
    page = alice.new_page()
    page.goto(f"{ui}/instructions")
    expect(page).to_have_url(authorize)
    query = parse_qs(urlsplit(page.url).query)
    assert query["code_challenge_method"] == ["S256"]
    assert query["redirect_uri"] == [f"{ui}/auth/callback"]
    page.screenshot(path=artifacts / "ui-azure-sign-in.png")

    [pending] = alice.cookies()
    page.get_by_role("button", name="Sign in as alice@contoso.test").click()
    expect(page).to_have_url(f"{ui}/instructions")
    expect(page.locator(".who")).to_contain_text("alice@contoso.test")
    [session] = alice.cookies()
    assert session["name"] == COOKIE
    assert session["httpOnly"]
    assert session["sameSite"] == "Lax"
    assert "alice" not in session["value"]  # sealed: nothing in it is readable
    assert session["value"] != pending["value"]  # sealed afresh once signed in

    page.get_by_label("Name").fill("Door alert")
    page.get_by_label("Event type pattern").fill("door.opened")
    page.get_by_label("Task params").fill("title=Door opened")
    page.get_by_role("button", name="Create instruction").click()
    expect(page.locator("#instructions tbody tr[data-instruction-id]")).to_have_count(1)
    page.screenshot(path=artifacts / "ui-azure-instructions.png", full_page=True)

    as_alice = httpx.get(f"{api}/api/instructions", headers=bearer(entra.access_token("alice-oid")))
    [created] = as_alice.json()["items"]
    assert (created["name"], created["user"]) == ("Door alert", "alice-oid")
    as_bob = httpx.get(f"{api}/api/instructions", headers=bearer(entra.access_token("bob-oid")))
    assert as_bob.json()["items"] == []
    assert httpx.get(f"{api}/api/instructions").status_code == 401  # no dev identity here

    other = bob.new_page()
    other.goto(f"{ui}/instructions")
    other.get_by_role("button", name="Sign in as bob@contoso.test").click()
    expect(other.locator(".who")).to_contain_text("bob@contoso.test")
    expect(other.get_by_text("No instructions yet")).to_be_visible()

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(authorize)  # signed out of Entra, then asked to sign in again
    assert [c["value"] for c in alice.cookies()] != [session["value"]]  # that session is gone
    assert [e["grant_type"] for e in entra.exchanges] == ["authorization_code"] * 2


@contextlib.contextmanager
def contexts(browser: Browser, count: int) -> Iterator[list[BrowserContext]]:
    opened = [browser.new_context(ignore_https_errors=True) for _ in range(count)]
    try:
        yield opened
    finally:
        for context in opened:
            context.close()
