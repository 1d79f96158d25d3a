"""The Function package's root module, which the host indexes: lightning_processor's app."""

from lightning_processor.function_app import app

__all__ = ["app"]
