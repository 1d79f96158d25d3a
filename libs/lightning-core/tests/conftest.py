"""Core's tests: the shared fixtures and every provider's test backend."""

from lightning_core.testing import backends

pytest_plugins = ["lightning_core.testing.fixtures", *backends.PLUGINS]
