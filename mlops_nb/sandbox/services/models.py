"""RegisteredModelService and RegisteredModelVersionService: the model registry.

* A registered model lives in one project; its display name is unique there
  (``GetRegisteredModelByName`` finds it by that name). Reading needs read access to
  the project, creating, changing and deleting need write access.
* Its versions are numbered 1, 2, 3, ... in creation order; a number is never given
  twice, even after a delete. A version points at an experiment the caller may read
  (a deleted one cannot be registered);
  one experiment backs at most one version of a model (it may back versions of
  several models, which is why ``GetModelVersionForExperiment`` answers a list).
  A new version's ``status`` is ACTIVE unless the request sets another.
* ``CreateModelVersion`` takes the model as ``registeredModelVersion.registeredModelId``,
  or as ``registeredModelDisplayName`` plus ``projectId``: the model of that name in the
  project is used, or created.
* Deleting a model deletes its versions; deleting a version deletes the artifacts
  attached to it. A version that a deployment serves cannot be deleted
  (FAILED_PRECONDITION: delete the deployment first), nor can its model.
* Batch deletes answer one status per id and carry on after a failure.
* ``UpdateRegisteredModel`` changes ``display_name``, ``description`` and ``status``
  (``update_mask`` as described in :func:`mlops_nb.sandbox.services.entities.apply_update`).
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from mlops_nb.sandbox.rpc import (
    MAX_PAGE_SIZE,
    Call,
    ListQuery,
    already_exists,
    count_matching,
    failed_precondition,
    handles,
    invalid_argument,
    list_page,
    new_id,
    not_found,
    now,
    page_response,
    run_batch,
)
from mlops_nb.sandbox.services.access import readable_projects_sql, require_project, require_via_project
from mlops_nb.sandbox.services.artifacts import delete_artifact_rows, remove_blobs
from mlops_nb.sandbox.services.deployments import deployments_serving
from mlops_nb.sandbox.services.entities import apply_update, find_experiment, replace_data
from mlops_nb.sandbox.services.rest import storage_filter
from mlops_nb.wire.messages import message_class

MIGRATIONS: list[tuple[str, str]] = [
    (
        "0400_registered_model_version_number",
        """
        CREATE TABLE registered_model_version_number (
            registered_model_id TEXT PRIMARY KEY,
            last_version INTEGER NOT NULL
        );
        """,
    ),
]

MODEL = "registered_model"
VERSION = "registered_model_version"
MODEL_UPDATABLE = ("display_name", "description", "status")
# GetModelVersionForExperiment has no paging: it answers one full page (an experiment backs few versions).
_ALL = message_class("StoragePagingRequest")(page_size=MAX_PAGE_SIZE)


# -- registered models ---------------------------------------------------------------------


def _model(call: Call, model_id: str, *, write: bool = False, id_name: str = "model_id") -> dict[str, Any]:
    if not model_id:
        raise invalid_argument(f"{id_name} is required")
    row = call.store.row(MODEL, model_id)
    if row is None:
        raise not_found("registered model", model_id)
    require_via_project(call, row["project_id"], "registered model", model_id, write=write)
    return json.loads(row["data"])


def _model_named(call: Call, project_id: str, name: str) -> dict[str, Any] | None:
    with call.store.reading() as db:
        row = db.execute(
            "SELECT data FROM entity WHERE kind = ? AND project_id = ? AND json_extract(data, '$.displayName') = ?",
            (MODEL, project_id, name)).fetchone()
    return json.loads(row["data"]) if row else None


def _new_model(call: Call, project_id: str, display_name: str, description: str = "",
               status: str = "") -> dict[str, Any]:
    """Create a model (the caller checked write access to the project)."""
    if not display_name:
        raise invalid_argument("registered_model.display_name is required")
    if _model_named(call, project_id, display_name) is not None:
        raise already_exists(f"project {project_id!r} has a registered model named {display_name!r} already")
    created = now()
    model = {"id": new_id(), "displayName": display_name, "description": description, "projectId": project_id,
             "createdTime": created, "createdBy": call.user_id, "updatedTime": created,
             "updatedBy": call.user_id, "status": status}
    model = {k: v for k, v in model.items() if v != ""}
    call.store.put(MODEL, model, project_id=project_id, owner_id=call.user_id)
    return model


@handles("storage.registered_model.create_registered_model")
def create_registered_model(call: Call, request: Any) -> dict[str, Any]:
    given = request.registered_model
    if given is None:
        raise invalid_argument("registered_model is required (with display_name and project_id)")
    with call.store.transaction():
        require_project(call, given.project_id, write=True)
        model = _new_model(call, given.project_id, given.display_name, given.description, given.status)
    return {"registeredModel": model}


@handles("storage.registered_model.get_registered_model")
def get_registered_model(call: Call, request: Any) -> dict[str, Any]:
    return {"registeredModel": _model(call, request.model_id)}


@handles("storage.registered_model.get_registered_model_by_name")
def get_registered_model_by_name(call: Call, request: Any) -> dict[str, Any]:
    if not request.model_name:
        raise invalid_argument("model_name is required")
    require_project(call, request.project_id)
    model = _model_named(call, request.project_id, request.model_name)
    if model is None:
        raise not_found(f"registered model in project {request.project_id!r} named", request.model_name)
    return {"registeredModel": model}


def _models_of(call: Call, project_id: str) -> ListQuery:
    """The models of a project; with none given (the workspaces API's client lists across
    workspaces so), of every project the caller may read."""
    if not project_id:
        readable, params = readable_projects_sql(call)
        return ListQuery(kind=MODEL, message="StorageRegisteredModel", where=readable, params=params)
    require_project(call, project_id)
    return ListQuery(kind=MODEL, message="StorageRegisteredModel", where="e.project_id = ?", params=[project_id])


@handles("storage.registered_model.list_registered_models")
def list_registered_models(call: Call, request: Any) -> dict[str, Any]:
    items, token = list_page(call, _models_of(call, request.project_id), request)
    return page_response("registeredModels", items, token)


@handles("storage.registered_model.count_registered_models")
def count_registered_models(call: Call, request: Any) -> dict[str, Any]:
    # The workspaces API's request adds a filter.
    return {"registeredModelCount": count_matching(call, _models_of(call, request.project_id),
                                                   filter=storage_filter(request.unknown_fields))}


@handles("storage.registered_model.update_registered_model")
def update_registered_model(call: Call, request: Any) -> dict[str, Any]:
    given = request.registered_model
    with call.store.transaction():
        current = _model(call, given.id if given is not None else "", write=True, id_name="registered_model.id")
        updated = apply_update(current, given, request.update_mask, MODEL_UPDATABLE)
        name = updated.get("displayName", "")
        if not name:
            raise invalid_argument("a registered model's display_name cannot be empty")
        other = _model_named(call, current["projectId"], name)
        if other is not None and other["id"] != current["id"]:
            raise already_exists(f"project {current['projectId']!r} has a registered model named {name!r} already")
        updated.update(updatedTime=now(), updatedBy=call.user_id)
        replace_data(call.store, MODEL, updated)
    return {"registeredModel": updated}


def _delete_model(call: Call, model_id: str) -> None:
    with call.store.transaction() as db:
        _model(call, model_id, write=True)
        version_ids = [r["id"] for r in db.execute("SELECT id FROM entity WHERE kind = ? AND parent_id = ?",
                                                   (VERSION, model_id))]
        _refuse_if_deployed(call, version_ids)
        gone = delete_artifact_rows(call.store, version_ids)
        db.execute("DELETE FROM entity WHERE kind = ? AND parent_id = ?", (VERSION, model_id))
        db.execute("DELETE FROM entity WHERE kind = ? AND id = ?", (MODEL, model_id))
        db.execute("DELETE FROM registered_model_version_number WHERE registered_model_id = ?", (model_id,))
    remove_blobs(call.store, gone)


@handles("storage.registered_model.delete_registered_model")
def delete_registered_model(call: Call, request: Any) -> dict[str, Any]:
    _delete_model(call, request.model_id)
    return {"modelId": request.model_id, "status": True}


@handles("storage.registered_model.batch_delete_registered_model")
def batch_delete_registered_model(call: Call, request: Any) -> dict[str, Any]:
    return {"deleteRegisteredModelResponse": run_batch(list(dict.fromkeys(request.model_ids)), "models",
                                                          lambda i: _delete_model(call, i), lambda i: {"modelId": i})}


def leave_deleted_project(call: Call, db: sqlite3.Connection, project_id: str) -> None:
    """A deleted project's models go with it, and so do their version counters."""
    db.execute("DELETE FROM registered_model_version_number WHERE registered_model_id IN "
               "(SELECT id FROM entity WHERE kind = ? AND project_id = ?)", (MODEL, project_id))



# -- versions ------------------------------------------------------------------------------


def _version(call: Call, version_id: str, *, write: bool = False, id_name: str = "id") -> dict[str, Any]:
    if not version_id:
        raise invalid_argument(f"{id_name} is required")
    row = call.store.row(VERSION, version_id)
    if row is None:
        raise not_found("registered model version", version_id)
    require_via_project(call, row["project_id"], "registered model version", version_id, write=write)
    return json.loads(row["data"])


@handles("storage.registered_model_version.create_model_version")
def create_model_version(call: Call, request: Any) -> dict[str, Any]:
    given = request.registered_model_version
    if given is None:
        raise invalid_argument("registered_model_version is required (with experiment_id)")
    with call.store.transaction() as db:
        find_experiment(call, given.experiment_id, field="registered_model_version.experiment_id")
        if given.registered_model_id:
            model = _model(call, given.registered_model_id, write=True,
                           id_name="registered_model_version.registered_model_id")
        elif request.registered_model_display_name and request.project_id:
            require_project(call, request.project_id, write=True)
            model = (_model_named(call, request.project_id, request.registered_model_display_name)
                     or _new_model(call, request.project_id, request.registered_model_display_name))
        else:
            raise invalid_argument("name the model: registered_model_version.registered_model_id, or "
                                   "registered_model_display_name and project_id")
        taken = db.execute(
            "SELECT id FROM entity WHERE kind = ? AND parent_id = ? AND json_extract(data, '$.experimentId') = ?",
            (VERSION, model["id"], given.experiment_id)).fetchone()
        if taken is not None:
            raise already_exists(f"experiment {given.experiment_id!r} is registered in model "
                                 f"{model['displayName']!r} already (version {taken['id']!r})")
        db.execute("INSERT INTO registered_model_version_number VALUES (?, 1) ON CONFLICT (registered_model_id) "
                   "DO UPDATE SET last_version = last_version + 1", (model["id"],))
        number = db.execute("SELECT last_version FROM registered_model_version_number "
                            "WHERE registered_model_id = ?", (model["id"],)).fetchone()[0]
        created = now()
        version = {"id": new_id(), "registeredModelId": model["id"], "experimentId": given.experiment_id,
                   "version": number, "status": str(given.status) if given.is_set("status") else "ACTIVE",
                   "createdTime": created, "createdBy": call.user_id, "updatedTime": created,
                   "updatedBy": call.user_id}
        call.store.put(VERSION, version, project_id=model["projectId"], parent_id=model["id"],
                       owner_id=call.user_id)
    return {"registeredModelVersion": version}


@handles("storage.experiment.implicit_register_model", generation="workspaces")
def implicit_register_model(call: Call, request: dict[str, Any]) -> dict[str, Any]:
    """Register an experiment as a version of the model named like it (made when missing) in a
    project; an experiment registered already is left as it is (``registered`` false)."""
    experiment_id, project_id = str(request.get("experimentId") or ""), str(request.get("projectId") or "")
    experiment = find_experiment(call, experiment_id, field="experimentId")
    with call.store.reading() as db:
        existing = db.execute("SELECT data FROM entity WHERE kind = ? AND json_extract(data, '$.experimentId') = ? "
                              "ORDER BY created_time LIMIT 1", (VERSION, experiment.id)).fetchone()
    if existing is not None:
        version = json.loads(existing["data"])
        return {"registered": False, "registeredModel": _model(call, version["registeredModelId"]),
                "registeredModelVersion": version}
    version = create_model_version(call, message_class("StorageCreateModelVersionRequest").from_wire({
        "registeredModelVersion": {"experimentId": experiment.id}, "projectId": project_id or experiment.home,
        "registeredModelDisplayName": experiment.data.get("displayName", experiment.id)}))["registeredModelVersion"]
    return {"registered": True, "registeredModel": _model(call, version["registeredModelId"]),
            "registeredModelVersion": version}


@handles("storage.registered_model_version.get_model_version")
def get_model_version(call: Call, request: Any) -> dict[str, Any]:
    return {"registeredModelVersion": _version(call, request.model_version_id, id_name="model_version_id")}


@handles("storage.registered_model_version.get_model_version_for_experiment")
def get_model_version_for_experiment(call: Call, request: Any) -> dict[str, Any]:
    if not request.experiment_id:
        raise invalid_argument("experiment_id is required")
    readable, params = readable_projects_sql(call)
    query = ListQuery(kind=VERSION, message="StorageRegisteredModelVersion",
                      where=f"json_extract(e.data, '$.experimentId') = ? AND {readable}",
                      params=[request.experiment_id, *params])
    items, _ = list_page(call, query, request, paging=_ALL)
    return {"registeredModelVersion": items}


def _versions_of(call: Call, model_id: str) -> ListQuery:
    _model(call, model_id, id_name="registered_model_id")
    return ListQuery(kind=VERSION, message="StorageRegisteredModelVersion", where="e.parent_id = ?",
                     params=[model_id])


@handles("storage.registered_model_version.list_model_versions_for_model")
def list_model_versions_for_model(call: Call, request: Any) -> dict[str, Any]:
    items, token = list_page(call, _versions_of(call, request.registered_model_id), request)
    return page_response("modelVersions", items, token)


@handles("storage.registered_model_version.count_model_versions")
def count_model_versions(call: Call, request: Any) -> dict[str, Any]:
    return {"count": count_matching(call, _versions_of(call, request.registered_model_id),
                                    filter=storage_filter(request.unknown_fields))}


def _refuse_if_deployed(call: Call, version_ids: list[str]) -> None:
    """A version whose experiment a deployment serves cannot go (deployments name experiments)."""
    with call.store.reading() as db:
        experiments = {r["experiment"]: r["id"] for r in db.execute(
            "SELECT id, json_extract(data, '$.experimentId') AS experiment FROM entity WHERE kind = ? "
            "AND id IN (SELECT value FROM json_each(?))", (VERSION, json.dumps(version_ids)))}
    serving = deployments_serving(call.store, list(experiments))
    if serving:
        experiment_id, deployment_id = next(iter(serving.items()))
        raise failed_precondition(f"model version {experiments[experiment_id]!r} (experiment {experiment_id!r}) "
                                  f"is served by deployment {deployment_id!r}; delete the deployment first")


def _delete_version(call: Call, version_id: str) -> None:
    with call.store.transaction() as db:
        _version(call, version_id, write=True)
        _refuse_if_deployed(call, [version_id])
        gone = delete_artifact_rows(call.store, [version_id])
        db.execute("DELETE FROM entity WHERE kind = ? AND id = ?", (VERSION, version_id))
    remove_blobs(call.store, gone)


@handles("storage.registered_model_version.delete_model_version")
def delete_model_version(call: Call, request: Any) -> dict[str, Any]:
    _delete_version(call, request.id)
    return {"id": request.id, "status": True}


@handles("storage.registered_model_version.batch_delete_model_version")
def batch_delete_model_version(call: Call, request: Any) -> dict[str, Any]:
    return {"deleteModelVersionResponse": run_batch(list(dict.fromkeys(request.ids)), "versions",
                                                       lambda i: _delete_version(call, i), lambda i: {"id": i})}
