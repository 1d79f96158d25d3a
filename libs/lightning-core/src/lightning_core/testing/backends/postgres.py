"""PostgreSQL: the machine's shared server for the contract suite, a private one for faults.

The contract suite gets a database of this test run's own on the shared server (dropped at
the end of the run) and a fresh schema in it per test, so runs sharing the server never
see each other's documents. The fault suite gets a PostgreSQL 15 of its own, initdb'd in a
temporary directory on a free port, that it may kill.
"""

from __future__ import annotations

import asyncio
import getpass
import os
import shutil
import signal
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
import pytest

from lightning_core.storage.postgres import PostgresStorage
from lightning_core.testing.backends import Faulty, ServerProcess
from lightning_core.testing.machine import free_port, require

STORAGE = ["storage_postgres"]
FAULTY = ["faulty_postgres"]

ADMIN_URL = os.environ.get("DATABASE_URL") or (
    f"postgresql://{getpass.getuser()}@127.0.0.1:5432/postgres"
)
START_SHARED = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
# How a laptop provides the shared server the contract suites use.
PROVIDE_POSTGRES = (
    "start one (docker run -d -p 5432:5432 -e POSTGRES_HOST_AUTH_METHOD=trust postgres:16, "
    f"or your package manager's postgresql: {START_SHARED}) or set DATABASE_URL to a server "
    "where this user may CREATE DATABASE"
)
# The newest server Debian/Ubuntu installed (15 on our machines, 16 on GitHub's runners).
PG_BIN = max(
    Path("/usr/lib/postgresql").glob("*/bin"),
    key=lambda path: int(path.parent.name) if path.parent.name.isdigit() else 0,
    default=Path("/usr/lib/postgresql/15/bin"),
)
# PostgreSQL refuses to run as root: as root, the private server runs as this OS user.
SERVER_USER = "postgres"


def database_url(url: str, database: str, **settings: str) -> str:
    """`url` pointing at `database`, with server settings (e.g. search_path) added."""
    parts = urlsplit(url)
    query = urlencode([*parse_qsl(parts.query), *settings.items()])
    return urlunsplit(parts._replace(path=f"/{database}", query=query))


async def _admin(url: str, *statements: str) -> None:
    connection = await asyncpg.connect(url, timeout=10)
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A database of this run's own on the shared server; dropped when the run ends."""
    name = f"lightning_test_{uuid.uuid4().hex[:12]}"
    try:
        asyncio.run(_admin(ADMIN_URL, f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError) as error:
        require(False, f"PostgreSQL at {ADMIN_URL} ({error})", PROVIDE_POSTGRES)
    yield database_url(ADMIN_URL, name)
    asyncio.run(_admin(ADMIN_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
async def storage_postgres(postgres_database: str) -> AsyncIterator[PostgresStorage]:
    schema = f"t_{uuid.uuid4().hex[:12]}"
    await _admin(postgres_database, f'CREATE SCHEMA "{schema}"')
    database = urlsplit(postgres_database).path.lstrip("/")
    try:
        url = database_url(postgres_database, database, search_path=schema)
        async with PostgresStorage(url) as storage:
            yield storage
    finally:
        await _admin(postgres_database, f'DROP SCHEMA "{schema}" CASCADE')


class PostgresProcess(ServerProcess):
    """A private postmaster in a session of its own, so `stop` kills it with every backend
    at once, as a crash of the machine or container would; otherwise orphaned backends
    could hold the shared memory and keep the restarted server from starting."""

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGKILL)
        super().stop()


def _as_server_user() -> list[str]:
    if os.geteuid() != 0:
        return []
    return ["setpriv", f"--reuid={SERVER_USER}", f"--regid={SERVER_USER}", "--init-groups", "--"]


@pytest.fixture
def faulty_postgres() -> Iterator[Faulty]:
    """A PostgreSQL of our own (durable defaults: fsync and synchronous commit on)."""
    require(
        (PG_BIN / "postgres").exists(),
        f"PostgreSQL server binaries in {PG_BIN}",
        "install the PostgreSQL server (apt-get install postgresql; brew install postgresql@16) "
        "so the fault tests can run a private one",
    )
    # Not under pytest's tmp_path: the server's user must be able to reach its directory.
    root = Path(tempfile.mkdtemp(prefix="lightning-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, SERVER_USER, SERVER_USER)
    data, port = root / "data", free_port()
    subprocess.run(
        [
            *_as_server_user(),
            *(str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres"),
            *("--auth=trust", "--encoding=UTF8", "--locale=C"),
        ],
        check=True,
        capture_output=True,
    )
    # setsid: the postmaster leads its own process group (it is not one already, so
    # setsid execs in place and the pid ServerProcess holds is the postmaster's).
    server = PostgresProcess(
        [
            *("setsid", *_as_server_user(), str(PG_BIN / "postgres"), "-D", str(data)),
            *("-p", str(port), "-k", str(data), "-c", "listen_addresses=127.0.0.1"),
        ],
        port,
        log=root / "postgres.log",
    )
    server.start()
    url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    try:
        yield Faulty(kind="storage", server=server, make=lambda: PostgresStorage(url))
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
