"""The sandbox's handlers, one module per area of the API.

Importing a module registers its handlers (``@handles``); its ``MIGRATIONS``
list declares the tables it needs beyond the core ``entity`` table.
"""

from __future__ import annotations

import importlib

from mlops_nb.sandbox.store import Migration

# Order matters only for migrations: a module's tables may refer to earlier ones.
MODULES = [
    "users",
    "access",
    "projects",
    "experiments",
    "models",
    "datasets",
    "artifacts",
    "environments",
    "deployments",
    "ingest",
    "endpoints",
    "monitoring",
    "misc",
]


def _load() -> list:
    return [importlib.import_module(f"{__name__}.{name}") for name in MODULES]


def migrations() -> list[Migration]:
    """Every module's migrations, in module order."""
    return [m for module in _load() for m in getattr(module, "MIGRATIONS", [])]
