"""Schemathesis against the API's own OpenAPI schema: no 5xx, every response as documented.

The app runs on embedded providers (SQLite in a temporary directory, the memory bus),
connected in schemathesis's event loop through the app's lifespan: schemathesis serves
ASGI apps from a loop of its own, and providers belong to the loop they connected in.
Strings are generated without NUL characters or lone surrogates, which the API refuses by
design. It runs in azure mode with a local signing key, because the schema documents the bearer
token azure mode requires; schemathesis then also checks that requests without one,
or with a broken one, are refused.
"""

import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from lightning_api.app import create_app
from lightning_api.auth import TokenValidator
from lightning_core.bus.memory import MemoryBus
from lightning_core.config import Mode, load_settings
from lightning_core.service import ServiceContext
from lightning_core.storage.sqlite import SqliteStorage
from lightning_core.testing.entra_fake import EntraTokens

_workdir = Path(tempfile.mkdtemp(prefix="lightning-schema-"))
_settings = load_settings(
    LIGHTNING_MODE="embedded", LIGHTNING_SQLITE_PATH=str(_workdir / "lightning.db")
)
_storage = SqliteStorage(_settings.sqlite_path)
_bus = MemoryBus()
_tokens = EntraTokens(tenant="tenant-1", audience="00000000-0000-4000-8000-00000000a11e")


async def _jwks() -> dict[str, Any]:
    return _tokens.keys()


app = create_app(
    ServiceContext(_settings.model_copy(update={"mode": Mode.AZURE}), _storage, _bus),
    TokenValidator(issuer=_tokens.issuer, audience=_tokens.audience, fetch_jwks=_jwks),
)


@asynccontextmanager
async def _connected(_app: FastAPI) -> AsyncIterator[None]:
    async with _storage, _bus:
        yield


app.router.lifespan_context = _connected
schema = schemathesis.openapi.from_asgi("/openapi.json", app)
# The API refuses NUL characters and lone surrogates in every string (no store keeps them
# alike: lightning_api.door), which JSON Schema has no word for.
schema.config.generation.update(allow_x00=False, codec="utf-8")


@schema.auth()
class EntraToken:
    def get(self, _case: schemathesis.Case[Any], _ctx: schemathesis.AuthContext) -> str:
        return _tokens.user("alice")

    def set(self, case: schemathesis.Case[Any], token: str, _ctx: schemathesis.AuthContext) -> None:
        case.headers["Authorization"] = f"Bearer {token}"


@schema.exclude(path="/api/events/stream").parametrize()
@settings(
    max_examples=50,
    derandomize=True,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_conforms_to_its_schema(case: schemathesis.Case[Any]) -> None:
    # A continuation token is opaque (each storage provider has its own format), so the
    # schema cannot tell a forged one from a real one; the API answers a forged one 400.
    opaque_cursor = "continuation" in (case.query or {})
    case.call_and_validate(excluded_checks=[positive_data_acceptance] if opaque_cursor else None)
