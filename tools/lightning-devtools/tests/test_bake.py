"""The bake file as buildx would resolve it, and the Dockerfiles its targets point at."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lightning_devtools.bake import BAKE_FILE, BakePlan, load_plan, resolve_variables
from lightning_devtools.errors import ToolError

SERVICES = {"api", "event-processor", "ui"}
LISTENING = {"api": 8000, "ui": 8080}
MODES = ("local", "azure")
SHARED = BAKE_FILE.parent / "python.Dockerfile"
STAGES = {"_builder": "builder", "_runtime": "runtime"}  # bake target: stage of SHARED


def plan(group: str, **variables: str) -> BakePlan:
    return load_plan(group, variables=variables)


def service_of(dockerfile: Path) -> str:
    return dockerfile.name.removesuffix(".Dockerfile")


def stages_of(dockerfile: Path) -> list[str]:
    return re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)\s*$", dockerfile.read_text(), re.M)


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
        assert mode in stages_of(target.dockerfile), f"{target.dockerfile} has no `{mode}` stage"
        assert target.description, f"{target.name} has no description"
        assert target.labels["io.lightning-os.mode"] == mode
        assert target.contexts == {stage: f"target:{name}" for name, stage in STAGES.items()}


@pytest.mark.parametrize("mode", MODES)
def test_the_shared_stages_are_built_once_before_the_images(mode: str) -> None:
    stages = plan(mode).stages
    assert [stage.name for stage in stages] == list(STAGES)
    for stage in stages:
        assert stage.dockerfile == SHARED
        assert stage.target == STAGES[stage.name]
        assert stage.target in stages_of(SHARED)
        assert stage.args == {"PYTHON_IMAGE": "python:3.13-slim"}
        assert not stage.tags, "a stage is no image of its own"


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
    resolved = plan("api-local", **variables)
    for target in [*resolved.targets, *resolved.stages]:
        assert target.platforms == ["linux/amd64", "linux/arm64"]
    assert {stage.args["PYTHON_IMAGE"] for stage in resolved.stages} == {"base:1"}
    assert "PYTHON_IMAGE" not in resolved.targets[0].args, "only the shared stages use it"
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
    pushed = plan("all", PUSH="true")
    for target in [*pushed.targets, *pushed.stages]:
        scope = target.name.lstrip("_")
        assert target.cache_from == [{"type": "gha", "scope": scope}]
        assert target.cache_to == [{"type": "gha", "scope": scope, "mode": "max"}]
    for target in pushed.targets:
        assert target.attest == [{"type": "sbom"}, {"type": "provenance", "mode": "max"}]
    assert not [t.name for t in pushed.stages if t.attest], "stages are never pushed"
    assert not [t.name for t in plan("all").targets if t.attest], "no attestations on --load"


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


def test_matrix_targets_conditions_and_linked_stages(tmp_path: Path) -> None:
    bake_file = tmp_path / "docker" / "docker-bake.hcl"
    bake_file.parent.mkdir()
    bake_file.write_text(
        r"""
variable "PUSH" { default = "false" }
group "g" { targets = ["image"] }
target "_base" { target = "base" }
target "_top" {
  contexts = { base = "target:_base" }
  target   = "top"
}
target "image" {
  matrix = {
    svc  = [{ name = "a", x = "A-x", y = "A-y" }, { name = "b", x = "B-x", y = "B-y" }]
    mode = ["x", "y"]
  }
  name        = "${svc.name}-${mode}"
  description = svc[mode]
  target      = mode
  labels      = { quoted = "say \"${mode}\"", "dotted.key" = "$${literal}" }
  contexts    = { top = "target:_top", other = "docker-image://alpine" }
  attest      = equal(PUSH, "true") ? ["type=sbom"] : []
}
"""
    )
    result = load_plan("g", bake_file=bake_file, variables={"PUSH": "true"})
    assert [t.name for t in result.targets] == ["a-x", "a-y", "b-x", "b-y"]
    b_y = result.targets[-1]
    assert (b_y.description, b_y.target) == ("B-y", "y")
    assert b_y.labels == {"quoted": 'say "y"', "dotted.key": "${literal}"}
    assert b_y.attest == [{"type": "sbom"}]
    assert b_y.linked == ["_top"]
    assert [stage.name for stage in result.stages] == ["_base", "_top"], "dependencies first"
    assert load_plan("a-x", bake_file=bake_file, variables={}).targets[0].attest == []


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        ('target "a" { tags = ["${NOPE}"] }', "undefined variable 'NOPE'"),
        ('target "a" { inherits = ["a"] }', "inherits itself"),
        ('target "a" { inherits = ["zz"] }', "unknown target 'zz'"),
        ('variable "V" { default = "v" }\ntarget "a" { tags = [upper(V)] }', "does not evaluate"),
        ('target "a" { contexts = { x = "target:zz" } }', "context from unknown target 'zz'"),
        ('variable "V" { default = "v" }\ntarget "a" { tags = [V ? "x" : "y"] }', "evaluate"),
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
    own = (BAKE_FILE.parent / f"{service}.Dockerfile").read_text()
    shared = SHARED.read_text()
    text = own + shared  # what one image is built from
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.13-slim$", shared, re.M)
    for dockerfile in (own, shared):
        assert not re.search(r"^#\s*syntax\s*=", dockerfile, re.M), "offline hosts cannot pull it"
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


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_service_dockerfile_builds_on_the_shared_stages_only(service: str) -> None:
    """Every FROM is a stage of its own or a named context bake provides; every sync runs
    the shared locked `uv-sync` with the uv cache and the optional CA secret mounted."""
    dockerfile = BAKE_FILE.parent / f"{service}.Dockerfile"
    text = dockerfile.read_text()
    own = stages_of(dockerfile)
    provided = set(plan(f"{service}-local").targets[0].contexts)
    for base in re.findall(r"^FROM\s+(\S+)", text, re.M):
        assert base in own or base in provided, f"{dockerfile.name}: FROM {base}"
    assert "ARG PYTHON_IMAGE" not in text, "the base is chosen once, in the shared stages"
    syncs = re.findall(r"^RUN (.*?[^\\])$", text.replace("\\\n", " "), re.M)
    assert syncs
    for run in syncs:
        assert "--mount=type=cache,target=/root/.cache/uv" in run
        assert "--mount=type=secret,id=ca,target=/run/secrets/ca.crt" in run
        assert re.search(r"\buv-sync --no-(install-workspace|editable) ", run)
    shared = SHARED.read_text()
    assert 'exec /opt/uv/bin/uv sync --locked --no-dev "$@"' in shared
    assert "export SSL_CERT_FILE=/run/secrets/ca.crt" in shared


def test_dockerignore_keeps_local_state_out_of_the_context() -> None:
    patterns = (BAKE_FILE.parent.parent / ".dockerignore").read_text().split()
    for pattern in (".git", "**/.venv", "**/.nox", "**/__pycache__", ".env", "**/data"):
        assert pattern in patterns
    assert ".containers-cache" in patterns
    assert "test-artifacts" in patterns
