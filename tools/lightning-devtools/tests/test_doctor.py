"""`invoke doctor`: the report, and its exit code (1 only when the default workflow is blocked)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from lightning_devtools.docker import Probe
from lightning_devtools.doctor import Check, default_checks, doctor

ROOT = Path(__file__).resolve().parents[3]


def console() -> Console:
    return Console(record=True, width=240)


def check(name: str, ok: bool, required: bool) -> Check:
    return Check(name, "testing", required, lambda: Probe(ok=ok, detail="1.0"), f"get {name}")


def test_missing_optional_tool_is_reported_but_passes() -> None:
    out = console()
    code = doctor(out, [check("uv", True, True), check("buildah", False, False)])
    assert code == 0
    text = out.export_text()
    assert "missing" in text
    assert "get buildah" in text
    assert "get uv" not in text  # the fix column is only filled for missing tools


def test_missing_required_tool_fails() -> None:
    out = console()
    assert doctor(out, [check("uv", False, True), check("buildah", True, False)]) == 1
    assert "Missing for the default workflow: uv" in out.export_text()


def test_empty_path_reports_every_external_tool_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("ARM_USE_OIDC", raising=False)
    monkeypatch.delenv("ARM_CLIENT_SECRET", raising=False)
    results = {check.name: check.probe() for check in default_checks()}
    assert results["python"].ok
    assert results["invoke"].ok
    for name in (
        *("docker CLI", "docker engine", "docker buildx", "docker compose v2", "buildah"),
        *("runc", "debootstrap", "wrk", "pulumi", "Azure login"),
    ):
        assert not results[name].ok, name
    assert results["docker buildx"].detail == "`docker` not found on PATH"
    assert results["pulumi"].detail == "`pulumi` not found on PATH"
    assert "podman-compose" not in results  # no command uses it
    assert results["Azure login"].detail == "`az` not found on PATH"


def test_deploy_tools_are_reported_with_how_to_get_them_but_never_required() -> None:
    checks = {check.name: check for check in default_checks()}
    for name in ("pulumi", "az", "Azure login"):
        assert not checks[name].required, name
        assert "invoke deploy" in checks[name].needed_for, name
    assert "https://www.pulumi.com/docs/iac/download-install/" in checks["pulumi"].how_to_get
    assert "az login" in checks["Azure login"].how_to_get


def test_doctor_task_on_this_machine() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "invoke", "doctor"],
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "240"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert "Traceback" not in done.stderr
    for name in (
        *("python", "uv", "nox", "docker engine", "docker buildx", "buildah", "chromium"),
        *("runc", "debootstrap", "wrk", "pulumi", "Azure login"),
    ):
        assert name in done.stdout
    assert done.returncode == (0 if "Everything the default workflow needs" in done.stdout else 1)
