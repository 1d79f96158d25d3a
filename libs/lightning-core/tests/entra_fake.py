"""A local stand-in for Entra ID, strict where the real one is: tests sign users in against
it without a tenant. It is an ASGI app with Entra's endpoints under `/<tenant>`:

- `v2.0/.well-known/openid-configuration` (what MSAL discovers),
- `oauth2/v2.0/authorize`: a page with a "Sign in as ..." button per user; it refuses a
  request without a PKCE challenge (S256), a nonce or a redirect URI, or from an unknown
  client,
- `oauth2/v2.0/token`: redeems a code once, only with the client's secret, the same
  redirect URI and the PKCE verifier matching the challenge; also refresh tokens,
- `oauth2/v2.0/logout` and `discovery/v2.0/keys` (the JWKS the API checks tokens with).

Access tokens are RS256 JWTs for the API's audience, signed with a locally generated key.
`exchanges` records every token request for the tests to inspect.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import secrets
import time
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
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            "oid": user,
            "tid": self.tenant,
            "scp": "access_as_user",
            "iat": now,
            "exp": now + self.token_lifetime,
        }
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": KEY_ID})

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
