"""Generated data for trying the sandbox at scale: ``data="scale:N"`` (``--data scale:N``).

The entities are written straight into the store in bulk (a few ``executemany`` in one
transaction), not made by N API calls, so ``scale:100000`` takes seconds. They are the
rows the API would store (a test compares them with rows made through the API); there
are no audit events for them. For alice, with bob enrolled as well:

* N projects owned by alice, ``project 1`` to ``project N`` (created a second apart,
  ending a little before the sandbox started, so the newest is ``project N``); every
  third has a description, every tenth is shared with bob as a VIEWER; each has its DEV
  and PROD deployment environments.
* N experiments with metadata (``source``, ``auc``, ``logloss``, ``trees``, ``tuned``),
  parameters and a status, all in ``project 1``: one list of N experiments.

No deployments: each of those runs real scorer processes, which N of would not fit on a
laptop. ``mlops_nb.all_deployments(client, projects)`` still makes its two calls per
project against them (and finds no deployments).

Seeding happens once: a store where alice already has a project is left alone.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from mlops_nb.sandbox.rpc import now, timestamp_text
from mlops_nb.sandbox.services.access import ROLE_VIEWER
from mlops_nb.sandbox.services.environments import KIND as ENVIRONMENT_KIND
from mlops_nb.sandbox.services.environments import default_environments

if TYPE_CHECKING:
    from mlops_nb.sandbox.server import Sandbox
    from mlops_nb.sandbox.store import EntityRow

__all__ = ["seed_scale_data"]

_SOURCES = ("Driverless AI", "H2O-3", "MLflow")


def _ids(count: int, seed: int) -> list[str]:
    # Random version-4 UUIDs, as new_id() makes, from a seeded generator: the same data every time.
    generator = random.Random(seed)
    return [str(uuid.UUID(int=generator.getrandbits(128), version=4)) for _ in range(count)]


def _times(count: int, end: datetime) -> list[str]:
    return [timestamp_text(end - timedelta(seconds=count - i)) for i in range(count)]


def _projects(ids: list[str], times: list[str], owner_id: str) -> Iterator[EntityRow]:
    for i, (project_id, created) in enumerate(zip(ids, times, strict=True), start=1):
        data: dict[str, Any] = {"id": project_id, "displayName": f"project {i}", "ownerId": owner_id,
                                "createdTime": created, "lastModifiedTime": created}
        if i % 3 == 0:
            data["description"] = f"generated project number {i}"
        yield data, None, None, owner_id


def _experiment(experiment_id: str, name: str, created: str, owner_id: str, number: int,
                generator: random.Random) -> dict[str, Any]:
    return {
        "id": experiment_id, "displayName": name,
        "metadata": {"values": {
            "source": {"stringValue": _SOURCES[number % len(_SOURCES)]},
            "auc": {"doubleValue": round(0.6 + 0.35 * generator.random(), 4)},
            "logloss": {"doubleValue": round(0.2 + 0.4 * generator.random(), 4)},
            "trees": {"int64Value": str(50 + number % 450)},
            "tuned": {"boolValue": number % 2 == 0},
        }},
        "parameters": {"targetColumn": "default_payment"},
        "status": "FINISHED" if number % 10 else "FAILED",
        "statistics": {"trainingDuration": f"{30 + number % 600}s"},
        "ownerId": owner_id, "createdTime": created, "lastModifiedTime": created,
    }


def seed_scale_data(sandbox: Sandbox, count: int) -> None:
    """Fill a new sandbox with ``count`` generated projects and experiments (see the module's docstring)."""
    # Seeding speaks the legacy API (the sandbox serves it meanwhile, whatever its faces).
    with sandbox.client("alice", generation="legacy") as alice, \
            sandbox.client("bob", generation="legacy") as bob:
        alice_id = alice.storage.user.who_am_i().user.id
        bob_id = bob.storage.user.who_am_i().user.id
        if alice.storage.project.list_projects(paging={"page_size": 1}).project:
            return
    store = sandbox.store
    assert store is not None  # the sandbox is running: seeding is part of start()
    end = datetime.now(timezone.utc) - timedelta(seconds=1)
    project_ids = _ids(count, seed=1)
    project_times = _times(count, end)
    generator = random.Random(2)
    experiments = (
        (_experiment(experiment_id, f"experiment {i}", created, alice_id, i, generator), project_ids[0], None,
         alice_id)
        for i, (experiment_id, created) in enumerate(zip(_ids(count, seed=2), project_times, strict=True), start=1)
    )
    with store.bulk_load() as db:
        store.put_many("project", _projects(project_ids, project_times, alice_id))
        db.executemany(
            "INSERT INTO project_sharing (id, project_id, user_id, restriction_role_id, created_time) "
            "VALUES (?, ?, ?, ?, ?)",
            [(sharing_id, project_ids[i], bob_id, ROLE_VIEWER, project_times[i])
             for sharing_id, i in zip(_ids(count, seed=7), range(9, count, 10), strict=False)],
        )
        store.put_many("experiment", experiments)
        environment_times = (now(), now())
        store.put_many(ENVIRONMENT_KIND, ((environment, project_id, None, None) for project_id in project_ids
                                          for environment in default_environments(project_id, environment_times)))
    with store.transaction() as db:
        # Statistics for the query planner, which otherwise cannot tell a selective index (a display
        # name) from one that merely matches the list's order.
        db.execute("ANALYZE")
