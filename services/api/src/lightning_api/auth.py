"""Who is calling: Entra ID access tokens in azure mode, the dev identity elsewhere.

A token is accepted only if its RS256 signature verifies against a key the issuer
publishes (JWKS), it was issued by the configured issuer for this API's audience, and it
has not expired. The user is the token's `oid` (the Entra object id, stable across apps),
falling back to `sub`. Keys are cached and fetched again when a token names an unknown
key id (Entra rotates keys), at most once per `refresh_interval`, so a flood of forged
key ids cannot turn the API into a JWKS hammer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import jwt

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
    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        fetch_jwks: JwksFetcher,
        refresh_interval: float = 300.0,
    ) -> None:
        self.issuer = issuer
        self.audience = audience
        self._fetch_jwks = fetch_jwks
        self._refresh_interval = refresh_interval
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()

    async def user(self, token: str) -> str:
        try:
            key_id = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError:
            raise Unauthorized("malformed bearer token") from None
        key = await self._key(key_id)
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=ALGORITHMS,
                audience=self.audience,
                issuer=self.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("token expired") from None
        except jwt.InvalidAudienceError:
            raise Unauthorized("token is for another audience") from None
        except jwt.InvalidIssuerError:
            raise Unauthorized("token is from another issuer") from None
        except jwt.PyJWTError as error:
            raise Unauthorized(f"invalid token: {error}") from None
        user = claims.get("oid") or claims.get("sub")
        if not isinstance(user, str) or not user:
            raise Unauthorized("token names no user (no oid or sub claim)")
        return user

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
