"""docker/compose.azure.yaml as real compose v2 resolves it (`compose config` needs no
engine): it validates, runs the images the `azure` bake group tags, gives every service of
ours an environment its start-up accepts in azure mode (and the check can fail), and
declares for the Service Bus emulator exactly the topology core declares; and, with no
engine to run the emulators, the services run for real on their stand-ins (the Cosmos REST
test server, the Service Bus fake, Azurite from npm, a self-signed HTTPS server)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import ssl
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NoReturn

import pytest
from azure.core.exceptions import HttpResponseError
from azure.servicebus.management import SqlRuleFilter
from azure.storage.blob import BlobServiceClient
from pydantic import TypeAdapter
from rich.console import Console

from lightning_api.app import entra_validator
from lightning_core.bus import servicebus
from lightning_core.config import ConfigError, load_settings
from lightning_core.runtime import open_providers, prepare
from lightning_core.testing import azurite
from lightning_core.testing.backends.cosmos import cosmos_endpoint
from lightning_core.testing.entra_fake import EntraTokens, self_signed_tls
from lightning_core.testing.machine import free_port
from lightning_core.testing.runtime import clean_environment
from lightning_core.testing.servicebus_fake import (
    FakeAdministrationClient,
    FakeNamespace,
    FakeServiceBusClient,
)
from lightning_core.topology import (
    CONSUMER_GROUPS,
    REPLAY_RULE,
    bus_topology,
    replay_filter,
    service_needs,
    topic_name,
)
from lightning_devtools import compose_azure, servicebus_emulator
from lightning_devtools.bake import load_plan
from lightning_devtools.smoke import smoke
from lightning_processor import functions
from lightning_ui.signin import entra_sign_in

ROOT = Path(__file__).resolve().parents[1]
AZURE_FILE = ROOT / "docker" / "compose.azure.yaml"
LOCAL_FILE = ROOT / "docker" / "compose.yaml"

TENANT = "7f2b1c9e-4d3a-4c1b-9e8f-0a1b2c3d4e5f"
API_CLIENT_ID = "5d1e9a4b-2c3d-4e5f-8a9b-1c2d3e4f5a6b"
#: What a user of the stack sets: their own registrations (compose refuses to start without).
ENTRA = {
    "ENTRA_TENANT_ID": TENANT,
    "ENTRA_AUDIENCE": API_CLIENT_ID,
    "ENTRA_UI_CLIENT_ID": "0c9d8e7f-6a5b-4c3d-9e2f-1a0b9c8d7e6f",
    "ENTRA_UI_CLIENT_SECRET": "ui-client-secret",
    "LIGHTNING_UI_SESSION_SECRET": "c2Vzc2lvbi1rZXktb2YtYXQtbGVhc3QtMzItYnl0ZXMhIQ",
}
#: Prefixes of the variables the stack's files or its services read.
READ_BY_THE_STACK = ("ENTRA_", "LIGHTNING_", "COSMOS_", "SERVICE_BUS", "SSL_CERT_")


def compose_config(
    plugin_env: Mapping[str, str], file: Path, variables: Mapping[str, str]
) -> subprocess.CompletedProcess[str]:
    """`docker compose -f FILE config --format json` with only `variables` of the stack's own."""
    env = {k: v for k, v in plugin_env.items() if not k.startswith(READ_BY_THE_STACK)}
    return subprocess.run(
        ["docker", "compose", "-f", str(file), "config", "--format", "json"],
        env={**env, **variables},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def resolved(plugin_env: Mapping[str, str], variables: Mapping[str, str] = ENTRA) -> dict[str, Any]:
    done = compose_config(plugin_env, AZURE_FILE, variables)
    assert done.returncode == 0, done.stderr
    config: dict[str, Any] = json.loads(done.stdout)
    return config


def environment(config: Mapping[str, Any], service: str) -> dict[str, str]:
    """A service's environment as its container gets it (unset entries left out)."""
    given = config["services"][service]["environment"]
    return {key: value for key, value in given.items() if value is not None}


def isolate(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, env: Mapping[str, str]) -> None:
    """This process's environment as a container with `env` would have it (no developer or
    CI settings, no .env file in the working directory)."""
    kept = clean_environment()
    for key in list(os.environ):
        if key not in kept or key.startswith(READ_BY_THE_STACK):
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)


def startup_problems(service: str) -> list[str]:
    """What the service reports at start-up in this (`isolate`d) environment:
    the Functions host's worker loads lightning_processor.functions; the other services are
    the runtime's (`load_settings`, `prepare`), then the API's token validator and the UI's
    sign-in, which those services build as they start."""
    problems: list[str] = []

    def attempt(check: Callable[[], object]) -> None:
        try:
            check()
        except ConfigError as error:
            problems.extend(error.problems)

    if service == "functions":
        attempt(functions.load)
        return problems
    try:
        settings = load_settings()
    except ConfigError as error:
        return error.problems
    attempt(lambda: prepare(settings))
    hosted = settings.service_types()
    if "api" in hosted:
        attempt(lambda: entra_validator(settings))
    if "ui" in hosted:
        attempt(lambda: entra_sign_in(settings))
    return problems


# ---- the file, as compose resolves it --------------------------------------------------------

APP_SERVICES = ("api", "event-processor", "ui", "functions")


@pytest.fixture(scope="module")
def azure_config(real_compose: dict[str, str]) -> dict[str, Any]:
    return resolved(real_compose)


def test_both_compose_files_validate_with_real_compose(real_compose: dict[str, str]) -> None:
    local = compose_config(real_compose, LOCAL_FILE, {})
    assert local.returncode == 0, local.stderr
    assert json.loads(local.stdout)["name"] == "lightning"
    config = resolved(real_compose)
    assert config["name"] == "lightning-azure", "a project of its own, beside the local stack"
    assert set(APP_SERVICES) <= set(config["services"])


@pytest.mark.parametrize("missing", sorted(ENTRA))
def test_the_stack_refuses_to_start_without_the_users_entra_registrations(
    real_compose: dict[str, str], missing: str
) -> None:
    variables = {key: value for key, value in ENTRA.items() if key != missing}
    done = compose_config(real_compose, AZURE_FILE, variables)
    assert done.returncode != 0
    assert f"required variable {missing} is missing a value: set {missing}" in done.stderr


def test_each_app_service_runs_the_image_its_azure_bake_target_tags(
    azure_config: dict[str, Any],
) -> None:
    targets = {
        target.dockerfile.name.removesuffix(".Dockerfile"): target
        for target in load_plan("azure").targets
    }
    services = azure_config["services"]
    built = {name: svc for name, svc in services.items() if "build" in svc}
    apps = {name: svc for name, svc in built.items() if svc.get("scale") != 0}
    assert set(apps) == set(targets)
    for name, service in apps.items():
        assert service["image"] in targets[name].tags, name
        assert service["build"]["target"] == "azure" == targets[name].target
        assert service["build"]["additional_contexts"] == {
            "builder": "service:python-builder",
            "runtime": "service:python-runtime",
        }
    stages = {stage.target for stage in load_plan("azure").stages}
    assert {svc["build"]["target"] for svc in built.values() if svc.get("scale") == 0} == stages


def test_every_service_is_waited_for_until_it_is_ready(azure_config: dict[str, Any]) -> None:
    """A CMD-SHELL healthcheck on every long-running service, except the two emulators whose
    images have no shell (no curl, no wget): `cosmos-ca` waits for the Cosmos DB emulator,
    `servicebus-health` asks the Service Bus emulator's health endpoint; services depend on
    those, on the others' health, and on the one-shot's success."""
    services = azure_config["services"]
    gates = {"cosmos": "cosmos-ca", "servicebus": "servicebus-health"}
    assert "healthcheck" not in services["cosmos-ca"]
    assert services["cosmos-ca"]["command"][0].startswith("https://")
    [_, probe] = services["servicebus-health"]["healthcheck"]["test"]
    assert "http://servicebus:5300/health" in probe
    for name, service in services.items():
        if service.get("scale") == 0:  # the build stages: never started
            continue
        if name in gates or name == "cosmos-ca":
            assert "healthcheck" not in service, name
        else:
            assert service["healthcheck"]["test"][0] == "CMD-SHELL", name
        for dependency, condition in service.get("depends_on", {}).items():
            wanted = "service_healthy"
            if dependency == "cosmos-ca":
                wanted = "service_completed_successfully"
            elif dependency in gates:
                assert gates[dependency] == name, f"{name} waits for {dependency} unready"
                wanted = "service_started"
            assert condition["condition"] == wanted, (name, dependency)
    for name in ("api", "event-processor", "functions"):
        assert {"cosmos-ca", "servicebus-health"} <= set(services[name]["depends_on"]), name


@pytest.mark.parametrize("service", APP_SERVICES)
def test_every_service_of_ours_starts_in_azure_mode_with_its_environment(
    azure_config: dict[str, Any], service: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env = environment(azure_config, service)
    assert env["LIGHTNING_MODE"] == "azure"
    isolate(monkeypatch, tmp_path, env)
    assert startup_problems(service) == []


@pytest.mark.parametrize(
    "case",
    [
        ("api", {"COSMOS_CONNECTION_STRING": None}, "COSMOS_CONNECTION_STRING"),
        ("api", {"ENTRA_AUDIENCE": "api://lightning"}, "is not a client id"),
        ("event-processor", {"SERVICE_BUS_CONNECTION_STRING": None}, "SERVICE_BUS_CONNECTION"),
        ("ui", {"ENTRA_UI_CLIENT_SECRET": None}, "ENTRA_UI_CLIENT_SECRET is missing"),
        ("functions", {"COSMOS_CONNECTION_STRING": None}, "COSMOS_CONNECTION_STRING"),
    ],
)
def test_the_start_up_check_fails_a_broken_environment(
    azure_config: dict[str, Any],
    case: tuple[str, dict[str, str | None], str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    service, change, problem = case
    env = environment(azure_config, service) | change
    broken = {key: value for key, value in env.items() if value is not None}
    isolate(monkeypatch, tmp_path, broken)
    assert any(problem in found for found in startup_problems(service))


def test_the_function_runs_the_deploys_package_on_the_emulators(
    azure_config: dict[str, Any],
) -> None:
    function = azure_config["services"]["functions"]
    env = environment(azure_config, "functions")
    python = compose_azure.FUNCTION_PYTHON
    assert function["image"] == f"mcr.microsoft.com/azure-functions/python:4-python{python}"
    mounts = {volume["target"]: volume for volume in function["volumes"]}
    assert Path(mounts["/home/site/wwwroot"]["source"]) == ROOT / compose_azure.FUNCTION_ROOT
    assert mounts["/home/site/wwwroot"]["read_only"]
    # The trigger's connection is the bus's; the host's storage is Azurite's, named in full.
    assert env[functions.CONNECTION] == env["SERVICE_BUS_CONNECTION_STRING"]
    assert env["FUNCTIONS_WORKER_RUNTIME"] == "python"
    storage = dict(part.split("=", 1) for part in env["AzureWebJobsStorage"].strip(";").split(";"))
    assert storage["BlobEndpoint"] == "http://azurite:10000/devstoreaccount1"
    assert storage["QueueEndpoint"] == "http://azurite:10001/devstoreaccount1"
    assert storage["TableEndpoint"] == "http://azurite:10002/devstoreaccount1"


def test_the_python_services_trust_the_cosmos_emulators_certificate(
    azure_config: dict[str, Any],
) -> None:
    """cosmos-ca writes the bundle the services name in SSL_CERT_FILE, from the address
    their connection string and the emulator's endpoint override both use."""
    services = azure_config["services"]
    writer = services["cosmos-ca"]
    [volume] = [v for v in writer["volumes"] if v["type"] == "volume"]
    bundle = writer["command"][1]
    assert Path(bundle).parent == Path(volume["target"])
    address = services["cosmos"]["environment"]["AZURE_COSMOS_EMULATOR_IP_ADDRESS_OVERRIDE"]
    assert writer["command"][0] == f"https://{address}:8081/_explorer/emulator.pem"
    for name in ("api", "event-processor", "functions"):
        env = environment(azure_config, name)
        assert env["SSL_CERT_FILE"] == bundle, name
        assert f"AccountEndpoint=https://{address}:8081/;" in env["COSMOS_CONNECTION_STRING"]
        mounted = {v["source"]: v for v in services[name]["volumes"] if v["type"] == "volume"}
        assert mounted[volume["source"]]["read_only"], name


# ---- the Service Bus emulator's Config.json ---------------------------------------------------


def test_the_emulator_declares_exactly_cores_topology(
    azure_config: dict[str, Any], tmp_path: Path
) -> None:
    env = environment(azure_config, compose_azure.TOPOLOGY_SERVICE)
    assert servicebus_emulator.service_topology(env) == servicebus_emulator.service_topology(
        environment(azure_config, "api")
    ), "the API publishes to the topology the processor consumes"
    path = tmp_path / "Config.json"
    topology = servicebus_emulator.write_config(env, path)
    assert topology == bus_topology("lightning", 5)
    [namespace] = json.loads(path.read_text())["UserConfig"]["Namespaces"]
    assert namespace["Name"] == "sbemulatorns"
    assert namespace["Queues"] == []
    [topic] = namespace["Topics"]
    assert topic["Name"] == topic_name("lightning") == "lightning-events"
    assert [s["Name"] for s in topic["Subscriptions"]] == list(CONSUMER_GROUPS)
    for subscription in topic["Subscriptions"]:
        group = subscription["Name"]
        declared = topology.subscription(group)
        assert subscription["Properties"]["MaxDeliveryCount"] == declared.max_delivery_count
        assert subscription["Properties"]["LockDuration"] == "PT5M"
        assert declared.lock_duration == timedelta(minutes=5)
        assert subscription["Rules"] == [
            {
                "Name": REPLAY_RULE,
                "Properties": {
                    "FilterType": "Sql",
                    "SqlFilter": {"SqlExpression": replay_filter(group)},
                },
            }
        ]


def test_the_emulator_follows_the_stacks_bus_settings(real_compose: dict[str, str]) -> None:
    config = resolved(
        real_compose,
        ENTRA | {"LIGHTNING_BUS_NAMESPACE": "dev-1", "LIGHTNING_BUS_MAX_ATTEMPTS": "3"},
    )
    env = environment(config, compose_azure.TOPOLOGY_SERVICE)
    document = servicebus_emulator.emulator_config(servicebus_emulator.service_topology(env))
    [topic] = document["UserConfig"]["Namespaces"][0]["Topics"]
    assert topic["Name"] == "dev-1-events"
    assert topic["Subscriptions"][0]["Properties"]["MaxDeliveryCount"] == 10  # the floor


class EmulatorClients:
    """`ServiceBusClient` as the bus looks it up: the stack's connection string opens a
    client on the fake namespace, any other fails the test."""

    def __init__(self, namespace: FakeNamespace, connection_string: str) -> None:
        self.namespace = namespace
        self.connection_string = connection_string

    def from_connection_string(self, connection_string: str) -> FakeServiceBusClient:
        assert connection_string == self.connection_string
        return FakeServiceBusClient(self.namespace)


class NoManagement:
    """`ServiceBusAdministrationClient`: the bus must not manage the emulator's entities."""

    @staticmethod
    def from_connection_string(connection_string: str) -> NoReturn:
        raise AssertionError(f"management client opened for {connection_string}")


async def declare(namespace: FakeNamespace, config: Mapping[str, Any]) -> None:
    """Give the fake namespace the entities the emulator creates from its Config.json: only
    the rules listed (no catch-all `$Default`)."""
    admin = FakeAdministrationClient(namespace)
    for topic in config["UserConfig"]["Namespaces"][0]["Topics"]:
        await admin.create_topic(topic["Name"])
        for subscription in topic["Subscriptions"]:
            name, properties = subscription["Name"], subscription["Properties"]
            await admin.create_subscription(
                topic["Name"],
                name,
                lock_duration=TypeAdapter(timedelta).validate_python(properties["LockDuration"]),
                max_delivery_count=properties["MaxDeliveryCount"],
            )
            await admin.delete_rule(topic["Name"], name, "$Default")
            for rule in subscription["Rules"]:
                expression = rule["Properties"]["SqlFilter"]["SqlExpression"]
                await admin.create_rule(
                    topic["Name"], name, rule["Name"], filter=SqlRuleFilter(expression)
                )


@contextlib.contextmanager
def serving(*answers: bytes, tls: ssl.SSLContext | None = None) -> Iterator[str]:
    """The `answers` to the GETs on 127.0.0.1 in turn, the last one to every GET after;
    HTTPS with `tls`. Yields the base URL."""
    waiting = list(answers)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = waiting.pop(0) if len(waiting) > 1 else waiting[0]
            self.send_response(200)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: object) -> None:
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)  # listening once constructed
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@contextlib.asynccontextmanager
async def running(environments: list[dict[str, str]]) -> AsyncIterator[None]:
    """Each environment's services started as the runtime starts them (`load_settings`,
    `prepare`, `open_providers`, a narrowed context each), in this process; stopped after."""
    stop = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []
    async with contextlib.AsyncExitStack() as exits:
        for env in environments:
            context, services = prepare(load_settings(**env))
            for provider in context.providers():
                exits.push_async_callback(provider.close)
            assert await open_providers(context, stop)
            tasks += [
                asyncio.create_task(service(context.narrowed_to(service_needs([name])), stop))
                for name, service in services.items()
            ]
        try:
            yield
        finally:
            stop.set()
            await asyncio.gather(*tasks)


def account_endpoint(connection_string: str) -> str:
    return connection_string.split("AccountEndpoint=")[1].split(";", maxsplit=1)[0]


async def test_the_azure_services_process_an_event_on_the_emulators_stand_ins(
    azure_config: dict[str, Any],
    cosmos_connection_string: str,
    cosmos_database: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    api, processor = environment(azure_config, "api"), environment(azure_config, "event-processor")
    bus_connection = processor["SERVICE_BUS_CONNECTION_STRING"]
    assert api["SERVICE_BUS_CONNECTION_STRING"] == bus_connection
    namespace = FakeNamespace()
    topology = servicebus_emulator.service_topology(processor)
    await declare(namespace, servicebus_emulator.emulator_config(topology))
    monkeypatch.setattr(servicebus, "ServiceBusClient", EmulatorClients(namespace, bus_connection))
    monkeypatch.setattr(servicebus, "ServiceBusAdministrationClient", NoManagement)
    isolate(monkeypatch, tmp_path, {})
    compose_cosmos = api["COSMOS_CONNECTION_STRING"]
    cosmos = {
        "COSMOS_CONNECTION_STRING": compose_cosmos.replace(
            account_endpoint(compose_cosmos), cosmos_endpoint(cosmos_connection_string)
        ),
        "COSMOS_DATABASE": cosmos_database,
    }
    tokens = EntraTokens(tenant=TENANT, audience=API_CLIENT_ID)  # Entra's issuer for TENANT
    port = free_port()
    with serving(json.dumps(tokens.keys()).encode()) as keys:
        api |= cosmos | {
            "ENTRA_JWKS_URL": f"{keys}/{TENANT}/discovery/v2.0/keys",
            "LIGHTNING_HOST": "127.0.0.1",
            "LIGHTNING_API_PORT": str(port),
        }
        async with running([api, processor | cosmos]):
            checks = await asyncio.to_thread(
                smoke,
                f"http://127.0.0.1:{port}",
                token=tokens.user("alice-object-id"),
                console=Console(),
                timeout=60,
                poll_interval=0.2,
            )
    assert [check.name for check in checks if check.ok] == [
        "GET /healthz",
        "GET /readyz",
        "POST /api/events",
        "event processed",
    ]
    subscription = namespace.subscription(topology.topic, topology.subscriptions[0].name)
    assert set(subscription.rules) == {REPLAY_RULE}, "the bus verified, never managed"


@pytest.fixture(scope="module")
def azurite_package() -> Path:
    return azurite.installed()


def test_azurite_accepts_the_functions_hosts_storage_connection(
    azure_config: dict[str, Any], azurite_package: Path, tmp_path: Path
) -> None:
    given = environment(azure_config, "functions")["AzureWebJobsStorage"]
    with azurite.running(azurite_package, tmp_path) as local:
        connection = (
            given.replace("http://azurite:10000", local.blob)
            .replace("http://azurite:10001", local.queue)
            .replace("http://azurite:10002", local.table)
        )
        assert "azurite:" not in connection
        service = BlobServiceClient.from_connection_string(connection)
        container = service.create_container("azure-webjobs-hosts")  # where the host keeps locks
        container.upload_blob("locks/probe", b"held")
        assert container.download_blob("locks/probe").readall() == b"held"
        key = connection.split("AccountKey=")[1].split(";")[0]
        wrong = connection.replace(key, base64.b64encode(b"not the account key").decode())
        with pytest.raises(HttpResponseError) as refused:
            BlobServiceClient.from_connection_string(wrong).get_service_properties()
        assert refused.value.status_code == 403


# ---- the Cosmos DB emulator's certificate, trusted through SSL_CERT_FILE ---------------------

EMULATOR_CA = ROOT / "docker" / "azure" / "emulator_ca.py"
# What the Cosmos DB SDK's transport does with verification on: aiohttp's default context.
FETCH = """
import asyncio, sys
import aiohttp

async def main() -> None:
    async with aiohttp.ClientSession() as session, session.get(sys.argv[1]) as response:
        print(response.status)

asyncio.run(main())
"""


def test_the_emulators_certificate_becomes_trusted_through_the_written_bundle(
    tmp_path: Path,
) -> None:
    cert, key = self_signed_tls(tmp_path)  # like the emulator's: self-signed, an IP address
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    bundle = tmp_path / "ca-bundle.pem"
    with serving(cert.read_bytes(), tls=tls) as url:
        pem_url = f"{url}/_explorer/emulator.pem"
        wrote = run_python([str(EMULATOR_CA), pem_url, str(bundle)])
        assert wrote.returncode == 0, wrote.stderr
        assert bundle.read_text().endswith(cert.read_text())
        system = ssl.get_default_verify_paths()
        system_bundle = Path(system.cafile or system.openssl_cafile).read_text()
        assert bundle.read_text().startswith(system_bundle.rstrip("\n"))
        untrusted = run_python(["-c", FETCH, url], SSL_CERT_FILE=str(system.openssl_cafile))
        assert "CERTIFICATE_VERIFY_FAILED" in untrusted.stderr
        trusted = run_python(["-c", FETCH, url], SSL_CERT_FILE=str(bundle))
        assert trusted.returncode == 0, trusted.stderr
        assert trusted.stdout.strip() == "200"


def test_an_answer_that_is_no_certificate_is_one_line(tmp_path: Path) -> None:
    cert, key = self_signed_tls(tmp_path)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    bundle = tmp_path / "ca-bundle.pem"
    with serving(b"<html>starting</html>", tls=tls) as url:
        done = run_python([str(EMULATOR_CA), url, str(bundle)])
    assert done.returncode == 1
    [line] = done.stderr.splitlines()
    assert line.startswith(f"error: the Cosmos DB emulator's certificate from {url}: ")
    assert not bundle.exists()


def test_the_certificate_is_waited_for_until_the_emulator_serves_it(tmp_path: Path) -> None:
    cert, key = self_signed_tls(tmp_path)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    bundle = tmp_path / "ca-bundle.pem"
    starting = b"<html>Starting the emulator</html>"
    with serving(starting, starting, cert.read_bytes(), tls=tls) as url:
        done = run_python([str(EMULATOR_CA), f"{url}/_explorer/emulator.pem", str(bundle), "30"])
    assert done.returncode == 0, done.stderr
    assert bundle.read_text().endswith(cert.read_text())


def run_python(arguments: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *arguments],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
