"""The workspaces API's authz server: workspaces and users (below ``/authz``).

A workspace IS a project: ``workspaces/<project id>`` (display name, description, creation and
update times, creator ``users/<owner id>``), made, read, listed, changed and deleted through the
project handlers, so the legacy face sees the same project and its DEV/PROD environments, events
and deletion cascade. What projects lack is kept beside it (kind ``workspace_meta``, deleted with
the project): ``annotations``, and ``archiveTime``/``archiver`` once archived. An archived
workspace is read and used as before but left out of lists and counts unless ``showArchived``.
Listing and counting take AIP-160 ``filter``/``orderBy`` over ``name``, ``display_name``, ``description``,
``create_time``, ``update_time``. Deleting is at once and for good, as the legacy DeleteProject
is: undelete and importing answer UNIMPLEMENTED (no handler; ``showDeleted`` adds nothing to a
list).

Users are storage's users: ``users/<user id>`` (the id ``GET /me`` answers in ``X-User-Id``),
display name and login principal the username, the primary email as the one email.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from mlops_nb.sandbox.rpc import Call, handles, invalid_argument, not_implemented, now
from mlops_nb.sandbox.services import projects
from mlops_nb.sandbox.services.access import require_project
from mlops_nb.sandbox.services.rest import resource_id, rest_count, rest_list
from mlops_nb.sandbox.services.users import USERS, find_user
from mlops_nb.wire.messages import message_class

__all__ = ["workspace_id", "workspace_wire"]

META_KIND = "workspace_meta"
NOT_ARCHIVED = (f"NOT EXISTS (SELECT 1 FROM entity m WHERE m.kind = '{META_KIND}' AND m.id = e.id "
                "AND json_extract(m.data, '$.archiveTime') IS NOT NULL)")
# REST field names of a workspace -> the project's (as storage filters and sorts them).
WORKSPACE_FIELDS = {"name": "name", "display_name": "display_name", "description": "description", "create_time": "created_time",
                    "update_time": "last_modified_time"}
USER_FIELDS = {"name": "name", "display_name": "username", "login_principal": "username", "email": "primary_email",
               "create_time": "created_time"}


def workspace_id(name: Any, what: str = "name") -> str:
    """The project id of ``workspaces/<project id>``; INVALID_ARGUMENT for another shape."""
    return resource_id(name, "workspaces", what)


def _metas(call: Call, project_ids: list[str]) -> dict[str, dict[str, Any]]:
    """What the workspaces keep beside these projects, in one read."""
    with call.store.reading() as db:
        rows = db.execute(f"SELECT id, data FROM entity WHERE kind = '{META_KIND}' AND id IN "
                          "(SELECT value FROM json_each(?))", (json.dumps(project_ids),)).fetchall()
    return {r["id"]: json.loads(r["data"]) for r in rows}


def workspace_wire(call: Call, project: dict[str, Any], meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """A project as a ``V1Workspace`` (wire JSON); ``meta``: what it keeps beside it, when read already."""
    if meta is None:
        meta = call.store.get(META_KIND, project["id"]) or {}
    wire = {"name": f"workspaces/{project['id']}", "displayName": project.get("displayName", ""),
            "description": project.get("description", ""), "annotations": meta.get("annotations", {}),
            "createTime": project.get("createdTime"), "updateTime": project.get("lastModifiedTime"),
            "creator": f"users/{project.get('ownerId', '')}", "tags": [], "labels": []}
    if meta.get("archiveTime"):
        wire.update(archiveTime=meta["archiveTime"], archiver=meta.get("archiver", ""))
    return wire


def _annotations(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise invalid_argument("workspace.annotations must be a map of strings to strings")
    return value


def _set_meta(call: Call, project_id: str, **values: Any) -> None:
    """Change what a workspace keeps beside its project (a value of None removes the key)."""
    with call.store.transaction():
        meta = {**(call.store.get(META_KIND, project_id) or {"id": project_id}), **values}
        call.store.put(META_KIND, {k: v for k, v in meta.items() if v is not None}, project_id=project_id,
                       parent_id=project_id, owner_id=call.user_id)


def _project_request(name: str, wire: dict[str, Any]) -> Any:
    return message_class(name).from_wire(wire)


@handles("authz.workspace.create_workspace", generation="workspaces")
def create_workspace(call: Call, request: dict[str, Any]) -> dict[str, Any]:
    given = request.get("workspace")
    if not isinstance(given, dict) or not str(given.get("displayName", "")).strip():
        raise invalid_argument("workspace.displayName (the workspace's name) is required")
    annotations = _annotations(given.get("annotations"))
    project = {"displayName": given["displayName"]}
    if given.get("description"):
        project["description"] = str(given["description"])
    with call.store.transaction():
        created = projects.create_project(call, _project_request("StorageCreateProjectRequest",
                                                                 {"project": project}))["project"]
        if annotations:
            _set_meta(call, created["id"], annotations=annotations)
    return {"workspace": workspace_wire(call, created)}


@handles("authz.workspace.get_workspace", generation="workspaces")
def get_workspace(call: Call, request: dict[str, Any]) -> dict[str, Any]:
    return {"workspace": workspace_wire(call, require_project(call, workspace_id(request.get("name"))))}


def _workspaces(call: Call, request: dict[str, Any]) -> Any:
    """The projects a list or count of workspaces covers: archived ones only with ``showArchived``."""
    query = projects.projects_query(call, "1" if request.get("showArchived") else NOT_ARCHIVED)
    return dataclasses.replace(query, fields={"name": ("'workspaces/' || e.id", "string")})


def _list(call: Call, request: dict[str, Any]) -> dict[str, Any]:
    query = {k: v for k, v in request.items() if k not in ("showArchived", "showDeleted")}
    items, token = rest_list(call, _workspaces(call, request), query, WORKSPACE_FIELDS)
    metas = _metas(call, [p["id"] for p in items])
    return {"workspaces": [workspace_wire(call, p, metas.get(p["id"], {})) for p in items], "nextPageToken": token}


@handles("authz.workspace.list_workspaces", generation="workspaces")
def list_workspaces(call: Call, request: dict[str, Any]) -> dict[str, Any]:
    return _list(call, request)


@handles("authz.workspace.list_all_workspaces", generation="workspaces")
def list_all_workspaces(call: Call, request: dict[str, Any]) -> dict[str, Any]:
    return _list(call, request)


@handles("authz.workspace.count_workspaces", generation="workspaces")
def count_workspaces(call: Call, request: dict[str, Any]) -> dict[str, Any]:
    return {"totalSize": str(rest_count(call, _workspaces(call, {}), request, WORKSPACE_FIELDS))}


_UPDATABLE = {"display_name": "displayName", "displayName": "displayName", "description": "description"}
_MASK_NAMES = {"displayName": "display_name", "description": "description"}


@handles("authz.workspace.update_workspace", generation="workspaces")
def update_workspace(call: Call, request: dict[str, Any]) -> dict[str, Any]:
    project_id = workspace_id(request.get("workspace.name"), "workspace.name")
    change = request.get("workspace") or {}
    if not isinstance(change, dict):
        raise invalid_argument("the request body must be the workspace's new fields (a JSON object)")
    mask = [m.strip() for m in str(request.get("updateMask") or "").split(",") if m.strip()]
    if not mask:  # no mask: every field the body sets
        mask = [k for k in ("displayName", "description", "annotations") if k in change]
    unknown = [m for m in mask if m not in _UPDATABLE and m != "annotations"]
    if unknown:
        raise invalid_argument(f"updateMask names {unknown[0]!r}; a workspace's display_name, description and "
                               "annotations can change")
    fields = sorted({_UPDATABLE[m] for m in mask if m in _UPDATABLE})
    with call.store.transaction():
        project = require_project(call, project_id, write=True)
        if fields:
            patch = {"id": project_id, **{f: change.get(f, "") for f in fields}}
            project = projects.update_project(call, _project_request("StorageUpdateProjectRequest", {
                "project": patch, "updateMask": ",".join(_MASK_NAMES[f] for f in fields)}))["project"]
        if "annotations" in mask:
            _set_meta(call, project_id, annotations=_annotations(change.get("annotations")))
    return {"workspace": workspace_wire(call, project)}


@handles("authz.workspace.delete_workspace", generation="workspaces")
def delete_workspace(call: Call, request: dict[str, Any]) -> dict[str, Any]:
    project_id = workspace_id(request.get("name"))
    gone = workspace_wire(call, require_project(call, project_id))
    projects.delete_project_now(call, project_id)
    return {"workspace": gone}


def _archive(call: Call, request: dict[str, Any], archived: bool) -> dict[str, Any]:
    project_id = workspace_id(request.get("name"))
    with call.store.transaction():
        require_project(call, project_id, write=True)
        if archived:
            _set_meta(call, project_id, archiveTime=now(), archiver=f"users/{call.user_id}")
        else:
            _set_meta(call, project_id, archiveTime=None, archiver=None)
        return {"workspace": workspace_wire(call, require_project(call, project_id))}


@handles("authz.workspace.archive_workspace", generation="workspaces")
def archive_workspace(call: Call, request: dict[str, Any]) -> dict[str, Any]:
    return _archive(call, request, True)


@handles("authz.workspace.unarchive_workspace", generation="workspaces")
def unarchive_workspace(call: Call, request: dict[str, Any]) -> dict[str, Any]:
    return _archive(call, request, False)


_UNDELETE = "undeleting workspaces (the sandbox deletes a workspace at once and for good, as DeleteProject does)"
not_implemented("authz.workspace.undelete_workspace", _UNDELETE, generation="workspaces")
not_implemented("authz.workspace.undelete_workspace2", _UNDELETE, generation="workspaces")
not_implemented("authz.workspace.import_workspace", "importing workspaces exported by another MLOps installation",
                generation="workspaces")


# -- users ---------------------------------------------------------------------------------------


_USERS = dataclasses.replace(USERS, fields={"name": ("'users/' || e.id", "string")})


def _user_wire(user: dict[str, Any]) -> dict[str, Any]:
    email = user.get("primaryEmail", "")
    return {"name": f"users/{user['id']}", "displayName": user.get("username", ""), "active": True,
            "emails": [{"address": email}] if email else [], "loginPrincipal": user.get("username", "")}


@handles("authz.user.get_user", generation="workspaces")
def get_user(call: Call, request: dict[str, Any]) -> dict[str, Any]:
    return {"user": _user_wire(find_user(call, resource_id(request.get("name"), "users", "name")))}


@handles("authz.user.list_users", generation="workspaces")
def list_users(call: Call, request: dict[str, Any]) -> dict[str, Any]:
    items, token = rest_list(call, _USERS, request, USER_FIELDS)
    return {"users": [_user_wire(u) for u in items], "nextPageToken": token}


def _by_email(call: Call, request: dict[str, Any]) -> dict[str, Any]:
    email = str(request.get("email") or "").strip()
    if not email:
        raise invalid_argument("email is required")
    quoted = email.replace("\\", "\\\\").replace("'", "\\'")
    items, token = rest_list(call, _USERS, {**request, "filter": f"email = '{quoted}'"}, USER_FIELDS)
    return {"users": [_user_wire(u) for u in items], "nextPageToken": token}


@handles("authz.user.list_users_by_email", generation="workspaces")
def list_users_by_email(call: Call, request: dict[str, Any]) -> dict[str, Any]:
    return _by_email(call, request)


@handles("authz.user.list_users_by_email2", generation="workspaces")
def list_users_by_email2(call: Call, request: dict[str, Any]) -> dict[str, Any]:
    return _by_email(call, request)
