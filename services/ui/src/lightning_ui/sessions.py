"""Browser sessions of the signed-in UI, carried by the browser in cookies sealed with
AES-GCM under the secret every replica shares, so any replica serves any request."""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from http.cookies import SimpleCookie
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from starlette.datastructures import MutableHeaders
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

COOKIE = "lightning_session"  # the first part; further parts are COOKIE_1, COOKIE_2, ...
CHUNK_SIZE = 3_800  # characters of sealed session per cookie (browsers drop one over 4 KiB)
IDLE_TIMEOUT = 8 * 3600.0
PENDING_TIMEOUT = 600.0
TOUCH_EVERY = 300.0  # how stale a signed-in session's seal may get (the idle timeout's grain)
# Bound into every seal: bump it when the payload changes shape (older cookies: signed out).
_FORMAT = b"lightning-ui session v1"
_NONCE_BYTES = 12
_SCOPE_KEY = "lightning.session"


@dataclass
class Session:
    """One browser: a sign-in in progress (`flow`, MSAL's) or a signed-in account."""

    touched: float = 0.0  # when it was last sealed (time.time()); set on sealing
    flow: dict[str, Any] | None = None
    next_path: str = "/"
    account_id: str | None = None
    user_name: str = ""
    access_token: str | None = None
    token_expires_at: float = 0.0  # time.time()
    refresh_token: str | None = None


class SessionSeal:
    """Seals sessions into cookies and reads them back; a signed-in session expires when
    idle past `idle_timeout` seconds, a sign-in in progress PENDING_TIMEOUT after it began."""

    def __init__(
        self,
        secret: str,
        *,
        idle_timeout: float = IDLE_TIMEOUT,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`secret`: LIGHTNING_UI_SESSION_SECRET; `clock`: wall time, which replicas share."""
        key = HKDF(algorithm=SHA256(), length=32, salt=None, info=_FORMAT).derive(secret.encode())
        self._aead = AESGCM(key)
        self._idle_timeout = idle_timeout
        self.clock = clock

    def cookies(self, session: Session) -> dict[str, str]:
        """`session` sealed now, as cookie name -> value (the first starts with the count)."""
        session.touched = self.clock()
        plain = json.dumps(asdict(session), separators=(",", ":")).encode()
        nonce = secrets.token_bytes(_NONCE_BYTES)
        sealed = base64.urlsafe_b64encode(nonce + self._aead.encrypt(nonce, plain, _FORMAT))
        text = sealed.decode().rstrip("=")
        parts = [text[start : start + CHUNK_SIZE] for start in range(0, len(text), CHUNK_SIZE)]
        parts[0] = f"{len(parts)}.{parts[0]}"
        return {_part_name(index): part for index, part in enumerate(parts)}

    def read(self, cookies: Mapping[str, str]) -> Session | None:
        """The session the cookies carry; None when there is none, or it is incomplete,
        changed, sealed under another key, or expired."""
        count, _, first = cookies.get(COOKIE, "").partition(".")
        if not count.isdecimal() or len(count) > 2:  # a request's headers hold far fewer
            return None
        parts = [first]
        for index in range(1, int(count)):
            if (part := cookies.get(_part_name(index))) is None:
                return None
            parts.append(part)
        text = "".join(parts)
        try:
            sealed = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            nonce, box = sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:]
            session = Session(**json.loads(self._aead.decrypt(nonce, box, _FORMAT)))
        except (ValueError, TypeError, InvalidTag):  # not base64 / not ours / not a Session
            return None
        timeout = self._idle_timeout if session.account_id else PENDING_TIMEOUT
        return None if self.clock() - session.touched > timeout else session


def session_of(connection: HTTPConnection) -> Session | None:
    """The browser's session (SessionMiddleware read it), changed in place by the caller."""
    slot: _Slot = connection.scope[_SCOPE_KEY]
    return slot.session


def replace_session(connection: HTTPConnection, session: Session | None) -> None:
    """Give the browser `session` (None: none, signing it out) with this response."""
    slot: _Slot = connection.scope[_SCOPE_KEY]
    slot.session = session


@dataclass
class _Slot:
    session: Session | None


class SessionMiddleware:
    """Reads the browser's session before the app runs; seals it into the response when
    changed or due a touch, and clears the cookies when it holds neither a sign-in nor a user."""

    def __init__(self, app: ASGIApp, seal: SessionSeal, public_url: str | None) -> None:
        """Cookies are Secure when `public_url` (else the request's own) is https."""
        self._app = app
        self._seal = seal
        self._public_url = public_url

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        connection = HTTPConnection(scope)
        held = {name for name in connection.cookies if _is_part(name)}
        slot = _Slot(self._seal.read(connection.cookies))
        as_read = asdict(slot.session) if slot.session else None
        scope[_SCOPE_KEY] = slot
        secure = (self._public_url or str(connection.base_url)).startswith("https://")

        async def send_with_cookies(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for value in self._set_cookies(slot.session, as_read, held, secure):
                    headers.append("set-cookie", value)
            await send(message)

        await self._app(scope, receive, send_with_cookies)

    def _set_cookies(
        self, session: Session | None, as_read: dict[str, Any] | None, held: set[str], secure: bool
    ) -> list[str]:
        """Set-Cookie values: the session resealed if due, the parts it no longer uses cleared."""
        sealed: dict[str, str] = {}
        if session is not None and (session.flow or session.account_id):
            stale = self._seal.clock() - session.touched >= TOUCH_EVERY
            if asdict(session) != as_read or (session.account_id and stale):
                sealed = self._seal.cookies(session)
            else:
                return []
        cleared = sorted(held - sealed.keys())
        return [_cookie(name, value, secure) for name, value in sealed.items()] + [
            _cookie(name, "", secure, clear=True) for name in cleared
        ]


def _part_name(index: int) -> str:
    return COOKIE if index == 0 else f"{COOKIE}_{index}"


def _is_part(name: str) -> bool:
    suffix = name.removeprefix(f"{COOKIE}_")
    return name == COOKIE or (suffix != name and suffix.isdecimal())


def _cookie(name: str, value: str, secure: bool, *, clear: bool = False) -> str:
    """One Set-Cookie value: HttpOnly, SameSite=Lax, no Max-Age (the seal's time expires it)."""
    cookie: SimpleCookie = SimpleCookie()
    cookie[name] = value
    morsel = cookie[name]
    morsel["path"], morsel["httponly"], morsel["samesite"] = "/", True, "lax"
    morsel["secure"] = secure
    if clear:
        morsel["max-age"], morsel["expires"] = 0, "Thu, 01 Jan 1970 00:00:00 GMT"
    return morsel.OutputString()
