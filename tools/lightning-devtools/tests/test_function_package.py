"""The Function package as Azure runs it: built once from uv.lock (needs the package index),
unpacked into an empty directory and loaded by a fresh isolated interpreter that sees only
that directory, its `.python_packages` and the standard library, never the workspace.

The trigger is called with the worker's own `ServiceBusMessage` and stores on the Cosmos
REST test server (provider_backends/cosmos.py), so the zip's azure-cosmos does the writing;
the bus is the in-memory one (local mode), since no Service Bus runs here.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
import tempfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from lightning_core.domain import PROCESSOR_GROUP
from lightning_core.events import CloudEvent
from lightning_core.records import EVENTS, EventRecord, EventStatus
from lightning_core.storage.cosmos import CosmosStorage
from lightning_core.topology import topic_name
from lightning_devtools import function_package
from lightning_devtools.errors import ToolError
from lightning_devtools.function_package import (
    PROJECT,
    SITE_PACKAGES,
    FunctionPackage,
    belongs_in_package,
    build_package,
    uv_reason,
)

ROOT = Path(__file__).resolve().parents[3]
PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"  # the interpreter that loads it
SITE = str(SITE_PACKAGES)
BUS_NAMESPACE = "pkg-test"

# Runs in the isolated interpreter: argv = package root, site-packages, message id; stdin =
# the message body. Prints what it saw as JSON.
CHILD = """
import sys

root, site_packages, message_id = sys.argv[1:4]
stdlib = list(sys.path)  # -I -S: the standard library and nothing else
sys.path[:0] = [root, site_packages]

import asyncio
import json

import azure.cosmos
import azure.functions
import function_app
import lightning_core
import lightning_processor
from azure.functions.servicebus import ServiceBusMessage
from lightning_core.bus.servicebus import CONTENT_TYPE

[function] = [
    f for f in function_app.app.get_functions() if f.get_function_name() == "process_event"
]
message = ServiceBusMessage(
    body=sys.stdin.buffer.read(),
    message_id=message_id,
    content_type=CONTENT_TYPE,
    delivery_count=1,
    application_properties={},
    user_properties={},
)
assert isinstance(message, azure.functions.ServiceBusMessage)
asyncio.run(function.get_user_function()(message))
try:
    import lightning_api
    workspace = lightning_api.__file__
except ModuleNotFoundError:
    workspace = None
trigger = function.get_trigger().get_dict_repr()
binding = ("type", "topicName", "subscriptionName", "connection")
loaded = (function_app, lightning_processor, lightning_core, azure.functions, azure.cosmos)
print(json.dumps({
    "name": function.get_function_name(),
    "trigger": {key: trigger[key] for key in binding},
    "stdlib": stdlib,
    "site_imported": "site" in sys.modules,
    "workspace": workspace,
    "modules": {module.__name__: module.__file__ for module in loaded},
}))
"""


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> FunctionPackage:
    return build_package(ROOT, tmp_path_factory.mktemp("dist") / "function.zip", python=PYTHON)


@pytest.fixture(scope="module")
def names(package: FunctionPackage) -> list[str]:
    with zipfile.ZipFile(package.path) as archive:
        return archive.namelist()


@pytest.fixture
def unpacked(package: FunctionPackage, tmp_path: Path) -> Path:
    """The package in an empty directory, as the host's wwwroot holds it."""
    wwwroot = tmp_path / "wwwroot"
    wwwroot.mkdir()
    with zipfile.ZipFile(package.path) as archive:
        archive.extractall(wwwroot)
    return wwwroot


async def run_isolated(root: Path, event: CloudEvent, env: dict[str, str]) -> dict[str, Any]:
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-I",
        "-S",
        "-c",
        CHILD,
        str(root),
        str(root / SITE_PACKAGES),
        event.id,
        cwd=root,
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(child.communicate(event.to_json()), 120)
    assert child.returncode == 0, stderr.decode()
    seen: dict[str, Any] = json.loads(stdout.decode().strip().splitlines()[-1])
    return seen


async def test_the_unpacked_package_handles_a_service_bus_message(
    unpacked: Path, cosmos_connection_string: str, cosmos_database: str
) -> None:
    event = CloudEvent(source="package-test", type="order.created", user="alice", data={"n": 1})
    seen = await run_isolated(
        unpacked,
        event,
        {
            "LIGHTNING_MODE": "local",
            "LIGHTNING_STORAGE_PROVIDER": "cosmos",
            "LIGHTNING_EVENT_BUS_PROVIDER": "memory",
            "COSMOS_CONNECTION_STRING": cosmos_connection_string,
            "COSMOS_DATABASE": cosmos_database,
            "LIGHTNING_BUS_NAMESPACE": BUS_NAMESPACE,
        },
    )
    assert seen["name"] == "process_event"
    assert seen["trigger"] == {
        "type": "serviceBusTrigger",
        "topicName": topic_name(BUS_NAMESPACE),
        "subscriptionName": PROCESSOR_GROUP,
        "connection": "SERVICE_BUS",  # the app setting infra gives the Function App
    }
    # Everything came from the unpacked directory; the workspace was out of sight.
    assert seen["modules"]["function_app"] == str(unpacked / "function_app.py")
    for module, path in seen["modules"].items():
        assert Path(path).is_relative_to(unpacked), (module, path)
    assert seen["workspace"] is None
    assert not seen["site_imported"]
    assert not any("site-packages" in path for path in seen["stdlib"]), seen["stdlib"]

    async with CosmosStorage(cosmos_database, connection_string=cosmos_connection_string) as db:
        record = EventRecord.from_document(await db.get(EVENTS, event.user, event.id))
    assert record.status is EventStatus.PROCESSED
    assert record.event == event


def test_the_root_holds_the_host_files_and_the_rest_is_site_packages(names: list[str]) -> None:
    assert names == sorted(names)
    assert [name for name in names if not name.startswith(f"{SITE}/")] == [
        "function_app.py",
        "host.json",
    ]
    wheels_for_linux = f"pydantic_core/_pydantic_core.cpython-{PYTHON.replace('.', '')}"
    assert any(name.startswith(f"{SITE}/{wheels_for_linux}-x86_64-linux-gnu") for name in names)
    assert f"{SITE}/azure/functions/__init__.py" in names
    assert f"{SITE}/azure/cosmos/__init__.py" in names


def test_the_host_files_are_the_repository_s(package: FunctionPackage) -> None:
    with zipfile.ZipFile(package.path) as archive:
        for name in ("function_app.py", "host.json"):
            assert archive.read(name) == (ROOT / PROJECT / name).read_bytes(), name


@pytest.mark.parametrize(
    ("package_name", "source"),
    [
        ("lightning_core", "libs/lightning-core/src/lightning_core"),
        ("lightning_processor", "services/event-processor/src/lightning_processor"),
    ],
)
def test_the_workspace_packages_are_their_sources_and_nothing_else(
    names: list[str], package_name: str, source: str
) -> None:
    """No tests, caches or stray files of the repository ride along with the code."""
    sources = ROOT / source
    expected = {
        f"{SITE}/{package_name}/{path.relative_to(sources).as_posix()}"
        for path in sources.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    assert {name for name in names if name.startswith(f"{SITE}/{package_name}/")} == expected


def test_nothing_of_the_build_machine_is_in_it(package: FunctionPackage, names: list[str]) -> None:
    paths = [PurePosixPath(name) for name in names]
    assert not [p for p in paths if "__pycache__" in p.parts or p.suffix == ".pyc"]
    assert not [p for p in paths if p.name == ".env" or p.name.startswith(".env.")]
    assert not [p for p in paths if p.name == "conftest.py"]
    assert not [p for p in paths if p.name in ("direct_url.json", "uv_cache.json")]
    assert not [p for p in paths if p.is_relative_to(SITE_PACKAGES / "bin")]
    with zipfile.ZipFile(package.path) as archive:
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
        contents = b"".join(archive.read(name) for name in names)
    scratch = str(Path(tempfile.gettempdir()) / "function-package-")
    for local in (str(ROOT), sys.prefix, sys.base_prefix, scratch):
        assert local.encode() not in contents, local


def test_a_second_build_is_the_same_zip(package: FunctionPackage, tmp_path: Path) -> None:
    """Byte for byte, as long as the sources did not change in between."""
    again = build_package(ROOT, tmp_path / "again.zip", python=PYTHON)
    with zipfile.ZipFile(package.path) as first, zipfile.ZipFile(again.path) as second:
        assert first.namelist() == second.namelist()
        changed = [name for name in first.namelist() if first.read(name) != second.read(name)]
    assert not changed
    digests = {hashlib.sha256(p.read_bytes()).hexdigest() for p in (package.path, again.path)}
    assert len(digests) == 1


def test_the_summary_names_path_size_and_files(package: FunctionPackage, names: list[str]) -> None:
    assert package.files == len(names)
    assert package.size == package.path.stat().st_size
    assert package.summary() == (
        f"{package.path}: {package.size / 1_000_000:.1f} MB, {len(names)} files "
        f"(Python {PYTHON}, Linux x86_64)"
    )


@pytest.mark.parametrize(
    ("path", "kept"),
    [
        (f"{SITE}/pkg/__pycache__/mod.cpython-311.pyc", False),
        (f"{SITE}/pkg/mod.pyc", False),
        (f"{SITE}/bin/uvicorn", False),
        (f"{SITE}/.lock", False),
        (f"{SITE}/lightning_core-0.1.0.dist-info/RECORD", True),
        (f"{SITE}/pkg/bin/tool.py", True),
        (f"{SITE}/pkg/.lock", True),
        ("function_app.py", True),
    ],
)
def test_what_belongs_in_the_package(path: str, kept: bool) -> None:
    assert belongs_in_package(PurePosixPath(path)) is kept


def test_an_unsupported_python_is_refused_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(ToolError) as refused:
        build_package(ROOT, tmp_path / "f.zip", python="3.9")
    assert str(refused.value) == (
        "Python 3.9 is not a version this Function package can target. Fix: use one of "
        "3.11, 3.12, 3.13 (Azure Functions 4.x runs 3.10-3.13; the workspace needs 3.11 or newer)"
    )


def test_without_uv_the_fix_is_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(function_package, "find_tool", lambda _name: None)
    with pytest.raises(ToolError, match=r"^uv is not installed\. Fix: `python -m pip install uv`"):
        build_package(ROOT, tmp_path / "f.zip")
    assert not (tmp_path / "f.zip").exists()


@pytest.fixture
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """uv with an empty cache and no network: every download fails, as behind a dead proxy."""
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("UV_OFFLINE", "1")


@pytest.mark.usefixtures("offline")
def test_a_failed_download_is_one_line_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ToolError) as failed:
        build_package(ROOT, tmp_path / "f.zip")
    message = str(failed.value)
    assert "\n" not in message
    assert " failed: " in message
    assert message.endswith(function_package.REACH_INDEX)
    assert not (tmp_path / "f.zip").exists()


def test_uv_errors_read_as_their_reason_and_innermost_cause() -> None:
    stderr = (
        "Using CPython 3.11.7 interpreter at: /usr/bin/python3\n"
        "error: Request failed after 3 retries\n"
        "  cause: Failed to fetch: http://127.0.0.1:9/simple/six/\n"
        "  cause: Connection refused (os error 111)\n"
    )
    assert uv_reason(stderr) == "Request failed after 3 retries (Connection refused (os error 111))"
    assert uv_reason("error: No solution found\n") == "No solution found"
    assert uv_reason("something odd\nlast words\n") == "last words"
    assert uv_reason("") == "(no output)"
