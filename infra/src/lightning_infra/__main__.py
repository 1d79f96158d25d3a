"""Entry point `pulumi up` runs (Pulumi.yaml `main`)."""

import os

from lightning_infra.program import REGISTRY_ONLY, define

define(registry_only=os.environ.get(REGISTRY_ONLY) == "1")
