"""Storage's deployment environments: DEV and PROD in every project, and the ones users add.

A real MLOps gives every project two deployment environments, ``DEV`` and ``PROD``, and real
code picks one by name (``project.environments.list(name="DEV")[0]``, or a loop over
``ListDeploymentEnvironments``). So does the sandbox: a new project gets both, the demo's
projects too, and a migration gives them to the projects of older sandbox databases.
``DEV`` keeps the id the single environment of those older sandboxes had (derived from the
project's id), so their deployments and endpoints are in ``DEV``; ``PROD``'s id is derived
the same way from the project's id and its name.

Environments are stored entities (kind ``deployment_environment``): listed with paging,
filters and sorting (newest first by default, and ``DEV`` is made after ``PROD``, so it comes
first), created, renamed (``display_name``) and deleted by the project's writers. Every
environment deploys to the sandbox's one deployer target, ``sandbox``. An environment that
still has deployments or endpoints cannot be deleted (FAILED_PRECONDITION says which);
deleting a project deletes its environments.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from typing import Any

from mlops_nb.sandbox.rpc import (
    Call,
    ListQuery,
    already_exists,
    failed_precondition,
    handles,
    invalid_argument,
    list_page,
    new_id,
    not_found,
    now,
    page_response,
)
from mlops_nb.sandbox.services.access import require_project, require_via_project
from mlops_nb.sandbox.services.entities import apply_update
from mlops_nb.sandbox.store import Migration

__all__ = ["MIGRATIONS", "KIND", "TARGET_NAME", "default_environment_id", "default_environments",
           "environment_in_project", "stored_environment"]

KIND = "deployment_environment"
TARGET_NAME = "sandbox"  # the deployer's one environment (deployer.environment.list_environments)
# The namespace the single environment of older sandboxes took its id from (uuid5 of the project's id).
_NAMESPACE = uuid.UUID("5a2dbe0c-0000-4000-8000-000000000001")


def default_environment_id(project_id: str, name: str = "DEV") -> str:
    """The id of a project's DEV (or PROD) environment: the same in every sandbox."""
    return str(uuid.uuid5(_NAMESPACE, project_id if name == "DEV" else f"{project_id}/{name}"))


def _environment(project_id: str, environment_id: str, name: str, created: str) -> dict[str, Any]:
    return {"id": environment_id, "displayName": name, "projectId": project_id, "deploymentTargetName": TARGET_NAME,
            "createdTime": created, "lastModifiedTime": created}


def default_environments(project_id: str, created: tuple[str, str] | None = None) -> list[dict[str, Any]]:
    """A project's PROD and DEV environments (wire JSON), made in that order so that DEV lists first.

    ``created``: their creation times (PROD's, then DEV's, the later), now by default; generated
    data gives every project the same two, so as not to read the clock twice per project.
    """
    prod_time, dev_time = created or (now(), now())
    return [_environment(project_id, default_environment_id(project_id, "PROD"), "PROD", prod_time),
            _environment(project_id, default_environment_id(project_id, "DEV"), "DEV", dev_time)]


def add_default_environments(db: sqlite3.Connection, project_id: str) -> None:
    """Store a project's DEV and PROD (those it already has are left alone)."""
    db.executemany("INSERT OR IGNORE INTO entity (kind, id, project_id, created_time, data) VALUES (?, ?, ?, ?, ?)",
                   [(KIND, e["id"], project_id, e["createdTime"], json.dumps(e, separators=(",", ":")))
                    for e in default_environments(project_id)])


def _give_every_project_its_environments(db: sqlite3.Connection) -> None:
    for row in db.execute("SELECT id FROM entity WHERE kind = 'project' ORDER BY created_time").fetchall():
        add_default_environments(db, row["id"])


MIGRATIONS: list[Migration] = [("0610_deployment_environments", _give_every_project_its_environments)]


def stored_environment(call: Call, environment_id: str, *, write: bool = False,
            field: str = "deployment_environment_id") -> dict[str, Any]:
    if not environment_id:
        raise invalid_argument(f"{field} is required")
    row = call.store.row(KIND, environment_id)
    if row is None:
        raise not_found("deployment environment", environment_id)
    require_via_project(call, row["project_id"], "deployment environment", environment_id, write=write)
    return json.loads(row["data"])


def environment_in_project(call: Call, project_id: str, environment_id: str, field: str) -> dict[str, Any]:
    """The environment if it is one of the project's; INVALID_ARGUMENT naming the project's otherwise."""
    environment = call.store.get(KIND, environment_id) if environment_id else None
    if environment is None or environment.get("projectId") != project_id:
        with call.store.reading() as db:
            names = [f"{d['displayName']} ({d['id']})" for d in (json.loads(r["data"]) for r in db.execute(
                "SELECT data FROM entity WHERE kind = ? AND project_id = ? ORDER BY created_time DESC",
                (KIND, project_id)))]
        raise invalid_argument(f"{field} {environment_id!r} is not an environment of project {project_id!r}; "
                               f"its environments: {', '.join(names) or 'none'}")
    return environment


def _check_name(call: Call, project_id: str, name: str, environment_id: str = "") -> str:
    name = name.strip()
    if not name:
        raise invalid_argument("deployment_environment.display_name is required (e.g. DEV, PROD, STAGING)")
    with call.store.reading() as db:
        clash = db.execute("SELECT id FROM entity WHERE kind = ? AND project_id = ? AND id != ? AND "
                           "json_extract(data, '$.displayName') = ?", (KIND, project_id, environment_id, name)
                           ).fetchone()
    if clash is not None:
        raise already_exists(f"project {project_id!r} already has an environment named {name!r} ({clash['id']})")
    return name


@handles("storage.deployment_environment.list_deployment_environments")
def list_deployment_environments(call: Call, request: Any) -> dict[str, Any]:
    require_project(call, request.project_id)
    query = ListQuery(kind=KIND, message="StorageDeploymentEnvironment", where="e.project_id = ?",
                      params=[request.project_id])
    items, token = list_page(call, query, request)
    return page_response("deploymentEnvironment", items, token)


@handles("storage.deployment_environment.get_deployment_environment")
def get_deployment_environment(call: Call, request: Any) -> dict[str, Any]:
    return {"deploymentEnvironment": stored_environment(call, request.deployment_environment_id)}


@handles("storage.deployment_environment.create_deployment_environment")
def create_deployment_environment(call: Call, request: Any) -> dict[str, Any]:
    given = request.deployment_environment
    if given is None:
        raise invalid_argument("deployment_environment is required (project_id and display_name)")
    project = require_project(call, given.project_id, write=True)
    if given.deployment_target_name and given.deployment_target_name != TARGET_NAME:
        raise invalid_argument(f"deployment_environment.deployment_target_name {given.deployment_target_name!r} "
                               f"is not a deployer environment; the sandbox has one, {TARGET_NAME!r}")
    with call.store.transaction() as db:
        name = _check_name(call, project["id"], given.display_name)
        environment = _environment(project["id"], new_id(), name, now())
        db.execute("INSERT INTO entity (kind, id, project_id, created_time, data) VALUES (?, ?, ?, ?, ?)",
                   (KIND, environment["id"], project["id"], environment["createdTime"], json.dumps(environment)))
    return {"deploymentEnvironment": environment}


@handles("storage.deployment_environment.update_deployment_environment")
def update_deployment_environment(call: Call, request: Any) -> dict[str, Any]:
    given = request.deployment_environment
    if given is None or not given.id:
        raise invalid_argument("deployment_environment.id is required")
    with call.store.transaction() as db:
        current = stored_environment(call, given.id, write=True, field="deployment_environment.id")
        updated = apply_update(current, given, request.update_mask, ("display_name",))
        updated["displayName"] = _check_name(call, current["projectId"], updated.get("displayName", ""), given.id)
        updated["lastModifiedTime"] = now()
        db.execute("UPDATE entity SET data = ? WHERE kind = ? AND id = ?", (json.dumps(updated), KIND, given.id))
    return {"deploymentEnvironment": updated}


@handles("storage.deployment_environment.delete_deployment_environment")
def delete_deployment_environment(call: Call, request: Any) -> None:
    with call.store.transaction() as db:
        environment = stored_environment(call, request.deployment_environment_id, write=True)
        deployments = [r["id"] for r in db.execute(
            "SELECT id FROM entity WHERE kind = 'deployer_deployment' AND project_id = ? AND "
            "json_extract(data, '$.deploymentEnvironmentId') = ?", (environment["projectId"], environment["id"]))]
        if deployments:
            raise failed_precondition(f"environment {environment['displayName']!r} still has {len(deployments)} "
                                      f"deployment(s) ({', '.join(deployments[:3])}); delete or undeploy them first")
        endpoints = [json.loads(r["data"])["name"] for r in db.execute(
            "SELECT data FROM entity WHERE kind = 'endpoint' AND json_extract(data, '$.name') LIKE ?",
            (f"projects/{environment['projectId']}/environments/{environment['id']}/endpoints/%",))]
        if endpoints:
            raise failed_precondition(f"environment {environment['displayName']!r} still has {len(endpoints)} "
                                      f"endpoint(s) ({', '.join(endpoints[:3])}); delete them first")
        db.execute("DELETE FROM entity WHERE kind = ? AND id = ?", (KIND, environment["id"]))
