"""The read side of deployments, and the catalogs a deployment is made from.

Served: storage DeploymentService (get, list for a project, list all, count), the
deployer's ``ListProjectDeployments``, DeploymentStatusService, CompositionService and
EnvironmentService. Creating, changing and deleting deployments through the API is
not implemented (501) and neither is scoring: the demo data and the tests make
deployments with :func:`add_deployment`, which writes every view of a deployment in
one transaction so the views always agree:

* ``StorageDeployment`` (kind ``deployment``): type SINGLE_MODEL, SHADOW_TRAFFIC or
  SPLIT_TRAFFIC, the primary experiment, and the other experiments as secondary
  scorers with their share of the traffic (a shadow gets a copy of all of it: 1.0).
  Sandbox deployments carry no metadata, so ``response_metadata`` selects nothing.
* ``DeployDeployment`` (kind ``deployer_deployment``): single, shadow or split, each
  model as a ``deploymentComposition`` (experiment, artifact, deployable artifact type,
  artifact processor and runtime, named as in the seed's tables).
* ``DeployDeploymentStatus`` (kind ``deployment_status``): the state (the real enum,
  typo ``UNHEALTY`` included) and a message; its scorer URLs are
  ``{gateway}/deployments/{id}/model/score`` (``sample_request``, ``capabilities``).

A deployment belongs to a project and is visible to whoever may read the project;
``ListAllDeployments`` and a ``CountDeployments`` without ``project_id`` cover every
project the caller may read.

``ListArtifactCompositions`` is the seed's two tables joined on the model type: each
artifact row (storage artifact type, deployable artifact type, artifact processor) with
every runtime of its model type. The seed has no runtime for ``python/pickle``: that
row comes once, without model type and runtime.

There is one deployment environment, ``sandbox`` (Kubernetes), with two deployment
profiles, ``default`` and ``large``; both lists page with ``page_size`` and an offset
``page_token``.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Sequence
from typing import Any

from mlops_nb.api import API, CATALOGS
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
)
from mlops_nb.sandbox.services.access import readable_projects_sql, require_project, require_via_project
from mlops_nb.sandbox.services.projects import PROJECT_DELETE_HOOKS
from mlops_nb.sandbox.store import Store

__all__ = ["MIGRATIONS", "add_deployment", "deployments_serving", "compositions", "ENVIRONMENT_NAME",
           "environment_id", "MODEL_TYPE_OF_ARTIFACT"]

MIGRATIONS: list[tuple[str, str]] = [
    (
        "0600_deployment_element",
        """
        CREATE TABLE deployment_element (
            deployment_id TEXT NOT NULL,
            position INTEGER NOT NULL,
            model_version_id TEXT NOT NULL,
            PRIMARY KEY (deployment_id, position)
        );
        CREATE INDEX deployment_element_by_version ON deployment_element (model_version_id);
        """,
    ),
]

STORAGE_KIND = "deployment"
DEPLOYER_KIND = "deployer_deployment"
STATUS_KIND = "deployment_status"

ENVIRONMENT_NAME = "sandbox"
# Storage keeps one deployment environment per project. The sandbox has exactly one
# ("sandbox") in every project, so its id is derived from the project's: the same in
# every sandbox, and nothing to store or keep consistent.
_ENVIRONMENT_NAMESPACE = uuid.UUID("5a2dbe0c-0000-4000-8000-000000000001")


def environment_id(project_id: str) -> str:
    """The id of a project's (only) deployment environment."""
    return str(uuid.uuid5(_ENVIRONMENT_NAMESPACE, project_id))


def _environment(project: dict[str, Any]) -> dict[str, Any]:
    return {"id": environment_id(project["id"]), "displayName": "Sandbox", "projectId": project["id"],
            "deploymentTargetName": ENVIRONMENT_NAME, "createdTime": project["createdTime"],
            "lastModifiedTime": project["createdTime"]}

# Which runtimes serve an artifact type: the catalogs' model_type column (the seed's tables
# do not say; see mlops_nb/api/catalogs.json).
MODEL_TYPE_OF_ARTIFACT = {row["artifact_type"]: row["model_type"] for row in CATALOGS.artifacts if row["model_type"]}

_TRAFFIC_TYPES = {"single": "SINGLE_MODEL", "shadow": "SHADOW_TRAFFIC", "split": "SPLIT_TRAFFIC"}

_PROFILES = [
    {"name": "default", "displayName": "Default", "isDefault": True,
     "description": "One replica with a quarter of a CPU and 512 MiB, growing to one CPU and 1 GiB.",
     "requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}},
    {"name": "large", "displayName": "Large",
     "description": "One replica with two CPUs and 4 GiB, growing to four CPUs and 8 GiB.",
     "requests": {"cpu": "2", "memory": "4Gi"}, "limits": {"cpu": "4", "memory": "8Gi"}},
]


def _resource_spec(profile: dict[str, Any]) -> dict[str, Any]:
    return {"kubernetesResourceRequirement": {"requests": profile["requests"], "limits": profile["limits"]},
            "replicas": 1}


def compositions() -> list[dict[str, Any]]:
    """The ``DeployArtifactComposition`` list: the seed's tables, joined on model type."""
    result = []
    for row in CATALOGS.artifacts:
        deployable = {"name": row["deployable_artifact_type_name"], "artifactType": row["artifact_type"]}
        processor = {"name": row["artifact_processor_name"],
                     "deployableArtifactTypeName": row["deployable_artifact_type_name"]}
        model_type = MODEL_TYPE_OF_ARTIFACT.get(row["artifact_type"])
        runtimes = [r for r in CATALOGS.runtimes if r["model_type"] == model_type]
        if not runtimes:
            result.append({"deployableArtifactType": deployable, "artifactProcessor": processor})
        for runtime in runtimes:
            result.append({
                "deployableArtifactType": deployable,
                "artifactProcessor": {**processor, "modelTypeName": model_type},
                "modelType": {"name": model_type},
                "runtime": {"name": runtime["runtime_name"], "displayName": runtime["runtime_display_name"],
                            "modelTypeName": model_type},
            })
    return result


# -- making deployments (demo data and tests) ------------------------------------------------


def add_deployment(
    store: Store,
    *,
    project_id: str,
    owner_id: str,
    model_version_ids: Sequence[str],
    traffic: str = "single",
    weights: Sequence[int] = (),
    runtime_names: Sequence[str] = (),
    state: str = "HEALTHY",
    message: str = "",
    display_name: str = "",
    description: str = "",
) -> str:
    """Record a deployment of model versions of ``project_id``; return its id.

    ``traffic`` is ``single`` (one version), ``shadow`` (primary and shadow) or ``split``
    (two or more, with ``weights``; equal shares of 100 by default). Each version's experiment
    needs an AVAILABLE artifact of a deployable type; ``runtime_names`` picks a runtime per
    version (default: the first of its model type in the seed's table). ``state`` is a
    ``DeployDeploymentState`` name. Misuse raises ValueError: this is not an API call.
    """
    sizes = {"single": (1, 1), "shadow": (2, 2), "split": (2, None)}
    if traffic not in sizes:
        raise ValueError(f"traffic must be one of {', '.join(sizes)}, not {traffic!r}")
    count = len(model_version_ids)
    fewest, most = sizes[traffic]
    if count < fewest or (most is not None and count > most):
        raise ValueError(f"a {traffic} deployment takes {fewest}{'' if most else ' or more'} model versions, "
                         f"got {count}")
    if state not in API.enums["DeployDeploymentState"]:
        raise ValueError(f"state must be one of {', '.join(API.enums['DeployDeploymentState'])}, not {state!r}")
    if weights and (traffic != "split" or len(weights) != count or min(weights) <= 0):
        raise ValueError("weights are for split deployments: one positive weight per model version")
    # Equal shares by default, in percent.
    weights = list(weights) or [100 // count + (i < 100 % count) for i in range(count)]
    runtimes = list(runtime_names) or [""] * count
    if len(runtimes) != count:
        raise ValueError("give one runtime name per model version, or none")

    deployment_id = new_id()
    created = now()
    with store.transaction() as db:
        owner = store.get("user", owner_id)
        if owner is None:
            raise ValueError(f"no user {owner_id!r}")
        if store.get("project", project_id) is None:
            raise ValueError(f"no project {project_id!r}")
        elements = [_element(db, project_id, version_id, runtime)
                    for version_id, runtime in zip(model_version_ids, runtimes, strict=True)]
        spec = _resource_spec(_PROFILES[0])
        deployer: dict[str, Any] = {
            "id": deployment_id, "projectId": project_id, "deploymentEnvironmentId": environment_id(project_id),
            "createdTime": created, "lastModifiedTime": created, "displayName": display_name,
            "description": description, "revisionId": new_id(), "revisionCreateTime": created,
            "userInfo": {"ownerId": owner_id, "ownerName": owner.get("username", ""),
                         "idpId": owner.get("idpId", "")},
            "monitor": {"enable": False},
        }
        parts = [e["composition"] for e in elements]
        if traffic == "single":
            deployer["singleDeployment"] = {"deploymentComposition": parts[0],
                                            "kubernetesResourceSpec": spec}
        elif traffic == "shadow":
            deployer["shadowDeployment"] = {
                "primaryElement": {"deploymentComposition": parts[0], "kubernetesResourceSpec": spec},
                "secondaryElement": {"deploymentComposition": parts[1], "kubernetesResourceSpec": spec},
            }
        else:
            deployer["splitDeployment"] = {"splitElements": [
                {"deploymentComposition": c, "weight": w, "kubernetesResourceSpec": spec}
                for c, w in zip(parts, weights, strict=True)
            ]}
        total = sum(weights)
        secondary = [{"experimentId": e["experiment_id"], "fraction": 1.0 if traffic == "shadow" else w / total}
                     for e, w in zip(elements[1:], weights[1:], strict=True)]
        storage = {
            "id": deployment_id, "createdTime": created, "lastModifiedTime": created, "projectId": project_id,
            "deploymentEnvironmentId": environment_id(project_id), "experimentId": elements[0]["experiment_id"],
            "type": _TRAFFIC_TYPES[traffic], "secondaryScorer": secondary, "ownerId": owner_id,
        }
        status = {"deploymentId": deployment_id, "state": state, "message": message, "lastModifiedTime": created}
        for kind, data in ((STORAGE_KIND, storage), (DEPLOYER_KIND, _drop_empty(deployer)),
                           (STATUS_KIND, _drop_empty(status))):
            db.execute("INSERT INTO entity (kind, id, project_id, owner_id, created_time, data) "
                       "VALUES (?, ?, ?, ?, ?, ?)",
                       (kind, deployment_id, project_id, owner_id, created, json.dumps(data, separators=(",", ":"))))
        db.executemany("INSERT INTO deployment_element VALUES (?, ?, ?)",
                       [(deployment_id, i, e["version_id"]) for i, e in enumerate(elements)])
    return deployment_id


def _drop_empty(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if v != ""}


def _element(db: sqlite3.Connection, project_id: str, version_id: str, runtime_name: str) -> dict[str, Any]:
    row = db.execute("SELECT project_id, data FROM entity WHERE kind = 'registered_model_version' AND id = ?",
                     (version_id,)).fetchone()
    if row is None:
        raise ValueError(f"no registered model version {version_id!r}")
    if row["project_id"] != project_id:
        raise ValueError(f"model version {version_id!r} is in project {row['project_id']!r}, not {project_id!r}")
    experiment_id = json.loads(row["data"])["experimentId"]
    artifacts = [json.loads(r["data"]) for r in db.execute(
        "SELECT data FROM entity WHERE kind = 'artifact' AND parent_id = ? ORDER BY created_time, id",
        (experiment_id,))]
    deployable = [a for a in artifacts if a.get("state") == "AVAILABLE" and a.get("type") in MODEL_TYPE_OF_ARTIFACT]
    if not deployable:
        raise ValueError(f"experiment {experiment_id!r} has no uploaded artifact of a deployable type "
                         f"({', '.join(MODEL_TYPE_OF_ARTIFACT)})")
    artifact = deployable[0]
    row_of_type = next(r for r in CATALOGS.artifacts if r["artifact_type"] == artifact["type"])
    model_type = MODEL_TYPE_OF_ARTIFACT[artifact["type"]]
    runtime_choices = [r["runtime_name"] for r in CATALOGS.runtimes if r["model_type"] == model_type]
    runtime_name = runtime_name or runtime_choices[0]
    if runtime_name not in runtime_choices:
        raise ValueError(f"runtime {runtime_name!r} does not serve {artifact['type']} artifacts; "
                         f"choose one of {', '.join(runtime_choices)}")
    composition = {
        "experimentId": experiment_id, "artifactId": artifact["id"],
        "deployableArtifactTypeName": row_of_type["deployable_artifact_type_name"],
        "artifactProcessorName": row_of_type["artifact_processor_name"], "runtimeName": runtime_name,
    }
    return {"version_id": version_id, "experiment_id": experiment_id, "composition": composition}


def _leave_deleted_project(call: Call, db: sqlite3.Connection, project_id: str) -> None:
    """A deleted project's deployments go with it (their entity rows go with the project's)."""
    db.execute("DELETE FROM deployment_element WHERE deployment_id IN "
               "(SELECT id FROM entity WHERE kind = ? AND project_id = ?)", (STORAGE_KIND, project_id))


PROJECT_DELETE_HOOKS.append(_leave_deleted_project)


def deployments_serving(store: Store, version_ids: Sequence[str]) -> dict[str, str]:
    """Which of these model versions a deployment serves: version id -> a deployment id."""
    with store.reading() as db:
        rows = db.execute("SELECT model_version_id, deployment_id FROM deployment_element "
                          "WHERE model_version_id IN (SELECT value FROM json_each(?))",
                          (json.dumps(list(version_ids)),)).fetchall()
    return {r["model_version_id"]: r["deployment_id"] for r in rows}


# -- storage DeploymentService -------------------------------------------------------------


def _view(call: Call, kind: str, deployment_id: str) -> dict[str, Any]:
    """One view of a deployment the caller may read."""
    if not deployment_id:
        raise invalid_argument("deployment_id is required")
    row = call.store.row(kind, deployment_id)
    if row is None:
        raise not_found("deployment", deployment_id)
    require_via_project(call, row["project_id"], "deployment", deployment_id)
    return json.loads(row["data"])


def _in_project(call: Call, kind: str, message: str, project_id: str) -> ListQuery:
    require_project(call, project_id)
    return ListQuery(kind=kind, message=message, where="e.project_id = ?", params=[project_id])


def _readable(call: Call, kind: str, message: str) -> ListQuery:
    where, params = readable_projects_sql(call)
    return ListQuery(kind=kind, message=message, where=where, params=params)


@handles("storage.deployment.get_deployment")
def get_deployment(call: Call, request: Any) -> dict[str, Any]:
    return {"deployment": _view(call, STORAGE_KIND, request.deployment_id)}


@handles("storage.deployment.list_deployments")
def list_deployments(call: Call, request: Any) -> dict[str, Any]:
    query = _in_project(call, STORAGE_KIND, "StorageDeployment", request.project_id)
    items, token = list_page(call, query, request)
    return page_response("deployment", items, token)


@handles("storage.deployment.list_all_deployments")
def list_all_deployments(call: Call, request: Any) -> dict[str, Any]:
    query = _readable(call, STORAGE_KIND, "StorageDeployment")
    items, token = list_page(call, query, request)
    return page_response("deployment", items, token)


@handles("storage.deployment.count_deployments")
def count_deployments(call: Call, request: Any) -> dict[str, Any]:
    query = (_in_project(call, STORAGE_KIND, "StorageDeployment", request.project_id) if request.project_id
             else _readable(call, STORAGE_KIND, "StorageDeployment"))
    return {"count": str(count_matching(call, query, filter=request.filter))}


# -- deployer ------------------------------------------------------------------------------


@handles("deployer.deployment.list_project_deployments")
def list_project_deployments(call: Call, request: Any) -> dict[str, Any]:
    query = _in_project(call, DEPLOYER_KIND, "DeployDeployment", request.project_id)
    items, token = list_page(call, query, request)
    return page_response("deployment", items, token)


def _with_scorer(call: Call, status: dict[str, Any]) -> dict[str, Any]:
    root = f"{call.base_url}/deployments/{status['deploymentId']}/model"
    return {**status, "scorer": {
        "type": "MOJO2_REST_SCORER",
        "score": {"url": f"{root}/score", "method": "POST"},
        "sampleRequest": {"url": f"{root}/sample_request", "method": "GET"},
        "capabilities": {"url": f"{root}/capabilities", "method": "GET"},
    }}


@handles("deployer.deployment_status.get_deployment_status")
def get_deployment_status(call: Call, request: Any) -> dict[str, Any]:
    return {"deploymentStatus": _with_scorer(call, _view(call, STATUS_KIND, request.deployment_id))}


@handles("deployer.deployment_status.list_deployment_statuses")
def list_deployment_statuses(call: Call, request: Any) -> dict[str, Any]:
    query = _in_project(call, STATUS_KIND, "DeployDeploymentStatus", request.project_id)
    items, token = list_page(call, query, request)
    return page_response("deploymentStatus", [_with_scorer(call, s) for s in items], token)


@handles("deployer.composition.list_artifact_compositions")
def list_artifact_compositions(call: Call, request: None) -> dict[str, Any]:
    return {"artifactComposition": compositions()}


def _static_page(items: list[dict[str, Any]], page_size: int, page_token: str) -> tuple[list[dict[str, Any]], str]:
    if page_size < 0:
        raise invalid_argument(f"page_size must not be negative (got {page_size})")
    try:
        start = int(page_token or 0)
    except ValueError:
        start = -1
    if not 0 <= start <= len(items):
        raise invalid_argument("page_token is not a token this server issued")
    end = start + (page_size or len(items))
    return items[start:end], str(end) if end < len(items) else ""


@handles("storage.deployment_environment.list_deployment_environments")
def list_deployment_environments(call: Call, request: Any) -> dict[str, Any]:
    project = require_project(call, request.project_id)
    # One environment per project: paging, filters and sorting have nothing to choose from.
    return {"deploymentEnvironment": [_environment(project)]}


@handles("storage.deployment_environment.get_deployment_environment")
def get_deployment_environment(call: Call, request: Any) -> dict[str, Any]:
    wanted = request.deployment_environment_id
    if not wanted:
        raise invalid_argument("deployment_environment_id is required")
    where, params = readable_projects_sql(call, "e.id")
    with call.store.reading() as db:
        rows = db.execute(f"SELECT data FROM entity e WHERE e.kind = 'project' AND {where}", params).fetchall()
    for row in rows:
        project = json.loads(row["data"])
        if environment_id(project["id"]) == wanted:
            return {"deploymentEnvironment": _environment(project)}
    raise not_found("deployment environment", wanted)


@handles("deployer.environment.list_environments")
def list_environments(call: Call, request: Any) -> dict[str, Any]:
    environment = {
        "name": ENVIRONMENT_NAME, "displayName": "Sandbox", "type": "KUBERNETES",
        "securityOptionTypes": [
            {"passphraseHashType": "PASSPHRASE_HASH_TYPE_PLAINTEXT"},
            {"passphraseHashType": "PASSPHRASE_HASH_TYPE_BCRYPT"},
            {"authorizationProtocol": "AUTHORIZATION_PROTOCOL_OIDC"},
        ],
    }
    items, token = _static_page([environment], request.page_size, request.page_token)
    return {"environment": items, **({"nextPageToken": token} if token else {})}


@handles("deployer.environment.list_deployment_profiles")
def list_deployment_profiles(call: Call, request: Any) -> dict[str, Any]:
    if request.parent not in ("", ENVIRONMENT_NAME):
        raise not_found("deployment environment", request.parent)
    profiles = [
        _drop_empty({"name": p["name"], "displayName": p["displayName"], "description": p["description"],
                     "isDefault": p.get("isDefault", False),
                     "kubernetesOption": {"kubernetesResourceSpec": _resource_spec(p)}})
        for p in _PROFILES
    ]
    items, token = _static_page(profiles, request.page_size, request.page_token)
    return {"deploymentProfiles": items, **({"nextPageToken": token} if token else {})}
