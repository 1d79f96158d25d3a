"""The workspace promises: hatchling members, one lock, and a hatch env built from it."""

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MEMBERS = [
    "libs/lightning-core",
    "services/api",
    "services/event-processor",
    "services/ui",
    "infra",
    "tools/lightning-devtools",
]


def locked_version(package: str) -> str:
    lock = tomllib.loads((REPO / "uv.lock").read_text())
    [version] = [entry["version"] for entry in lock["package"] if entry["name"] == package]
    return str(version)


@pytest.mark.parametrize("member", MEMBERS)
def test_each_member_is_a_hatchling_project_in_the_workspace(member: str) -> None:
    project = tomllib.loads((REPO / member / "pyproject.toml").read_text())
    assert project["build-system"]["build-backend"] == "hatchling.build"
    root = tomllib.loads((REPO / "pyproject.toml").read_text())
    hatch_members = root["tool"]["hatch"]["envs"]["default"]["workspace"]["members"]
    # infra is left out of hatch's environment as of `uv run`'s (the `infra` group).
    assert [*hatch_members[:2], "infra", *hatch_members[2:]] == root["tool"]["uv"]["workspace"][
        "members"
    ]
    lock = tomllib.loads((REPO / "uv.lock").read_text())
    assert project["project"]["name"] in lock["manifest"]["members"]


def test_hatch_environment_has_every_member_editable_at_locked_versions(tmp_path: Path) -> None:
    hatch = Path(sys.executable).with_name("hatch")
    probe = tmp_path / "probe.py"  # a file: hatch would expand braces in a -c argument
    probe.write_text(
        "import importlib.metadata as m, json, lightning_api, lightning_processor, lightning_ui\n"
        "print(json.dumps(dict(fastapi=m.version('fastapi'), pytest=m.version('pytest'),"
        " api=lightning_api.__file__)))\n"
    )
    env = {**os.environ, "HATCH_DATA_DIR": str(tmp_path / "hatch"), "NO_COLOR": "1"}
    env.pop("VIRTUAL_ENV", None)
    result = subprocess.run(
        [str(hatch), "run", "python", str(probe)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr

    versions = json.loads(result.stdout.strip().splitlines()[-1])
    assert versions["fastapi"] == locked_version("fastapi")
    assert versions["pytest"] == locked_version("pytest")
    assert versions["api"].startswith(str(REPO / "services" / "api")), "not an editable install"
