"""Document storage: the contract in `base`, one module per provider."""

from lightning_core.storage.base import (
    Conflict,
    Document,
    InvalidDocument,
    NotFound,
    Page,
    PreconditionFailed,
    Storage,
    StorageError,
)

__all__ = [
    "Conflict",
    "Document",
    "InvalidDocument",
    "NotFound",
    "Page",
    "PreconditionFailed",
    "Storage",
    "StorageError",
]
