"""The processor's tests: the shared fixtures, and Redis for the tests run on a shared bus."""

pytest_plugins = ["lightning_core.testing.fixtures", "lightning_core.testing.backends.redis"]
