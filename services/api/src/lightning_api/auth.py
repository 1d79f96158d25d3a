"""Who is calling in azure mode: the `oid` of an Entra ID access token (`TokenValidator`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import jwt

from lightning_core.config import API_APP_ROLE, API_DELEGATED_SCOPE, TokenVersion

JwksFetcher = Callable[[], Awaitable[dict[str, Any]]]
ALGORITHMS = ["RS256"]
LEEWAY_SECONDS = 60  # clock skew between Entra and us


class Unauthorized(Exception):
    """The request carries no acceptable token; the message says why (safe to return)."""


def http_jwks(url: str) -> JwksFetcher:
    async def fetch() -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=10.0) as client:
            response = await client.get(url)
            response.raise_for_status()
            keys: dict[str, Any] = response.json()
            return keys

    return fetch


class TokenValidator:
    """Accepts RS256 access tokens of `version` from `issuer` for `audience` that grant
    `required_scope` (`scp`) or, app-only, `app_role` (`roles`); signing keys are fetched
    again for an unknown key id at most once per `refresh_interval` seconds."""

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        fetch_jwks: JwksFetcher,
        version: TokenVersion = TokenVersion.V2,
        required_scope: str = API_DELEGATED_SCOPE,
        app_role: str = API_APP_ROLE,
        refresh_interval: float = 300.0,
    ) -> None:
        self.issuer = issuer
        self.audience = audience
        self.version = version
        self.required_scope = required_scope
        self.app_role = app_role
        self._fetch_jwks = fetch_jwks
        self._refresh_interval = refresh_interval
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()

    async def user(self, token: str) -> str:
        """The caller's object id, or Unauthorized saying what is wrong with the token."""
        try:
            key_id = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError:
            raise Unauthorized("malformed bearer token") from None
        claims = self._signed_claims(token, await self._key(key_id))
        self._check_issued_for_this_api(claims)
        self._check_grant(claims)
        caller = claims.get("oid")
        if not isinstance(caller, str) or not caller:
            raise Unauthorized("token names no user (no oid claim)")
        return caller

    def _signed_claims(self, token: str, key: jwt.PyJWK) -> dict[str, Any]:
        """The claims of a token signed with `key` and within its lifetime (issuer and
        audience are checked afterwards, so a refusal can say which is wrong)."""
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=ALGORITHMS,
                leeway=LEEWAY_SECONDS,
                options={
                    "require": ["exp", "iss", "aud"],
                    "verify_iss": False,
                    "verify_aud": False,
                },
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("token expired") from None
        except jwt.PyJWTError as error:
            raise Unauthorized(f"invalid token: {error}") from None
        return claims

    def _check_issued_for_this_api(self, claims: dict[str, Any]) -> None:
        version = f"{self.version}.0"
        if claims.get("ver") != version:
            raise Unauthorized(
                f"token is not a v{version} access token (ver {claims.get('ver')!r}): this "
                f"API's registration issues v{version} tokens"
            )
        if claims["iss"] != self.issuer:
            raise Unauthorized(
                f"token is from another issuer ({claims['iss']!r}, expected {self.issuer!r})"
            )
        if claims["aud"] != self.audience:
            raise Unauthorized(
                f"token is for another audience ({claims['aud']!r}, expected {self.audience!r})"
            )

    def _check_grant(self, claims: dict[str, Any]) -> None:
        """A user's token must carry the API's delegated scope; an app-only one its app role."""
        scopes = claims.get("scp")
        if scopes is not None:
            if not isinstance(scopes, str) or self.required_scope not in scopes.split():
                raise Unauthorized(
                    f"token lacks the delegated scope {self.required_scope!r} (scp {scopes!r})"
                )
            return
        roles = claims.get("roles")
        if not isinstance(roles, list) or self.app_role not in roles:
            raise Unauthorized(
                f"app-only token (no scp) lacks the app role {self.app_role!r} in roles"
            )

    async def _key(self, key_id: object) -> jwt.PyJWK:
        if not isinstance(key_id, str):
            raise Unauthorized("token has no key id")
        if key_id not in self._keys:
            await self._refresh()
        try:
            return self._keys[key_id]
        except KeyError:
            raise Unauthorized("token signed with an unknown key") from None

    async def _refresh(self) -> None:
        async with self._lock:
            if time.monotonic() - self._fetched_at < self._refresh_interval:
                return
            try:
                document = await self._fetch_jwks()
            except (httpx.HTTPError, ValueError) as error:
                raise Unauthorized(f"signing keys unavailable: {error}") from None
            self._fetched_at = time.monotonic()
            self._keys = {
                key["kid"]: jwt.PyJWK(key, algorithm="RS256")
                for key in document.get("keys", [])
                if key.get("kid") and key.get("kty") == "RSA"
            }
