"""The deployer's EndpointService: stable scoring URLs whose target deployment can change.

An endpoint lives in a project's deployment environment. Its ``name`` is
``projects/{project}/environments/{environment}/endpoints/{id}`` (create it under that
``parent``), its ``target`` the resource name of a deployment in the same environment
(``projects/{p}/environments/{e}/deployments/{id}``) or empty (nothing is served), and its
``path`` one URL segment (letters, digits, ``-``, ``_``, ``.``), unique in the sandbox (one
URL namespace, as on a real MLOps: a path in use by an endpoint the caller cannot see is
refused as "not available", naming neither the endpoint nor its project). The
endpoint serves its target's scoring API at ``{gateway}/endpoints/{path}/model/score`` (and
``schema``, ``sample_request``, ``capabilities``, ``id``): changing the target moves the
traffic at once. Reading needs read access to the project, changing needs write access.
``UpdateEndpoint`` honours ``update_mask`` (``display_name``, ``description``, ``path``,
``target``); with none it takes the fields the request sets.
"""

from __future__ import annotations

import json
import re
from typing import Any

from mlops_nb.sandbox.rpc import (
    Call,
    already_exists,
    handles,
    invalid_argument,
    new_id,
    not_found,
    now,
)
from mlops_nb.sandbox.services.access import readable_projects_sql, require_project, require_via_project
from mlops_nb.sandbox.services.deployments import deployment_view, resource_name
from mlops_nb.sandbox.services.entities import apply_update, replace_data
from mlops_nb.sandbox.services.environments import KIND as ENVIRONMENT_KIND
from mlops_nb.sandbox.store import Store

__all__ = ["MIGRATIONS", "endpoint_by_path"]

MIGRATIONS: list[tuple[str, str]] = []

KIND = "endpoint"
_PATH = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
_PARENT = re.compile(r"^projects/([^/]+)/environments/([^/]+)$")
UPDATABLE = ("display_name", "description", "path", "target")


def _parent(call: Call, parent: str, *, write: bool = False) -> str:
    """The project id of an endpoint parent the caller may read (or write)."""
    match = _PARENT.match(parent or "")
    if match is None:
        raise invalid_argument(f"parent {parent!r} is not projects/{{project}}/environments/{{environment}}")
    project_id, environment = match.groups()
    require_project(call, project_id, write=write)
    if (call.store.get(ENVIRONMENT_KIND, environment) or {}).get("projectId") != project_id:
        raise not_found("deployment environment", environment)
    return project_id


def _check(call: Call, endpoint: dict[str, Any], parent: str) -> None:
    path = endpoint.get("path", "")
    if not _PATH.match(path):
        raise invalid_argument(f"path {path!r} must be one URL segment of letters, digits, '-', '_' and '.' "
                               "(at most 63), e.g. 'credit-default'")
    where, params = readable_projects_sql(call)
    with call.store.reading() as db:
        taken = db.execute(f"SELECT e.data, {where} AS visible FROM entity e WHERE e.kind = ? AND "
                           "json_extract(e.data, '$.path') = ? AND json_extract(e.data, '$.name') != ?",
                           (*params, KIND, path, endpoint.get("name", ""))).fetchone()
    if taken is not None and taken["visible"]:
        raise already_exists(f"path {path!r} is taken by endpoint {json.loads(taken['data'])['name']!r}; "
                             "choose another")
    if taken is not None:  # one scoring URL namespace: refused, but whose or where is not said
        raise already_exists(f"path {path!r} is not available; choose another")
    target = endpoint.get("target", "")
    if target:
        if not target.startswith(f"{parent}/deployments/"):
            raise invalid_argument(f"target {target!r} must be a deployment of {parent} "
                                   f"({parent}/deployments/{{id}})")
        deployer = deployment_view(call, target.rsplit("/", 1)[-1])
        if resource_name(deployer) != target:
            raise not_found("deployment", target)


def _endpoint(call: Call, name: str, *, write: bool = False) -> dict[str, Any]:
    if not name:
        raise invalid_argument("name is required: projects/{project}/environments/{environment}/endpoints/{id}")
    parent, _, endpoint_id = name.rpartition("/endpoints/")
    row = call.store.row(KIND, endpoint_id)
    data = json.loads(row["data"]) if row is not None else None
    if data is None or data["name"] != name:
        raise not_found("endpoint", name)
    require_via_project(call, row["project_id"], "endpoint", name, write=write)
    return data


@handles("deployer.endpoint.create_endpoint")
def create_endpoint(call: Call, request: Any) -> dict[str, Any]:
    project_id = _parent(call, request.parent, write=True)
    given = request.endpoint.to_wire() if request.endpoint is not None else {}
    endpoint_id = new_id()
    created = now()
    endpoint = {"name": f"{request.parent}/endpoints/{endpoint_id}", "displayName": given.get("displayName", ""),
                "description": given.get("description", ""), "path": given.get("path", ""),
                "target": given.get("target", ""), "createTime": created, "updateTime": created}
    with call.store.transaction():
        _check(call, endpoint, request.parent)
        call.store.put(KIND, {**endpoint, "id": endpoint_id, "createdTime": created}, project_id=project_id,
                       owner_id=call.user_id)
    return {"endpoint": endpoint}


def _public(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k not in ("id", "createdTime")}


@handles("deployer.endpoint.get_endpoint")
def get_endpoint(call: Call, request: Any) -> dict[str, Any]:
    return {"endpoint": _public(_endpoint(call, request.name))}


@handles("deployer.endpoint.list_endpoints")
def list_endpoints(call: Call, request: Any) -> dict[str, Any]:
    project_id = _parent(call, request.parent)
    if request.page_size < 0:
        raise invalid_argument("page_size must not be negative")
    try:
        start = int(request.page_token or 0)
    except ValueError:
        raise invalid_argument("page_token is not a token this server issued") from None
    size = min(request.page_size or 100, 1000)
    with call.store.reading() as db:
        rows = db.execute("SELECT data FROM entity WHERE kind = ? AND project_id = ? ORDER BY created_time, id "
                          "LIMIT ? OFFSET ?", (KIND, project_id, size + 1, start)).fetchall()
    items = [_public(json.loads(r["data"])) for r in rows[:size]]
    return {"endpoints": items, **({"nextPageToken": str(start + size)} if len(rows) > size else {})}


@handles("deployer.endpoint.update_endpoint")
def update_endpoint(call: Call, request: Any) -> dict[str, Any]:
    given = request.endpoint
    if given is None or not given.name:
        raise invalid_argument("endpoint.name is required")
    parent = given.name.rpartition("/endpoints/")[0]
    with call.store.transaction():
        current = _endpoint(call, given.name, write=True)
        updated = apply_update(current, given, request.update_mask, UPDATABLE)
        updated["updateTime"] = now()
        _check(call, updated, parent)
        replace_data(call.store, KIND, updated)
    return {"endpoint": _public(updated)}


@handles("deployer.endpoint.delete_endpoint")
def delete_endpoint(call: Call, request: Any) -> None:
    with call.store.transaction():
        endpoint = _endpoint(call, request.name, write=True)
        call.store.delete(KIND, endpoint["id"])


def endpoint_by_path(store: Store, path: str) -> dict[str, Any] | None:
    """The endpoint serving ``{gateway}/endpoints/{path}/...`` (wire JSON), if any."""
    with store.reading() as db:
        row = db.execute("SELECT data FROM entity WHERE kind = ? AND json_extract(data, '$.path') = ?",
                         (KIND, path)).fetchone()
    return json.loads(row["data"]) if row is not None else None

