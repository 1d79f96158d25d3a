"""The images file and stack settings the program refuses, each with one clear message."""

from __future__ import annotations

import json
from pathlib import Path

import pulumi
import pytest
import yaml

from lightning_core.topology import SERVICES
from lightning_infra.errors import DeployError
from lightning_infra.images import load_images, require_registry
from lightning_infra.stack_config import load_stack_config

from .conftest import REGISTRY, StackMocks, local_files, run_program, write_images


def write(path: Path, images: dict[str, object]) -> Path:
    path.write_text(json.dumps({"registry": REGISTRY, "tag": "t", "images": images}), "utf-8")
    return path


def test_every_service_gets_the_reference_push_recorded(tmp_path: Path) -> None:
    images = write_images(tmp_path)
    assert load_images(tmp_path / "images.json") == images
    assert set(images) == set(SERVICES)


def test_a_missing_file_names_the_push_task(tmp_path: Path) -> None:
    with pytest.raises(DeployError, match=r"images\.json does not exist: run `invoke push"):
        load_images(tmp_path / "images.json")


def test_a_missing_service_is_named(tmp_path: Path) -> None:
    images = write_images(tmp_path)
    del images["ui"]
    with pytest.raises(DeployError, match="has no image for 'ui'"):
        load_images(write(tmp_path / "images.json", dict(images)))


def test_a_reference_by_tag_is_refused(tmp_path: Path) -> None:
    images: dict[str, object] = dict(write_images(tmp_path))
    images["api"] = f"{REGISTRY}/lightning-api:latest"
    with pytest.raises(DeployError, match=r"'api' image .* is not a reference by digest"):
        load_images(write(tmp_path / "images.json", images))


def test_images_from_another_registry_are_refused(tmp_path: Path) -> None:
    images = write_images(tmp_path)
    with pytest.raises(DeployError, match=r"is not in this stack's registry other\.azurecr\.io"):
        require_registry(images, "other.azurecr.io")


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("processorMode", "lambda", "processorMode='lambda' is not one of worker, function, both"),
        ("apiMaxReplicas", "0", "is not a replica range"),
        ("registrySku", "Premium", "registrySku='Premium' is not one of Basic, Standard"),
    ],
)
def test_a_bad_stack_setting_is_named(key: str, value: str, message: str) -> None:
    pulumi.runtime.set_mocks(StackMocks(), project="lightning-os", stack="test", preview=False)
    pulumi.runtime.set_all_config({f"lightning-os:{key}": value})
    with pytest.raises(DeployError, match=message):
        load_stack_config()


def test_the_committed_stack_deploys_and_declares_only_known_settings(tmp_path: Path) -> None:
    infra = Path(__file__).parents[1]
    declared = yaml.safe_load((infra / "Pulumi.yaml").read_text(encoding="utf-8"))["config"]
    stack = yaml.safe_load((infra / "Pulumi.production.yaml").read_text(encoding="utf-8"))
    config = {key: str(value) for key, value in stack["config"].items()}
    assert set(config) <= set(declared), "Pulumi.production.yaml sets undeclared keys"
    registry = f"{config['lightning-os:registryName']}.azurecr.io"
    write_images(tmp_path, registry)
    with pytest.MonkeyPatch.context() as monkeypatch:
        deployment = run_program(config | local_files(tmp_path), monkeypatch)
    assert deployment.exports["registryLoginServer"] == registry


def test_the_first_deploy_declares_only_the_registry_and_needs_no_images(tmp_path: Path) -> None:
    config = {"lightning-os:imagesFile": str(tmp_path / "not-pushed-yet.json")}
    with pytest.MonkeyPatch.context() as monkeypatch:
        deployment = run_program(config, monkeypatch, registry_only=True)
    declared = sorted((resource.typ, resource.name) for resource in deployment.resources)
    assert declared == [
        ("azure-native:containerregistry:Registry", "registry"),
        ("azure-native:resources:ResourceGroup", "lightning-test"),
    ], "`invoke deploy --registry-only` targets exactly these (lightning_devtools.deploy)"
    assert deployment.exports == {"registryLoginServer": "lightningtest.azurecr.io"}
    prefix = "urn:pulumi:test::lightning-os::"
    # What `invoke deploy --registry-only` passes as --target (lightning_devtools.deploy).
    assert deployment.urns == [
        f"{prefix}azure-native:resources:ResourceGroup::lightning-test",
        f"{prefix}lightning:infra:Registry$azure-native:containerregistry:Registry::registry",
        f"{prefix}lightning:infra:Registry::registry",
    ]
