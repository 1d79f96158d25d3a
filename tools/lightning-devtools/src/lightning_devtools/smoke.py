"""`invoke smoke`: is a running Lightning OS alive end to end, as a client sees it?

GET /healthz and /readyz answer 200, and an event POSTed (202) is listed processed, all
within one deadline; the first failure ends the run (`smoke`).
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from rich.console import Console
from rich.table import Table

from lightning_devtools.deploy import stack_outputs
from lightning_devtools.errors import ToolError

TOKEN_VARIABLE = "LIGHTNING_SMOKE_TOKEN"  # noqa: S105 - the variable's name, not a token
EVENT_TYPE = "smoke.check"  # lightning.* types are the system's own: the API refuses them
REQUEST_TIMEOUT = 60.0  # Front Door waits up to its origin timeout for a replica to wake
POLL_INTERVAL = 1.0
PAGE_SIZE = 100  # newest first: the smoke event is on the first page of processed events
SCOPE_HINT = "pass --scope <API identifier URI>/.default (the caller needs the API's app role)"
FRONT_DOOR_OUTPUT = "frontDoorUrl"  # infra's stack outputs
API_URI_OUTPUT = "apiIdentifierUri"


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    seconds: float


@dataclass
class SmokeRun:
    """One run against `url`, stopping at the first failed check."""

    url: str
    deadline: float
    client: httpx.Client
    poll_interval: float
    checks: list[Check] = field(default_factory=list)

    def check(self, name: str, step: Callable[[], str]) -> str:
        """Run one step, record it as a row; its detail (ToolError: recorded, re-raised)."""
        started = time.monotonic()
        try:
            detail = step()
        except ToolError as error:
            self.checks.append(Check(name, False, error.what, time.monotonic() - started))
            raise
        self.checks.append(Check(name, True, detail, time.monotonic() - started))
        return detail

    def wait(self, last: str, what: str, fix: str) -> None:
        """Sleep before the next attempt, or fail with the last answer when time is up."""
        if time.monotonic() + self.poll_interval > self.deadline:
            raise ToolError(f"{what} (last: {last})", fix)
        time.sleep(self.poll_interval)

    def answers_200(self, path: str) -> str:
        while True:
            try:
                response = self.client.get(path)
            except httpx.HTTPError as error:
                last = f"{type(error).__name__}: {error or 'no answer'}"
            else:
                last = describe(response)
                if response.status_code == 200:
                    return last
            self.wait(
                last,
                f"GET {self.url}{path} did not answer 200",
                "is the API running and reachable? Container Apps: "
                "`az containerapp logs show --name <api app> --resource-group <group>`",
            )

    def submit(self) -> str:
        """POST one event; its id."""
        body = {"type": EVENT_TYPE, "subject": "smoke", "data": {"run": uuid.uuid4().hex}}
        try:
            response = self.client.post("/api/events", json=body)
        except httpx.HTTPError as error:
            raise ToolError(
                f"POST {self.url}/api/events failed: {type(error).__name__}: {error}",
                "check the URL and the network, then run the smoke test again",
            ) from None
        if response.status_code != 202:
            fix = SCOPE_HINT if response.status_code in (401, 403) else "read the API's logs"
            raise ToolError(
                f"POST {self.url}/api/events answered {describe(response)}, not 202", fix
            )
        try:
            return str(response.json()["event"]["id"])
        except (ValueError, KeyError, TypeError):
            raise ToolError(
                f"POST {self.url}/api/events answered 202 without an event record "
                f"({describe(response)})",
                "is --url the Lightning OS API (or the Front Door in front of it)?",
            ) from None

    def processed(self, event_id: str) -> str:
        while True:
            try:
                response = self.client.get(
                    "/api/events", params={"status": "processed", "limit": PAGE_SIZE}
                )
            except httpx.HTTPError as error:
                last = f"{type(error).__name__}: {error}"
            else:
                items = response.json().get("items", []) if response.status_code == 200 else []
                if any(item["event"]["id"] == event_id for item in items):
                    return "processed"
                last = describe(response) if response.status_code != 200 else "not yet processed"
            self.wait(
                last,
                f"event {event_id} was not processed in time",
                "is the processor running? (worker replicas, or the Function App's logs)",
            )


def describe(response: httpx.Response) -> str:
    """`503 {"storage": "ok", ...}`: the status and the start of the body, on one line."""
    body = " ".join(response.text.split())
    return f"{response.status_code} {body[:120]}"


def base_url(url: str) -> str:
    """`https://host/` -> `https://host`; a bare host (a stack output) gets https://."""
    url = url.strip().rstrip("/")
    if "://" not in url:
        url = f"https://{url}"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ToolError(f"{url!r} is not an http(s) URL", "pass --url https://<host>")
    return url


def resolve_token(
    token: str | None, scope: str | None, env: Mapping[str, str] | None = None
) -> str | None:
    """--token, else LIGHTNING_SMOKE_TOKEN (of `env`, default os.environ), else a token for
    `scope`, else none."""
    env = os.environ if env is None else env
    if token:
        return token
    if env.get(TOKEN_VARIABLE):
        return env[TOKEN_VARIABLE]
    if scope:
        return token_for(scope)
    return None


def token_for(scope: str) -> str:
    """An access token for `scope` from DefaultAzureCredential (az login, OIDC, identity)."""
    from azure.core.exceptions import ClientAuthenticationError  # noqa: PLC0415 - slow imports
    from azure.identity import DefaultAzureCredential  # noqa: PLC0415

    quiet = logging.getLogger("azure.identity")  # it logs each failed credential as a warning
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        with DefaultAzureCredential() as credential:
            return credential.get_token(scope).token
    except ClientAuthenticationError as error:
        raise ToolError(
            f"no Azure token for {scope} ({credential_failure(str(error))})",
            "run `az login` (CI: azure/login), or pass --token / set " + TOKEN_VARIABLE,
        ) from None
    finally:
        quiet.setLevel(level)


def credential_failure(message: str) -> str:
    """The AzureCliCredential line of DefaultAzureCredential's report, else its first line."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    cli = [line for line in lines if line.startswith("AzureCliCredential:")]
    return (cli or lines or ["no reason given"])[0]


def target(
    *, url: str | None, stack: str | None, scope: str | None, root: Path
) -> tuple[str, str | None]:
    """The URL and token scope to test: as given, or the stack's outputs (Front Door URL,
    the API's identifier URI + `/.default`) when `stack` names a deployed stack."""
    if url is not None and stack is None:
        return url, scope
    if url is not None or stack is None:
        raise ToolError(
            "pass exactly one of --url and --stack",
            "`invoke smoke --url https://<host>` or `invoke smoke --stack production`",
        )
    outputs = stack_outputs(stack, root=root)
    front_door = outputs.get(FRONT_DOOR_OUTPUT)
    if not isinstance(front_door, str) or not front_door:
        raise ToolError(
            f"stack {stack!r} has no output {FRONT_DOOR_OUTPUT}",
            f"deploy it first: `invoke deploy --stack {stack}`",
        )
    identifier = outputs.get(API_URI_OUTPUT)
    if scope is None and isinstance(identifier, str) and identifier:
        scope = f"{identifier}/.default"
    return front_door, scope


def smoke(
    url: str,
    *,
    token: str | None,
    console: Console,
    timeout: float = 180.0,
    poll_interval: float = POLL_INTERVAL,
    transport: httpx.BaseTransport | None = None,
) -> list[Check]:
    """Run every check against `url` within `timeout` seconds and print the table; ToolError
    (after the table so far) at the first failed check."""
    url = base_url(url)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with httpx.Client(
        base_url=url, headers=headers, timeout=REQUEST_TIMEOUT, transport=transport
    ) as client:
        run = SmokeRun(url, time.monotonic() + timeout, client, poll_interval)
        try:
            run.check("GET /healthz", lambda: run.answers_200("/healthz"))
            run.check("GET /readyz", lambda: run.answers_200("/readyz"))
            event_id = run.check("POST /api/events", run.submit)
            run.check("event processed", lambda: run.processed(event_id))
        finally:
            console.print(checks_table(url, run.checks))
    return run.checks


def checks_table(url: str, checks: list[Check]) -> Table:
    table = Table(title=f"smoke test of {url}", title_justify="left")
    for column in ("check", "result", "detail", "seconds"):
        table.add_column(column, overflow="fold")
    for check in checks:
        result = "[green]ok[/]" if check.ok else "[red]FAILED[/]"
        table.add_row(check.name, result, check.detail, f"{check.seconds:.1f}")
    return table
