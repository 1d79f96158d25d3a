"""Browser sessions of the signed-in UI: an opaque cookie naming state kept in this process.

The browser never holds a token, only a random session id; what the id stands for (a
sign-in in progress, or the MSAL account the user signed in as) stays here. Anyone can
start a sign-in, so sign-ins in progress are bounded: they are forgotten after
`PENDING_TIMEOUT`, and beyond `MAX_PENDING` the oldest go first, so a flood of them
never pushes out a signed-in user. Signed-in sessions (each took a real sign-in) are
forgotten when idle longer than `idle_timeout`. Kept in memory: a UI scaled to several
replicas needs session affinity on its ingress.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

COOKIE = "lightning_session"
IDLE_TIMEOUT = 8 * 3600.0  # a working day
PENDING_TIMEOUT = 600.0  # long enough to type a password and answer MFA
MAX_PENDING = 1_000


@dataclass
class Session:
    """One browser: a sign-in in progress (`flow`, MSAL's) or a signed-in account."""

    touched: float
    flow: dict[str, Any] | None = None
    next_path: str = "/"
    account_id: str | None = None  # the user's object id (MSAL's local_account_id)
    user_name: str = ""
    access_token: str | None = None  # the last one MSAL gave, until shortly before...
    token_expires_at: float = 0.0  # ...this time (time.time())


class SessionStore:
    def __init__(
        self,
        idle_timeout: float = IDLE_TIMEOUT,
        max_pending: int = MAX_PENDING,
        clock: Callable[[], float] = time.monotonic,
        on_last_session_gone: Callable[[str], None] = lambda _account_id: None,
    ) -> None:
        """`on_last_session_gone(account_id)`: no session of that account is left (the
        sign-in drops the account's tokens then, so they do not outlive every session)."""
        self._sessions: dict[str, Session] = {}  # least recently used first
        self._idle_timeout = idle_timeout
        self._max_pending = max_pending
        self._clock = clock
        self._on_last_session_gone = on_last_session_gone

    def new(self) -> tuple[str, Session]:
        self._forget_expired()
        pending = [key for key, session in self._sessions.items() if not session.account_id]
        for session_id in pending[: max(0, len(pending) - self._max_pending + 1)]:
            del self._sessions[session_id]  # the oldest sign-ins in progress
        session_id = secrets.token_urlsafe(32)
        session = self._sessions[session_id] = Session(touched=self._clock())
        return session_id, session

    def get(self, session_id: str | None) -> Session | None:
        if not session_id or (session := self._sessions.pop(session_id, None)) is None:
            return None
        if self._expired(session):
            self._gone(session)
            return None
        session.touched = self._clock()
        self._sessions[session_id] = session  # now the most recently used
        return session

    def rotate(self, session_id: str, session: Session) -> str:
        """A new id for `session` (the old one stops working): at sign-in, so an id
        planted before it, or seen during it, is worth nothing afterwards."""
        self._sessions.pop(session_id, None)
        new_id = secrets.token_urlsafe(32)
        self._sessions[new_id] = session
        return new_id

    def drop(self, session_id: str | None) -> None:
        if session_id and (session := self._sessions.pop(session_id, None)) is not None:
            self._gone(session)

    def __len__(self) -> int:
        return len(self._sessions)

    def _expired(self, session: Session) -> bool:
        timeout = self._idle_timeout if session.account_id else PENDING_TIMEOUT
        return self._clock() - session.touched > timeout

    def _forget_expired(self) -> None:
        for session_id in [k for k, s in self._sessions.items() if self._expired(s)]:
            self._gone(self._sessions.pop(session_id))

    def _gone(self, session: Session) -> None:
        account_id = session.account_id
        if account_id and all(s.account_id != account_id for s in self._sessions.values()):
            self._on_last_session_gone(account_id)
