"""A graceful stop in embedded mode processes every event the API accepted.

The memory bus lives in the runtime's process, so a consumer that handed its backlog back
on SIGTERM (as it does to a broker) would drop it: the records would stay `received`.
Under a burst of POSTs from many connections the processor falls far behind the API, so
when the burst ends most of it is still queued, and the stop must handle all of it before
the process exits.
"""

import asyncio
import re
import sqlite3
from pathlib import Path

from lightning_core.testing.runtime import start_runtime
from lightning_devtools.bench.api import asyncio_load

CONNECTIONS = 32
BURST = 1.5  # seconds


def statuses(database: Path) -> list[str]:
    with sqlite3.connect(database) as db:
        rows = db.execute(
            "SELECT json_extract(body, '$.status') FROM documents WHERE collection='events'"
        ).fetchall()
    return [status for (status,) in rows]


def test_sigterm_after_a_burst_leaves_no_event_unprocessed(tmp_path: Path) -> None:
    database = tmp_path / "system.db"
    env = {"LIGHTNING_MODE": "embedded", "LIGHTNING_SQLITE_PATH": str(database)}
    with start_runtime(env, tmp_path, services="api,event-processor") as system:
        rate = asyncio.run(asyncio_load(f"{system.api_url}/api/events", CONNECTIONS, BURST, 0))
    # Leaving the block sent SIGTERM and required exit 0.

    log = (tmp_path / "runtime.log").read_text()
    queued = re.search(r"handling the (\d+) events still queued before stopping", log)
    assert queued, f"the burst left no backlog to drain:\n{log[-2000:]}"
    found = statuses(database)
    assert len(found) >= rate * BURST * 0.9  # every accepted event has its record
    assert int(queued.group(1)) > len(found) // 2
    assert set(found) == {"processed"}
