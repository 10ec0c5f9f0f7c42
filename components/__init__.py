"""Pulumi components of metaflow-serverless: one ComponentResource per layer.

Importing this package creates no resources (the engine imports the provider modules when it
runs `destroy`); `__main__.py` wires the components from the stack's settings.
"""

from .database import Database, DatabaseArgs
from .metadata_compute import MetadataCompute, MetadataComputeArgs
from .object_store import ObjectStore, ObjectStoreArgs
from .quota_guard import QuotaGuard, QuotaGuardArgs

__all__ = [
    "Database",
    "DatabaseArgs",
    "ObjectStore",
    "ObjectStoreArgs",
    "MetadataCompute",
    "MetadataComputeArgs",
    "QuotaGuard",
    "QuotaGuardArgs",
]
