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
