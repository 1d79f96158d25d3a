import subprocess
import sys

import pytest

from lightning_core.config import (
    API_APP_ROLE,
    API_DELEGATED_SCOPE,
    BusProvider,
    ConfigError,
    Mode,
    StorageProvider,
    TokenVersion,
    entra_problems,
    load_settings,
    sign_in_problems,
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    monkeypatch.chdir(str(tmp_path))  # no stray .env
    for name in (
        "LIGHTNING_MODE",
        "LIGHTNING_STORAGE_PROVIDER",
        "LIGHTNING_EVENT_BUS_PROVIDER",
        "DATABASE_URL",
        "REDIS_URL",
        "RABBITMQ_URL",
        "COSMOS_CONNECTION_STRING",
        "SERVICE_BUS_CONNECTION_STRING",
    ):
        monkeypatch.delenv(name, raising=False)


def test_embedded_is_the_default_and_needs_no_servers() -> None:
    settings = load_settings()
    assert settings.mode is Mode.EMBEDDED
    assert settings.storage is StorageProvider.SQLITE
    assert settings.event_bus is BusProvider.MEMORY


def test_mode_picks_providers_and_provider_variables_override(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LIGHTNING_MODE", "local")
    monkeypatch.setenv("DATABASE_URL", "postgresql://localhost/lightning")
    monkeypatch.setenv("LIGHTNING_EVENT_BUS_PROVIDER", "rabbitmq")
    monkeypatch.setenv("RABBITMQ_URL", "amqp://guest:guest@localhost/")
    settings = load_settings()
    assert settings.storage is StorageProvider.POSTGRES
    assert settings.event_bus is BusProvider.RABBITMQ


def test_every_problem_is_named_in_one_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIGHTNING_MODE", "local")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert caught.value.problems == [
        "DATABASE_URL is missing (needed by LIGHTNING_STORAGE_PROVIDER=postgres)",
        "REDIS_URL is missing (needed by LIGHTNING_EVENT_BUS_PROVIDER=redis)",
    ]


def test_unknown_values_name_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIGHTNING_MODE", "cloud")
    monkeypatch.setenv("LIGHTNING_EVENT_BUS_PROVIDER", "kafka")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert "LIGHTNING_MODE='cloud' is invalid" in message
    assert "LIGHTNING_EVENT_BUS_PROVIDER='kafka' is invalid" in message


def test_azure_mode_refuses_local_only_providers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIGHTNING_MODE", "azure")
    monkeypatch.setenv("LIGHTNING_STORAGE_PROVIDER", "sqlite")
    monkeypatch.setenv("SERVICE_BUS_NAMESPACE", "lightning.servicebus.windows.net")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert caught.value.problems == [
        "LIGHTNING_STORAGE_PROVIDER=sqlite is a local-only provider and LIGHTNING_MODE=azure "
        "refuses it; unset it to use the azure default"
    ]


def test_azure_mode_accepts_managed_identity_endpoints(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIGHTNING_MODE", "azure")
    monkeypatch.setenv("COSMOS_ENDPOINT", "https://lightning.documents.azure.com")
    monkeypatch.setenv("SERVICE_BUS_NAMESPACE", "lightning.servicebus.windows.net")
    assert load_settings().storage is StorageProvider.COSMOS


API_CLIENT_ID = "3f1c9a2e-7b4d-4e6f-8a9b-0c1d2e3f4a5b"


def test_entra_settings_derive_v2_issuer_keys_and_scope_and_name_what_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert [p.split(" ")[0] for p in entra_problems(load_settings())] == [
        "ENTRA_TENANT_ID",
        "ENTRA_AUDIENCE",
    ]
    monkeypatch.setenv("ENTRA_TENANT_ID", "t")
    monkeypatch.setenv("ENTRA_AUDIENCE", API_CLIENT_ID)
    settings = load_settings()
    assert entra_problems(settings) == []
    assert settings.entra_token_version is TokenVersion.V2
    assert settings.token_issuer == "https://login.microsoftonline.com/t/v2.0"
    assert settings.token_keys_url == "https://login.microsoftonline.com/t/discovery/v2.0/keys"
    assert settings.entra_required_scope == API_DELEGATED_SCOPE == "access_as_user"
    assert API_APP_ROLE == "access_as_application"
    assert settings.api_scope == f"{API_CLIENT_ID}/.default"
    monkeypatch.setenv("ENTRA_API_SCOPE", "api://lightning-os-prod/access_as_user")
    assert load_settings().api_scope == "api://lightning-os-prod/access_as_user"


def test_entra_v1_tokens_come_from_the_tenant_sts_for_the_identifier_uri(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ENTRA_TENANT_ID", "t")
    monkeypatch.setenv("ENTRA_AUDIENCE", "api://lightning-os-prod")
    monkeypatch.setenv("ENTRA_TOKEN_VERSION", "1")
    settings = load_settings()
    assert entra_problems(settings) == []
    assert settings.token_issuer == "https://sts.windows.net/t/"
    assert settings.token_keys_url == "https://login.microsoftonline.com/t/discovery/keys"
    monkeypatch.setenv("ENTRA_ISSUER", "https://issuer.example/t/")
    assert load_settings().token_issuer == "https://issuer.example/t/"


def test_a_v2_audience_must_be_the_api_client_id(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENTRA_TENANT_ID", "t")
    monkeypatch.setenv("ENTRA_AUDIENCE", "api://lightning-os-prod")
    [problem] = entra_problems(load_settings())
    assert problem.startswith("ENTRA_AUDIENCE='api://lightning-os-prod' is not a client id")
    assert "ENTRA_TOKEN_VERSION=1" in problem


def test_only_the_two_entra_token_versions_exist(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENTRA_TOKEN_VERSION", "3")
    with pytest.raises(ConfigError, match=r"ENTRA_TOKEN_VERSION='3' is invalid"):
        load_settings()


def test_sign_in_needs_the_session_key_every_ui_replica_shares(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ENTRA_TENANT_ID", "t")
    monkeypatch.setenv("ENTRA_AUDIENCE", API_CLIENT_ID)
    monkeypatch.setenv("ENTRA_UI_CLIENT_ID", "ui")
    monkeypatch.setenv("ENTRA_UI_CLIENT_SECRET", "s")
    monkeypatch.setenv("LIGHTNING_UI_PUBLIC_URL", "https://ui.example")
    [problem] = sign_in_problems(load_settings())
    assert problem.startswith("LIGHTNING_UI_SESSION_SECRET is missing")
    monkeypatch.setenv("LIGHTNING_UI_SESSION_SECRET", "a-key")
    assert sign_in_problems(load_settings()) == []


def test_runtime_reports_bad_settings_in_one_line_without_traceback(tmp_path: object) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "lightning_core.runtime"],
        env={"LIGHTNING_MODE": "azure", "PATH": ""},
        cwd=str(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: Invalid Lightning OS configuration: COSMOS_CONNECTION_STRING")
    assert "SERVICE_BUS_CONNECTION_STRING" in line


def test_webhook_origins_are_a_comma_separated_allow_list(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().webhook_origins == []
    monkeypatch.setenv(
        "LIGHTNING_WEBHOOK_ALLOWED_ORIGINS", "https://hooks.example.com, http://h:8080,"
    )
    assert load_settings().webhook_origins == ["https://hooks.example.com", "http://h:8080"]
