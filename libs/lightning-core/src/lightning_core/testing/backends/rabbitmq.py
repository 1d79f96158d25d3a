"""RabbitMQ bus: the shared broker for the contract suite, a private one for faults.

The contract suite uses the machine's broker (RABBITMQ_URL, default guest@127.0.0.1:5672,
vhost /) under a random namespace per test, and deletes that namespace's exchanges and
queues afterwards. A vhost per run would make cleanup one call, but creating one needs
rabbitmqctl or the management plugin, which a CI service container may not offer; plain
AMQP works against any broker. AMQP cannot list queues, so the bus records the groups it
declared and `RabbitMqBus.delete_topology` removes exactly those.

The fault suite gets a private rabbitmq-server: its own node name, ports, data, log and
config directories, no plugins, run in the foreground in a process group of its own so
SIGKILL takes the whole VM down as a crash would. It registers with the machine's epmd,
which it shares with the main broker and never stops.
"""

from __future__ import annotations

import contextlib
import os
import signal
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aio_pika
import pytest
from aiormq.exceptions import AMQPConnectionError

from lightning_core.bus.base import RetryPolicy
from lightning_core.bus.rabbitmq import RabbitMqBus
from lightning_core.testing.backends import Faulty, ServerProcess, emptier
from lightning_core.testing.machine import free_port, require

BUSES = ["bus_rabbitmq"]
FAULTY = ["faulty_rabbitmq"]
BACK_EMPTY = ["faulty_rabbitmq"]

RABBITMQ_URL = os.environ.get("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"  # the /usr/sbin wrapper switches user
PROVIDE_RABBITMQ = (
    "start one (docker run -d -p 5672:5672 rabbitmq:3.13, or your package manager's "
    "rabbitmq-server: rabbitmq-server -detached) or set RABBITMQ_URL"
)


async def reachable(url: str) -> bool:
    try:
        connection = await aio_pika.connect(url, timeout=5)
    except (AMQPConnectionError, OSError):
        return False
    await connection.close()
    return True


@pytest.fixture
async def bus_rabbitmq(fast_retry: RetryPolicy) -> AsyncIterator[RabbitMqBus]:
    require(
        await reachable(RABBITMQ_URL),
        f"RabbitMQ at {RABBITMQ_URL}",
        PROVIDE_RABBITMQ,
    )
    namespace = f"t-{uuid.uuid4().hex[:12]}"
    async with RabbitMqBus(RABBITMQ_URL, namespace, retry=fast_retry) as bus:
        try:
            yield bus
        finally:
            await bus.delete_topology()


class ProcessGroup(ServerProcess):
    """A ServerProcess whose command leads its own process group, all killed at once."""

    def stop(self) -> None:
        if self._process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, signal.SIGKILL)
        super().stop()


def private_rabbitmq(base: Path) -> ProcessGroup:
    """A broker of our own on free ports, keeping everything under `base`."""
    port = free_port()
    (base / "log").mkdir(parents=True)
    (base / "rabbitmq.conf").write_text(f"listeners.tcp.default = 127.0.0.1:{port}\n")
    (base / "rabbitmq-env.conf").write_text("")  # not /etc/rabbitmq's: it names the main node
    (base / "enabled_plugins").write_text("[].\n")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(base),  # its own Erlang cookie
        "LANG": "C.UTF-8",
        "RABBITMQ_NODENAME": f"t{uuid.uuid4().hex[:10]}@localhost",
        "RABBITMQ_NODE_PORT": str(port),
        "RABBITMQ_DIST_PORT": str(free_port()),
        "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
        "RABBITMQ_LOG_BASE": str(base / "log"),
        "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
        "RABBITMQ_ADVANCED_CONFIG_FILE": str(base / "advanced.config"),
        "RABBITMQ_CONF_ENV_FILE": str(base / "rabbitmq-env.conf"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
        "RABBITMQ_PID_FILE": str(base / "rabbitmq.pid"),
        "ERL_EPMD_ADDRESS": "127.0.0.1",
        # Exec the Erlang VM in place of the script: no shell in between to outlive a kill.
        "RUNNING_UNDER_SYSTEMD": "true",
    }
    return ProcessGroup(
        ["setsid", SERVER], port, env=env, log=base / "server.log", ready_timeout=90.0
    )


@pytest.fixture
def faulty_rabbitmq(tmp_path: Path) -> Iterator[Faulty]:
    require(
        Path(SERVER).exists(),
        "rabbitmq-server",
        "install rabbitmq-server (apt-get install -y rabbitmq-server; brew install rabbitmq) "
        "so the fault tests can run a private node",
    )
    base = tmp_path / "rabbitmq"
    server = private_rabbitmq(base)
    server.start()
    url = f"amqp://guest:guest@127.0.0.1:{server.port}/"
    try:
        yield Faulty(
            kind="bus",
            server=server,
            make=lambda: RabbitMqBus(url, "faults", retry=RetryPolicy(max_attempts=20)),
            wipe=emptier(base / "mnesia"),
        )
    finally:
        server.stop()
