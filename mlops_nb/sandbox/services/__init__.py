"""The sandbox's handlers, one module per area of the API.

Importing a module registers its handlers (``@handles``); its ``MIGRATIONS``
list declares the tables it needs beyond the core ``entity`` table. What one area does when
another deletes a project or removes a deployment is wired here, in one place
(:func:`_wire_hooks`), not by each module at import (which made it depend on import order).
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
    "uploads",
    "workspaces",
    "runtimes",
    "deployments_v2",
    "monitoring_v2",
    "batch",
]


def _load() -> list:
    modules = [importlib.import_module(f"{__name__}.{name}") for name in MODULES]
    _wire_hooks()
    return modules


def _wire_hooks() -> None:
    """Who cleans up after whom, in this order."""
    from mlops_nb.sandbox.services import (
        batch,
        datasets,
        deployments,
        deployments_v2,
        experiments,
        models,
        monitoring,
        projects,
    )

    # Inside the deleting transaction, before the generic cascade: relations that need more than
    # "delete every entity of the project" (deployments stop, experiments linked elsewhere stay).
    projects.PROJECT_DELETE_HOOKS[:] = [deployments.leave_deleted_project, experiments.leave_deleted_project,
                                        models.leave_deleted_project, datasets.leave_deleted_project,
                                        batch.leave_deleted_project]
    # Inside the removing transaction: what monitoring keeps about a deployment goes with it.
    deployments.DEPLOYMENT_REMOVE_HOOKS[:] = [monitoring.forget_deployment, deployments_v2.forget_pause]


def migrations() -> list[Migration]:
    """Every module's migrations, in module order."""
    return [m for module in _load() for m in getattr(module, "MIGRATIONS", [])]
