"""`invoke smoke` against the real runtime (API and processor, embedded mode, dev identity):
every check passes, a token travels as a bearer header, and failures end in one line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from rich.console import Console

from lightning_core.testing.commands import write_executable
from lightning_core.testing.machine import free_port
from lightning_devtools.bench.api import embedded_server
from lightning_devtools.errors import ToolError
from lightning_devtools.smoke import (
    TOKEN_VARIABLE,
    base_url,
    credential_failure,
    resolve_token,
    smoke,
    target,
)

CHECKS = ["GET /healthz", "GET /readyz", "POST /api/events", "event processed"]


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`python -m lightning_core.runtime` with the API and the processor, on SQLite."""
    with embedded_server(tmp_path_factory.mktemp("smoke") / "smoke.db") as url:
        yield url


def recording_console() -> Console:
    return Console(record=True, width=200, force_terminal=False)


class RecordingTransport(httpx.HTTPTransport):
    """The real network transport, keeping each request it sent."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request)
        return super().handle_request(request)


def test_every_check_passes_against_a_running_lightning_os(api: str) -> None:
    console = recording_console()
    checks = smoke(api + "/", token=None, console=console, timeout=60, poll_interval=0.1)
    assert [check.name for check in checks] == CHECKS
    assert all(check.ok for check in checks), checks
    assert checks[0].detail == '200 {"status":"ok"}'
    assert checks[3].detail == "processed"
    page = httpx.get(f"{api}/api/events", params={"status": "processed"}).json()
    assert checks[2].detail in [item["event"]["id"] for item in page["items"]]
    text = console.export_text()
    assert f"smoke test of {api}" in text
    assert "event processed" in text


def test_the_token_travels_as_a_bearer_header(api: str) -> None:
    transport = RecordingTransport()
    smoke(api, token="t0ken", console=recording_console(), timeout=60, transport=transport)
    api_calls = [request for request in transport.sent if request.url.path == "/api/events"]
    assert {request.method for request in api_calls} == {"GET", "POST"}
    for request in transport.sent:
        assert request.headers["authorization"] == "Bearer t0ken", request.url


def test_without_a_token_no_authorization_header_is_sent(api: str) -> None:
    transport = RecordingTransport()
    smoke(api, token=None, console=recording_console(), timeout=60, transport=transport)
    assert transport.sent
    assert all("authorization" not in request.headers for request in transport.sent)


def test_nothing_listening_fails_at_healthz_in_one_line() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    console = recording_console()
    with pytest.raises(ToolError) as caught:
        smoke(url, token=None, console=console, timeout=0.5, poll_interval=0.1)
    assert caught.value.what.startswith(f"GET {url}/healthz did not answer 200 (last: Connect")
    assert "\n" not in str(caught.value)
    assert "FAILED" in console.export_text()
    assert "GET /readyz" not in console.export_text()  # the run stops at the first failure


def test_a_refused_post_says_which_scope_to_pass() -> None:
    def api_in_azure_mode(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(401, json={"detail": "a bearer token is required"})
        return httpx.Response(200, json={"status": "ok"})

    transport = httpx.MockTransport(api_in_azure_mode)
    with pytest.raises(ToolError) as caught:
        smoke("https://x", token=None, console=recording_console(), transport=transport)
    assert caught.value.what == (
        'POST https://x/api/events answered 401 {"detail":"a bearer token is required"}, not 202'
    )
    assert caught.value.fix.startswith("pass --scope <API identifier URI>/.default")


@pytest.mark.parametrize(
    ("given", "url"),
    [
        ("https://lightning.azurefd.net/", "https://lightning.azurefd.net"),
        ("lightning-abc.z01.azurefd.net", "https://lightning-abc.z01.azurefd.net"),
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
    ],
)
def test_base_url(given: str, url: str) -> None:
    assert base_url(given) == url


def test_base_url_refuses_other_schemes() -> None:
    with pytest.raises(ToolError, match=r"'ftp://x' is not an http\(s\) URL"):
        base_url("ftp://x")


def test_token_order_flag_then_environment_then_scope() -> None:
    assert resolve_token("flag", "api://x/.default", {TOKEN_VARIABLE: "env"}) == "flag"
    assert resolve_token(None, "api://x/.default", {TOKEN_VARIABLE: "env"}) == "env"
    assert resolve_token(None, None, {}) is None


def test_no_azure_login_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The real DefaultAzureCredential on a machine without az and without any identity."""
    monkeypatch.setenv("PATH", str(tmp_path))
    for name in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "AZURE_USERNAME"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ToolError) as caught:
        resolve_token(None, "api://lightning-os-prod/.default", {})
    assert caught.value.what == (
        "no Azure token for api://lightning-os-prod/.default "
        "(AzureCliCredential: Azure CLI not found on path)"
    )
    assert "az login" in caught.value.fix


def test_credential_failure_prefers_the_azure_cli_line() -> None:
    report = (
        "DefaultAzureCredential failed to retrieve a token from the included credentials.\n"
        "Attempted credentials:\n"
        "\tEnvironmentCredential: EnvironmentCredential authentication unavailable.\n"
        "\tAzureCliCredential: AADSTS500011: The resource principal named api://x was not found"
    )
    assert credential_failure(report) == (
        "AzureCliCredential: AADSTS500011: The resource principal named api://x was not found"
    )
    assert credential_failure("Something else.\nmore") == "Something else."


@pytest.fixture
def pulumi_with_outputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake `pulumi` printing $FAKE_OUTPUTS for `stack output --json`; returns a root."""
    directory = tmp_path / "bin"
    directory.mkdir()
    write_executable(
        directory / "pulumi",
        '#!/bin/sh\n[ "$1" = version ] && { echo v3.272.0; exit 0; }\n'
        'printf "%s\\n" "$FAKE_OUTPUTS"\n',
    )
    monkeypatch.setenv("PATH", str(directory))
    outputs = {"frontDoorUrl": "https://lightning.azurefd.net", "apiIdentifierUri": "api://lo"}
    monkeypatch.setenv("FAKE_OUTPUTS", json.dumps(outputs))
    return tmp_path


def test_a_stack_gives_its_front_door_url_and_api_scope(pulumi_with_outputs: Path) -> None:
    root = pulumi_with_outputs
    assert target(url=None, stack="production", scope=None, root=root) == (
        "https://lightning.azurefd.net",
        "api://lo/.default",
    )
    assert target(url=None, stack="production", scope="api://other/.default", root=root) == (
        "https://lightning.azurefd.net",
        "api://other/.default",
    )


def test_a_stack_without_the_output_says_deploy_first(
    pulumi_with_outputs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_OUTPUTS", "{}")
    with pytest.raises(ToolError, match=r"stack 'production' has no output frontDoorUrl"):
        target(url=None, stack="production", scope=None, root=pulumi_with_outputs)


@pytest.mark.parametrize(("url", "stack"), [(None, None), ("https://x", "production")])
def test_exactly_one_of_url_and_stack(url: str | None, stack: str | None) -> None:
    with pytest.raises(ToolError, match="pass exactly one of --url and --stack"):
        target(url=url, stack=stack, scope=None, root=Path())
