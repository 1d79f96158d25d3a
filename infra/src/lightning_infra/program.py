"""The Pulumi program. Today it resolves and exports the images to deploy; the Azure
resources (registry, Cosmos DB, Service Bus, Container Apps) build on these outputs."""

from __future__ import annotations

import pulumi

from lightning_infra.images import deployed_images


def define() -> None:
    config = pulumi.Config()
    images = deployed_images(config.require("registry"), config.require("imageTag"))
    pulumi.export("images", images)
