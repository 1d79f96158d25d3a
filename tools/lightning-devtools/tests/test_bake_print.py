"""The plan lightning_devtools.bake resolves is the one real `docker buildx bake --print`
shows, target by target, with the file's defaults and with every variable overridden."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from lightning_devtools.bake import BAKE_FILE, BakePlan, BakeTarget, load_plan, resolve_variables

ROOT = BAKE_FILE.parent.parent
GROUPS = ("local", "azure", "all")
OVERRIDES = {
    "REGISTRY": "acr.example.io",
    "TAG": "abc123",
    "PLATFORMS": "linux/amd64,linux/arm64",
    "PYTHON_IMAGE": "mirror.example/python:3.13-slim",
    "VERSION": "1.2.3",
    "REVISION": "0123abc",
    "PUSH": "true",  # attestations only then
}
# Every attribute the project models; a target attribute outside this set fails the test, so
# a new one in the bake file must first be taught to lightning_devtools.bake.
COMPARED = (
    "context",
    "dockerfile",
    "target",
    "args",
    "tags",
    "platforms",
    "labels",
    "cache-from",
    "cache-to",
    "attest",
    "contexts",
    "description",
)
STAGE_OUTPUT = [{"type": "cacheonly"}]  # what bake builds a target linked as a context into


def bake_print(group: str, env: dict[str, str], variables: dict[str, str]) -> dict[str, Any]:
    """`docker buildx bake --print group` from the repository root, given `variables` (and
    none of the file's variables from this process's environment) as real bake takes them."""
    declared = resolve_variables(environ={})
    environment = {
        name: value
        for name, value in env.items()
        # ACTIONS_*: on GitHub's runners buildx adds the cache token to type=gha entries.
        if name not in declared and not name.startswith("ACTIONS_")
    }
    result = subprocess.run(
        ["docker", "buildx", "bake", "-f", "docker/docker-bake.hcl", "--print", group],
        cwd=ROOT,
        env={**environment, **variables},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    printed: dict[str, Any] = json.loads(result.stdout)
    return printed


def resolved(target: BakeTarget) -> dict[str, Any]:
    return {
        "context": target.context,
        "dockerfile": target.dockerfile,
        "target": target.target,
        "args": target.args,
        "tags": target.tags,
        "platforms": target.platforms,
        "labels": target.labels,
        "cache-from": target.cache_from,
        "cache-to": target.cache_to,
        "attest": target.attest,
        "contexts": target.contexts,
        "description": target.description,
    }


def as_printed(printed: dict[str, Any]) -> dict[str, Any]:
    """A printed target in `resolved`'s terms: paths from the root, absent means empty."""
    context = ROOT / printed.get("context", ".")
    empty: dict[str, Any] = {"args": {}, "labels": {}, "contexts": {}, "description": ""}
    fields = {key: printed.get(key, empty.get(key, [])) for key in COMPARED}
    fields["target"] = printed.get("target")
    return {
        **fields,
        "context": context,
        "dockerfile": context / printed.get("dockerfile", "Dockerfile"),
    }


def assert_same(plan: BakePlan, printed: dict[str, Any]) -> None:
    targets = {target.name: target for target in [*plan.targets, *plan.stages]}
    assert set(targets) == set(printed["target"])
    for name, shown in printed["target"].items():
        unknown = set(shown) - {*COMPARED, "output"}
        assert not unknown, f"{name}: bake.py does not model {sorted(unknown)}"
        assert resolved(targets[name]) == as_printed(shown), name
    stages = {name for name, shown in printed["target"].items() if "output" in shown}
    assert stages == {stage.name for stage in plan.stages}
    for name in stages:
        assert printed["target"][name]["output"] == STAGE_OUTPUT, name


@pytest.mark.parametrize("group", GROUPS)
@pytest.mark.parametrize("variables", [{}, OVERRIDES], ids=["defaults", "overridden"])
def test_plan_equals_bake_print(
    real_buildx: dict[str, str], group: str, variables: dict[str, str]
) -> None:
    plan = load_plan(group, variables=variables)
    assert_same(plan, bake_print(group, real_buildx, variables))
    assert plan.targets, group
    assert plan.stages, "every image builds on the shared stages"


def test_a_difference_is_seen(real_buildx: dict[str, str]) -> None:
    """The comparison is not vacuous: a plan without attestations is not bake's with them."""
    printed = bake_print("local", real_buildx, {"PUSH": "true"})
    with pytest.raises(AssertionError, match="api-local"):
        assert_same(load_plan("local", variables={"PUSH": "false"}), printed)


def test_overrides_reach_every_compared_field(real_buildx: dict[str, str]) -> None:
    """The overridden case differs from the defaults where each variable is used."""
    printed = bake_print("all", real_buildx, OVERRIDES)["target"]
    image, stage = printed["api-azure"], printed["_builder"]
    assert image["tags"] == ["acr.example.io/lightning-api:abc123-azure"]
    assert image["platforms"] == stage["platforms"] == ["linux/amd64", "linux/arm64"]
    assert image["args"] == {"VERSION": "1.2.3", "REVISION": "0123abc"}
    assert stage["args"] == {"PYTHON_IMAGE": "mirror.example/python:3.13-slim"}
    assert {entry["type"] for entry in image["attest"]} == {"sbom", "provenance"}
    assert "attest" not in bake_print("all", real_buildx, {})["target"]["api-azure"]


def test_image_targets_take_the_stages_as_named_contexts(real_buildx: dict[str, str]) -> None:
    printed = bake_print("all", real_buildx, {})["target"]
    for name in ("api-local", "event-processor-azure", "ui-local"):
        assert printed[name]["contexts"] == {
            "builder": "target:_builder",
            "runtime": "target:_runtime",
        }
    assert Path(printed["_runtime"]["dockerfile"]).name == "python.Dockerfile"
