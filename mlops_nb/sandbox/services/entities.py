"""Lookups and updates that several service modules share.

Each handler module serves one area of the API; what crosses areas lives here, so the
modules import it and not each other: finding an experiment or a dataset with the
caller's access checked (an artifact's owner may be either), and the one rule every
update of the sandbox follows (:func:`apply_update`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mlops_nb.sandbox.rpc import (
    Call,
    ListQuery,
    RpcError,
    failed_precondition,
    invalid_argument,
    not_found,
    permission_denied,
)
from mlops_nb.sandbox.services.access import project_role, readable_projects_sql, require_project
from mlops_nb.sandbox.store import Store
from mlops_nb.wire.messages import Message

__all__ = ["apply_update", "replace_data", "Experiment", "find_experiment", "experiments_in", "NOT_DELETED",
           "IN_PROJECT", "find_dataset", "DATASET"]

DATASET = "dataset"


def apply_update(current: dict[str, Any], patch: Message | None, update_mask: str,
                 updatable: Sequence[str]) -> dict[str, Any]:
    """``current`` (wire JSON) with the fields named by ``update_mask`` taken from ``patch``.

    A named field that ``patch`` leaves unset is cleared. An empty mask takes every
    updatable field that ``patch`` sets. Metadata (``StorageMetadata``) keys are only
    added or replaced, never removed: responses show only the keys a client selected,
    so writing back what it read must not erase the others.
    """
    if patch is None:
        raise invalid_argument("the request needs the entity with the new values")
    fields = {f.name: f for f in type(patch).fields()}
    by_any_name = {alias: fields[name] for name in updatable for alias in (name, fields[name].json)}
    # The workspaces API's client names a display name by storage's column, "name".
    if "display_name" in updatable and "name" not in fields:
        by_any_name["name"] = fields["display_name"]
    names = [n.strip() for n in update_mask.split(",") if n.strip()]
    if names:
        unknown = [n for n in names if n not in by_any_name]
        if unknown:
            raise invalid_argument(f"update_mask names {unknown[0]!r}, which cannot be updated; "
                                   f"updatable fields: {', '.join(updatable)}")
        chosen = [by_any_name[n] for n in names]
    else:
        chosen = [fields[n] for n in updatable if patch.is_set(n)]
    if not chosen:
        raise invalid_argument(f"nothing to update: set one of {', '.join(updatable)} "
                               "(and name it in update_mask)")
    wire = patch.to_wire()
    updated = dict(current)
    for f in chosen:
        if f.type == "StorageMetadata":
            values = {**current.get(f.json, {}).get("values", {}), **wire.get(f.json, {}).get("values", {})}
            if values:
                updated[f.json] = {"values": values}
        elif f.json in wire:
            updated[f.json] = wire[f.json]
        else:
            updated.pop(f.json, None)
    return updated


def replace_data(store: Store, kind: str, data: dict[str, Any]) -> None:
    """Store new wire JSON for an existing entity, keeping its project, parent, owner and creation time."""
    with store.transaction() as db:
        db.execute("UPDATE entity SET data = ? WHERE kind = ? AND id = ?",
                   (json.dumps(data, separators=(",", ":")), kind, data["id"]))


# -- experiments ----------------------------------------------------------------------

NOT_DELETED = "e.id NOT IN (SELECT experiment_id FROM experiment_deleted)"
IN_PROJECT = "(e.project_id = ? OR e.id IN (SELECT experiment_id FROM experiment_link WHERE project_id = ?))"


def experiments_in(call: Call, project_id: str) -> ListQuery:
    """The live experiments of a project: those living there and those linked into it."""
    with call.store.reading() as db:
        linked = db.execute("SELECT 1 FROM experiment_link WHERE project_id = ? LIMIT 1", (project_id,)).fetchone()
    if linked is None:
        # Only its own: a condition the (kind, project_id, ...) indexes serve in the list's order,
        # where the OR of the links would make SQLite gather and sort every experiment of the project.
        return ListQuery(kind="experiment", message="StorageExperiment",
                         where=f"e.project_id = ? AND {NOT_DELETED}", params=[project_id])
    return ListQuery(kind="experiment", message="StorageExperiment", where=f"{IN_PROJECT} AND {NOT_DELETED}",
                     params=[project_id, project_id])


@dataclass
class Experiment:
    data: dict[str, Any]  # wire JSON as stored (no tags)
    home: str  # the id of the project it lives in

    @property
    def id(self) -> str:
        return self.data["id"]


def find_experiment(call: Call, experiment_id: str, *, field: str = "experiment_id", write: bool = False,
                    deleted: bool = False) -> Experiment:
    """The experiment if the caller may read it (and write it, when asked).

    ``deleted=True`` finds a soft-deleted experiment (to recover it) instead of a live one.
    """
    if not experiment_id:
        raise invalid_argument(f"{field} is required")
    readable_home, home_params = readable_projects_sql(call, "e.project_id")
    readable_link, link_params = readable_projects_sql(call, "l.project_id")
    with call.store.reading() as db:
        row = db.execute(
            f"SELECT e.data, e.project_id, NOT ({NOT_DELETED}) AS deleted FROM entity e "
            f"WHERE e.kind = 'experiment' AND e.id = ? AND ({readable_home} OR EXISTS "
            f"(SELECT 1 FROM experiment_link l WHERE l.experiment_id = e.id AND {readable_link}))",
            [experiment_id, *home_params, *link_params],
        ).fetchone()
    if row is None or (row["deleted"] and not deleted):
        raise not_found("experiment", experiment_id)
    if deleted and not row["deleted"]:
        raise failed_precondition(f"experiment {experiment_id!r} is not deleted")
    if write:
        home = call.store.get("project", row["project_id"])
        role = project_role(call, home) if home is not None else None
        if role not in ("OWNER", "EDITOR"):
            raise permission_denied(f"experiment {experiment_id!r} lives in project {row['project_id']!r}, "
                                    f"where you may not write (your role there: {role or 'none'})")
    return Experiment(json.loads(row["data"]), row["project_id"])


# -- datasets -------------------------------------------------------------------------


def find_dataset(call: Call, dataset_id: str, *, write: bool = False,
                 id_name: str = "id") -> tuple[dict[str, Any], str]:
    """The dataset (wire JSON, without tags) and its home project, once access is checked."""
    if not dataset_id:
        raise invalid_argument(f"{id_name} is required")
    row = call.store.row(DATASET, dataset_id)
    if row is None:
        raise not_found("dataset", dataset_id)
    try:
        require_project(call, row["project_id"], write=write)
    except RpcError as e:
        if e.code != 5:
            raise
        if not _readable_through_link(call, dataset_id):
            raise not_found("dataset", dataset_id) from None
        if write:
            raise permission_denied(f"dataset {dataset_id!r} is linked into a project of yours, but only "
                                    "editors of its home project may change it") from None
    return json.loads(row["data"]), row["project_id"]


def _readable_through_link(call: Call, dataset_id: str) -> bool:
    readable, params = readable_projects_sql(call, "l.project_id")
    with call.store.reading() as db:
        return db.execute(f"SELECT 1 FROM dataset_link l WHERE l.dataset_id = ? AND {readable}",
                          (dataset_id, *params)).fetchone() is not None


