"""Azure-mode authentication against access tokens minted as Entra ID issues them (v1 and v2),
signed with a locally generated key set."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from lightning_api.app import create_app, entra_validator
from lightning_api.auth import JwksFetcher, TokenValidator, Unauthorized
from lightning_core.config import ConfigError, Mode, Settings, TokenVersion
from lightning_core.service import ServiceContext
from lightning_core.testing.entra_fake import EntraTokens, new_key

TENANT = "8c2b6a47-5c39-4d8a-9b0e-1f2a3b4c5d6e"
OTHER_TENANT = "0d4e2f61-93a7-4b1c-8e5d-6a7b8c9d0e1f"
API_CLIENT_ID = "3f1c9a2e-7b4d-4e6f-8a9b-0c1d2e3f4a5b"  # what v2 tokens carry as aud
IDENTIFIER_URI = "api://lightning-os-prod"  # what v1 tokens carry as aud
V2_ISSUER = f"https://login.microsoftonline.com/{TENANT}/v2.0"
V1_ISSUER = f"https://sts.windows.net/{TENANT}/"

SIGNING_KEY, STRANGER_KEY = new_key(), new_key()
V2 = EntraTokens(tenant=TENANT, audience=API_CLIENT_ID, version=2, key=SIGNING_KEY)
V1 = EntraTokens(tenant=TENANT, audience=IDENTIFIER_URI, version=1, key=SIGNING_KEY)
# What the API validates for a registration issuing each version: (issuer, audience).
EXPECTED = {2: (V2_ISSUER, API_CLIENT_ID), 1: (V1_ISSUER, IDENTIFIER_URI)}


def keys_of(tokens: EntraTokens) -> JwksFetcher:
    async def fetch() -> dict[str, Any]:
        return tokens.keys()

    return fetch


@asynccontextmanager
async def api_accepting(context: ServiceContext, version: int) -> AsyncIterator[httpx.AsyncClient]:
    """The API in azure mode, configured for the registration issuing `version` tokens."""
    azure = ServiceContext(
        context.settings.model_copy(update={"mode": Mode.AZURE}), context.storage, context.bus
    )
    issuer, audience = EXPECTED[version]
    validator = TokenValidator(
        issuer=issuer,
        audience=audience,
        version=TokenVersion(version),
        fetch_jwks=keys_of(V2),  # V1's too: Entra signs both versions with the same keys
    )
    transport = httpx.ASGITransport(app=create_app(azure, validator))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        yield client


@pytest.fixture
async def api(context: ServiceContext) -> AsyncIterator[httpx.AsyncClient]:
    async with api_accepting(context, 2) as client:
        yield client


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


@pytest.mark.parametrize(("accepted", "refused"), [(V2, V1), (V1, V2)])
async def test_the_configured_version_is_accepted_and_the_other_refused(
    context: ServiceContext, accepted: EntraTokens, refused: EntraTokens
) -> None:
    async with api_accepting(context, accepted.version) as api:
        answer = await api.post(
            "/api/events", json={"type": "note.added"}, headers=bearer(accepted.user("alice-oid"))
        )
        assert answer.status_code == 202
        assert answer.json()["event"]["user"] == "alice-oid"

        answer = await api.get("/api/events", headers=bearer(refused.user("alice-oid")))
        assert answer.status_code == 401
        assert answer.json()["detail"] == (
            f"token is not a v{accepted.version}.0 access token (ver '{refused.version}.0'): "
            f"this API's registration issues v{accepted.version}.0 tokens"
        )


OTHER_TENANT_V2 = EntraTokens(tenant=OTHER_TENANT, audience=API_CLIENT_ID, key=SIGNING_KEY)


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "a bearer token is required"),
        (bearer("not-a-jwt"), "malformed bearer token"),
        (bearer(V2.user("alice-oid", exp=1_700_000_000)), "token expired"),
        (
            bearer(V2.user("alice-oid", aud=IDENTIFIER_URI)),
            f"token is for another audience ('{IDENTIFIER_URI}', expected '{API_CLIENT_ID}')",
        ),
        (
            bearer(OTHER_TENANT_V2.user("alice-oid")),  # Entra signs every tenant's tokens alike
            f"token is from another issuer ('https://login.microsoftonline.com/{OTHER_TENANT}"
            f"/v2.0', expected '{V2_ISSUER}')",
        ),
        (bearer(V2.user("alice-oid", ver=None)), "token is not a v2.0 access token (ver None)"),
        (
            bearer(V2.user("alice-oid", scopes="User.Read")),
            "token lacks the delegated scope 'access_as_user' (scp 'User.Read')",
        ),
        (
            bearer(V2.app("ci-sp-oid", roles=())),
            "app-only token (no scp) lacks the app role 'access_as_application' in roles",
        ),
        (
            bearer(V2.app("ci-sp-oid", roles=("Tasks.Read",))),
            "app-only token (no scp) lacks the app role 'access_as_application' in roles",
        ),
        (
            bearer(EntraTokens(tenant=TENANT, audience=API_CLIENT_ID, key=STRANGER_KEY).user("a")),
            "invalid token: Signature verification failed",
        ),
        (
            bearer(EntraTokens(tenant=TENANT, audience=API_CLIENT_ID, key_id="k-new").user("a")),
            "token signed with an unknown key",
        ),
        (bearer(V2.user("", scopes="access_as_user")), "token names no user (no oid claim)"),
    ],
)
@pytest.mark.parametrize("method", ["GET", "POST"])  # POST: refused before its body is read
async def test_bad_tokens_are_refused_saying_why(
    api: httpx.AsyncClient, headers: dict[str, str], reason: str, method: str
) -> None:
    body = {"type": "note.added"} if method == "POST" else None
    response = await api.request(method, "/api/events", headers=headers, json=body)
    assert response.status_code == 401
    assert response.json()["detail"].startswith(reason)
    assert response.headers["www-authenticate"] == "Bearer"


async def test_a_user_token_acts_as_its_user_and_users_never_see_each_other(
    api: httpx.AsyncClient,
) -> None:
    alice, bob = bearer(V2.user("alice-oid")), bearer(V2.user("bob-oid", scopes="openid Foo"))
    created = await api.post("/api/events", json={"type": "note.added"}, headers=alice)
    assert created.status_code == 202
    assert created.json()["event"]["user"] == "alice-oid"

    alice_events = (await api.get("/api/events", headers=alice)).json()["items"]
    assert [item["event"]["id"] for item in alice_events] == [created.json()["event"]["id"]]
    bob_scoped = bearer(V2.user("bob-oid", scopes="User.Read access_as_user"))
    assert (await api.get("/api/events", headers=bob_scoped)).json()["items"] == []
    assert (await api.get("/api/events", headers=bob)).status_code == 401


async def test_an_app_token_with_the_app_role_acts_as_its_service_principal(
    api: httpx.AsyncClient,
) -> None:
    ci = bearer(V2.app("ci-sp-oid"))
    created = await api.post("/api/events", json={"type": "smoke.checked"}, headers=ci)
    assert created.status_code == 202
    assert created.json()["event"]["user"] == "ci-sp-oid"
    listed = (await api.get("/api/events", headers=ci)).json()["items"]
    assert [item["event"]["id"] for item in listed] == [created.json()["event"]["id"]]


async def test_the_health_probes_need_no_token(api: httpx.AsyncClient) -> None:
    assert (await api.get("/healthz")).status_code == 200
    assert (await api.get("/readyz")).status_code == 200


async def test_unknown_key_ids_do_not_refetch_the_key_set_on_every_request() -> None:
    fetches: list[int] = []

    async def fetch() -> dict[str, Any]:
        fetches.append(1)
        return V2.keys()

    validator = TokenValidator(issuer=V2_ISSUER, audience=API_CLIENT_ID, fetch_jwks=fetch)
    assert await validator.user(V2.user("alice-oid")) == "alice-oid"
    forged = EntraTokens(tenant=TENANT, audience=API_CLIENT_ID, key_id="forged")
    for _ in range(5):
        with pytest.raises(Unauthorized, match="unknown key"):
            await validator.user(forged.user("alice-oid"))
    assert len(fetches) == 1


def azure_settings(settings: Settings, **entra: object) -> Settings:
    return settings.model_copy(update={"mode": Mode.AZURE, **entra})


@pytest.mark.parametrize(
    ("entra", "expected"),
    [
        (
            {"entra_tenant_id": TENANT, "entra_audience": API_CLIENT_ID},
            (V2_ISSUER, API_CLIENT_ID, TokenVersion.V2, "access_as_user"),
        ),
        (
            {
                "entra_tenant_id": TENANT,
                "entra_audience": IDENTIFIER_URI,
                "entra_token_version": TokenVersion.V1,
                "entra_required_scope": "Events.Submit",
            },
            (V1_ISSUER, IDENTIFIER_URI, TokenVersion.V1, "Events.Submit"),
        ),
    ],
)
def test_the_api_validates_what_its_settings_say_the_registration_issues(
    settings: Settings, entra: dict[str, object], expected: tuple[str, str, TokenVersion, str]
) -> None:
    validator = entra_validator(azure_settings(settings, **entra))
    assert validator is not None
    assert (
        validator.issuer,
        validator.audience,
        validator.version,
        validator.required_scope,
    ) == expected


def test_azure_mode_without_entra_settings_refuses_to_start(settings: Settings) -> None:
    with pytest.raises(ConfigError, match=r"ENTRA_TENANT_ID is missing.*ENTRA_AUDIENCE is missing"):
        entra_validator(azure_settings(settings))


def test_a_v2_api_configured_with_an_identifier_uri_refuses_to_start(settings: Settings) -> None:
    misconfigured = azure_settings(settings, entra_tenant_id=TENANT, entra_audience=IDENTIFIER_URI)
    with pytest.raises(ConfigError, match=f"ENTRA_AUDIENCE='{IDENTIFIER_URI}' is not a client"):
        entra_validator(misconfigured)
