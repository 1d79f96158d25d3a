"""The Pulumi program under mocks: no CLI, plugins or credentials (see ENVIRONMENT.md)."""

import asyncio
from collections.abc import Iterator
from typing import Any

import pulumi
import pytest

from lightning_devtools.bake import load_plan
from lightning_infra.program import define


class Mocks(pulumi.runtime.Mocks):
    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        return f"{args.name}-id", dict(args.inputs)

    def call(
        self, _args: pulumi.runtime.MockCallArgs
    ) -> tuple[dict[Any, Any], list[tuple[str, str]] | None]:
        return {}, None


@pytest.fixture(autouse=True)
def pulumi_event_loop() -> Iterator[None]:
    """Pulumi's runtime uses the thread's current loop, which earlier async tests closed."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    yield
    pending = asyncio.all_tasks(loop)  # let the mocked engine finish its registrations
    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    loop.close()
    asyncio.set_event_loop(None)


@pytest.fixture
def stack_outputs(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Run the program and capture what it exports."""
    exported: dict[str, Any] = {}
    monkeypatch.setattr(pulumi, "export", exported.__setitem__)
    pulumi.runtime.set_mocks(Mocks(), project="lightning-os", stack="test", preview=False)
    pulumi.runtime.set_all_config(
        {"lightning-os:registry": "lightningacr.azurecr.io", "lightning-os:imageTag": "abc123"}
    )
    define()
    return exported


def test_every_azure_image_bake_builds_is_deployed(stack_outputs: dict[str, Any]) -> None:
    plan = load_plan("azure", variables={"REGISTRY": "lightningacr.azurecr.io", "TAG": "abc123"})
    images = stack_outputs["images"]
    assert sorted(images.values()) == sorted(target.tags[0] for target in plan.targets)
    assert set(images) == {"api", "event-processor", "ui"}
    for service, image in images.items():
        assert image.startswith(f"lightningacr.azurecr.io/lightning-{service}:abc123"), service


def test_the_registry_is_required() -> None:
    pulumi.runtime.set_mocks(Mocks(), project="lightning-os", stack="test", preview=False)
    pulumi.runtime.set_all_config({"lightning-os:imageTag": "abc123"})
    with pytest.raises(pulumi.ConfigMissingError):
        define()
