"""ProjectService: projects, their sharing and ownership, and their audit trail.

What a user of the sandbox should know:

* Creating a project makes the caller its owner, and gives the project the DEV and PROD
  deployment environments a real MLOps gives it (``services/environments.py``). ``ListProjects`` and
  ``ListAllProjects`` both return the projects the caller owns or that are shared
  with them; ``userProjectCount``/``totalProjectCount`` count all of those,
  whatever the filter.
* ``UpdateProject`` honours ``update_mask`` (comma-separated field names, python or
  wire spelling: ``display_name,description`` or ``displayName``); without a mask
  it changes ``display_name`` and ``description`` where the request sets them.
  An update that names nothing to change is INVALID_ARGUMENT (the rule of
  ``entities.apply_update``, which every update of the sandbox follows).
  Owners and editors may update; only the owner may delete, share, unshare or
  transfer.
* Deleting a project deletes what is inside it: tags, comments, metrics, registered
  models and their versions, artifacts, sharings, and the experiments that live
  only there. An experiment whose home is the project but that is also linked into
  other projects survives and moves home to the project it was linked into first;
  links of experiments from other projects are simply removed. The project's audit
  events are kept (an audit trail outlives what it describes), but nobody can list
  them any more.
* ``ShareProject`` with a user who already has a sharing changes its role (and
  returns the same sharing). No restriction role means EDITOR; the OWNER role
  cannot be given by sharing (use ``TransferProjectOwnership``). Groups do not
  exist in the sandbox. A transfer leaves the previous owner an EDITOR sharing.
* ``ListProjectsContainingExperiment`` is served with the experiments
  (``services/experiments.py``), whose visibility rules it needs.
* ``ListProjectEvents`` lists ``StorageAuditEvent`` records of every change made
  through the sandbox to the project and to the experiments and tags in it,
  newest first unless sorted otherwise.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

from mlops_nb.sandbox.rpc import (
    Call,
    ListQuery,
    count_matching,
    handles,
    invalid_argument,
    list_page,
    new_id,
    not_found,
    now,
    page_response,
    run_batch,
)
from mlops_nb.sandbox.services.access import (
    ROLE_EDITOR,
    ROLE_OWNER,
    ROLE_VIEWER,
    ROLES,
    require_project,
)
from mlops_nb.sandbox.services.artifacts import delete_artifact_rows, remove_blobs
from mlops_nb.sandbox.services.entities import apply_update
from mlops_nb.sandbox.services.environments import add_default_environments
from mlops_nb.sandbox.services.users import find_user
from mlops_nb.wire.messages import message_class

MIGRATIONS: list[tuple[str, str]] = [
    (
        "0200_project_event",
        # The columns list_page() needs (kind, id, created_time, data), so events page,
        # filter and sort like entities; kept out of ``entity`` so deleting a project
        # does not erase its audit trail.
        """
        CREATE TABLE project_event (
            kind TEXT NOT NULL DEFAULT 'project_event',
            id TEXT PRIMARY KEY,
            project_id TEXT NOT NULL,
            created_time TEXT NOT NULL,
            data TEXT NOT NULL
        );
        CREATE INDEX project_event_by_project ON project_event (project_id, created_time, id);
        """,
    ),
]

PROJECT_UPDATABLE = ("display_name", "description")

ProjectDeleteHook = Callable[[Call, sqlite3.Connection, str], None]
# Run inside the deleting transaction, before the generic cascade, for areas whose
# relations need more than "delete every entity of the project" (experiments linked
# into several projects, for one). Filled in one place: services/__init__.py.
PROJECT_DELETE_HOOKS: list[ProjectDeleteHook] = []


# -- helpers the other project-scoped services share ----------------------------------------


def record_event(call: Call, db: sqlite3.Connection, operation: str, project_id: str, message: str,
                 **refs: str) -> None:
    """Append a StorageAuditEvent to the project's trail (``refs``: experiment_id, user_id, ...)."""
    timestamp = now()
    event = message_class("StorageAuditEvent")(
        id=new_id(), actor_id=call.user_id, project_id=project_id, operation=operation, message=message,
        **{k: v for k, v in refs.items() if v},
    ).to_wire()
    # Fixed-width, like every stored timestamp, so that sorting by it as text is sorting by time.
    event["timestamp"] = timestamp
    db.execute("INSERT INTO project_event (id, project_id, created_time, data) VALUES (?, ?, ?, ?)",
               (event["id"], project_id, timestamp, json.dumps(event)))


def changed_fields(before: dict[str, Any], after: dict[str, Any]) -> str:
    """The wire names of the fields an update changed, for an event's message."""
    return ", ".join(sorted(k for k in {*before, *after} if before.get(k) != after.get(k))) or "nothing"


def projects_query(call: Call, where: str = "1", params: Sequence[Any] = ()) -> ListQuery:
    """Projects the caller may read, narrowed by ``where``."""
    # readable_projects_sql() for the project rows themselves: the owner is in the row (and in the
    # entity_by_owner index), so counting every project the caller owns looks nothing up.
    readable = ("(e.owner_id = ? OR EXISTS (SELECT 1 FROM project_sharing s "
                "WHERE s.project_id = e.id AND s.user_id = ?))")
    return ListQuery(kind="project", message="StorageProject", where=f"{readable} AND ({where})",
                     params=[call.user_id, call.user_id, *params])


# -- create, read, update ----------------------------------------------------------------------


@handles("storage.project.create_project")
def create_project(call: Call, request: Any) -> dict[str, Any]:
    project = request.project
    if project is None or not project.display_name.strip():
        raise invalid_argument("project.display_name is required")
    created = now()
    data = {"id": new_id(), "displayName": project.display_name, "ownerId": call.user_id,
            "createdTime": created, "lastModifiedTime": created}
    if project.description:
        data["description"] = project.description
    with call.store.transaction() as db:
        call.store.put("project", data, owner_id=call.user_id)
        add_default_environments(db, data["id"])
        record_event(call, db, "CREATE_PROJECT", data["id"], f"created project {project.display_name!r}")
    return {"project": data}


@handles("storage.project.get_project")
def get_project(call: Call, request: Any) -> dict[str, Any]:
    return {"project": require_project(call, request.project_id)}


def _list_projects(call: Call, request: Any) -> tuple[list[dict[str, Any]], bytes, int]:
    query = projects_query(call)
    items, token = list_page(call, query, request)
    return items, token, count_matching(call, query)


@handles("storage.project.list_projects")
def list_projects(call: Call, request: Any) -> dict[str, Any]:
    items, token, total = _list_projects(call, request)
    return page_response("project", items, token, userProjectCount=str(total))


@handles("storage.project.list_all_projects")
def list_all_projects(call: Call, request: Any) -> dict[str, Any]:
    items, token, total = _list_projects(call, request)
    return page_response("project", items, token, totalProjectCount=str(total))


@handles("storage.project.update_project")
def update_project(call: Call, request: Any) -> dict[str, Any]:
    change = request.project
    if change is None or not change.id:
        raise invalid_argument("project.id is required")
    with call.store.transaction() as db:
        current = require_project(call, change.id, write=True)
        updated = apply_update(current, change, request.update_mask, PROJECT_UPDATABLE)
        if not updated.get("displayName", "").strip():
            raise invalid_argument("project.display_name must not be empty")
        updated["lastModifiedTime"] = now()
        call.store.put("project", updated, owner_id=updated["ownerId"])
        record_event(call, db, "UPDATE_PROJECT", change.id,
                     f"updated {changed_fields(current, updated)} of project {updated['displayName']!r}")
    return {"project": updated}


# -- delete ------------------------------------------------------------------------------------

# Every entity of the project, and (recursively) every entity whose parent is one of them.
_CONTENTS_SQL = """
WITH RECURSIVE doomed(kind, id) AS (
    SELECT kind, id FROM entity WHERE project_id = ? AND kind != 'project'
    UNION
    SELECT e.kind, e.id FROM entity e JOIN doomed d ON e.parent_id = d.id
)
SELECT kind, id FROM doomed
"""


def delete_project_now(call: Call, project_id: str) -> None:
    """Delete a project the caller owns, and what is inside it, in one transaction."""
    with call.store.transaction() as db:
        project = require_project(call, project_id, owner=True)
        for hook in PROJECT_DELETE_HOOKS:
            hook(call, db, project_id)
        doomed = [(r["kind"], r["id"]) for r in db.execute(_CONTENTS_SQL, (project_id,))]
        # The artifact service also drops the bytes behind its rows. It takes one SQL parameter
        # per id, so the ids go in slices below the smallest limit SQLite builds have (999).
        owners = [project_id, *(i for kind, i in doomed if kind != "artifact")]
        artifact_ids = [a for start in range(0, len(owners), 900)
                        for a in delete_artifact_rows(call.store, owners[start:start + 900])]
        db.executemany("DELETE FROM entity WHERE kind = ? AND id = ?", doomed)
        db.executemany("DELETE FROM entity_tag WHERE entity_id = ? OR tag_id = ?", [(i, i) for _, i in doomed])
        db.execute("DELETE FROM project_sharing WHERE project_id = ?", (project_id,))
        db.execute("DELETE FROM entity WHERE kind = 'project' AND id = ?", (project_id,))
        record_event(call, db, "DELETE_PROJECT", project_id,
                     f"deleted project {project['displayName']!r} and {len(doomed)} entities in it")
    remove_blobs(call.store, artifact_ids)


@handles("storage.project.delete_project")
def delete_project(call: Call, request: Any) -> None:
    delete_project_now(call, request.project_id)


@handles("storage.project.batch_delete_project")
def batch_delete_project(call: Call, request: Any) -> dict[str, Any]:
    ids = list(dict.fromkeys(request.project_ids))
    return {"projectsDeleted": run_batch(ids, "projects", lambda p: delete_project_now(call, p),
                                         lambda p: {"projectId": p})}


# -- sharing and ownership ----------------------------------------------------------------------


def _sharing_wire(row: sqlite3.Row) -> dict[str, Any]:
    return {"id": row["id"], "entityId": row["project_id"], "userId": row["user_id"],
            "restrictionRoleId": row["restriction_role_id"] or ROLE_EDITOR, "type": "USER_CREATED",
            "createdTime": row["created_time"]}


def _grant(db: sqlite3.Connection, project_id: str, user_id: str, role_id: str) -> sqlite3.Row:
    """Share (or re-share with another role), keeping the sharing's id and creation time."""
    db.execute(
        "INSERT INTO project_sharing (id, project_id, user_id, restriction_role_id, created_time) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (project_id, user_id) "
        "DO UPDATE SET restriction_role_id = excluded.restriction_role_id",
        (new_id(), project_id, user_id, role_id, now()),
    )
    return db.execute("SELECT * FROM project_sharing WHERE project_id = ? AND user_id = ?",
                      (project_id, user_id)).fetchone()


@handles("storage.project.share_project")
def share_project(call: Call, request: Any) -> dict[str, Any]:
    if request.group_id and not request.user_id:
        raise invalid_argument("the sandbox has no groups: share with a user_id")
    if not request.user_id:
        raise invalid_argument("user_id is required")
    role_id = request.restriction_role_id or ROLE_EDITOR
    if role_id not in (ROLE_EDITOR, ROLE_VIEWER):
        hint = " (to give a project away, use transfer_project_ownership)" if role_id == ROLE_OWNER else ""
        raise invalid_argument(f"restriction_role_id must be the EDITOR ({ROLE_EDITOR}) or VIEWER "
                               f"({ROLE_VIEWER}) role of list_roles{hint}")
    with call.store.transaction() as db:
        project = require_project(call, request.project_id, owner=True)
        user = find_user(call, request.user_id)
        if user["id"] == project["ownerId"]:
            raise invalid_argument("a project cannot be shared with its owner")
        row = _grant(db, project["id"], user["id"], role_id)
        record_event(call, db, "SHARE_PROJECT", project["id"],
                     f"shared project {project['displayName']!r} with {user['username']} as {ROLES[role_id]}",
                     user_id=user["id"], restriction_role_id=role_id)
    return {"sharing": _sharing_wire(row)}


@handles("storage.project.unshare_project")
def unshare_project(call: Call, request: Any) -> None:
    if not request.sharing_id:
        raise invalid_argument("sharing_id is required")
    with call.store.transaction() as db:
        project = require_project(call, request.project_id, owner=True)
        row = db.execute("SELECT * FROM project_sharing WHERE id = ? AND project_id = ?",
                         (request.sharing_id, project["id"])).fetchone()
        if row is None:
            raise not_found("sharing", request.sharing_id)
        db.execute("DELETE FROM project_sharing WHERE id = ?", (row["id"],))
        record_event(call, db, "UNSHARE_PROJECT", project["id"],
                     f"stopped sharing project {project['displayName']!r}", user_id=row["user_id"])


@handles("storage.project.list_project_sharings")
def list_project_sharings(call: Call, request: Any) -> dict[str, Any]:
    project = require_project(call, request.project_id)
    with call.store.reading() as db:
        rows = db.execute("SELECT * FROM project_sharing WHERE project_id = ? ORDER BY created_time, id",
                          (project["id"],)).fetchall()
    return {"sharing": [_sharing_wire(r) for r in rows]}


@handles("storage.project.transfer_project_ownership")
def transfer_project_ownership(call: Call, request: Any) -> dict[str, Any]:
    if not request.new_owner_id:
        raise invalid_argument("new_owner_id is required")
    with call.store.transaction() as db:
        project = require_project(call, request.project_id, owner=True)
        new_owner = find_user(call, request.new_owner_id)
        previous = project["ownerId"]
        if new_owner["id"] == previous:
            raise invalid_argument("new_owner_id already owns the project")
        project["ownerId"] = new_owner["id"]
        project["lastModifiedTime"] = now()
        call.store.put("project", project, owner_id=new_owner["id"])
        db.execute("DELETE FROM project_sharing WHERE project_id = ? AND user_id = ?",
                   (project["id"], new_owner["id"]))
        _grant(db, project["id"], previous, ROLE_EDITOR)
        record_event(call, db, "TRANSFER_PROJECT_OWNERSHIP", project["id"],
                     f"gave project {project['displayName']!r} to {new_owner['username']}",
                     user_id=new_owner["id"])
    return {"projectId": project["id"], "ownerId": new_owner["id"], "status": True}


# -- events ------------------------------------------------------------------------------------


@handles("storage.project.list_project_events")
def list_project_events(call: Call, request: Any) -> dict[str, Any]:
    project = require_project(call, request.project_id)
    query = ListQuery(kind="project_event", message="StorageAuditEvent", table="project_event",
                      where="e.project_id = ?", params=[project["id"]])
    items, token = list_page(call, query, request)
    return page_response("event", items, token,
                         eventCount=str(count_matching(call, query, filter=request.filter)))
