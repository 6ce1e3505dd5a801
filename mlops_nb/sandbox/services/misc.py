"""TagService, RoleService, the three GetVersion methods and GatewayAggregatorServices.

What a user of the sandbox should know:

* A tag belongs to one project (``project_id`` of the request, or ``tag.project_id``);
  its ``display_name`` is unique within the project. Anyone who may read the project
  may read its tags; editors and the owner may create, rename and delete them.
  Deleting a tag takes it off everything that carries it.
* ``ListRoles`` returns the three fixed roles OWNER, EDITOR and VIEWER; their ids
  are the same in every sandbox (``ShareProject`` takes EDITOR or VIEWER).
* ``GetVersion`` (storage, deployer, ingest) answers ``<mlops_nb version> (mlops_nb sandbox)``.
* ``GetProjectWithAggregatedInfo`` / ``ListProjectsWithAggregatedInfo`` add to each
  project the number of its live experiments (linked ones included), registered
  models and their versions, and its sharings with the users shared with.
  ``ListExperimentsWithModelInfo`` adds to each experiment of a project the
  registered model version that points at it, if any.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import mlops_nb
from mlops_nb.sandbox.rpc import (
    Call,
    ListQuery,
    already_exists,
    count_matching,
    handles,
    invalid_argument,
    list_page,
    new_id,
    not_found,
    now,
    page_response,
)
from mlops_nb.sandbox.services.access import ROLES, ROLES_CREATED_TIME, require_project, require_via_project
from mlops_nb.sandbox.services.entities import apply_update, experiments_in
from mlops_nb.sandbox.services.experiments import registered_versions, shaped
from mlops_nb.sandbox.services.projects import projects_query, record_event
from mlops_nb.sandbox.services.rest import storage_filter

MIGRATIONS: list[tuple[str, str]] = []

BUILD_VERSION = f"{mlops_nb.__version__} (mlops_nb sandbox)"

# -- tags ----------------------------------------------------------------------------------------


def _tag(call: Call, tag_id: str, project_id: str, *, write: bool = False) -> dict[str, Any]:
    """The tag if the caller may read (or write) its project; ``project_id``, if given, must be its project."""
    if not tag_id:
        raise invalid_argument("id is required")
    tag = call.store.get("tag", tag_id)
    if tag is None or (project_id and project_id != tag["projectId"]):
        raise not_found("tag", tag_id)
    require_via_project(call, tag["projectId"], "tag", tag_id, write=write)
    return tag


def _check_unique(db: sqlite3.Connection, project_id: str, display_name: str, tag_id: str) -> None:
    if not display_name.strip():
        raise invalid_argument("tag.display_name is required")
    taken = db.execute(
        "SELECT 1 FROM entity WHERE kind = 'tag' AND project_id = ? AND id != ? "
        "AND json_extract(data, '$.displayName') = ?", (project_id, tag_id, display_name),
    ).fetchone()
    if taken:
        raise already_exists(f"project {project_id!r} has a tag named {display_name!r} already")


@handles("storage.tag.create_tag")
def create_tag(call: Call, request: Any) -> dict[str, Any]:
    given = request.tag
    if given is None:
        raise invalid_argument("tag is required (with its display_name)")
    project_id = request.project_id or given.project_id
    if request.project_id and given.project_id and request.project_id != given.project_id:
        raise invalid_argument("project_id and tag.project_id differ; give one of them")
    tag = {"id": new_id(), "displayName": given.display_name, "createdTime": now(), "projectId": project_id}
    with call.store.transaction() as db:
        require_project(call, project_id, write=True)
        _check_unique(db, project_id, given.display_name, tag["id"])
        call.store.put("tag", tag, project_id=project_id, owner_id=call.user_id)
        record_event(call, db, "CREATE_TAG", project_id, f"created tag {given.display_name!r}", tag_id=tag["id"])
    return {"tag": tag}


@handles("storage.tag.get_tag")
def get_tag(call: Call, request: Any) -> dict[str, Any]:
    return {"tag": _tag(call, request.id, request.project_id)}


def _tags_of(call: Call, project_id: str) -> ListQuery:
    project = require_project(call, project_id)
    return ListQuery(kind="tag", message="StorageTag", where="e.project_id = ?", params=[project["id"]])


@handles("storage.tag.list_tags")
def list_tags(call: Call, request: Any) -> dict[str, Any]:
    items, token = list_page(call, _tags_of(call, request.project_id), request)
    return page_response("tag", items, token)


@handles("storage.tag.count_tags", generation="workspaces")
def count_tags(call: Call, request: dict[str, Any]) -> dict[str, Any]:
    query = _tags_of(call, str(request.get("projectId") or ""))
    return {"count": str(count_matching(call, query, filter=storage_filter(request)))}


@handles("storage.tag.update_tag")
def update_tag(call: Call, request: Any) -> dict[str, Any]:
    change = request.tag
    if change is None or not change.id:
        raise invalid_argument("tag.id is required")
    with call.store.transaction() as db:
        current = _tag(call, change.id, "", write=True)
        updated = apply_update(current, change, request.update_mask, ("display_name",))
        _check_unique(db, updated["projectId"], updated.get("displayName", ""), updated["id"])
        call.store.put("tag", updated, project_id=updated["projectId"], owner_id=call.user_id)
        record_event(call, db, "UPDATE_TAG", updated["projectId"],
                     f"renamed tag {current['displayName']!r} to {updated['displayName']!r}", tag_id=updated["id"])
    return {"tag": updated}


@handles("storage.tag.delete_tag")
def delete_tag(call: Call, request: Any) -> None:
    with call.store.transaction() as db:
        tag = _tag(call, request.id, request.project_id, write=True)
        db.execute("DELETE FROM entity_tag WHERE tag_id = ?", (tag["id"],))
        db.execute("DELETE FROM entity WHERE kind = 'tag' AND id = ?", (tag["id"],))
        record_event(call, db, "DELETE_TAG", tag["projectId"], f"deleted tag {tag['displayName']!r}",
                     tag_id=tag["id"])


# -- roles and versions -------------------------------------------------------------------------


@handles("storage.role.list_roles")
def list_roles(call: Call, request: None) -> dict[str, Any]:
    return {"role": [{"id": role_id, "displayName": name, "createdTime": ROLES_CREATED_TIME}
                     for role_id, name in ROLES.items()]}


@handles("storage.version.get_version")
@handles("deployer.version.get_version")
@handles("ingest.version.get_version")
def get_version(call: Call, request: None) -> dict[str, Any]:
    return {"version": {"buildVersion": BUILD_VERSION}}


# -- aggregated views ----------------------------------------------------------------------------


def _project_info(call: Call, project: dict[str, Any]) -> dict[str, Any]:
    project_id = project["id"]
    with call.store.reading() as db:
        models = db.execute("SELECT count(*) FROM entity WHERE kind = 'registered_model' AND project_id = ?",
                            (project_id,)).fetchone()[0]
        versions = db.execute(
            "SELECT count(*) FROM entity WHERE kind = 'registered_model_version' AND "
            "json_extract(data, '$.registeredModelId') IN "
            "(SELECT id FROM entity WHERE kind = 'registered_model' AND project_id = ?)", (project_id,),
        ).fetchone()[0]
        shared_with = [json.loads(r["data"]) for r in db.execute(
            "SELECT u.data FROM project_sharing s JOIN entity u ON u.kind = 'user' AND u.id = s.user_id "
            "WHERE s.project_id = ? ORDER BY s.created_time, s.id", (project_id,))]
    experiments = count_matching(call, experiments_in(call, project_id))
    return {"project": project, "registeredModelCount": models, "shareCount": len(shared_with),
            "experimentCount": str(experiments), "sharedUser": shared_with,
            "registeredModelVersionCount": versions}


@handles("storage.gateway_aggregator.get_project_with_aggregated_info")
def get_project_with_aggregated_info(call: Call, request: Any) -> dict[str, Any]:
    return {"projectInfo": _project_info(call, require_project(call, request.project_id))}


@handles("storage.gateway_aggregator.list_projects_with_aggregated_info")
def list_projects_with_aggregated_info(call: Call, request: Any) -> dict[str, Any]:
    query = projects_query(call)
    items, token = list_page(call, query, request)
    return page_response("projectInfo", [_project_info(call, p) for p in items], token,
                         userProjectCount=str(count_matching(call, query)))


def _model_info(db: sqlite3.Connection, version: dict[str, Any]) -> dict[str, Any]:
    row = db.execute("SELECT data FROM entity WHERE kind = 'registered_model' AND id = ?",
                     (version.get("registeredModelId", ""),)).fetchone()
    model = json.loads(row["data"]) if row else {}
    return {"modelId": version.get("registeredModelId", ""), "modelName": model.get("displayName", ""),
            "modelDescription": model.get("description", ""), "projectId": model.get("projectId", ""),
            "modelOwner": model.get("createdBy", ""), "modelVersionId": version["id"],
            "modelVersionNumber": str(version.get("version", 0)), "modelVersionOwner": version.get("createdBy", "")}


@handles("storage.gateway_aggregator.list_experiments_with_model_info")
def list_experiments_with_model_info(call: Call, request: Any) -> dict[str, Any]:
    project = require_project(call, request.project_id)
    query = experiments_in(call, project["id"])
    items, token = list_page(call, query, request)
    with call.store.reading() as db:
        versions = registered_versions(db, [e["id"] for e in items])
        infos = [{"experiment": e, **({"modelInfo": _model_info(db, versions[e["id"]])} if e["id"] in versions else {})}
                 for e in shaped(call, items, request.response_metadata)]
    return page_response("experimentInfo", infos, token,
                         experimentCount=str(count_matching(call, query, filter=request.filter)))
