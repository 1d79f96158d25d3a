"""Entra ID sign-in for the UI in azure mode: the authorization code flow with PKCE (MSAL),
the tokens kept in the user's session, none in this process."""

from __future__ import annotations

import asyncio
import time
import warnings
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

import msal

from lightning_core.config import ConfigError, Settings, sign_in_problems
from lightning_ui.sessions import Session

# MSAL recommends form_post on every sign-in; the query is on purpose (docs/api.md).
warnings.filterwarnings("ignore", "response_mode='form_post' is recommended", UserWarning)


RENEW_BEFORE = 300.0  # seconds before expiry a token is renewed (MSAL's own margin)
MIN_SESSION_SECRET = 32  # characters of LIGHTNING_UI_SESSION_SECRET: the sessions' key


class SignInRequired(Exception):
    """The request has no signed-in user (or the user's token cannot be renewed)."""


class SignInFailed(Exception):
    """Entra refused or could not complete a sign-in; the message is safe to show."""


class EntraUnavailable(Exception):
    """Entra cannot be reached to renew a token: the user stays signed in and tries again."""


class _KeepNothing(msal.TokenCache):  # type: ignore[misc]  # msal ships no types
    """MSAL's token cache that keeps no tokens: they live in the sessions instead."""

    def add(self, *_event: object, **_options: object) -> None:
        return


class EntraSignIn:
    """MSAL's confidential client, made on first use (a UI whose Entra is unreachable still
    starts); each call that may go to Entra runs in a thread (MSAL is synchronous)."""

    def __init__(
        self,
        *,
        authority: str,
        client_id: str,
        client_secret: str,
        scope: str,
        session_secret: str,
        verify: bool | str = True,
    ) -> None:
        """`session_secret`: the key sessions are sealed with; `verify`: TLS for Entra's calls."""
        self.authority = authority
        self.session_secret = session_secret
        self._client_id = client_id
        self._client_secret = client_secret
        self._scopes = [scope]
        self._verify = verify
        self._app: msal.ConfidentialClientApplication | None = None
        self._lock = asyncio.Lock()

    async def _msal(self) -> msal.ConfidentialClientApplication:
        async with self._lock:
            if self._app is None:
                try:
                    self._app = await asyncio.to_thread(
                        msal.ConfidentialClientApplication,
                        self._client_id,
                        client_credential=self._client_secret,
                        authority=self.authority,
                        # Our own setting, never a caller's: no need to ask if it is known.
                        instance_discovery=False,
                        token_cache=_KeepNothing(),
                        verify=self._verify,
                        timeout=10,
                    )
                except (ValueError, OSError) as error:
                    raise SignInFailed(
                        f"Entra ID at {self.authority} is unusable: {error}"
                    ) from None
            return self._app

    async def start(self, session: Session, redirect_uri: str, next_path: str) -> str:
        """Begin a sign-in for `session`; the URL to send the browser to."""
        app = await self._msal()
        flow: dict[str, Any] = await asyncio.to_thread(
            app.initiate_auth_code_flow, self._scopes, redirect_uri=redirect_uri
        )
        url: str = flow.pop("auth_uri")  # the browser's to follow, not the session's to keep
        session.flow, session.next_path = flow, next_path
        return url

    async def finish(self, session: Session, response: Mapping[str, str]) -> str:
        """Redeem the code Entra sent back; the path the user was on before signing in."""
        flow, next_path = session.flow, session.next_path
        session.flow, session.next_path = None, "/"  # used once, whatever happens next
        if flow is None:
            raise SignInFailed("no sign-in is in progress in this browser")
        app = await self._msal()
        try:
            result: dict[str, Any] = await asyncio.to_thread(
                app.acquire_token_by_auth_code_flow, flow, dict(response)
            )
        except ValueError as error:  # state mismatch, a replayed or forged response
            raise SignInFailed(
                f"the sign-in response does not match this browser: {error}"
            ) from None
        except RuntimeError as error:  # MSAL's IdTokenError: issuer, audience or nonce
            raise SignInFailed(f"Entra's ID token was refused: {type(error).__name__}") from None
        except OSError as error:
            raise SignInFailed(f"Entra ID at {self.authority} is unreachable: {error}") from None
        if "error" in result:
            raise SignInFailed(f"{result['error']}: {result.get('error_description', '')}")
        claims: dict[str, Any] = result.get("id_token_claims", {})
        account_id = str(claims.get("oid") or claims.get("sub") or "")
        if not account_id:
            raise SignInFailed("Entra ID's answer names no user (no oid or sub claim)")
        session.account_id = account_id
        session.user_name = str(claims.get("preferred_username") or claims.get("name") or "")
        _keep_tokens(session, result)
        return next_path

    async def token(self, session: Session) -> str:
        """The signed-in user's access token for the API, renewed with the session's
        refresh token `RENEW_BEFORE` its expiry (the session then holds both new ones)."""
        if session.account_id is None:
            raise SignInRequired
        if session.access_token and time.time() < session.token_expires_at - RENEW_BEFORE:
            return session.access_token
        result = await self._renewed(session.refresh_token) if session.refresh_token else {}
        if "access_token" not in result:  # refused: expired, revoked, consent withdrawn
            session.account_id = session.access_token = session.refresh_token = None
            raise SignInRequired
        return _keep_tokens(session, result)

    async def _renewed(self, refresh_token: str) -> dict[str, Any]:
        app = await self._msal()
        try:
            result: dict[str, Any] = await asyncio.to_thread(
                app.acquire_token_by_refresh_token, refresh_token, self._scopes
            )
        except OSError as error:  # renewing needs Entra; signing in again would too
            raise EntraUnavailable(
                f"Entra ID at {self.authority} is unreachable, so your session cannot be "
                f"renewed right now; try again shortly ({type(error).__name__})"
            ) from None
        return result

    def sign_out_url(self, public_url: str) -> str:
        """The URL that signs the user out of Entra too, then comes back to `public_url`."""
        query = urlencode({"post_logout_redirect_uri": public_url})
        return f"{self.authority}/oauth2/v2.0/logout?{query}"

    async def aclose(self) -> None:
        """Close MSAL's connections to Entra (they are kept alive between sign-ins)."""
        if self._app is not None:
            self._app.http_client.close()


def _keep_tokens(session: Session, result: dict[str, Any]) -> str:
    """Put the tokens of Entra's answer in `session`; the access token."""
    access_token: str = result["access_token"]
    session.access_token = access_token
    session.token_expires_at = time.time() + float(result.get("expires_in", 0))
    session.refresh_token = result.get("refresh_token", session.refresh_token)
    return access_token


def entra_sign_in(settings: Settings) -> EntraSignIn:
    """The UI's sign-in from the settings; ConfigError naming what is missing."""
    authority, client_id = settings.sign_in_authority, settings.entra_ui_client_id
    secret, scope = settings.entra_ui_client_secret, settings.api_scope
    session_secret = settings.ui_session_secret
    problems = sign_in_problems(settings)
    if session_secret and len(session_secret.get_secret_value()) < MIN_SESSION_SECRET:
        problems.append(
            f"LIGHTNING_UI_SESSION_SECRET is too short to be a key (under {MIN_SESSION_SECRET} "
            "characters): make one with `python -c 'import secrets; "
            "print(secrets.token_urlsafe(32))'`"
        )
    if problems or not (authority and client_id and secret and scope and session_secret):
        raise ConfigError(problems)
    return EntraSignIn(
        authority=authority,
        client_id=client_id,
        client_secret=secret.get_secret_value(),
        scope=scope,
        session_secret=session_secret.get_secret_value(),
    )
