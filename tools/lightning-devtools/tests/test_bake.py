"""The bake file as buildx would resolve it, and the Dockerfiles its targets point at."""

from __future__ import annotations

import re
from pathlib import Path

import hcl2
import pytest
from hcl2 import SerializationOptions

from lightning_devtools.bake import BAKE_FILE, BakePlan, load_plan, resolve_variables
from lightning_devtools.errors import ToolError

SERVICES = {"api", "event-processor", "ui"}
LISTENING = {"api": 8000, "ui": 8080}
MODES = ("local", "azure")


def plan(group: str, **variables: str) -> BakePlan:
    return load_plan(group, variables=variables)


def service_of(dockerfile: Path) -> str:
    return dockerfile.name.removesuffix(".Dockerfile")


def raw_targets() -> dict[str, dict[str, object]]:
    options = SerializationOptions(strip_string_quotes=True, explicit_blocks=False)
    with BAKE_FILE.open() as handle:
        document = hcl2.load(handle, serialization_options=options)
    return {name: body for block in document["target"] for name, body in block.items()}


def test_bake_file_is_the_repositorys() -> None:
    assert BAKE_FILE.is_file()
    assert BAKE_FILE.parent.name == "docker"
    assert (BAKE_FILE.parent.parent / "uv.lock").is_file()


@pytest.mark.parametrize("mode", MODES)
def test_each_mode_group_builds_every_service_once_from_its_stage(mode: str) -> None:
    targets = plan(mode).targets
    assert sorted(service_of(t.dockerfile) for t in targets) == sorted(SERVICES)
    for target in targets:
        assert target.name == f"{service_of(target.dockerfile)}-{mode}"
        assert target.target == mode
        assert target.context == BAKE_FILE.parent.parent
        assert target.dockerfile.is_file(), target.dockerfile
        stages = re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)\s*$", target.dockerfile.read_text(), re.M)
        assert mode in stages, f"{target.dockerfile} has no `{mode}` stage"
        assert target.description, f"{target.name} has no description"
        assert target.labels["io.lightning-os.mode"] == mode
        assert target.args["PYTHON_IMAGE"] == "python:3.13-slim"


def test_default_group_is_local_and_all_is_both() -> None:
    assert [t.name for t in plan("default").targets] == [t.name for t in plan("local").targets]
    names = [t.name for t in plan("all").targets]  # a group of groups
    assert len(names) == len(set(names)) == 2 * len(SERVICES)


def test_tags_follow_registry_and_tag_variables() -> None:
    defaults = plan("local")
    assert "localhost/lightning-api:dev-local" in [t for x in defaults.targets for t in x.tags]
    custom = plan("azure", REGISTRY="acr.example.io", TAG="abc123")
    for target in custom.targets:
        service = service_of(target.dockerfile)
        assert target.tags == [f"acr.example.io/lightning-{service}:abc123-azure"]


def test_tags_are_unique_across_every_target() -> None:
    tags = [tag for target in plan("all").targets for tag in target.tags]
    assert len(tags) == len(set(tags))


def test_platforms_and_build_args_come_from_variables() -> None:
    variables = {"PLATFORMS": "linux/amd64,linux/arm64", "PYTHON_IMAGE": "base:1"}
    target = plan("api-local", **variables).targets[0]
    assert target.platforms == ["linux/amd64", "linux/arm64"]
    assert target.args["PYTHON_IMAGE"] == "base:1"
    assert plan("api-local").targets[0].platforms == ["linux/amd64"]


def test_no_variables_means_the_environment_as_buildx_reads_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TAG", "from-env")
    assert load_plan("ui-local").targets[0].tags == ["localhost/lightning-ui:from-env-local"]


def test_variables_resolve_command_line_over_environment_over_default() -> None:
    environ = {"TAG": "env-tag", "REGISTRY": "env.io", "PLATFORMS": "linux/arm64", "HOME": "/h"}
    variables = resolve_variables({"TAG": "cli-tag"}, environ=environ)
    assert variables == {
        "REGISTRY": "env.io",
        "TAG": "cli-tag",
        "PLATFORMS": "linux/arm64",
        "PYTHON_IMAGE": "python:3.13-slim",
        "VERSION": "0.1.0",
        "REVISION": "unknown",
        "PUSH": "false",
    }
    # Fed back as the environment, they resolve the plan bake would build.
    target = load_plan("api-azure", variables=variables).targets[0]
    assert target.tags == ["env.io/lightning-api:cli-tag-azure"]
    assert target.platforms == ["linux/arm64"]


def test_variables_read_the_real_environment_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHON_IMAGE", "mirror.example/python:3.13-slim")
    assert resolve_variables()["PYTHON_IMAGE"] == "mirror.example/python:3.13-slim"


def test_defaults_may_use_other_variables(tmp_path: Path) -> None:
    bake_file = tmp_path / "docker-bake.hcl"
    bake_file.write_text(
        'variable "REGISTRY" { default = "r.io" }\n'
        'variable "IMAGE" { default = "${REGISTRY}/base" }\n'
    )
    resolved = resolve_variables({"REGISTRY": "cli.io"}, bake_file=bake_file, environ={})
    assert resolved == {"REGISTRY": "cli.io", "IMAGE": "cli.io/base"}


def test_unknown_group_names_the_groups_that_exist() -> None:
    with pytest.raises(ToolError) as raised:
        plan("staging")
    message = str(raised.value)
    assert "'staging'" in message
    for group in ("local", "azure", "default"):
        assert group in message


def test_every_target_has_its_own_cache_scope_and_attestations_only_when_pushed() -> None:
    raw = raw_targets()
    for target in plan("all").targets:
        assert raw[target.name]["cache-from"] == [f"type=gha,scope={target.name}"]
        assert raw[target.name]["cache-to"] == [f"type=gha,scope={target.name},mode=max"]
    attest = str(raw["_common"]["attest"])
    assert 'equal(PUSH, "true")' in attest
    assert "type=sbom" in attest
    assert "type=provenance" in attest


def test_bake_file_holds_no_absolute_host_path() -> None:
    text = BAKE_FILE.read_text()
    assert not re.search(r'"(/|~)[^"]*"', text), "bake refuses paths outside its directory"


def test_inherits_merges_maps_and_groups_nest(tmp_path: Path) -> None:
    bake_file = tmp_path / "docker" / "docker-bake.hcl"
    bake_file.parent.mkdir()
    bake_file.write_text(
        """
variable "NAME" { default = "x" }
variable "FULL" { default = "${NAME}-full" }
group "outer" { targets = ["inner", "b"] }
group "inner" { targets = ["a", "b"] }
target "_base" {
  context = "src"
  args = { ONE = "1", TWO = "2" }
  tags = ["base"]
}
target "a" {
  inherits = ["_base"]
  args = { TWO = "${FULL}" }
  tags = ["r/${NAME}:a"]
}
target "b" { dockerfile = "b.Dockerfile" }
"""
    )
    result = load_plan("outer", bake_file=bake_file, variables={"NAME": "y"})
    a, b = result.targets
    assert [a.name, b.name] == ["a", "b"]
    assert a.args == {"ONE": "1", "TWO": "y-full"}
    assert a.tags == ["r/y:a"]
    assert a.context == tmp_path / "src"
    assert a.dockerfile == tmp_path / "src" / "Dockerfile"
    assert a.target is None
    assert b.dockerfile == tmp_path / "b.Dockerfile"


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        ('target "a" { tags = ["${NOPE}"] }', "undefined variable 'NOPE'"),
        ('target "a" { inherits = ["a"] }', "inherits itself"),
        ('target "a" { inherits = ["zz"] }', "unknown target 'zz'"),
        ('variable "V" { default = "v" }\ntarget "a" { tags = [upper(V)] }', "does not evaluate"),
    ],
)
def test_mistakes_are_one_line_tool_errors(tmp_path: Path, body: str, complaint: str) -> None:
    bake_file = tmp_path / "docker-bake.hcl"
    bake_file.write_text(body + '\ngroup "g" { targets = ["a"] }\n')
    with pytest.raises(ToolError, match=re.escape(complaint)):
        load_plan("g", bake_file=bake_file, variables={})


# -- the Dockerfiles the targets build ---------------------------------------------------------


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_dockerfile_follows_the_image_contract(service: str) -> None:
    text = (BAKE_FILE.parent / f"{service}.Dockerfile").read_text()
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.13-slim$", text, re.M)
    assert "uv.lock" in text
    assert "--locked" in text
    assert "--no-editable" in text
    assert "--mount=type=cache" in text
    assert re.search(r"^USER 10001:10001$", text, re.M), "images run as a non-root user"
    assert 'ENTRYPOINT ["python", "-m", "lightning_core.runtime"]' in text
    assert f"SERVICE_TYPE={service}" in text
    assert "LIGHTNING_HOST=0.0.0.0" in text
    assert "org.opencontainers.image.revision" in text
    assert "COPY --from=ghcr" not in text, "no registry image can be pulled here"
    assert "ENV LIGHTNING_MODE=local" in text
    assert "ENV LIGHTNING_MODE=azure" in text
    # The CA secret is used only when given, and never as an ENV (which would persist).
    assert "if [ -s /run/secrets/ca.crt ]" in text
    assert not re.search(r"^ENV .*(CERT|SECRET|PASSWORD|TOKEN)", text, re.M)
    has_healthcheck = re.search(r"^HEALTHCHECK ", text, re.M) is not None
    assert has_healthcheck == (service in LISTENING)
    if service in LISTENING:
        assert f"EXPOSE {LISTENING[service]}" in text
        assert "/healthz" in text


def test_dockerignore_keeps_local_state_out_of_the_context() -> None:
    patterns = (BAKE_FILE.parent.parent / ".dockerignore").read_text().split()
    for pattern in (".git", "**/.venv", "**/.nox", "**/__pycache__", ".env", "**/data"):
        assert pattern in patterns
    assert ".containers-cache" in patterns
    assert "test-artifacts" in patterns
