"""`invoke dev` for real: three services in embedded mode, an event processed, a clean stop."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from rich.console import Console

from lightning_core.config import load_settings
from lightning_core.runtime import EXIT_CONFIG
from lightning_core.testing.machine import free_port
from lightning_core.topology import SERVICES
from lightning_devtools.dev import api_url, banner, dev_environment, run_dev

REPO = Path(__file__).resolve().parents[3]


def start_dev(tmp_path: Path) -> tuple[subprocess.Popen[str], int, int]:
    api_port, ui_port = free_port(), free_port()
    env = {
        **os.environ,
        "LIGHTNING_API_PORT": str(api_port),
        "LIGHTNING_UI_PORT": str(ui_port),
        "LIGHTNING_SQLITE_PATH": str(tmp_path / "dev.db"),
        "COLUMNS": "200",
    }
    env.pop("LIGHTNING_MODE", None)
    invoke = Path(sys.executable).with_name("invoke")
    process = subprocess.Popen(
        [str(invoke), "--search-root", str(REPO), "dev"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return process, api_port, ui_port


def read_until(process: subprocess.Popen[str], pattern: str, timeout: float = 60) -> str:
    assert process.stdout is not None
    seen = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        seen += line
        if re.search(pattern, line):
            return seen
    process.kill()
    pytest.fail(f"never saw {pattern!r}; output was:\n{seen}")


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_dev_serves_processes_and_stops_cleanly(tmp_path: Path, stop_signal: int) -> None:
    process, api_port, ui_port = start_dev(tmp_path)
    try:
        banner = read_until(process, rf"API docs.*http://127\.0\.0\.1:{api_port}/docs")
        assert f"http://127.0.0.1:{ui_port}" in banner

        posted = httpx.post(
            f"http://127.0.0.1:{api_port}/api/events", json={"type": "dev.check"}, timeout=5
        )
        assert posted.status_code == 202
        event_id = posted.json()["event"]["id"]
        posted_at = time.monotonic()
        row = ""
        while time.monotonic() - posted_at < 1.0:
            page = httpx.get(f"http://127.0.0.1:{ui_port}/partials/events", timeout=1).text
            row = page[page.find(event_id) :]
            if "status-processed" in row[: row.find("</tr>")]:
                break
            time.sleep(0.02)
        else:
            pytest.fail(f"event {event_id} not shown processed in the UI within 1 s: {row}")
    finally:
        process.send_signal(stop_signal)
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    assert "Traceback" not in output


def test_dev_hosts_every_declared_service() -> None:
    assert dev_environment({})["SERVICE_TYPE"].split(",") == list(SERVICES)


def test_dev_checks_the_settings_of_what_its_services_need_together(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The UI alone needs no server; hosted with the API and processor, local mode needs both."""
    monkeypatch.chdir(tmp_path)  # no stray .env
    providers = ("LIGHTNING_STORAGE_PROVIDER", "LIGHTNING_EVENT_BUS_PROVIDER")
    for name in ("DATABASE_URL", "REDIS_URL", *providers):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LIGHTNING_MODE", "local")
    console = Console(record=True, width=400)
    assert run_dev(console) == EXIT_CONFIG
    [line] = console.export_text().strip().splitlines()
    assert "DATABASE_URL is missing" in line
    assert "REDIS_URL is missing" in line


def test_dev_reports_the_mode_and_providers_its_settings_chose(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A .env choosing PostgreSQL and Redis is what `invoke dev` runs and says it runs."""
    monkeypatch.chdir(tmp_path)
    for name in ("LIGHTNING_MODE", "LIGHTNING_STORAGE_PROVIDER", "LIGHTNING_EVENT_BUS_PROVIDER"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / ".env").write_text(
        "LIGHTNING_MODE=local\nLIGHTNING_EVENT_BUS_PROVIDER=rabbitmq\n"
        "DATABASE_URL=postgresql://u@db/x\nRABBITMQ_URL=amqp://u@mq/\nLIGHTNING_API_PORT=9100\n"
    )
    env = dev_environment({})
    assert "LIGHTNING_MODE" not in env  # the runtime reads the same .env
    settings = load_settings(SERVICE_TYPE=env["SERVICE_TYPE"])
    assert banner(settings) == "Lightning OS, local mode: storage postgres, bus rabbitmq"
    assert api_url(settings) == "http://127.0.0.1:9100"
    (tmp_path / ".env").write_text("LIGHTNING_API_URL=http://127.0.0.1:9200\n")
    assert api_url(load_settings()) == "http://127.0.0.1:9200"
