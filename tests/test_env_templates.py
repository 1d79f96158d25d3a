"""The .env templates document every variable the settings read, and they load cleanly."""

import itertools
from pathlib import Path

import pytest

from lightning_core.config import Mode, Settings, combination_problems

REPO = Path(__file__).resolve().parents[1]
TEMPLATES = [".env.local", ".env.azure"]


def variables(template: str) -> set[str]:
    lines = (REPO / template).read_text().splitlines()
    return {line.split("=", 1)[0] for line in lines if line and not line.startswith("#")}


def documented(template: str) -> set[str]:
    """Variables preceded by a comment line saying what they are for."""
    lines = (REPO / template).read_text().splitlines()
    return {
        line.split("=", 1)[0]
        for previous, line in itertools.pairwise(lines)
        if line and not line.startswith("#") and (previous.startswith("#") or "=" in previous)
    }


def all_variables() -> set[str]:
    return {str(field.alias) for field in Settings.model_fields.values()}


@pytest.mark.parametrize("template", TEMPLATES)
def test_template_lists_every_variable_under_a_comment(template: str) -> None:
    assert variables(template) == all_variables()
    assert documented(template) == all_variables()


def test_local_template_is_a_valid_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    for name in all_variables():
        monkeypatch.delenv(name, raising=False)
    settings = Settings(_env_file=REPO / ".env.local")
    assert settings.mode is Mode.LOCAL


def test_azure_template_is_a_valid_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in all_variables():
        monkeypatch.delenv(name, raising=False)
    settings = Settings(_env_file=REPO / ".env.azure")
    assert settings.mode is Mode.AZURE
    assert combination_problems(settings) == []


def test_the_ui_needs_none_of_the_azure_templates_server_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in all_variables():
        monkeypatch.delenv(name, raising=False)
    servers = dict.fromkeys(
        (
            "cosmos_connection_string",
            "cosmos_endpoint",
            "service_bus_connection_string",
            "service_bus_namespace",
        )
    )
    azure = Settings(_env_file=REPO / ".env.azure")
    ui = azure.model_copy(update={**servers, "service_type": "ui"})
    assert combination_problems(ui) == []
    api = ui.model_copy(update={"service_type": "api"})
    assert [problem.split(" ")[0] for problem in combination_problems(api)] == [
        "COSMOS_CONNECTION_STRING",
        "SERVICE_BUS_CONNECTION_STRING",
    ]
