"""A local stand-in for Entra ID, strict where the real one is: tests sign users in against
it without a tenant. It is an ASGI app with Entra's endpoints under `/<tenant>`:

- `v2.0/.well-known/openid-configuration` (what MSAL discovers),
- `oauth2/v2.0/authorize`: a page with a "Sign in as ..." button per user; it refuses a
  request without a PKCE challenge (S256), a nonce or a redirect URI, or from an unknown
  client,
- `oauth2/v2.0/token`: redeems a code once, only with the client's secret, the same
  redirect URI and the PKCE verifier matching the challenge; also refresh tokens,
- `oauth2/v2.0/logout` and `discovery/v2.0/keys` (the JWKS the API checks tokens with).

Access tokens are RS256 JWTs for the API's audience, signed with a locally generated key,
with the claims Entra ID puts in them (`EntraTokens` mints them for the v1 and v2 formats,
for a user or for an app calling on its own). `exchanges` records every token request for
the tests to inspect.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from markupsafe import escape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

KEY_ID = "fake-entra-key"
# The API's registration as the tests configure it (the scope and app role match what
# lightning_core.config declares; written out here so a renamed constant fails a test).
DELEGATED_SCOPE = "access_as_user"
APP_ROLE = "access_as_application"


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwks(*keys: tuple[str, rsa.RSAPrivateKey]) -> dict[str, Any]:
    """The public half of `keys` (key id, private key) as a JSON Web Key Set."""
    return {
        "keys": [
            {**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key())), "kid": kid}
            for kid, key in keys
        ]
    }


def self_signed_tls(directory: Path, host: str = "127.0.0.1") -> tuple[Path, Path]:
    """A certificate for `host` (an IP address) that is its own CA, and its key: (cert, key)."""
    key = new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.now(UTC)
    public = key.public_key()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "tls-cert.pem", directory / "tls-key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _opaque() -> str:
    """A value Entra puts in `aio`, `rh` and `uti`: meaningful only to Entra."""
    return secrets.token_urlsafe(24)


@dataclass(frozen=True)
class EntraTokens:
    """Access tokens Entra ID issues for one API registration, claims and all.

    `version` is the registration's `requestedAccessTokenVersion`: v2 tokens carry the API's
    client id as `aud` and `https://login.microsoftonline.com/<tenant>/v2.0` as `iss`; v1
    tokens the identifier URI the client asked for and `https://sts.windows.net/<tenant>/`.
    Keyword `changes` replace claims; a change to None removes the claim.
    """

    tenant: str
    audience: str
    version: int = 2
    key: rsa.RSAPrivateKey = field(default_factory=new_key)
    key_id: str = KEY_ID
    issuer_override: str | None = None  # the stand-in's own address instead of Entra's
    lifetime: int = 3600

    @property
    def issuer(self) -> str:
        if self.issuer_override:
            return self.issuer_override
        if self.version == 1:
            return f"https://sts.windows.net/{self.tenant}/"
        return f"https://login.microsoftonline.com/{self.tenant}/v2.0"

    def keys(self) -> dict[str, Any]:
        return jwks((self.key_id, self.key))

    def user(
        self,
        oid: str,
        *,
        username: str = "alice@contoso.test",
        client_id: str = "lightning-ui-client-id",
        scopes: str = DELEGATED_SCOPE,
        **changes: Any,
    ) -> str:
        """A delegated token: the user `oid` signed in to the app `client_id`."""
        name = username.partition("@")[0].title()
        # `sub` is pairwise: the same user has another one in each API's tokens.
        pairwise = _b64url(hashlib.sha256(f"{oid}:{self.audience}".encode()).digest())
        if self.version == 1:
            person = {
                "acr": "1",
                "amr": ["pwd", "mfa"],
                "appid": client_id,
                "appidacr": "1",
                "name": name,
                "unique_name": username,
                "upn": username,
            }
        else:
            person = {"azp": client_id, "azpacr": "1", "name": name, "preferred_username": username}
        return self._sign({**person, "oid": oid, "sub": pairwise, "scp": scopes}, changes)

    def app(
        self,
        oid: str,
        *,
        client_id: str = "lightning-ci-client-id",
        roles: Sequence[str] = (APP_ROLE,),
        **changes: Any,
    ) -> str:
        """An app-only token (client credentials): the service principal `oid` of `client_id`
        calling on its own, with the app roles assigned to it and no `scp`."""
        if self.version == 1:
            caller = {"appid": client_id, "appidacr": "1", "idp": self.issuer}
        else:
            caller = {"azp": client_id, "azpacr": "1"}
        return self._sign({**caller, "oid": oid, "sub": oid, "roles": list(roles)}, changes)

    def _sign(self, specific: dict[str, Any], changes: dict[str, Any]) -> str:
        now = int(time.time())
        claims = {
            "aud": self.audience,
            "iss": self.issuer,
            "iat": now,
            "nbf": now,
            "exp": now + self.lifetime,
            "aio": _opaque(),
            "rh": _opaque(),
            "tid": self.tenant,
            "uti": _opaque(),
            "ver": f"{self.version}.0",
            **specific,
            **changes,
        }
        headers = {"kid": self.key_id, **({"x5t": self.key_id} if self.version == 1 else {})}
        present = {name: value for name, value in claims.items() if value is not None}
        return jwt.encode(present, self.key, algorithm="RS256", headers=headers)


@dataclass
class Grant:
    """What an approved authorize request allows the token endpoint to issue."""

    user: str
    redirect_uri: str
    scope: str
    nonce: str | None
    code_challenge: str


@dataclass
class FakeEntra:
    base_url: str  # where this app is served, e.g. https://127.0.0.1:8443
    client_id: str
    client_secret: str
    audience: str  # the API's: access tokens are issued for it
    users: dict[str, str]  # object id -> user name
    tenant: str = "tenant-1"
    token_lifetime: int = 3600
    key: rsa.RSAPrivateKey = field(default_factory=new_key)
    exchanges: list[dict[str, str]] = field(default_factory=list)
    _requests: dict[str, dict[str, str]] = field(default_factory=dict)
    _codes: dict[str, Grant] = field(default_factory=dict)
    _refresh_tokens: dict[str, Grant] = field(default_factory=dict)

    @property
    def authority(self) -> str:
        return f"{self.base_url}/{self.tenant}"

    @property
    def issuer(self) -> str:
        return f"{self.authority}/v2.0"

    def access_token(self, user: str) -> str:
        """A v2 token for the API, as the UI's sign-in receives it for `user`."""
        tokens = EntraTokens(
            tenant=self.tenant,
            audience=self.audience,
            key=self.key,
            issuer_override=self.issuer,
            lifetime=self.token_lifetime,
        )
        return tokens.user(user, username=self.users.get(user, user), client_id=self.client_id)

    def app(self) -> Starlette:
        prefix = f"/{self.tenant}"
        return Starlette(
            routes=[
                Route(f"{prefix}/v2.0/.well-known/openid-configuration", self._discovery),
                Route(f"{prefix}/oauth2/v2.0/authorize", self._authorize),
                Route(f"{prefix}/oauth2/v2.0/approve", self._approve, methods=["POST"]),
                Route(f"{prefix}/oauth2/v2.0/token", self._token, methods=["POST"]),
                Route(f"{prefix}/oauth2/v2.0/logout", self._logout),
                Route(f"{prefix}/discovery/v2.0/keys", self._keys),
            ]
        )

    async def _discovery(self, _request: Request) -> Response:
        endpoints = f"{self.authority}/oauth2/v2.0"
        return JSONResponse(
            {
                "issuer": self.issuer,
                "authorization_endpoint": f"{endpoints}/authorize",
                "token_endpoint": f"{endpoints}/token",
                "end_session_endpoint": f"{endpoints}/logout",
                "jwks_uri": f"{self.authority}/discovery/v2.0/keys",
                "response_types_supported": ["code"],
                "code_challenge_methods_supported": ["S256"],
            }
        )

    async def _keys(self, _request: Request) -> Response:
        return JSONResponse(jwks((KEY_ID, self.key)))

    async def _authorize(self, request: Request) -> Response:
        query = dict(request.query_params)
        problem = (
            "unknown client_id"
            if query.get("client_id") != self.client_id
            else "response_type must be code"
            if query.get("response_type") != "code"
            else "PKCE is required: code_challenge with code_challenge_method=S256"
            if query.get("code_challenge_method") != "S256" or not query.get("code_challenge")
            else "redirect_uri is missing"
            if not query.get("redirect_uri")
            else "nonce is missing"
            if not query.get("nonce")
            else None
        )
        if problem:
            return HTMLResponse(f"<h1>AADSTS fake: {escape(problem)}</h1>", 400)
        request_id = secrets.token_urlsafe(8)
        self._requests[request_id] = query
        buttons = "".join(
            f'<form method="post" action="approve"><input type="hidden" name="request" '
            f'value="{request_id}"><input type="hidden" name="user" value="{escape(oid)}">'
            f"<button>Sign in as {escape(name)}</button></form>"
            for oid, name in self.users.items()
        )
        return HTMLResponse(f"<!doctype html><title>Sign in</title><h1>Sign in</h1>{buttons}")

    async def _approve(self, request: Request) -> Response:
        form = await _form(request)
        query = self._requests.pop(form["request"])
        code = secrets.token_urlsafe(16)
        self._codes[code] = Grant(
            user=form["user"],
            redirect_uri=query["redirect_uri"],
            scope=query.get("scope", ""),
            nonce=query.get("nonce"),
            code_challenge=query["code_challenge"],
        )
        answer = urlencode({"code": code, "state": query.get("state", "")})
        return RedirectResponse(f"{query['redirect_uri']}?{answer}", status_code=303)

    async def _token(self, request: Request) -> Response:
        form = await _form(request)
        self.exchanges.append(form)
        if form.get("client_id") != self.client_id or form.get("client_secret") != (
            self.client_secret
        ):
            return _refused("invalid_client", "wrong client id or secret", 401)
        redeem = {"authorization_code": self._code, "refresh_token": self._refresh}
        grant_type = form.get("grant_type", "")
        if grant_type not in redeem:
            return _refused("unsupported_grant_type", grant_type)
        grant = redeem[grant_type](form)
        if isinstance(grant, str):
            return _refused("invalid_grant", grant)
        return JSONResponse(self._tokens(grant))

    def _code(self, form: dict[str, str]) -> Grant | str:
        """The grant a code stands for, or why it is refused."""
        grant = self._codes.pop(form.get("code", ""), None)
        if grant is None:
            return "the code is unknown or was used already"
        if form.get("redirect_uri") != grant.redirect_uri:
            return "redirect_uri differs from the authorize one"
        verifier = form.get("code_verifier", "")
        if _b64url(hashlib.sha256(verifier.encode()).digest()) != grant.code_challenge:
            return "PKCE code_verifier does not match"
        return grant

    def _refresh(self, form: dict[str, str]) -> Grant | str:
        grant = self._refresh_tokens.pop(form.get("refresh_token", ""), None)
        return grant or "unknown refresh token"

    def _tokens(self, grant: Grant) -> dict[str, Any]:
        refresh_token = secrets.token_urlsafe(24)
        self._refresh_tokens[refresh_token] = grant
        now = int(time.time())
        id_claims = {
            "iss": self.issuer,
            "aud": self.client_id,
            "oid": grant.user,
            "sub": f"sub-{grant.user}",
            "tid": self.tenant,
            "preferred_username": self.users[grant.user],
            "name": self.users[grant.user],
            "iat": now,
            "exp": now + 3600,
            "ver": "2.0",
            **({"nonce": grant.nonce} if grant.nonce else {}),
        }
        client_info = {"uid": grant.user, "utid": self.tenant}
        return {
            "token_type": "Bearer",
            "scope": grant.scope,
            "expires_in": self.token_lifetime,
            "access_token": self.access_token(grant.user),
            "refresh_token": refresh_token,
            "id_token": jwt.encode(id_claims, self.key, algorithm="RS256"),
            "client_info": _b64url(json.dumps(client_info).encode()),
        }

    async def _logout(self, request: Request) -> Response:
        return RedirectResponse(request.query_params["post_logout_redirect_uri"], 303)


async def _form(request: Request) -> dict[str, str]:
    """An urlencoded body (what browsers and MSAL send) without python-multipart."""
    return dict(parse_qsl((await request.body()).decode()))


def _refused(error: str, description: str, status_code: int = 400) -> Response:
    return JSONResponse({"error": error, "error_description": description}, status_code)
