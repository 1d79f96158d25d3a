"""The devtools' tests: the shared servers the benchmarks and the Function package run
against, the storage + bus stacks the smoke test runs on, and the command-line tools."""

pytest_plugins = [
    "lightning_core.testing.backends.postgres",
    "lightning_core.testing.backends.redis",
    "lightning_core.testing.backends.cosmos",
    "lightning_core.testing.stacks",
    "lightning_core.testing.commands",
]
