"""ExperimentService and CommentService.GetComment: experiments, their links, tags, comments and metrics.

What a user of the sandbox should know:

* An experiment lives in one project (its home: the project it was created in) and
  may be linked into more (``LinkExperimentIntoProject``). It is listed in all of
  them, and whoever may read one of them may read it. Changing it (update, delete,
  recover, comments, metrics) takes write access to its home project; linking it
  into a project, or unlinking it, takes write access to that project. It cannot be
  unlinked from its home project: delete it instead.
* Deleting an experiment is a soft delete: it disappears from lists, counts and
  gets until ``RecoverDeletedExperiment`` brings it back. The ``project_id`` of a
  delete or recover request, when given, must be a project the experiment is in.
* Tags belong to a project (``TagService``). An experiment can carry a tag of any
  project it is in, given write access to that project; ``tag`` in responses holds
  the tags of the projects the caller may read. Tagging twice, or removing a tag
  that is not there, changes nothing and is not an error. Unlinking an experiment
  from a project removes that project's tags from it.
* ``metadata`` comes back only for the keys that ``response_metadata.pattern``
  selects: SQL ``LIKE`` patterns (``%`` any run of characters, ``_`` one
  character; ``["%"]`` selects every key), as the real service does. An update
  of ``metadata`` adds or replaces the keys given and never removes one.
* ``UpdateExperiment`` honours ``update_mask`` like ``UpdateProject``; updatable:
  display_name, description, status, parameters, statistics, metadata.
* A metric is identified by its experiment, dataset and key: creating it again
  replaces its value. Viewers may read comments and metrics but not add them.
* ``IsExperimentRegistered`` is true when a registered model version points at the
  experiment.
* ``ProjectService.ListProjectsContainingExperiment`` is served here: the projects
  the experiment is in that the caller may read.
"""

from __future__ import annotations

import json
import re
import sqlite3
from functools import lru_cache
from typing import Any

from mlops_nb.api import API
from mlops_nb.sandbox.rpc import (
    Call,
    ListQuery,
    RpcError,
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
from mlops_nb.sandbox.services.entities import (
    Experiment,
    apply_update,
    experiments_in,
    find_experiment,
    replace_data,
)
from mlops_nb.sandbox.services.projects import (
    changed_fields,
    projects_query,
    record_event,
)
from mlops_nb.sandbox.services.rest import storage_filter
from mlops_nb.sandbox.services.uploads import ingestion_of

MIGRATIONS: list[tuple[str, str]] = [
    (
        "0300_experiment_link",
        # The home project is the experiment's ``entity.project_id``; experiment_link
        # holds only the further projects it is linked into.
        """
        CREATE TABLE experiment_link (
            experiment_id TEXT NOT NULL,
            project_id TEXT NOT NULL,
            created_time TEXT NOT NULL,
            PRIMARY KEY (experiment_id, project_id)
        );
        CREATE INDEX experiment_link_by_project ON experiment_link (project_id, experiment_id);
        CREATE TABLE experiment_deleted (
            experiment_id TEXT PRIMARY KEY,
            deleted_time TEXT NOT NULL
        );
        """,
    ),
]

EXPERIMENT_UPDATABLE = ("display_name", "description", "status", "parameters", "statistics", "metadata")
_CREATABLE = ("displayName", "description", "metadata", "parameters", "status", "statistics")



def _projects_of(db: sqlite3.Connection, experiment: Experiment) -> set[str]:
    links = db.execute("SELECT project_id FROM experiment_link WHERE experiment_id = ?", (experiment.id,))
    return {experiment.home, *(r["project_id"] for r in links)}


def _check_in_project(call: Call, experiment: Experiment, project_id: str) -> None:
    """A request's optional project_id must name a project the experiment is in."""
    if not project_id:
        return
    with call.store.reading() as db:
        if project_id not in _projects_of(db, experiment):
            raise not_found(f"experiment {experiment.id!r} in project", project_id)


# -- responses ----------------------------------------------------------------------------------


@lru_cache(maxsize=256)
def _like(pattern: str) -> re.Pattern[str]:
    # A run of % means what one does; collapsed, a pattern cannot make the matcher backtrack for long.
    pattern = re.sub("%+", "%", pattern)
    return re.compile("".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern), re.S)


def shaped(call: Call, entities: list[dict[str, Any]], key_selection: Any) -> list[dict[str, Any]]:
    """Entities with tags and metadata (experiments, datasets) as responses carry them.

    ``tag`` holds the tags of projects the caller may read; ``metadata`` only the keys
    that ``key_selection`` (a StorageKeySelection, or None: no keys) selects.
    """
    patterns = [_like(p) for p in (key_selection.pattern if key_selection is not None else [])]
    tags = _tags_of(call, [e["id"] for e in entities])
    out = []
    for entity in entities:
        item = dict(entity)
        values = {k: v for k, v in item.pop("metadata", {}).get("values", {}).items()
                  if any(p.fullmatch(k) for p in patterns)}
        # Always a metadata object, possibly empty, as the storage service answers: the
        # official client reads ``experiment.metadata.values`` without a None check.
        item["metadata"] = {"values": values}
        if tags.get(item["id"]):
            item["tag"] = tags[item["id"]]
        out.append(item)
    return out


def _tags_of(call: Call, entity_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    readable, params = readable_projects_sql(call, "t.project_id")
    # json_each instead of one placeholder per id: a page may hold more ids than SQLite allows parameters.
    with call.store.reading() as db:
        rows = db.execute(
            "SELECT et.entity_id, t.data FROM entity_tag et JOIN entity t ON t.kind = 'tag' AND t.id = et.tag_id "
            f"WHERE et.entity_id IN (SELECT value FROM json_each(?)) AND {readable} ORDER BY t.created_time, t.id",
            [json.dumps(entity_ids), *params],
        ).fetchall()
    tags: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        tags.setdefault(r["entity_id"], []).append(json.loads(r["data"]))
    return tags


def _one(call: Call, experiment: dict[str, Any], key_selection: Any) -> dict[str, Any]:
    return {"experiment": shaped(call, [experiment], key_selection)[0]}


def _only_fields(item: dict[str, Any], message: str) -> dict[str, Any]:
    """Drop the keys the store keeps for itself (id, createdTime) that the message does not have."""
    names = {f.json for f in API.messages[message]}
    return {k: v for k, v in item.items() if k in names}


# -- create, read, list, update ---------------------------------------------------------------


@handles("storage.experiment.create_experiment")
def create_experiment(call: Call, request: Any) -> dict[str, Any]:
    given = request.experiment
    if given is None or not given.display_name.strip():
        raise invalid_argument("experiment.display_name is required")
    wire = given.to_wire()
    created = now()
    data = {"id": new_id(), **{k: wire[k] for k in _CREATABLE if k in wire}, "ownerId": call.user_id,
            "createdTime": created, "lastModifiedTime": created}
    # The workspaces API's client names an ingested artifact: the experiment takes its metadata
    # and target column (the caller's win) and the artifact becomes the experiment's.
    artifact_id = request.unknown_fields.get("artifactId", "")
    with call.store.transaction() as db:
        require_project(call, request.project_id, write=True)
        if artifact_id:
            _take_ingested_artifact(call, db, data, artifact_id, request.project_id)
        call.store.put("experiment", data, project_id=request.project_id, owner_id=call.user_id)
        record_event(call, db, "CREATE_EXPERIMENT", request.project_id,
                     f"created experiment {given.display_name!r}", experiment_id=data["id"])
    return _one(call, data, request.response_metadata)


def _take_ingested_artifact(call: Call, db: Any, data: dict[str, Any], artifact_id: str, project_id: str) -> None:
    ingestion = ingestion_of(call, artifact_id)
    values = {**ingestion.get("metadata", {}).get("values", {}), **data.get("metadata", {}).get("values", {})}
    if values:
        data["metadata"] = {"values": values}
    target = ingestion.get("parameters", {}).get("targetColumn", "")
    if target and not data.get("parameters", {}).get("targetColumn"):
        data["parameters"] = {**data.get("parameters", {}), "targetColumn": target}
    artifact = call.store.get("artifact", artifact_id) or {}
    artifact.update(entityId=data["id"], entityType="EXPERIMENT", lastModifiedTime=now(),
                    type=ingestion.get("artifactType") or artifact.get("type", ""))
    replace_data(call.store, "artifact", artifact)
    db.execute("UPDATE entity SET parent_id = ?, project_id = ? WHERE kind = 'artifact' AND id = ?",
               (data["id"], project_id, artifact_id))


@handles("storage.experiment.get_experiment")
def get_experiment(call: Call, request: Any) -> dict[str, Any]:
    return _one(call, find_experiment(call, request.id, field="id").data, request.response_metadata)


@handles("storage.experiment.list_experiments")
def list_experiments(call: Call, request: Any) -> dict[str, Any]:
    project = require_project(call, request.project_id)
    items, token = list_page(call, experiments_in(call, project["id"]), request)
    return page_response("experiment", shaped(call, items, request.response_metadata), token)


@handles("storage.experiment.count_experiments")
def count_experiments(call: Call, request: Any) -> dict[str, Any]:
    project = require_project(call, request.project_id)
    return {"count": str(count_matching(call, experiments_in(call, project["id"]), filter=request.filter))}


@handles("storage.experiment.update_experiment")
def update_experiment(call: Call, request: Any) -> dict[str, Any]:
    change = request.experiment
    if change is None or not change.id:
        raise invalid_argument("experiment.id is required")
    with call.store.transaction() as db:
        experiment = find_experiment(call, change.id, field="experiment.id", write=True)
        current = experiment.data
        updated = apply_update(current, change, request.update_mask, EXPERIMENT_UPDATABLE)
        # Metadata keys are only ever added or replaced: responses show the selected keys
        # only, so a client writing back what it read must not erase the others.
        values = {**current.get("metadata", {}).get("values", {}), **updated.get("metadata", {}).get("values", {})}
        if values:
            updated["metadata"] = {"values": values}
        if not updated.get("displayName", "").strip():
            raise invalid_argument("experiment.display_name must not be empty")
        updated["lastModifiedTime"] = now()
        call.store.put("experiment", updated, project_id=experiment.home, owner_id=updated.get("ownerId"))
        record_event(call, db, "UPDATE_EXPERIMENT", experiment.home,
                     f"updated {changed_fields(current, updated)} of experiment {updated['displayName']!r}",
                     experiment_id=experiment.id)
    return _one(call, updated, request.response_metadata)


# -- delete and recover ------------------------------------------------------------------------


def _delete(call: Call, experiment_id: str, project_id: str) -> None:
    with call.store.transaction() as db:
        experiment = find_experiment(call, experiment_id, field="id", write=True)
        _check_in_project(call, experiment, project_id)
        db.execute("INSERT INTO experiment_deleted (experiment_id, deleted_time) VALUES (?, ?)",
                   (experiment.id, now()))
        record_event(call, db, "DELETE_EXPERIMENT", experiment.home,
                     f"deleted experiment {experiment.data['displayName']!r}", experiment_id=experiment.id)


def _recover(call: Call, experiment_id: str, project_id: str) -> None:
    with call.store.transaction() as db:
        experiment = find_experiment(call, experiment_id, write=True, deleted=True)
        _check_in_project(call, experiment, project_id)
        db.execute("DELETE FROM experiment_deleted WHERE experiment_id = ?", (experiment.id,))
        record_event(call, db, "RECOVER_DELETED_EXPERIMENT", experiment.home,
                     f"recovered experiment {experiment.data['displayName']!r}", experiment_id=experiment.id)


@handles("storage.experiment.delete_experiment")
def delete_experiment(call: Call, request: Any) -> None:
    _delete(call, request.id, request.project_id)


@handles("storage.experiment.batch_delete_experiment")
def batch_delete_experiment(call: Call, request: Any) -> dict[str, Any]:
    return {"experimentDeleteResponse": run_batch(
        request.experiment_request, "experiments", lambda i: _delete(call, i.id, i.project_id),
        lambda i: {"id": i.id, "projectId": i.project_id})}


@handles("storage.experiment.recover_deleted_experiment")
def recover_deleted_experiment(call: Call, request: Any) -> dict[str, Any]:
    _recover(call, request.experiment_id, request.project_id)
    return {"experimentId": request.experiment_id, "projectId": request.project_id, "status": True}


@handles("storage.experiment.batch_recover_deleted_experiment")
def batch_recover_deleted_experiment(call: Call, request: Any) -> dict[str, Any]:
    return {"recoverExperimentResponses": run_batch(
        request.recover_experiment_requests, "experiments", lambda i: _recover(call, i.experiment_id, i.project_id),
        lambda i: {"experimentId": i.experiment_id, "projectId": i.project_id})}


# -- links and tags -----------------------------------------------------------------------------


@handles("storage.experiment.link_experiment_into_project")
def link_experiment_into_project(call: Call, request: Any) -> None:
    with call.store.transaction() as db:
        experiment = find_experiment(call, request.experiment_id)
        project = require_project(call, request.project_id, write=True)
        if project["id"] in _projects_of(db, experiment):
            raise already_exists(f"experiment {experiment.id!r} is in project {project['id']!r} already")
        db.execute("INSERT INTO experiment_link (experiment_id, project_id, created_time) VALUES (?, ?, ?)",
                   (experiment.id, project["id"], now()))
        record_event(call, db, "LINK_EXPERIMENT_INTO_PROJECT", project["id"],
                     f"linked experiment {experiment.data['displayName']!r}", experiment_id=experiment.id)


@handles("storage.experiment.unlink_experiment_from_project")
def unlink_experiment_from_project(call: Call, request: Any) -> None:
    with call.store.transaction() as db:
        project = require_project(call, request.project_id, write=True)
        experiment = find_experiment(call, request.experiment_id)
        if experiment.home == project["id"]:
            raise failed_precondition(f"project {project['id']!r} is the home of experiment {experiment.id!r}; "
                                      "it cannot be unlinked from it (delete the experiment instead)")
        unlinked = db.execute("DELETE FROM experiment_link WHERE experiment_id = ? AND project_id = ?",
                              (experiment.id, project["id"])).rowcount
        if not unlinked:
            raise not_found(f"experiment {experiment.id!r} in project", project["id"])
        db.execute("DELETE FROM entity_tag WHERE entity_id = ? AND tag_id IN "
                   "(SELECT id FROM entity WHERE kind = 'tag' AND project_id = ?)", (experiment.id, project["id"]))
        record_event(call, db, "UNLINK_EXPERIMENT_FROM_PROJECT", project["id"],
                     f"unlinked experiment {experiment.data['displayName']!r}", experiment_id=experiment.id)


def _tagging(call: Call, db: sqlite3.Connection, request: Any) -> tuple[Experiment, dict[str, Any]]:
    """The experiment and the tag of a tag/untag request, after the access checks."""
    experiment = find_experiment(call, request.experiment_id)
    if not request.tag_id:
        raise invalid_argument("tag_id is required")
    tag = call.store.get("tag", request.tag_id)
    if tag is None:
        raise not_found("tag", request.tag_id)
    require_via_project(call, tag["projectId"], "tag", tag["id"], write=True)
    if tag["projectId"] not in _projects_of(db, experiment):
        raise failed_precondition(f"tag {tag['id']!r} belongs to project {tag['projectId']!r}, which experiment "
                                  f"{experiment.id!r} is not in (link the experiment into it first)")
    return experiment, tag


@handles("storage.experiment.tag_experiment")
def tag_experiment(call: Call, request: Any) -> None:
    with call.store.transaction() as db:
        experiment, tag = _tagging(call, db, request)
        if db.execute("INSERT OR IGNORE INTO entity_tag (entity_id, tag_id) VALUES (?, ?)",
                      (experiment.id, tag["id"])).rowcount:
            record_event(call, db, "TAG_EXPERIMENT", tag["projectId"],
                         f"tagged experiment {experiment.data['displayName']!r} {tag['displayName']!r}",
                         experiment_id=experiment.id, tag_id=tag["id"])


@handles("storage.experiment.untag_experiment")
def untag_experiment(call: Call, request: Any) -> None:
    with call.store.transaction() as db:
        experiment, tag = _tagging(call, db, request)
        if db.execute("DELETE FROM entity_tag WHERE entity_id = ? AND tag_id = ?",
                      (experiment.id, tag["id"])).rowcount:
            record_event(call, db, "UNTAG_EXPERIMENT", tag["projectId"],
                         f"removed tag {tag['displayName']!r} from experiment {experiment.data['displayName']!r}",
                         experiment_id=experiment.id, tag_id=tag["id"])


@handles("storage.project.list_projects_containing_experiment")
def list_projects_containing_experiment(call: Call, request: Any) -> dict[str, Any]:
    experiment = find_experiment(call, request.experiment_id)
    query = projects_query(call, "e.id = ? OR e.id IN (SELECT project_id FROM experiment_link WHERE experiment_id = ?)",
                           [experiment.home, experiment.id])
    items, token = list_page(call, query, request)
    return page_response("project", items, token)


# -- comments and metrics -----------------------------------------------------------------------


@handles("storage.experiment.create_experiment_comment")
def create_experiment_comment(call: Call, request: Any) -> dict[str, Any]:
    if not request.comment_message.strip():
        raise invalid_argument("comment_message is required")
    with call.store.transaction() as db:
        experiment = find_experiment(call, request.experiment_id, write=True)
        comment = {"id": new_id(), "authorId": call.user_id, "projectId": experiment.home,
                   "experimentId": experiment.id, "message": request.comment_message, "createdTime": now()}
        call.store.put("comment", comment, project_id=experiment.home, parent_id=experiment.id,
                       owner_id=call.user_id)
        record_event(call, db, "CREATE_EXPERIMENT_COMMENT", experiment.home,
                     f"commented on experiment {experiment.data['displayName']!r}",
                     experiment_id=experiment.id, comment_id=comment["id"])
    return {"comment": comment}


def _comments_of(call: Call, experiment_id: str) -> ListQuery:
    experiment = find_experiment(call, experiment_id)
    return ListQuery(kind="comment", message="StorageComment", where="e.parent_id = ?", params=[experiment.id])


@handles("storage.experiment.list_experiment_comments")
def list_experiment_comments(call: Call, request: Any) -> dict[str, Any]:
    items, token = list_page(call, _comments_of(call, request.experiment_id), request)
    return page_response("comment", items, token)


@handles("storage.experiment.count_experiment_comments", generation="workspaces")
def count_experiment_comments(call: Call, request: dict[str, Any]) -> dict[str, Any]:
    query = _comments_of(call, str(request.get("experimentId") or ""))
    return {"count": str(count_matching(call, query, filter=storage_filter(request)))}


@handles("storage.comment.get_comment")
def get_comment(call: Call, request: Any) -> dict[str, Any]:
    if not request.id:
        raise invalid_argument("id is required")
    row = call.store.row("comment", request.id)
    if row is None:
        raise not_found("comment", request.id)
    try:
        find_experiment(call, row["parent_id"])
    except RpcError:  # a comment is as visible as its experiment
        raise not_found("comment", request.id) from None
    return {"comment": json.loads(row["data"])}


@handles("storage.experiment.create_experiment_metric")
def create_experiment_metric(call: Call, request: Any) -> dict[str, Any]:
    if not request.key:
        raise invalid_argument("key is required")
    if request.value is None or not request.value.to_wire():
        raise invalid_argument("value is required (e.g. value={'double_value': 0.93})")
    with call.store.transaction() as db:
        experiment = find_experiment(call, request.experiment_id, write=True)
        metric = {"id": f"{experiment.id}/{request.dataset_id}/{request.key}", "experimentId": experiment.id,
                  "key": request.key, "value": request.value.to_wire(), "createdTime": now()}
        if request.dataset_id:
            metric["datasetId"] = request.dataset_id
        call.store.put("experiment_metric", metric, project_id=experiment.home, parent_id=experiment.id)
        record_event(call, db, "CREATE_EXPERIMENT_METRIC", experiment.home,
                     f"set metric {request.key!r} of experiment {experiment.data['displayName']!r}",
                     experiment_id=experiment.id, dataset_id=request.dataset_id)
    return {"metric": _only_fields(metric, "StorageMetric")}


def _metrics_of(call: Call, experiment_id: str) -> ListQuery:
    experiment = find_experiment(call, experiment_id)
    return ListQuery(kind="experiment_metric", message="StorageMetric", where="e.parent_id = ?",
                     params=[experiment.id])


@handles("storage.experiment.count_experiment_metrics", generation="workspaces")
def count_experiment_metrics(call: Call, request: dict[str, Any]) -> dict[str, Any]:
    query = _metrics_of(call, str(request.get("experimentId") or ""))
    return {"count": str(count_matching(call, query, filter=storage_filter(request)))}


@handles("storage.experiment.is_experiment_linked_into_project", generation="workspaces")
def is_experiment_linked_into_project(call: Call, request: dict[str, Any]) -> dict[str, Any]:
    experiment = find_experiment(call, str(request.get("experimentId") or ""), field="experimentId")
    project = require_project(call, str(request.get("projectId") or ""))
    with call.store.reading() as db:
        return {"isLinked": project["id"] in _projects_of(db, experiment)}


@handles("storage.experiment.list_experiment_metrics")
def list_experiment_metrics(call: Call, request: Any) -> dict[str, Any]:
    items, token = list_page(call, _metrics_of(call, request.experiment_id), request)
    return page_response("metric", [_only_fields(m, "StorageMetric") for m in items], token)


# -- registration -----------------------------------------------------------------------------


def registered_versions(db: sqlite3.Connection, experiment_ids: list[str]) -> dict[str, dict[str, Any]]:
    """The registered model version (wire JSON) that points at each experiment, if any.

    The registry's tables belong to ``services/models.py``; only the entity rows are read here.
    """
    rows = db.execute(
        "SELECT data FROM entity WHERE kind = 'registered_model_version' "
        "AND json_extract(data, '$.experimentId') IN (SELECT value FROM json_each(?)) ORDER BY created_time",
        [json.dumps(experiment_ids)],
    ).fetchall()
    return {v["experimentId"]: v for v in (json.loads(r["data"]) for r in rows)}


@handles("storage.experiment.is_experiment_registered")
def is_experiment_registered(call: Call, request: Any) -> dict[str, Any]:
    experiment = find_experiment(call, request.experiment_id)
    _check_in_project(call, experiment, request.project_id)
    with call.store.reading() as db:
        return {"isRegistered": bool(registered_versions(db, [experiment.id]))}


# -- when a project goes ------------------------------------------------------------------------


def leave_deleted_project(call: Call, db: sqlite3.Connection, project_id: str) -> None:
    """Before a project's contents are deleted: save its experiments that are linked elsewhere.

    Each moves home to the project it was first linked into, taking its comments,
    metrics and artifacts along; the others go with the project.
    """
    homed_here = [r["id"] for r in db.execute(
        "SELECT id FROM entity WHERE kind = 'experiment' AND project_id = ?", (project_id,))]
    for experiment_id in homed_here:
        link = db.execute("SELECT project_id FROM experiment_link WHERE experiment_id = ? "
                          "ORDER BY created_time, project_id LIMIT 1", (experiment_id,)).fetchone()
        if link is None:
            db.execute("DELETE FROM experiment_deleted WHERE experiment_id = ?", (experiment_id,))
            continue
        new_home = link["project_id"]
        db.execute("UPDATE entity SET project_id = ? WHERE kind = 'experiment' AND id = ?", (new_home, experiment_id))
        db.execute(
            "UPDATE entity SET project_id = ?, data = CASE WHEN json_type(data, '$.projectId') IS NULL THEN data "
            "ELSE json_set(data, '$.projectId', ?) END WHERE parent_id = ? AND project_id = ?",
            (new_home, new_home, experiment_id, project_id),
        )
        db.execute("DELETE FROM experiment_link WHERE experiment_id = ? AND project_id = ?",
                   (experiment_id, new_home))
        record_event(call, db, "UPDATE_EXPERIMENT", new_home,
                     f"experiment moved here: its home project {project_id!r} was deleted",
                     experiment_id=experiment_id)
    db.execute("DELETE FROM experiment_link WHERE project_id = ?", (project_id,))

