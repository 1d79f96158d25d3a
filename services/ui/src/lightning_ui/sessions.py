"""Browser sessions of the signed-in UI: an opaque cookie naming state kept in this process.

The browser never holds a token, only a random session id; what the id stands for (a
sign-in in progress, or the MSAL account the user signed in as) stays here. Sessions idle
longer than `idle_timeout` are forgotten, so a process serving many browsers stays small.
Kept in memory: a UI scaled to several replicas needs session affinity on its ingress.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

COOKIE = "lightning_session"
IDLE_TIMEOUT = 8 * 3600.0  # a working day


@dataclass
class Session:
    """One browser: a sign-in in progress (`flow`, MSAL's) or a signed-in account."""

    touched: float
    flow: dict[str, Any] | None = None
    next_path: str = "/"
    account_id: str | None = None  # the user's object id (MSAL's local_account_id)
    user_name: str = ""


class SessionStore:
    def __init__(
        self, idle_timeout: float = IDLE_TIMEOUT, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._sessions: dict[str, Session] = {}
        self._idle_timeout = idle_timeout
        self._clock = clock

    def new(self) -> tuple[str, Session]:
        self._forget_idle()
        session_id = secrets.token_urlsafe(32)
        session = self._sessions[session_id] = Session(touched=self._clock())
        return session_id, session

    def get(self, session_id: str | None) -> Session | None:
        if not session_id or (session := self._sessions.get(session_id)) is None:
            return None
        now = self._clock()
        if now - session.touched > self._idle_timeout:
            del self._sessions[session_id]
            return None
        session.touched = now
        return session

    def drop(self, session_id: str | None) -> None:
        if session_id:
            self._sessions.pop(session_id, None)

    def __len__(self) -> int:
        return len(self._sessions)

    def _forget_idle(self) -> None:
        deadline = self._clock() - self._idle_timeout
        for session_id in [k for k, s in self._sessions.items() if s.touched < deadline]:
            del self._sessions[session_id]
