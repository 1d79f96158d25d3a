"""Entry point `pulumi up` runs (Pulumi.yaml `main`)."""

from lightning_infra.program import define

define()
