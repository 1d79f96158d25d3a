"""`invoke build` / `push` logic: preflight checks against fake docker CLIs, bake arguments,
registry logins, a real python-on-whales bake call against a recording fake docker, and
the digests a push records from bake's metadata file (a file in the shape buildx writes:
there is no engine here to push with)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from lightning_core.testing.commands import write_executable
from lightning_devtools import docker
from lightning_devtools.bake import resolve_variables
from lightning_devtools.buildx import (
    BuildRequest,
    bake_arguments,
    bake_variables,
    build,
    require_pushable,
    shell_command,
)
from lightning_devtools.errors import ToolError
from lightning_devtools.images import split_reference

ROOT = Path(__file__).resolve().parents[3]
RECORDED_METADATA = Path(__file__).parent / "bake-metadata-azure.json"

# A stand-in for the docker CLI: answers from FAKE_* variables and logs each call with the
# working directory and the bake variables it received through the environment. The local
# image store holds one image, FAKE_IMAGE_ID, under every tag.
FAKE_DOCKER = r"""#!/bin/sh
[ -n "$FAKE_DOCKER_LOG" ] && printf '%s|%s|REGISTRY=%s TAG=%s PUSH=%s\n' \
    "$PWD" "$*" "$REGISTRY" "$TAG" "$PUSH" >> "$FAKE_DOCKER_LOG"
[ -n "$FAKE_DOCKER_LOG" ] && printf 'PLATFORMS=%s PYTHON_IMAGE=%s\n' \
    "$PLATFORMS" "$PYTHON_IMAGE" >> "$FAKE_DOCKER_LOG.settings"
case "$1" in
--version) echo "Docker version 28.2.2, build fake" ;;
info)
  [ "$FAKE_ENGINE" = up ] && { echo 28.2.2; exit 0; }
  echo "Cannot connect to the Docker daemon at unix:///var/run/docker.sock." >&2; exit 1 ;;
buildx)
  [ -z "$FAKE_BUILDX" ] && { echo "docker: unknown command: docker buildx" >&2; exit 1; }
  case "$2" in
  version) echo "github.com/docker/buildx v$FAKE_BUILDX 0000000" ;;
  bake)
    case " $* " in *" --print "*) echo '{"group": {}, "target": {}}'; exit 0 ;; esac
    [ -n "$FAKE_BAKE_FAIL" ] && { echo "ERROR: failed to solve" >&2; exit 1; }
    # Like buildx: the metadata file is written only after every target was pushed.
    previous=""
    for argument in "$@"; do
      if [ "$previous" = "--metadata-file" ] && [ -n "$FAKE_BAKE_METADATA" ]; then
        printf '%s' "$FAKE_BAKE_METADATA" > "$argument"
      fi
      previous="$argument"
    done ;;
  esac ;;
image)
  [ -n "$FAKE_IMAGE_ID" ] && \
    { printf '[{"Id": "%s", "Size": 123000000}]' "$FAKE_IMAGE_ID"; exit 0; }
  echo "Error: No such image: $3" >&2; exit 1 ;;
*) echo "fake docker: unexpected $*" >&2; exit 2 ;;
esac
"""


@pytest.fixture
def fake_bin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty PATH directory (so `docker` is missing) and an isolated Docker config."""
    directory = tmp_path / "bin"
    directory.mkdir()
    monkeypatch.setenv("PATH", str(directory))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))
    for name in (
        *("FAKE_ENGINE", "FAKE_BUILDX", "FAKE_DOCKER_LOG", "FAKE_BAKE_METADATA", "FAKE_BAKE_FAIL"),
        *("FAKE_IMAGE_ID", *resolve_variables(environ={})),
    ):
        monkeypatch.delenv(name, raising=False)
    return directory


@pytest.fixture
def fake_docker(fake_bin: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A docker CLI with a running engine and buildx 0.17.1; tests switch parts off."""
    write_executable(fake_bin / "docker", FAKE_DOCKER)
    monkeypatch.setenv("FAKE_ENGINE", "up")
    monkeypatch.setenv("FAKE_BUILDX", "0.17.1")
    return fake_bin


@pytest.mark.usefixtures("fake_bin")
def test_docker_missing_says_install_docker() -> None:
    with pytest.raises(ToolError, match=r"Docker CLI is missing \(`docker` not found on PATH\)"):
        docker.require_build_tools()


@pytest.mark.usefixtures("fake_docker")
def test_engine_down_names_the_socket_and_the_buildah_route(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FAKE_ENGINE", "down")
    with pytest.raises(ToolError) as caught:
        docker.require_build_tools()
    assert "Docker engine is not reachable (Cannot connect to the Docker daemon" in str(
        caught.value
    )
    assert "nox -s containers" in caught.value.fix


@pytest.mark.usefixtures("fake_docker")
def test_buildx_missing_says_install_the_plugin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FAKE_BUILDX")
    with pytest.raises(ToolError) as caught:
        docker.require_build_tools()
    assert caught.value.what == (
        "docker buildx 0.17.0+ is required (docker: unknown command: docker buildx)"
    )
    assert "docker-buildx-plugin" in caught.value.fix


@pytest.mark.usefixtures("fake_docker")
def test_old_buildx_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_BUILDX", "0.10.4")
    with pytest.raises(ToolError, match=r"version 0\.10\.4 is older than 0\.17\.0"):
        docker.require_build_tools()


@pytest.mark.usefixtures("fake_docker")
def test_all_present_passes() -> None:
    docker.require_build_tools()
    assert docker.buildx() == docker.Probe(ok=True, detail="0.17.1")
    assert docker.docker_engine() == docker.Probe(ok=True, detail="server 28.2.2")


def test_probe_timeout_is_reported_not_raised(fake_bin: Path) -> None:
    write_executable(fake_bin / "docker", "#!/bin/sh\nexec /bin/sleep 5\n")
    probe = docker.run_quietly(["docker", "info"], timeout=0.2)
    assert probe == docker.Probe(ok=False, detail="`docker info` did not answer within 0.2s")


@pytest.mark.parametrize(
    ("text", "version"),
    [
        ("github.com/docker/buildx v0.17.1 257815a", (0, 17, 1)),
        ("2.26.1-desktop.1", (2, 26, 1)),
        ("v2.29", (2, 29, 0)),
        ("nonsense", None),
    ],
)
def test_parse_version(text: str, version: tuple[int, int, int] | None) -> None:
    assert docker.parse_version(text) == version


@pytest.mark.parametrize(
    ("image", "registry"),
    [
        ("myacr.azurecr.io/lightning-api:1-azure", "myacr.azurecr.io"),
        ("localhost:5000/lightning-api:dev", "localhost:5000"),
        ("localhost/lightning-api:dev", "localhost"),
        ("lightning/api:dev", "docker.io"),
        ("python:3.13-slim", "docker.io"),
    ],
)
def test_registry_of(image: str, registry: str) -> None:
    assert docker.registry_of(image) == registry


@pytest.mark.usefixtures("fake_bin")
def test_login_found_in_auths(tmp_path: Path) -> None:
    config = tmp_path / "docker-config" / "config.json"
    config.parent.mkdir()
    config.write_text(json.dumps({"auths": {"myacr.azurecr.io": {"identitytoken": "t"}}}))
    assert docker.registry_login("myacr.azurecr.io").ok
    assert not docker.registry_login("other.azurecr.io").ok
    docker.require_registry_login(["myacr.azurecr.io/lightning-api:1-azure"])


def test_login_asks_the_credential_helper(fake_bin: Path, tmp_path: Path) -> None:
    config = tmp_path / "docker-config" / "config.json"
    config.parent.mkdir()
    config.write_text(json.dumps({"credsStore": "fake"}))
    # The helper protocol: `get` reads the server URL on stdin, exits non-zero without creds.
    write_executable(
        fake_bin / "docker-credential-fake",
        '#!/bin/sh\nread server\n[ "$server" = myacr.azurecr.io ] && echo "{}" && exit 0\n'
        'echo "credentials not found in native keychain"\nexit 1\n',
    )
    assert docker.registry_login("myacr.azurecr.io").ok
    missing = docker.registry_login("other.azurecr.io")
    assert missing == docker.Probe(
        ok=False,
        detail="docker-credential-fake has none (credentials not found in native keychain)",
    )


@pytest.mark.usefixtures("fake_bin")
def test_not_logged_in_to_acr_says_az_acr_login() -> None:
    with pytest.raises(ToolError) as caught:
        docker.require_registry_login(["myacr.azurecr.io/lightning-ui:abc-azure"])
    assert caught.value.what.startswith(
        "Not logged in to registry myacr.azurecr.io (no credentials"
    )
    assert caught.value.fix == "run `az acr login --name myacr`"


@pytest.mark.usefixtures("fake_bin")
def test_local_registries_need_no_login() -> None:
    docker.require_registry_login(["localhost:5000/lightning-api:dev"])


def test_localhost_images_cannot_be_pushed() -> None:
    with pytest.raises(ToolError, match=r"--registry <name>\.azurecr\.io"):
        require_pushable(["localhost/lightning-api:dev-azure"])


@pytest.mark.usefixtures("fake_bin")
def test_unknown_mode_lists_the_modes() -> None:
    with pytest.raises(ToolError, match=r"Unknown build mode 'prod'\. Fix: use --mode local or"):
        build(BuildRequest(mode="prod"), root=ROOT, dry_run=True, console=Console())


@pytest.mark.usefixtures("fake_bin")
def test_bake_arguments_match_python_on_whales_signature(tmp_path: Path) -> None:
    cert = tmp_path / "ca.pem"
    cert.write_text("-----BEGIN CERTIFICATE-----\n")
    request = BuildRequest(mode="azure", push=True, tag="abc", registry="r.io", ca_cert=cert)
    arguments = bake_arguments(request, bake_variables(request, ROOT))
    assert arguments == {
        "targets": ["azure"],
        "files": ["docker/docker-bake.hcl"],
        "push": True,
        "load": False,
        "set": {"*.secrets": f"id=ca,src={cert}"},
        "variables": {
            "REGISTRY": "r.io",
            "TAG": "abc",
            "PLATFORMS": "linux/amd64",
            "PYTHON_IMAGE": "python:3.13-slim",
            "VERSION": "0.1.0",
            "REVISION": "unknown",
            "PUSH": "true",
            "BUILDX_BAKE_ENTITLEMENTS_FS": "0",
        },
        "metadata_file": "dist/bake-metadata.json",
    }
    assert shell_command(arguments) == (
        "BUILDX_BAKE_ENTITLEMENTS_FS=0 PLATFORMS=linux/amd64 PUSH=true "
        "PYTHON_IMAGE=python:3.13-slim REGISTRY=r.io REVISION=unknown TAG=abc VERSION=0.1.0 "
        f"docker buildx bake -f docker/docker-bake.hcl --push --set '*.secrets=id=ca,src={cert}' "
        "--metadata-file dist/bake-metadata.json azure"
    )


@pytest.mark.usefixtures("fake_bin")
def test_the_command_line_beats_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"REGISTRY": "env.io", "TAG": "env", "PYTHON_IMAGE": "env:1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("PUSH", "true")  # --push alone decides attestations
    request = BuildRequest(mode="local", tag="cli", python_image="cli:1")
    assert {
        name: value
        for name, value in bake_variables(request, ROOT).items()
        if name in ("REGISTRY", "TAG", "PYTHON_IMAGE", "PUSH")
    } == {"REGISTRY": "env.io", "TAG": "cli", "PYTHON_IMAGE": "cli:1", "PUSH": "false"}


def test_missing_ca_cert_is_a_tool_error(tmp_path: Path) -> None:
    with pytest.raises(ToolError, match="does not exist"):
        bake_arguments(BuildRequest(mode="local", ca_cert=tmp_path / "nope.pem"), {})


def recording_console() -> Console:
    return Console(record=True, width=200, force_terminal=False)


@pytest.mark.usefixtures("fake_bin")
def test_dry_run_prints_the_plan_without_docker() -> None:
    console = recording_console()
    plan = build(BuildRequest(mode="local", tag="t1"), root=ROOT, dry_run=True, console=console)
    text = console.export_text()
    assert [target.name for target in plan.targets] == [
        "api-local",
        "event-processor-local",
        "ui-local",
    ]
    assert "docker/api.Dockerfile" in text
    assert "localhost/lightning-api:t1-local" in text
    assert "docker/python.Dockerfile" in text, "the shared stages are part of the plan"
    assert "sbom" not in text, "attestations only on --push"
    assert "TAG=t1 VERSION=0.1.0 docker buildx bake -f docker/docker-bake.hcl" in text


@pytest.mark.usefixtures("fake_bin")
def test_dry_run_shows_the_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = {
        "REGISTRY": "myacr.azurecr.io",
        "TAG": "abc",
        "PLATFORMS": "linux/amd64,linux/arm64",
        "PYTHON_IMAGE": "mirror.example/python:3.13-slim",
    }
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    console = recording_console()
    request = BuildRequest(mode="azure", push=True)
    plan = build(request, root=ROOT, dry_run=True, console=console)
    assert plan.targets[0].tags == ["myacr.azurecr.io/lightning-api:abc-azure"]
    assert plan.targets[0].platforms == ["linux/amd64", "linux/arm64"]
    assert plan.stages[0].args["PYTHON_IMAGE"] == "mirror.example/python:3.13-slim"
    text = console.export_text()
    assert "myacr.azurecr.io/lightning-ui:abc-azure" in text
    assert "sbom, provenance" in text
    for name, value in settings.items():
        assert f"{name}={value}" in text


@pytest.mark.usefixtures("fake_bin")
def test_a_dry_run_push_to_localhost_is_refused() -> None:
    with pytest.raises(ToolError, match=r"Cannot push localhost/lightning-api:dev-azure"):
        build(BuildRequest(mode="azure", push=True), root=ROOT, dry_run=True, console=Console())


@pytest.fixture
def repo(fake_docker: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A repository root of its own (the real bake file), a logged fake docker; returns it."""
    work = fake_docker.parent  # the test's tmp_path
    root = work / "repo"
    (root / "docker").mkdir(parents=True)
    shutil.copy(ROOT / "docker" / "docker-bake.hcl", root / "docker")
    monkeypatch.setenv("FAKE_DOCKER_LOG", str(work / "docker.log"))
    return root


def metadata_of_a_load(image_id: str) -> str:
    """Bake's metadata after a build that exported each local target as image `image_id`."""
    result = {"containerimage.config.digest": image_id, "containerimage.digest": "sha256:m"}
    targets = ("api-local", "event-processor-local", "ui-local")
    return json.dumps({target: result for target in targets})


def test_build_runs_bake_through_python_on_whales_from_the_repo_root(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_BAKE_METADATA", metadata_of_a_load("sha256:new"))
    console = recording_console()
    build(BuildRequest(mode="local", tag="abc"), root=repo, dry_run=False, console=console)
    bakes = [line for line in (tmp_path / "docker.log").read_text().splitlines() if "bake" in line]
    file_and_metadata = "--file docker/docker-bake.hcl --metadata-file dist/bake-metadata.json"
    assert bakes == [
        f"{repo}|buildx bake {file_and_metadata} local|REGISTRY=localhost TAG=abc PUSH=false",
        f"{repo}|buildx bake {file_and_metadata} --print local"
        "|REGISTRY=localhost TAG=abc PUSH=false",
    ]
    assert "not in the local image store" in console.export_text()


def test_build_honours_platforms_and_base_image(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_BAKE_METADATA", metadata_of_a_load("sha256:new"))
    monkeypatch.setenv("PLATFORMS", "linux/arm64")
    request = BuildRequest(mode="local", python_image="mirror.example/python:3.13-slim")
    build(request, root=repo, dry_run=False, console=recording_console())
    settings = set((tmp_path / "docker.log.settings").read_text().splitlines())
    assert settings >= {"PLATFORMS=linux/arm64 PYTHON_IMAGE=mirror.example/python:3.13-slim"}


def test_the_results_show_the_size_of_the_image_this_build_loaded(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_BAKE_METADATA", metadata_of_a_load("sha256:new"))
    monkeypatch.setenv("FAKE_IMAGE_ID", "sha256:new")
    console = recording_console()
    build(BuildRequest(mode="local", load=True), root=repo, dry_run=False, console=console)
    text = console.export_text()
    assert text.count("123 MB") == 3
    assert "not in the local image store" not in text


def test_an_older_image_under_the_tag_is_not_this_builds(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A docker-container builder without --load only fills its cache: no image exported.
    cache_only = {"buildx.build.ref": "builder/builder0/abc"}
    targets = ("api-local", "event-processor-local", "ui-local")
    monkeypatch.setenv("FAKE_BAKE_METADATA", json.dumps(dict.fromkeys(targets, cache_only)))
    monkeypatch.setenv("FAKE_IMAGE_ID", "sha256:from-last-week")
    console = recording_console()
    build(BuildRequest(mode="local"), root=repo, dry_run=False, console=console)
    text = console.export_text()
    assert "MB" not in text
    assert text.count("not in the local image store (use --load)") == 3


def test_an_earlier_builds_metadata_is_never_read_as_this_ones(repo: Path) -> None:
    (repo / "dist").mkdir()
    (repo / "dist" / "bake-metadata.json").write_text(metadata_of_a_load("sha256:old"))
    # The fake bake writes no metadata file (FAKE_BAKE_METADATA is unset).
    with pytest.raises(ToolError, match=r"cannot read bake's metadata file"):
        build(BuildRequest(mode="local"), root=repo, dry_run=False, console=recording_console())


@pytest.mark.usefixtures("fake_docker")
def test_push_checks_the_login_before_building(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "docker.log"
    monkeypatch.setenv("FAKE_DOCKER_LOG", str(log))
    request = BuildRequest(mode="azure", push=True, registry="myacr.azurecr.io")
    with pytest.raises(ToolError, match=r"Not logged in to registry myacr\.azurecr\.io"):
        build(request, root=ROOT, dry_run=False, console=recording_console())
    assert "bake" not in log.read_text()


@pytest.fixture
def pushing(repo: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`repo` whose registry login exists, with bake answering from the recorded metadata
    file; returns that root."""
    monkeypatch.setenv("FAKE_BAKE_METADATA", RECORDED_METADATA.read_text())
    config = repo.parent / "docker-config" / "config.json"
    config.parent.mkdir()
    config.write_text(json.dumps({"auths": {"myacr.azurecr.io": {"auth": "dTpw"}}}))
    return repo


AZURE_PUSH = BuildRequest(mode="azure", push=True, registry="myacr.azurecr.io", tag="abc")


def test_push_bakes_with_push_and_attestations_when_logged_in(
    pushing: Path, tmp_path: Path
) -> None:
    build(AZURE_PUSH, root=pushing, dry_run=False, console=recording_console())
    assert (
        f"{pushing}|buildx bake --push --file docker/docker-bake.hcl "
        "--metadata-file dist/bake-metadata.json azure"
        "|REGISTRY=myacr.azurecr.io TAG=abc PUSH=true"
    ) in (tmp_path / "docker.log").read_text().splitlines()


def test_push_takes_registry_and_tag_from_the_environment(
    pushing: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REGISTRY", "myacr.azurecr.io")  # what `invoke push` refused before
    monkeypatch.setenv("TAG", "abc")
    build(BuildRequest(mode="azure", push=True), root=pushing, dry_run=False, console=Console())
    assert (
        f"{pushing}|buildx bake --push --file docker/docker-bake.hcl "
        "--metadata-file dist/bake-metadata.json azure"
        "|REGISTRY=myacr.azurecr.io TAG=abc PUSH=true"
    ) in (tmp_path / "docker.log").read_text().splitlines()
    assert json.loads((pushing / "dist" / "images.json").read_text())["tag"] == "abc-azure"


def test_the_login_check_asks_for_the_registry_from_the_environment(
    pushing: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REGISTRY", "otheracr.azurecr.io")
    with pytest.raises(ToolError, match=r"Not logged in to registry otheracr\.azurecr\.io"):
        build(BuildRequest(mode="azure", push=True), root=pushing, dry_run=False, console=Console())
    assert "bake" not in (tmp_path / "docker.log").read_text()


def test_push_records_each_image_by_the_digest_bake_reported(pushing: Path) -> None:
    console = recording_console()
    build(AZURE_PUSH, root=pushing, dry_run=False, console=console)
    recorded = json.loads(RECORDED_METADATA.read_text())
    digest = {
        target: result["containerimage.digest"]
        for target, result in recorded.items()
        if target != "buildx.build.warnings"
    }
    assert json.loads((pushing / "dist" / "images.json").read_text()) == {
        "registry": "myacr.azurecr.io",
        "tag": "abc-azure",
        "images": {
            "api": f"myacr.azurecr.io/lightning-api@{digest['api-azure']}",
            "event-processor": (
                f"myacr.azurecr.io/lightning-event-processor@{digest['event-processor-azure']}"
            ),
            "ui": f"myacr.azurecr.io/lightning-ui@{digest['ui-azure']}",
        },
    }
    assert f"myacr.azurecr.io/lightning-ui@{digest['ui-azure']}" in console.export_text()


def test_a_failed_push_writes_no_images_file(
    pushing: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_BAKE_FAIL", "1")
    with pytest.raises(ToolError, match=r"`docker buildx bake azure` failed \(exit 1\)"):
        build(AZURE_PUSH, root=pushing, dry_run=False, console=recording_console())
    assert not (pushing / "dist" / "images.json").exists()


def test_a_target_without_a_digest_writes_no_images_file(
    pushing: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    metadata: dict[str, Any] = json.loads(RECORDED_METADATA.read_text())
    del metadata["ui-azure"]["containerimage.digest"]  # e.g. a build that only loaded
    monkeypatch.setenv("FAKE_BAKE_METADATA", json.dumps(metadata))
    with pytest.raises(ToolError, match=r"records no pushed image for ui-azure"):
        build(AZURE_PUSH, root=pushing, dry_run=False, console=recording_console())
    assert not (pushing / "dist" / "images.json").exists()


def test_a_local_push_records_nothing_for_infra(pushing: Path) -> None:
    request = BuildRequest(mode="local", push=True, registry="myacr.azurecr.io", tag="abc")
    build(request, root=pushing, dry_run=False, console=recording_console())
    assert not (pushing / "dist" / "images.json").exists()


def test_split_reference_keeps_a_registry_port() -> None:
    assert split_reference("localhost:5000/lightning-api:abc") == (
        "localhost:5000/lightning-api",
        "abc",
    )
    with pytest.raises(ToolError, match="without a tag"):
        split_reference("localhost:5000/lightning-api")
