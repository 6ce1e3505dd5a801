"""Who may see and change a project (and so everything inside it), as the platform does.

* The owner (``project.ownerId``) may do anything: read, write, share, transfer, delete.
* A user the project is shared with may read it; with the EDITOR role (or no restriction
  role) also write inside it; with the VIEWER role only read.
* Anyone else gets NOT_FOUND, so that ids of projects one may not see leak nothing.
  A user who may read but not write gets PERMISSION_DENIED.

Entities inside a project (experiments, models, artifacts, deployments, ...) follow it:
handlers call :func:`require_project` with the entity's project id.
"""

from __future__ import annotations

import json
from typing import Any

from mlops_nb.sandbox.rpc import Call, RpcError, not_found, permission_denied
from mlops_nb.sandbox.store import Store

# Fixed ids, so that a restriction role given in one sandbox means the same in another.
ROLE_OWNER = "7d1b6a8e-0000-4000-8000-000000000001"
ROLE_EDITOR = "7d1b6a8e-0000-4000-8000-000000000002"
ROLE_VIEWER = "7d1b6a8e-0000-4000-8000-000000000003"
ROLES = {ROLE_OWNER: "OWNER", ROLE_EDITOR: "EDITOR", ROLE_VIEWER: "VIEWER"}
ROLES_CREATED_TIME = "2024-01-01T00:00:00.000000Z"

MIGRATIONS: list[tuple[str, str]] = [
    (
        "0100_project_sharing",
        """
        CREATE TABLE project_sharing (
            id TEXT PRIMARY KEY,
            project_id TEXT NOT NULL,
            user_id TEXT NOT NULL,
            restriction_role_id TEXT,
            created_time TEXT NOT NULL,
            UNIQUE (project_id, user_id)
        );
        CREATE INDEX project_sharing_by_user ON project_sharing (user_id, project_id);
        """,
    ),
]


def readable_projects_sql(call: Call, column: str = "e.project_id") -> tuple[str, list[Any]]:
    """A SQL condition (and its parameters) true where ``column`` names a project the caller may read.

    ``column`` must be qualified by its table's alias (``e.project_id``): the condition looks the
    project up row by row (two index lookups), rather than gathering every readable project
    first, which would cost each query as much as the caller has projects.
    """
    return (
        f"(EXISTS (SELECT 1 FROM entity readable_p WHERE readable_p.kind = 'project' "
        f"AND readable_p.id = {column} AND readable_p.owner_id = ?) "
        f"OR EXISTS (SELECT 1 FROM project_sharing readable_s WHERE readable_s.project_id = {column} "
        f"AND readable_s.user_id = ?))",
        [call.user_id, call.user_id],
    )


def project_role(call: Call, project: dict[str, Any]) -> str | None:
    """OWNER, EDITOR, VIEWER or None (no access) for the caller on ``project``."""
    return user_role(call.store, call.user_id, project)


def user_role(store: Store, user_id: str, project: dict[str, Any]) -> str | None:
    """OWNER, EDITOR, VIEWER or None (no access) for user ``user_id`` on ``project``."""
    if project.get("ownerId") == user_id:
        return "OWNER"
    with store.reading() as db:
        row = db.execute(
            "SELECT restriction_role_id FROM project_sharing WHERE project_id = ? AND user_id = ?",
            (project["id"], user_id),
        ).fetchone()
    if row is None:
        return None
    return "VIEWER" if row["restriction_role_id"] == ROLE_VIEWER else "EDITOR"


def require_project(call: Call, project_id: str, *, write: bool = False, owner: bool = False) -> dict[str, Any]:
    """The project (wire JSON) if the caller may read it (and write it / own it, when asked).

    Raises NOT_FOUND when the project does not exist or the caller may not see it,
    PERMISSION_DENIED when the caller may see it but not do what was asked.
    """
    if not project_id:
        from mlops_nb.sandbox.rpc import invalid_argument

        raise invalid_argument("project_id is required")
    with call.store.reading() as db:
        row = db.execute("SELECT data FROM entity WHERE kind = 'project' AND id = ?", (project_id,)).fetchone()
    if row is None:
        raise not_found("project", project_id)
    project = json.loads(row["data"])
    role = project_role(call, project)
    if role is None:
        raise not_found("project", project_id)
    if owner and role != "OWNER":
        raise permission_denied(f"only the owner of project {project_id!r} may do this (you are {role})")
    if write and role == "VIEWER":
        raise permission_denied(f"you may only view project {project_id!r} (your role is VIEWER)")
    return project


def require_via_project(call: Call, project_id: str | None, what: str, entity_id: str, *,
                        write: bool = False) -> None:
    """Access to an entity through its project; a hidden project reads as NOT_FOUND of the entity itself."""
    try:
        require_project(call, project_id or "", write=write)
    except RpcError as e:
        if e.code == 5:
            raise not_found(what, entity_id) from None
        raise
