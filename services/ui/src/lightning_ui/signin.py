"""Entra ID sign-in for the UI in azure mode: the authorization code flow with PKCE (MSAL).

The UI is a confidential web app. MSAL builds the authorize URL with a PKCE challenge, a
state and a nonce; the browser comes back to `/auth/callback` with a code, which MSAL
redeems (with the PKCE verifier and the client secret) for the user's access token to the
API. Tokens never reach the browser: MSAL's cache in this process keeps them per account
and refreshes them; the session (sessions.py) only remembers which account is whose.

The code comes back in the callback's query (response_mode=query), not in a form post
as MSAL suggests: a cross-site form post carries only SameSite=None cookies, which every
button of the UI would then be open to forged requests with, while a code in a URL is
of no use without the PKCE verifier and the client secret, which never leave this process.

MSAL is synchronous (requests), so every call that may go to Entra runs in a thread.
Its first call discovers the authority (an HTTP round trip), so that happens on first
use, not at start: a UI whose Entra is unreachable still starts and says so per request.
"""

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

# The choice above, made on purpose: MSAL warns about it on every sign-in otherwise.
warnings.filterwarnings("ignore", "response_mode='form_post' is recommended", UserWarning)


RENEW_BEFORE = 300.0  # seconds before expiry a token is renewed (MSAL renews then too)


class SignInRequired(Exception):
    """The request has no signed-in user (or the user's token cannot be renewed)."""


class SignInFailed(Exception):
    """Entra refused or could not complete a sign-in; the message is safe to show."""


class EntraUnavailable(Exception):
    """Entra cannot be reached to renew a token: the user stays signed in and tries again."""


class EntraSignIn:
    def __init__(
        self,
        *,
        authority: str,
        client_id: str,
        client_secret: str,
        scope: str,
        verify: bool | str = True,
    ) -> None:
        """`verify`: TLS verification for the calls to Entra (a CA bundle path in tests)."""
        self.authority = authority
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
                        # The authority is our own setting, never a caller's: no need to
                        # ask login.microsoftonline.com whether it is a known one.
                        instance_discovery=False,
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
        session.flow, session.next_path = flow, next_path
        url: str = flow["auth_uri"]
        return url

    async def finish(self, session: Session, response: Mapping[str, str]) -> str:
        """Redeem the code Entra sent back; the path the user was on before signing in."""
        flow, session.flow = session.flow, None
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
        session.account_id = str(claims.get("oid") or claims.get("sub") or "") or None
        if session.account_id is None:
            raise SignInFailed("Entra ID's answer names no user (no oid or sub claim)")
        session.user_name = str(claims.get("preferred_username") or claims.get("name") or "")
        return session.next_path

    async def token(self, session: Session) -> str:
        """The signed-in user's access token for the API, renewed by MSAL when due.

        The session keeps the token it was last given until `RENEW_BEFORE` its expiry
        (MSAL's own margin), so the pages a browser polls every second or so do not each
        cost two thread hops into MSAL.
        """
        if session.account_id is None:
            raise SignInRequired
        if session.access_token and time.time() < session.token_expires_at - RENEW_BEFORE:
            return session.access_token
        app = await self._msal()
        account = await self._account(app, session.account_id)
        try:
            result = await asyncio.to_thread(app.acquire_token_silent, self._scopes, account)
        except OSError as error:  # renewing needs Entra; signing in again would too
            raise EntraUnavailable(
                f"Entra ID at {self.authority} is unreachable, so your session cannot be "
                f"renewed right now; try again shortly ({type(error).__name__})"
            ) from None
        if not result or "access_token" not in result:
            session.account_id = None
            raise SignInRequired
        access_token: str = result["access_token"]
        session.access_token = access_token
        session.token_expires_at = time.time() + float(result.get("expires_in", 0))
        return access_token

    async def sign_out(self, session: Session, public_url: str) -> str:
        """Forget the user's tokens here; the URL that signs them out of Entra too."""
        if session.account_id is not None:
            app = await self._msal()
            account = await self._account(app, session.account_id)
            if account is not None:
                await asyncio.to_thread(app.remove_account, account)
        session.account_id, session.access_token = None, None
        query = urlencode({"post_logout_redirect_uri": public_url})
        return f"{self.authority}/oauth2/v2.0/logout?{query}"

    def forget(self, account_id: str) -> None:
        """Drop an account's tokens from MSAL's cache: its last session is gone. (In-memory
        work on MSAL's locked cache, no call to Entra, so it runs right here.)"""
        if self._app is None:
            return
        for account in self._app.get_accounts():
            if account["local_account_id"] == account_id:
                self._app.remove_account(account)

    async def aclose(self) -> None:
        """Close MSAL's connections to Entra (they are kept alive between sign-ins)."""
        if self._app is not None:
            self._app.http_client.close()

    @staticmethod
    async def _account(
        app: msal.ConfidentialClientApplication, account_id: str
    ) -> dict[str, Any] | None:
        accounts: list[dict[str, Any]] = await asyncio.to_thread(app.get_accounts)
        return next((a for a in accounts if a["local_account_id"] == account_id), None)


def entra_sign_in(settings: Settings) -> EntraSignIn:
    """The UI's sign-in from the settings; ConfigError naming what is missing."""
    authority, client_id = settings.sign_in_authority, settings.entra_ui_client_id
    secret, scope = settings.entra_ui_client_secret, settings.api_scope
    problems = sign_in_problems(settings)
    if problems or not (authority and client_id and secret and scope):
        raise ConfigError(problems)
    return EntraSignIn(
        authority=authority,
        client_id=client_id,
        client_secret=secret.get_secret_value(),
        scope=scope,
    )
