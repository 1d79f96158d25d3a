"""Who the UI calls the API as: the signed-in Entra ID user in azure mode, the API's dev
identity elsewhere; and the answers when neither will do."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

from jinja2 import Template
from markupsafe import escape
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from lightning_ui.api_client import ApiClient
from lightning_ui.sessions import (
    Session,
    SessionMiddleware,
    SessionSeal,
    replace_session,
    session_of,
)
from lightning_ui.signin import EntraSignIn, SignInFailed, SignInRequired

CALLBACK = "/auth/callback"


@dataclass(frozen=True)
class Caller:
    """The API client for one request, and who it speaks for ("" for the dev identity)."""

    api: ApiClient
    user_name: str = ""
    signed_in: bool = False


class Gate:
    """Gives each request its API client (`caller`); `sign_in` None means the dev identity."""

    def __init__(
        self, api: ApiClient, sign_in: EntraSignIn | None, public_url: str | None = None
    ) -> None:
        self._api = api
        self._sign_in = sign_in
        self._public_url = public_url.rstrip("/") if public_url else None

    async def caller(self, request: Request) -> Caller:
        """The caller (SignInRequired without a session); CrossSiteRequest for a non-GET
        request from another site's page."""
        if request.method != "GET" and _cross_site(request, self._public_url):
            raise CrossSiteRequest
        if self._sign_in is None:
            return Caller(self._api)
        session = session_of(request)
        if session is None:
            raise SignInRequired
        token = await self._sign_in.token(session)
        return Caller(self._api.for_token(token), session.user_name, signed_in=True)

    def routes(self) -> list[Route]:
        """/auth/login, /auth/callback and /auth/logout; none with the dev identity."""
        if self._sign_in is None:
            return []
        return _sign_in_routes(self._sign_in, self._public_url)

    def form_targets(self) -> list[str]:
        """Origins outside the UI a form's post leads to: Entra's, where signing out ends."""
        if self._sign_in is None:
            return []
        authority = urlsplit(self._sign_in.authority)
        return [f"{authority.scheme}://{authority.netloc}"]

    def middleware(self) -> list[Middleware]:
        """What reads and writes the sessions (sessions.py); none with the dev identity."""
        if self._sign_in is None:
            return []
        seal = SessionSeal(self._sign_in.session_secret)
        return [Middleware(SessionMiddleware, seal=seal, public_url=self._public_url)]


async def caller_of(request: Request) -> Caller:
    """The request's caller, as the app's gate (`create_app` sets it) says."""
    gate: Gate = request.app.state.gate
    return await gate.caller(request)


def _sign_in_routes(sign_in: EntraSignIn, public_url: str | None) -> list[Route]:
    def base_url(request: Request) -> str:
        return public_url or str(request.base_url).rstrip("/")

    async def login(request: Request) -> Response:
        """Start a sign-in; a signed-in browser goes straight to `next` instead, so a link
        or another site's page cannot sign anyone out by sending them here."""
        held = session_of(request)
        if held is not None and held.account_id is not None:
            return RedirectResponse(_local_path(request), status_code=303)
        session = Session()  # a new one: sealed afresh, whatever the browser held
        try:
            url = await sign_in.start(session, base_url(request) + CALLBACK, _local_path(request))
        except SignInFailed as failed:
            return _failure_page(str(failed), 503)
        replace_session(request, session)
        return RedirectResponse(url, status_code=303)

    async def callback(request: Request) -> Response:
        session = session_of(request)
        if session is None:
            return _failure_page("this browser has no sign-in in progress (cookies off?)", 400)
        try:
            next_path = await sign_in.finish(session, request.query_params)
        except SignInFailed as failed:
            return _failure_page(str(failed), 400)
        return RedirectResponse(next_path, status_code=303)

    async def logout(request: Request) -> Response:
        if _cross_site(request, public_url):
            raise CrossSiteRequest
        session = session_of(request)
        replace_session(request, None)
        url = "/" if session is None else sign_in.sign_out_url(base_url(request) + "/")
        return RedirectResponse(url, status_code=303)

    return [
        Route("/auth/login", login),
        Route(CALLBACK, callback),
        Route("/auth/logout", logout, methods=["POST"]),
    ]


class CrossSiteRequest(Exception):
    """A browser sent a changing request from another site's page (a forged request)."""


def _cross_site(request: Request, public_url: str | None) -> bool:
    """Whether the request's Origin is another site's (scheme, host, port); none is not a
    browser, which holds no user's cookie to abuse."""
    origin = request.headers.get("origin")
    if origin is None:
        return False
    return _origin(origin) != _origin(public_url or str(request.base_url))


def _origin(url: str) -> tuple[str, str, int | None] | None:
    """The scheme, host and port (or the scheme's default) of `url`; None without them."""
    parts = urlsplit(url)
    try:
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme.lower())
    except ValueError:
        return None
    if not parts.scheme or not parts.hostname:
        return None
    return parts.scheme.lower(), parts.hostname, port


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _local_path(request: Request) -> str:
    """Where to go after signing in: `next` if it is a plain path on this site, else the
    start (no `//host`, no backslash or control characters browsers might read as one)."""
    wanted = request.query_params.get("next", "/")
    plain = wanted.startswith("/") and not wanted.startswith("//")
    odd = "\\" in wanted or any(ord(character) < 0x20 for character in wanted)
    return wanted if plain and not odd else "/"


_FAILURE = Template(
    "<!doctype html><title>Sign-in failed · Lightning OS</title>"
    '<link rel="stylesheet" href="/static/style.css"><main>'
    '<h1>Sign-in failed</h1><p class="error" role="alert">{{ message }}</p>'
    '<p><a href="/auth/login">Try again</a></p></main>',
    autoescape=True,
)


def _failure_page(message: str, status_code: int) -> HTMLResponse:
    return HTMLResponse(_FAILURE.render(message=message), status_code)


async def sign_in_required(request: Request, _error: Exception) -> Response:
    """SignInRequired: a redirect to sign in for a page, a 401 sign-in link for a partial or
    the stream, a 401 JSON error for a POST."""
    login = "/auth/login?" + urlencode({"next": request.url.path})
    if request.method != "GET":
        return JSONResponse({"error": "signed out: reload the page to sign in"}, 401)
    if request.url.path.startswith(("/partials/", "/stream")):
        link = f'<p class="error">Signed out. <a href="{escape(login)}">Sign in</a></p>'
        return HTMLResponse(link, 401)
    return RedirectResponse(login, status_code=303)


async def entra_unavailable(request: Request, error: Exception) -> Response:
    """EntraUnavailable: a 503 saying so, in the shape of what was asked; still signed in."""
    if request.method != "GET":
        return JSONResponse({"error": str(error)}, 503)
    if request.url.path.startswith(("/partials/", "/stream")):
        return HTMLResponse(f'<p class="error">{escape(str(error))}</p>', 503)
    return _failure_page(str(error), 503)


async def cross_site_request(_request: Request, _error: Exception) -> Response:
    return JSONResponse({"error": "refused: the request came from another site's page"}, 403)
