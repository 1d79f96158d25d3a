"""The images a deployment runs, read from the bake file that built them.

Asking docker-bake.hcl (through the same parser `invoke build --dry-run` uses) instead of
repeating its naming rule here means a renamed tag or a new service cannot drift between
what CI pushes and what Pulumi deploys.
"""

from __future__ import annotations

from lightning_devtools.bake import load_plan

MODE = "azure"


def deployed_images(registry: str, tag: str) -> dict[str, str]:
    """Service name -> image reference for every target of the azure bake group."""
    plan = load_plan(MODE, variables={"REGISTRY": registry, "TAG": tag})
    return {target.name.removesuffix(f"-{MODE}"): target.tags[0] for target in plan.targets}
