"""DatasetService: datasets, their links into projects, and their tags.

* A dataset is created in a project (``project_id``), its home project. It can be linked
  into other projects; ``ListDatasets`` for a project lists the datasets created there
  and those linked into it (without ``project_id``: every dataset the caller may read).
* Reading needs read access to the home project or to a project the dataset is linked
  into. Changing and deleting need write access to the home project; linking and
  unlinking need write access to the project linked into. A dataset cannot be
  unlinked from its home project.
* Deleting a dataset removes it from every project, with its links, tags and artifacts.
  ``DeleteDatasetRequest.project_id``, when set, must be a project the dataset is in.
  ``BatchDeleteDataset`` answers one status per dataset and carries on after a failure.
* Tags belong to a project (TagService). A dataset can carry a tag of any project it is
  in, given write access to that project, and loses the tags of a project it is
  unlinked from; ``tag`` in responses holds the tags of projects the caller may read.
  Tagging twice, or removing a tag that is not there, changes nothing.
  Tags are set with ``TagDataset`` only: ``tag`` in a create or update request is ignored.
* Metadata comes back only for the keys matching ``response_metadata.pattern``, SQL
  ``LIKE`` patterns as in the platform (``%`` any run of characters, ``_`` one character,
  case-sensitive): ask for ``["%"]`` to get every key. No pattern, no metadata.
* ``UpdateDataset`` changes ``display_name``, ``metadata`` (keys are added or replaced,
  never removed), ``row_count``, ``col_count``, ``size`` and ``statistics``
  (``update_mask`` as in :func:`mlops_nb.sandbox.services.entities.apply_update`).
"""

from __future__ import annotations

import sqlite3
from typing import Any

from mlops_nb.sandbox.rpc import (
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
from mlops_nb.sandbox.services.entities import DATASET, apply_update, find_dataset, replace_data
from mlops_nb.sandbox.services.experiments import shaped
from mlops_nb.sandbox.services.rest import storage_filter

MIGRATIONS: list[tuple[str, str]] = [
    (
        "0700_dataset_link",
        """
        CREATE TABLE dataset_link (
            dataset_id TEXT NOT NULL,
            project_id TEXT NOT NULL,
            created_time TEXT NOT NULL,
            PRIMARY KEY (dataset_id, project_id)
        );
        CREATE INDEX dataset_link_by_project ON dataset_link (project_id, dataset_id);
        """,
    ),
]

DATASET_UPDATABLE = ("display_name", "metadata", "row_count", "col_count", "size", "statistics")
CREATE_FIELDS = ("displayName", "metadata", "rowCount", "colCount", "size", "statistics")


def _in_project(call: Call, dataset_id: str, project_id: str) -> bool:
    with call.store.reading() as db:
        return db.execute(
            "SELECT 1 FROM entity WHERE kind = ? AND id = ? AND project_id = ? "
            "UNION SELECT 1 FROM dataset_link WHERE dataset_id = ? AND project_id = ?",
            (DATASET, dataset_id, project_id, dataset_id, project_id)).fetchone() is not None


def leave_deleted_project(call: Call, db: sqlite3.Connection, project_id: str) -> None:
    """The datasets of a deleted project go with it: drop their links, and the links into it."""
    db.execute("DELETE FROM dataset_link WHERE project_id = ? OR dataset_id IN "
               "(SELECT id FROM entity WHERE kind = ? AND project_id = ?)", (project_id, DATASET, project_id))



@handles("storage.dataset.create_dataset")
def create_dataset(call: Call, request: Any) -> dict[str, Any]:
    given = request.dataset
    if given is None or not given.display_name:
        raise invalid_argument("dataset.display_name is required")
    require_project(call, request.project_id, write=True)
    wire = given.to_wire()
    created = now()
    dataset = {"id": new_id(), "ownerId": call.user_id, "createdTime": created, "lastModifiedTime": created,
               **{k: wire[k] for k in CREATE_FIELDS if k in wire}}
    call.store.put(DATASET, dataset, project_id=request.project_id, owner_id=call.user_id)
    return {"dataset": shaped(call, [dataset], request.response_metadata)[0]}


@handles("storage.dataset.get_dataset")
def get_dataset(call: Call, request: Any) -> dict[str, Any]:
    dataset, _ = find_dataset(call, request.id)
    return {"dataset": shaped(call, [dataset], request.response_metadata)[0]}


def _datasets_in(call: Call, project_id: str) -> ListQuery:
    """The datasets of a project (home or linked), or with none given of every project the caller may read."""
    if project_id:
        require_project(call, project_id)
        where = "(e.project_id = ? OR e.id IN (SELECT dataset_id FROM dataset_link WHERE project_id = ?))"
        params = [project_id, project_id]
    else:
        home, home_params = readable_projects_sql(call)
        linked, linked_params = readable_projects_sql(call, "l.project_id")
        where = f"({home} OR e.id IN (SELECT l.dataset_id FROM dataset_link l WHERE {linked}))"
        params = [*home_params, *linked_params]
    return ListQuery(kind=DATASET, message="StorageDataset", where=where, params=params)


@handles("storage.dataset.list_datasets")
def list_datasets(call: Call, request: Any) -> dict[str, Any]:
    items, token = list_page(call, _datasets_in(call, request.project_id), request)
    return page_response("dataset", shaped(call, items, request.response_metadata), token)


@handles("storage.dataset.count_datasets", generation="workspaces")
def count_datasets(call: Call, request: dict[str, Any]) -> dict[str, Any]:
    query = _datasets_in(call, str(request.get("projectId") or ""))
    return {"count": str(count_matching(call, query, filter=storage_filter(request)))}


@handles("storage.dataset.update_dataset")
def update_dataset(call: Call, request: Any) -> dict[str, Any]:
    given = request.dataset
    with call.store.transaction():
        current, _ = find_dataset(call, given.id if given is not None else "", write=True, id_name="dataset.id")
        updated = apply_update(current, given, request.update_mask, DATASET_UPDATABLE)
        if not updated.get("displayName"):
            raise invalid_argument("a dataset's display_name cannot be empty")
        updated["lastModifiedTime"] = now()
        replace_data(call.store, DATASET, updated)
    return {"dataset": shaped(call, [updated], request.response_metadata)[0]}


def _delete(call: Call, dataset_id: str, project_id: str) -> None:
    with call.store.transaction() as db:
        find_dataset(call, dataset_id, write=True)
        if project_id and not _in_project(call, dataset_id, project_id):
            raise not_found(f"dataset in project {project_id!r} with id", dataset_id)
        gone = delete_artifact_rows(call.store, [dataset_id])
        db.execute("DELETE FROM dataset_link WHERE dataset_id = ?", (dataset_id,))
        db.execute("DELETE FROM entity_tag WHERE entity_id = ?", (dataset_id,))
        db.execute("DELETE FROM entity WHERE kind = ? AND id = ?", (DATASET, dataset_id))
    remove_blobs(call.store, gone)


@handles("storage.dataset.delete_dataset")
def delete_dataset(call: Call, request: Any) -> None:
    _delete(call, request.id, request.project_id)


@handles("storage.dataset.batch_delete_dataset")
def batch_delete_dataset(call: Call, request: Any) -> dict[str, Any]:
    return {"datasetDeleteResponse": run_batch(
        request.dataset_request, "datasets", lambda i: _delete(call, i.id, i.project_id),
        lambda i: {"id": i.id, "projectId": i.project_id})}


@handles("storage.dataset.link_dataset_into_project")
def link_dataset_into_project(call: Call, request: Any) -> None:
    with call.store.transaction() as db:
        require_project(call, request.project_id, write=True)
        _, home = find_dataset(call, request.dataset_id, id_name="dataset_id")
        if _in_project(call, request.dataset_id, request.project_id):
            raise already_exists(f"dataset {request.dataset_id!r} is in project {request.project_id!r} already"
                                 + (" (its home project)" if home == request.project_id else ""))
        db.execute("INSERT INTO dataset_link VALUES (?, ?, ?)", (request.dataset_id, request.project_id, now()))


@handles("storage.dataset.unlink_dataset_from_project")
def unlink_dataset_from_project(call: Call, request: Any) -> None:
    with call.store.transaction() as db:
        require_project(call, request.project_id, write=True)
        _, home = find_dataset(call, request.dataset_id, id_name="dataset_id")
        if home == request.project_id:
            raise failed_precondition(f"project {home!r} is the home of dataset {request.dataset_id!r}; "
                                      "delete the dataset instead")
        removed = db.execute("DELETE FROM dataset_link WHERE dataset_id = ? AND project_id = ?",
                             (request.dataset_id, request.project_id)).rowcount
        if not removed:
            raise not_found(f"link into project {request.project_id!r} of dataset", request.dataset_id)
        # A dataset keeps only tags of projects it is in.
        db.execute("DELETE FROM entity_tag WHERE entity_id = ? AND tag_id IN (SELECT id FROM entity "
                   "WHERE kind = 'tag' AND json_extract(data, '$.projectId') = ?)",
                   (request.dataset_id, request.project_id))


def _tag_of_dataset(call: Call, request: Any) -> str:
    """The project of the tag, once the caller may read the dataset and write the tag's project."""
    find_dataset(call, request.dataset_id, id_name="dataset_id")
    if not request.tag_id:
        raise invalid_argument("tag_id is required")
    tag = call.store.get("tag", request.tag_id)
    if tag is None:
        raise not_found("tag", request.tag_id)
    require_via_project(call, tag["projectId"], "tag", request.tag_id, write=True)
    return tag["projectId"]


@handles("storage.dataset.tag_dataset")
def tag_dataset(call: Call, request: Any) -> None:
    with call.store.transaction() as db:
        project_id = _tag_of_dataset(call, request)
        if not _in_project(call, request.dataset_id, project_id):
            raise failed_precondition(f"tag {request.tag_id!r} belongs to project {project_id!r}, which dataset "
                                      f"{request.dataset_id!r} is not in; link the dataset there first")
        db.execute("INSERT OR IGNORE INTO entity_tag (entity_id, tag_id) VALUES (?, ?)",
                   (request.dataset_id, request.tag_id))


@handles("storage.dataset.untag_dataset")
def untag_dataset(call: Call, request: Any) -> None:
    with call.store.transaction() as db:
        _tag_of_dataset(call, request)
        db.execute("DELETE FROM entity_tag WHERE entity_id = ? AND tag_id = ?", (request.dataset_id, request.tag_id))
