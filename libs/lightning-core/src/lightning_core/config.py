"""One typed settings object for every service, read from the environment and .env files;
`load_settings` reports every problem of a combination in one ConfigError.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum
from pathlib import Path
from typing import Annotated
from uuid import UUID

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from lightning_core.topology import service_needs


class Mode(StrEnum):
    EMBEDDED = "embedded"
    LOCAL = "local"
    AZURE = "azure"


class StorageProvider(StrEnum):
    SQLITE = "sqlite"
    POSTGRES = "postgres"
    COSMOS = "cosmos"


class BusProvider(StrEnum):
    MEMORY = "memory"
    REDIS = "redis"
    RABBITMQ = "rabbitmq"
    SERVICEBUS = "servicebus"


DEFAULT_PROVIDERS: dict[Mode, tuple[StorageProvider, BusProvider]] = {
    Mode.EMBEDDED: (StorageProvider.SQLITE, BusProvider.MEMORY),
    Mode.LOCAL: (StorageProvider.POSTGRES, BusProvider.REDIS),
    Mode.AZURE: (StorageProvider.COSMOS, BusProvider.SERVICEBUS),
}

# Azure mode runs on managed services only: a laptop-only provider there is a misconfiguration.
LOCAL_ONLY_PROVIDERS: frozenset[str] = frozenset({StorageProvider.SQLITE, BusProvider.MEMORY})

# The API registration's delegated scope (a user's token) and app role (an app-only token).
API_DELEGATED_SCOPE = "access_as_user"
API_APP_ROLE = "access_as_application"


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


class TokenVersion(IntEnum):
    """The access token version the API's registration issues (`requestedAccessTokenVersion`)."""

    V1 = 1
    V2 = 2


Port = Annotated[int, Field(ge=1, le=65535)]


def entra_token_issuer(tenant_id: str, version: TokenVersion) -> str:
    """The `iss` of the access tokens Entra ID (public cloud) issues for a tenant's API."""
    if version is TokenVersion.V1:
        return f"https://sts.windows.net/{tenant_id}/"
    return f"https://login.microsoftonline.com/{tenant_id}/v2.0"


class ConfigError(Exception):
    """The settings cannot start a service; the message names every bad setting and its fix."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(
            "Invalid Lightning OS configuration: "
            + "; ".join(problems)
            + ". Fix the environment or .env file (templates: .env.local, .env.azure)."
        )


class Settings(BaseSettings):
    """Everything a Lightning OS process reads from its environment."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        frozen=True,
    )

    mode: Mode = Field(default=Mode.EMBEDDED, alias="LIGHTNING_MODE")
    storage_provider: StorageProvider | None = Field(
        default=None, alias="LIGHTNING_STORAGE_PROVIDER"
    )
    event_bus_provider: BusProvider | None = Field(
        default=None, alias="LIGHTNING_EVENT_BUS_PROVIDER"
    )
    service_type: str = Field(default="api", alias="SERVICE_TYPE")

    sqlite_path: Path = Field(default=Path("data/lightning.db"), alias="LIGHTNING_SQLITE_PATH")
    database_url: str | None = Field(default=None, alias="DATABASE_URL")
    redis_url: str | None = Field(default=None, alias="REDIS_URL")
    rabbitmq_url: str | None = Field(default=None, alias="RABBITMQ_URL")
    cosmos_connection_string: str | None = Field(default=None, alias="COSMOS_CONNECTION_STRING")
    cosmos_endpoint: str | None = Field(default=None, alias="COSMOS_ENDPOINT")
    service_bus_connection_string: str | None = Field(
        default=None, alias="SERVICE_BUS_CONNECTION_STRING"
    )
    service_bus_namespace: str | None = Field(default=None, alias="SERVICE_BUS_NAMESPACE")
    cosmos_database: str = Field(default="lightning", min_length=1, alias="COSMOS_DATABASE")
    bus_namespace: str = Field(
        default="lightning",
        pattern=r"^[a-z][a-z0-9-]{0,39}$",
        alias="LIGHTNING_BUS_NAMESPACE",
        description="Prefix of every stream, exchange, queue and topic the bus creates",
    )
    bus_max_attempts: int = Field(default=5, ge=1, le=100, alias="LIGHTNING_BUS_MAX_ATTEMPTS")

    entra_tenant_id: str | None = Field(default=None, alias="ENTRA_TENANT_ID")
    entra_audience: str | None = Field(default=None, alias="ENTRA_AUDIENCE")
    entra_issuer: str | None = Field(default=None, alias="ENTRA_ISSUER")
    entra_jwks_url: str | None = Field(default=None, alias="ENTRA_JWKS_URL")
    entra_token_version: TokenVersion = Field(default=TokenVersion.V2, alias="ENTRA_TOKEN_VERSION")
    entra_required_scope: str = Field(
        default=API_DELEGATED_SCOPE, min_length=1, alias="ENTRA_REQUIRED_SCOPE"
    )
    entra_authority: str | None = Field(default=None, alias="ENTRA_AUTHORITY")
    entra_ui_client_id: str | None = Field(default=None, alias="ENTRA_UI_CLIENT_ID")
    entra_ui_client_secret: SecretStr | None = Field(default=None, alias="ENTRA_UI_CLIENT_SECRET")
    entra_api_scope: str | None = Field(default=None, alias="ENTRA_API_SCOPE")
    ui_public_url: str | None = Field(default=None, alias="LIGHTNING_UI_PUBLIC_URL")
    ui_session_secret: SecretStr | None = Field(default=None, alias="LIGHTNING_UI_SESSION_SECRET")

    webhook_allowed_origins: str = Field(default="", alias="LIGHTNING_WEBHOOK_ALLOWED_ORIGINS")
    webhook_deadline_seconds: float = Field(
        default=10.0, gt=0, le=300, alias="LIGHTNING_WEBHOOK_DEADLINE_SECONDS"
    )
    webhook_max_response_bytes: int = Field(
        default=64 * 1024, ge=0, alias="LIGHTNING_WEBHOOK_MAX_RESPONSE_BYTES"
    )

    # What one client may ask of the services (hostile-input limits).
    max_request_bytes: int = Field(
        default=1024 * 1024, ge=1024, alias="LIGHTNING_MAX_REQUEST_BYTES"
    )
    publish_timeout_seconds: float = Field(
        default=5.0, gt=0, le=120, alias="LIGHTNING_PUBLISH_TIMEOUT_SECONDS"
    )
    max_instructions_per_user: int = Field(
        default=100, ge=1, alias="LIGHTNING_MAX_INSTRUCTIONS_PER_USER"
    )
    # In total, through every generation of follow-ups.
    max_follow_ups_per_event: int = Field(
        default=100, ge=0, alias="LIGHTNING_MAX_FOLLOW_UPS_PER_EVENT"
    )
    # Accepted events still `received` after this long are published again.
    republish_after_seconds: float = Field(
        default=120.0, gt=0, alias="LIGHTNING_REPUBLISH_AFTER_SECONDS"
    )
    allowed_hosts: str = Field(
        default="",
        alias="LIGHTNING_ALLOWED_HOSTS",
        description="Comma-separated Host names the services answer; empty: the mode's default",
    )
    max_connections: int = Field(default=1000, ge=1, alias="LIGHTNING_MAX_CONNECTIONS")

    processor_concurrency: int = Field(
        default=32, ge=1, le=1000, alias="LIGHTNING_PROCESSOR_CONCURRENCY"
    )
    long_task_concurrency: int = Field(
        default=16, ge=1, le=1000, alias="LIGHTNING_LONG_TASK_CONCURRENCY"
    )
    max_backlog: int = Field(
        default=10_000,
        ge=1,
        alias="LIGHTNING_MAX_BACKLOG",
        description="Events waiting for the processor past which POST /api/events answers 503",
    )
    max_batch_events: int = Field(default=100, ge=1, le=1000, alias="LIGHTNING_MAX_BATCH_EVENTS")
    max_streams_per_user: int = Field(default=10, ge=1, alias="LIGHTNING_MAX_STREAMS_PER_USER")
    retention_days: float = Field(
        default=30.0,
        gt=0,
        alias="LIGHTNING_RETENTION_DAYS",
        description="How long event records and ledger entries are kept",
    )

    log_format: LogFormat | None = Field(
        default=None,
        alias="LIGHTNING_LOG_FORMAT",
        description="text or json; unset: text in embedded mode, json elsewhere (containers)",
    )
    log_level: str = Field(
        default="INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$", alias="LIGHTNING_LOG_LEVEL"
    )
    access_log: bool | None = Field(
        default=None,
        alias="LIGHTNING_ACCESS_LOG",
        description="A log line per HTTP request; unset: off in embedded mode, on elsewhere",
    )
    trace_console: bool = Field(default=False, alias="LIGHTNING_TRACE_CONSOLE")
    otlp_endpoint: str | None = Field(default=None, alias="OTEL_EXPORTER_OTLP_ENDPOINT")
    applicationinsights_connection_string: SecretStr | None = Field(
        default=None, alias="APPLICATIONINSIGHTS_CONNECTION_STRING"
    )
    metrics_port: Port | None = Field(
        default=None,
        alias="LIGHTNING_METRICS_PORT",
        description="Where a service without HTTP (the processor worker) serves /metrics",
    )

    host: str = Field(default="127.0.0.1", alias="LIGHTNING_HOST")
    api_port: Port = Field(default=8000, alias="LIGHTNING_API_PORT")
    ui_port: Port = Field(default=8080, alias="LIGHTNING_UI_PORT")
    api_url: str = Field(default="http://127.0.0.1:8000", alias="LIGHTNING_API_URL")
    dev_user: str = Field(default="dev-user", alias="LIGHTNING_DEV_USER")

    @property
    def storage(self) -> StorageProvider:
        return self.storage_provider or DEFAULT_PROVIDERS[self.mode][0]

    @property
    def event_bus(self) -> BusProvider:
        return self.event_bus_provider or DEFAULT_PROVIDERS[self.mode][1]

    @property
    def sign_in_authority(self) -> str | None:
        """Where the UI signs users in: the tenant on Entra ID, unless overridden."""
        if self.entra_authority:
            return self.entra_authority.rstrip("/")
        if self.entra_tenant_id:
            return f"https://login.microsoftonline.com/{self.entra_tenant_id}"
        return None

    @property
    def api_scope(self) -> str | None:
        """The scope the UI asks for on the user's behalf: ENTRA_API_SCOPE, or by default
        `<ENTRA_AUDIENCE>/.default`."""
        if self.entra_api_scope:
            return self.entra_api_scope
        if self.entra_audience:
            return f"{self.entra_audience}/.default"
        return None

    @property
    def token_issuer(self) -> str | None:
        """The `iss` an access token must carry: the tenant's for ENTRA_TOKEN_VERSION, unless
        ENTRA_ISSUER overrides it."""
        if self.entra_issuer:
            return self.entra_issuer
        if self.entra_tenant_id:
            return entra_token_issuer(self.entra_tenant_id, self.entra_token_version)
        return None

    @property
    def token_keys_url(self) -> str | None:
        """Where that issuer publishes its signing keys, unless ENTRA_JWKS_URL overrides it."""
        if self.entra_jwks_url:
            return self.entra_jwks_url
        if not self.entra_tenant_id:
            return None
        version = "" if self.entra_token_version is TokenVersion.V1 else "v2.0/"
        return f"https://login.microsoftonline.com/{self.entra_tenant_id}/discovery/{version}keys"

    @property
    def webhook_origins(self) -> list[str]:
        """Origins (`scheme://host[:port]`) webhook tasks may call; none unless listed."""
        return [
            origin.strip() for origin in self.webhook_allowed_origins.split(",") if origin.strip()
        ]

    def service_types(self) -> list[str]:
        """SERVICE_TYPE may name several services to host in one process (`invoke dev`)."""
        return [name.strip() for name in self.service_type.split(",") if name.strip()]


_CONNECTION_NEEDS: dict[str, tuple[tuple[str, ...], str]] = {
    StorageProvider.POSTGRES: (("database_url",), "DATABASE_URL"),
    StorageProvider.COSMOS: (
        ("cosmos_connection_string", "cosmos_endpoint"),
        "COSMOS_CONNECTION_STRING (or COSMOS_ENDPOINT with a managed identity)",
    ),
    BusProvider.REDIS: (("redis_url",), "REDIS_URL"),
    BusProvider.RABBITMQ: (("rabbitmq_url",), "RABBITMQ_URL"),
    BusProvider.SERVICEBUS: (
        ("service_bus_connection_string", "service_bus_namespace"),
        "SERVICE_BUS_CONNECTION_STRING (or SERVICE_BUS_NAMESPACE with a managed identity)",
    ),
}


def combination_problems(settings: Settings) -> list[str]:
    """Problems no single field can see, in the providers SERVICE_TYPE's services need:
    missing connections, local-only providers in azure mode."""
    needs = service_needs(settings.service_types())
    chosen: list[tuple[str, str]] = []
    if needs.storage:
        chosen.append(("LIGHTNING_STORAGE_PROVIDER", settings.storage))
    if needs.bus:
        chosen.append(("LIGHTNING_EVENT_BUS_PROVIDER", settings.event_bus))
    problems: list[str] = []
    for setting, provider in chosen:
        if settings.mode is Mode.AZURE and provider in LOCAL_ONLY_PROVIDERS:
            problems.append(
                f"{setting}={provider} is a local-only provider and LIGHTNING_MODE=azure "
                "refuses it; unset it to use the azure default"
            )
        fields, variable = _CONNECTION_NEEDS.get(provider, ((), ""))
        if fields and not any(getattr(settings, field) for field in fields):
            problems.append(f"{variable} is missing (needed by {setting}={provider})")
    return problems


def entra_problems(settings: Settings) -> list[str]:
    """What a service validating Entra ID tokens in azure mode is missing (the API asks)."""
    problems: list[str] = []
    if not (settings.token_issuer and settings.token_keys_url):
        problems.append("ENTRA_TENANT_ID is missing (azure mode validates Entra ID access tokens)")
    audience = settings.entra_audience
    if not audience:
        problems.append(
            "ENTRA_AUDIENCE is missing (the aud of the API's access tokens: its application "
            "(client) id for ENTRA_TOKEN_VERSION=2, its identifier URI for 1)"
        )
    elif settings.entra_token_version is TokenVersion.V2 and not _is_guid(audience):
        problems.append(
            f"ENTRA_AUDIENCE={audience!r} is not a client id, but v2 access tokens "
            "(ENTRA_TOKEN_VERSION=2) carry the API's application (client) id as aud; set "
            "that id, or ENTRA_TOKEN_VERSION=1 if the API's registration issues v1 tokens"
        )
    return problems


def _is_guid(value: str) -> bool:
    try:
        UUID(value)
    except ValueError:
        return False
    return True


def sign_in_problems(settings: Settings) -> list[str]:
    """What the UI signing users in with Entra ID in azure mode is missing."""
    needs = {
        "ENTRA_TENANT_ID (or ENTRA_AUTHORITY) is missing (the UI signs users in there)": (
            settings.sign_in_authority
        ),
        "ENTRA_UI_CLIENT_ID is missing (the UI's app registration)": settings.entra_ui_client_id,
        "ENTRA_UI_CLIENT_SECRET is missing (the UI's client secret)": (
            settings.entra_ui_client_secret
        ),
        "ENTRA_API_SCOPE (or ENTRA_AUDIENCE) is missing (the API scope the UI asks for)": (
            settings.api_scope
        ),
        # Behind an ingress, the redirect URI and the cookie's Secure flag need the public one.
        "LIGHTNING_UI_PUBLIC_URL is missing (the UI's https address as browsers reach it)": (
            settings.ui_public_url
        ),
        "LIGHTNING_UI_SESSION_SECRET is missing (the key every UI replica encrypts sign-in "
        "sessions with: at least 32 random bytes, base64)": settings.ui_session_secret,
    }
    return [problem for problem, value in needs.items() if not value]


def _field_problem(location: tuple[int | str, ...], message: str, value: object) -> str:
    variable = ".".join(str(part) for part in location) or "settings"
    if message == "Field required":
        return f"{variable} is missing"
    return f"{variable}={value!r} is invalid: {message}"


def load_settings(**overrides: object) -> Settings:
    """Read and check the settings; ConfigError naming every problem found."""
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        raise ConfigError(
            [_field_problem(e["loc"], e["msg"], e.get("input")) for e in error.errors()]
        ) from None
    problems = combination_problems(settings)
    if problems:
        raise ConfigError(problems)
    return settings
