"""Azure-mode authentication with a locally generated Entra-like key set."""

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from entra_fake import jwks, new_key

from lightning_api.app import create_app, entra_validator
from lightning_api.auth import TokenValidator, Unauthorized
from lightning_core.config import ConfigError, Mode
from lightning_core.service import ServiceContext

ISSUER = "https://login.microsoftonline.com/tenant-1/v2.0"
AUDIENCE = "api://lightning-os"


SIGNING_KEY, STRANGER_KEY = new_key(), new_key()


def token(
    user: str = "alice-oid",
    *,
    key: rsa.RSAPrivateKey = SIGNING_KEY,
    kid: str = "k1",
    **claims: Any,
) -> str:
    now = int(time.time())
    payload = {"iss": ISSUER, "aud": AUDIENCE, "oid": user, "iat": now, "exp": now + 600}
    return jwt.encode({**payload, **claims}, key, algorithm="RS256", headers={"kid": kid})


@pytest.fixture
async def api(context: ServiceContext) -> AsyncIterator[httpx.AsyncClient]:
    async def fetch() -> dict[str, Any]:
        return jwks(("k1", SIGNING_KEY))

    azure = ServiceContext(
        context.settings.model_copy(update={"mode": Mode.AZURE}), context.storage, context.bus
    )
    validator = TokenValidator(issuer=ISSUER, audience=AUDIENCE, fetch_jwks=fetch)
    transport = httpx.ASGITransport(app=create_app(azure, validator))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        yield client


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "a bearer token is required"),
        (bearer("not-a-jwt"), "malformed bearer token"),
        (bearer(token(exp=int(time.time()) - 3600)), "token expired"),
        (bearer(token(aud="api://someone-else")), "token is for another audience"),
        (bearer(token(iss="https://login.microsoftonline.com/evil/v2.0")), "another issuer"),
        (bearer(token(key=STRANGER_KEY)), "invalid token: Signature verification failed"),
        (bearer(token(kid="k-unknown", key=STRANGER_KEY)), "signed with an unknown key"),
        (bearer(token(oid="")), "names no user"),
    ],
)
@pytest.mark.parametrize("method", ["GET", "POST"])  # POST is a DirectRoute (direct.py)
async def test_bad_tokens_are_refused(
    api: httpx.AsyncClient, headers: dict[str, str], reason: str, method: str
) -> None:
    body = {"type": "note.added"} if method == "POST" else None
    response = await api.request(method, "/api/events", headers=headers, json=body)
    assert response.status_code == 401
    assert reason in response.json()["detail"]
    assert response.headers["www-authenticate"] == "Bearer"


async def test_a_valid_token_acts_as_its_user_and_users_never_see_each_other(
    api: httpx.AsyncClient,
) -> None:
    alice, bob = bearer(token("alice-oid")), bearer(token("bob-oid"))
    created = await api.post("/api/events", json={"type": "note.added"}, headers=alice)
    assert created.status_code == 202
    assert created.json()["event"]["user"] == "alice-oid"

    alice_events = (await api.get("/api/events", headers=alice)).json()["items"]
    bob_events = (await api.get("/api/events", headers=bob)).json()["items"]
    assert [item["event"]["id"] for item in alice_events] == [created.json()["event"]["id"]]
    assert bob_events == []


async def test_the_health_probes_need_no_token(api: httpx.AsyncClient) -> None:
    assert (await api.get("/healthz")).status_code == 200
    assert (await api.get("/readyz")).status_code == 200


async def test_unknown_key_ids_do_not_refetch_the_key_set_on_every_request() -> None:
    fetches: list[int] = []

    async def fetch() -> dict[str, Any]:
        fetches.append(1)
        return jwks(("k1", SIGNING_KEY))

    validator = TokenValidator(issuer=ISSUER, audience=AUDIENCE, fetch_jwks=fetch)
    assert await validator.user(token()) == "alice-oid"
    for _ in range(5):
        with pytest.raises(Unauthorized, match="unknown key"):
            await validator.user(token(kid="forged"))
    assert len(fetches) == 1


def test_azure_mode_without_entra_settings_refuses_to_start(context: ServiceContext) -> None:
    azure = context.settings.model_copy(update={"mode": Mode.AZURE})
    with pytest.raises(ConfigError, match=r"ENTRA_TENANT_ID is missing.*ENTRA_AUDIENCE is missing"):
        entra_validator(azure)
