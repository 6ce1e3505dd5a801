"""Deployments: the deployer's DeploymentService, statuses, logs, profiling, and storage's views.

A deployment has three views, written together in one transaction so that they agree at
every moment:

* ``DeployDeployment`` (kind ``deployer_deployment``): single, shadow or split, each model as
  a ``deploymentComposition`` (experiment, artifact, deployable artifact type, artifact
  processor, runtime), with ``security``, ``monitor``, resources and environment variables;
* ``StorageDeployment`` (kind ``deployment``), derived from it: SINGLE_MODEL, SHADOW_TRAFFIC
  or SPLIT_TRAFFIC, the primary experiment and the others as secondary scorers with their
  share of the traffic (a shadow gets a copy of all of it: 1.0);
* ``DeployDeploymentStatus`` (kind ``deployment_status``): the state the scorer processes are
  in (see :mod:`mlops_nb.sandbox.runtime.supervisor`) with a message saying why, and the
  scorer URLs ``{gateway}/deployments/{id}/model/score`` (``schema``, ``sample_request``,
  ``capabilities``, ``id``).

``CreateDeployment`` checks every composition against the seed's tables and the experiment
before anything starts: the deployable artifact type and processor must match, the
experiment (in the deployment's project) must have an uploaded artifact of that type, and
the runtime must serve it; otherwise INVALID_ARGUMENT names what would do. Then the
deployment is PREPARING and the supervisor takes over. ``UpdateModelDeployment`` takes the
whole deployment back (as the official client sends it) or the fields its ``update_mask``
names; a change to what runs starts a new revision. ``DeleteDeployment`` makes it
TERMINATING; once its processes are gone, so is the deployment (NOT_FOUND), with its logs
and monitoring data. A deployment that an endpoint targets cannot be deleted.

Security: ``security.passphrase`` (PLAINTEXT or BCRYPT hash type) makes the scoring routes
require ``Authorization: Bearer <passphrase>``; ``security.tokenAuth`` (OIDC) requires a
valid sandbox access token of a user who may read the deployment's project; neither leaves
them open. A project VIEWER, who may not change a deployment, reads its passphrase (plain or
hash) and its environment variables' values as ``<redacted>``; owners and editors read them
back as they were set, as the official clients expect. Resource requests and limits are
recorded, not enforced; ``replicas`` scorer processes serve each model (0 or less: none).

``ListLogEntries`` (``parent``: the deployment id or its resource name
``projects/{p}/environments/{e}/deployments/{d}``) gives the lifecycle and the scorers'
own output, oldest first; ``max_lines`` keeps the last ones, ``filter`` keeps lines
containing it. ``ListSuggestedScoringCompositions`` lists the compositions that can serve
an experiment's artifacts, runnable ones first; ``GetSuggestedScoringResourceSpec`` suggests
memory from what the experiment's scorers use (measured) or, unmeasured, from the artifact's
size, and a CPU per worker.

``ListArtifactCompositions`` is the seed's two tables joined on the model type: each artifact
row with every runtime of its model type. ``python/pickle`` has no runtime in the seed, so it
has no composition: it cannot be deployed. There is one deployer environment, ``sandbox``
(Kubernetes, no affinity or toleration shortcuts), with two profiles, ``default`` and
``large``; every storage deployment environment of a project (DEV, PROD and those users add:
``services/environments.py``) deploys there. A deployment is in one of its project's
environments (DEV when the request names none).

Storage's older deployment calls run on the same machinery: ``DeploymentEnvironmentService/Deploy``
(an environment, an experiment, SINGLE_MODEL, SPLIT_TRAFFIC or SHADOW_TRAFFIC with secondary
scorers) makes the same deployment ``CreateDeployment`` makes, each experiment served by the
composition profiling suggests first (the newest runtime the sandbox can run); a split's
fractions become weights in hundredths. ``DeploymentService/Undeploy`` is ``DeleteDeployment``,
and ``DeploymentService/UpdateDeployment`` changes the experiments, type and secondary scorers
(keeping the compositions and options of the experiments that stay) as ``UpdateModelDeployment``
does. Storage's ``metadata`` of a deployment is not kept.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from mlops_nb.api import CATALOGS
from mlops_nb.sandbox.rpc import (
    Call,
    ListQuery,
    count_matching,
    failed_precondition,
    handles,
    invalid_argument,
    list_page,
    new_id,
    not_found,
    now,
    page_response,
)
from mlops_nb.sandbox.runtime import DeploymentSpec, ModelSpec, cannot_run, runnable_runtimes
from mlops_nb.sandbox.services.access import (
    project_role,
    readable_projects_sql,
    require_project,
    require_via_project,
)
from mlops_nb.sandbox.services.artifacts import artifact_chunks
from mlops_nb.sandbox.services.entities import IN_PROJECT, NOT_DELETED, find_experiment
from mlops_nb.sandbox.services.environments import (
    TARGET_NAME,
    default_environment_id,
    environment_in_project,
    stored_environment,
)
from mlops_nb.sandbox.store import Store

if TYPE_CHECKING:
    from mlops_nb.sandbox.runtime import Supervisor

__all__ = ["MIGRATIONS", "deployments_serving", "MODEL_TYPE_OF_ARTIFACT", "StoreEvents", "restore", "deployment_view",
           "resource_name", "DEPLOYMENT_REMOVE_HOOKS", "security_of", "create_deployer", "update_deployer",
           "delete_deployer", "elements_of", "redacted", "MODE_FIELDS", "check_composition"]

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
        """,
    ),
    (
        # Deployments now name experiments (as the API does), not model versions; the
        # deployments of earlier sandboxes get the ``security`` every deployment carries.
        "0601_deployment_model",
        """
        DROP TABLE deployment_element;
        CREATE TABLE deployment_model (
            deployment_id TEXT NOT NULL,
            position INTEGER NOT NULL,
            experiment_id TEXT NOT NULL,
            PRIMARY KEY (deployment_id, position)
        );
        CREATE INDEX deployment_model_by_experiment ON deployment_model (experiment_id);
        INSERT INTO deployment_model
            SELECT e.id, 0, json_extract(e.data, '$.experimentId') FROM entity e WHERE e.kind = 'deployment';
        UPDATE entity SET data = json_set(data, '$.security',
                json('{"passphrase": {"hash": "", "passphraseHashType": "PASSPHRASE_HASH_TYPE_UNSPECIFIED"}}'))
            WHERE kind = 'deployer_deployment' AND json_extract(data, '$.security') IS NULL;
        CREATE TABLE deployment_log (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            deployment_id TEXT NOT NULL,
            time TEXT NOT NULL,
            source TEXT NOT NULL,
            text TEXT NOT NULL
        );
        CREATE INDEX deployment_log_by_deployment ON deployment_log (deployment_id, seq);
        CREATE TABLE deployment_state (
            deployment_id TEXT NOT NULL,
            time TEXT NOT NULL,
            state TEXT NOT NULL,
            message TEXT NOT NULL
        );
        CREATE INDEX deployment_state_by_deployment ON deployment_state (deployment_id, time);
        CREATE TABLE deployment_sample (
            deployment_id TEXT NOT NULL,
            experiment_id TEXT NOT NULL,
            time TEXT NOT NULL,
            rss_bytes INTEGER NOT NULL,
            cpu_seconds REAL NOT NULL
        );
        CREATE INDEX deployment_sample_by_deployment ON deployment_sample (deployment_id, time);
        """,
    ),
]

STORAGE_KIND = "deployment"
DEPLOYER_KIND = "deployer_deployment"
STATUS_KIND = "deployment_status"
LOG_LINES_KEPT = 5000  # per deployment; older lines are dropped
SAMPLES_KEPT = 20000  # per deployment

# Hooks run (inside the removing transaction) when a deployment is gone: other modules drop
# what they keep about it (monitoring data). Filled in one place: services/__init__.py.
DEPLOYMENT_REMOVE_HOOKS: list[Callable[[sqlite3.Connection, str], None]] = []


def resource_name(deployer: dict[str, Any]) -> str:
    """``projects/{p}/environments/{e}/deployments/{d}``, as endpoints and logs name a deployment."""
    return (f"projects/{deployer['projectId']}/environments/{deployer['deploymentEnvironmentId']}"
            f"/deployments/{deployer['id']}")


# Which runtimes serve an artifact type: the catalogs' model_type column (the seed's tables
# do not say; see mlops_nb/api/catalogs.json).
MODEL_TYPE_OF_ARTIFACT = {row["artifact_type"]: row["model_type"] for row in CATALOGS.artifacts if row["model_type"]}
_ARTIFACT_ROW_BY_DEPLOYABLE = {row["deployable_artifact_type_name"]: row for row in CATALOGS.artifacts}

_TRAFFIC_TYPES = {"single": "SINGLE_MODEL", "shadow": "SHADOW_TRAFFIC", "split": "SPLIT_TRAFFIC"}
MODE_FIELDS = {"single": "singleDeployment", "shadow": "shadowDeployment", "split": "splitDeployment"}

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


# -- checking what a deployment asks for ---------------------------------------------------------


def _experiment_artifacts(db: sqlite3.Connection, experiment_id: str) -> list[dict[str, Any]]:
    return [json.loads(r["data"]) for r in db.execute(
        "SELECT data FROM entity WHERE kind = 'artifact' AND parent_id = ? ORDER BY created_time, id",
        (experiment_id,))]


def check_composition(call: Call, project_id: str, given: dict[str, Any], where: str) -> tuple[dict[str, Any], str]:
    """The composition with its artifact resolved, and the experiment's display name; or INVALID_ARGUMENT."""
    experiment_id = given.get("experimentId", "")
    experiment = find_experiment(call, experiment_id, field=f"{where}.experiment_id")
    with call.store.reading() as db:
        in_project = db.execute(f"SELECT 1 FROM entity e WHERE e.kind = 'experiment' AND e.id = ? AND {IN_PROJECT} "
                                f"AND {NOT_DELETED}", (experiment_id, project_id, project_id)).fetchone()
        artifacts = _experiment_artifacts(db, experiment_id)
    if in_project is None:
        raise invalid_argument(f"{where}: experiment {experiment_id!r} is not in project {project_id!r}; "
                               "link it into the project first")
    deployable = given.get("deployableArtifactTypeName", "")
    row = _ARTIFACT_ROW_BY_DEPLOYABLE.get(deployable)
    if row is None:
        raise invalid_argument(f"{where}.deployable_artifact_type_name {deployable!r} is not one of "
                               f"{', '.join(_ARTIFACT_ROW_BY_DEPLOYABLE)}")
    processor = given.get("artifactProcessorName", "") or row["artifact_processor_name"]
    if processor != row["artifact_processor_name"]:
        raise invalid_argument(f"{where}.artifact_processor_name {processor!r} does not process {deployable} "
                               f"artifacts; use {row['artifact_processor_name']!r}")
    usable = [a for a in artifacts if a.get("type") == row["artifact_type"] and a.get("state") == "AVAILABLE"]
    if given.get("artifactId"):
        usable = [a for a in usable if a["id"] == given["artifactId"]]
    if not usable:
        have = ", ".join(sorted({f"{a.get('type') or '(no type)'} ({a.get('state', 'EMPTY')})" for a in artifacts}))
        raise invalid_argument(f"{where}: experiment {experiment_id!r} has no uploaded {row['artifact_type']} "
                               f"artifact{' ' + repr(given['artifactId']) if given.get('artifactId') else ''} "
                               f"to deploy as {deployable} (its artifacts: {have or 'none'})")
    model_type = MODEL_TYPE_OF_ARTIFACT.get(row["artifact_type"])
    choices = [r["runtime_name"] for r in CATALOGS.runtimes_of(model_type)]
    runtime = given.get("runtimeName", "")
    if not choices:
        raise invalid_argument(f"{where}: no runtime serves {row['artifact_type']} artifacts, so they cannot be "
                               "deployed")
    if runtime not in choices:
        said = f"runtime {runtime!r} cannot serve" if runtime else "runtime_name is required for"
        raise invalid_argument(f"{where}: {said} {row['artifact_type']} artifacts ({deployable}); runtimes that "
                               f"can: {', '.join(choices)}")
    composition = {**given, "artifactId": usable[-1]["id"], "artifactProcessorName": processor}
    return composition, experiment.data.get("displayName", "")


def _mode(deployment: dict[str, Any]) -> str:
    modes = [mode for mode, key in MODE_FIELDS.items() if deployment.get(key)]
    if len(modes) != 1:
        raise invalid_argument("a deployment sets exactly one of single_deployment, shadow_deployment and "
                               f"split_deployment (got {', '.join(modes) or 'none'})")
    return modes[0]


def _elements(deployment: dict[str, Any], mode: str) -> list[dict[str, Any]]:
    """The deployment's model elements in order (primary first), each with its composition."""
    body = deployment[MODE_FIELDS[mode]]
    if mode == "single":
        return [body]
    if mode == "shadow":
        return [e for e in (body.get("primaryElement"), body.get("secondaryElement")) if e]
    return list(body.get("splitElements", []))


def elements_of(deployment: dict[str, Any]) -> list[dict[str, Any]]:
    """A deployer view's model elements in order (primary first)."""
    return _elements(deployment, _mode(deployment))


def _check_elements(call: Call, project_id: str, deployment: dict[str, Any]) -> tuple[str, list[str]]:
    """Resolve every composition in place; return the mode and the experiments' names."""
    mode = _mode(deployment)
    elements = _elements(deployment, mode)
    wanted = {"single": "one model", "shadow": "a primary and a secondary element", "split": "two or more elements"}
    if (mode == "shadow" and len(elements) != 2) or (mode == "split" and len(elements) < 2):
        raise invalid_argument(f"a {mode} deployment takes {wanted[mode]}, got {len(elements)}")
    names = []
    for i, element in enumerate(elements):
        where = f"{MODE_FIELDS[mode]}{f'[{i}]' if mode != 'single' else ''}.deployment_composition"
        if not element.get("deploymentComposition"):
            raise invalid_argument(f"{where} is required")
        if mode == "split" and element.get("weight", 0) <= 0:
            raise invalid_argument(f"{MODE_FIELDS[mode]}[{i}].weight must be a positive share of the traffic")
        element["deploymentComposition"], name = check_composition(
            call, project_id, element["deploymentComposition"], where)
        names.append(name)
    return mode, names


def _check_security(deployment: dict[str, Any]) -> None:
    security = deployment.setdefault("security", {})
    passphrase = security.setdefault("passphrase", {})
    passphrase.setdefault("hash", "")
    kind = passphrase.get("passphraseHashType") or "PASSPHRASE_HASH_TYPE_UNSPECIFIED"
    if passphrase["hash"] and kind == "PASSPHRASE_HASH_TYPE_UNSPECIFIED":
        kind = "PASSPHRASE_HASH_TYPE_PLAINTEXT"
    if not passphrase["hash"]:
        kind = "PASSPHRASE_HASH_TYPE_UNSPECIFIED"
    if kind == "PASSPHRASE_HASH_TYPE_BCRYPT" and not passphrase["hash"].startswith(("$2a$", "$2b$", "$2y$")):
        raise invalid_argument("security.passphrase.hash must be a bcrypt hash ($2b$...) when its hash type is "
                               "PASSPHRASE_HASH_TYPE_BCRYPT; send the plain passphrase with PLAINTEXT instead")
    passphrase["passphraseHashType"] = kind
    protocol = security.get("tokenAuth", {}).get("authenticationProtocol", "AUTHORIZATION_PROTOCOL_UNSPECIFIED")
    if protocol not in ("AUTHORIZATION_PROTOCOL_UNSPECIFIED", "AUTHORIZATION_PROTOCOL_OIDC"):
        raise invalid_argument(f"security.token_auth.authentication_protocol {protocol!r} is not supported")


def security_of(deployer: dict[str, Any]) -> tuple[str, str, bool]:
    """(passphrase hash type, hash, whether a sandbox access token is required) of a deployment."""
    security = deployer.get("security", {})
    passphrase = security.get("passphrase", {})
    token = security.get("tokenAuth", {}).get("authenticationProtocol") == "AUTHORIZATION_PROTOCOL_OIDC"
    return passphrase.get("passphraseHashType", ""), passphrase.get("hash", ""), token


# -- the views ---------------------------------------------------------------------------------


def _storage_view(deployer: dict[str, Any]) -> dict[str, Any]:
    mode = _mode(deployer)
    elements = _elements(deployer, mode)
    experiments = [e["deploymentComposition"]["experimentId"] for e in elements]
    weights = [e.get("weight", 0) for e in elements]
    total = sum(weights) or 1
    secondary = [{"experimentId": x, "fraction": 1.0 if mode == "shadow" else w / total}
                 for x, w in zip(experiments[1:], weights[1:], strict=True)]
    return {"id": deployer["id"], "createdTime": deployer["createdTime"],
            "lastModifiedTime": deployer["lastModifiedTime"], "projectId": deployer["projectId"],
            "deploymentEnvironmentId": deployer["deploymentEnvironmentId"], "experimentId": experiments[0],
            "type": _TRAFFIC_TYPES[mode], "secondaryScorer": secondary, "ownerId": deployer["userInfo"]["ownerId"]}


def _write_views(db: sqlite3.Connection, deployer: dict[str, Any], status: dict[str, Any] | None) -> None:
    """Write the deployer and storage views (and the status, when given) of one deployment."""
    rows = [(DEPLOYER_KIND, deployer), (STORAGE_KIND, _storage_view(deployer))]
    if status is not None:
        rows.append((STATUS_KIND, status))
    for kind, data in rows:
        db.execute("INSERT OR REPLACE INTO entity (kind, id, project_id, owner_id, created_time, data) "
                   "VALUES (?, ?, ?, ?, ?, ?)",
                   (kind, deployer["id"], deployer["projectId"], deployer["userInfo"]["ownerId"],
                    deployer["createdTime"], json.dumps(data, separators=(",", ":"))))
    db.execute("DELETE FROM deployment_model WHERE deployment_id = ?", (deployer["id"],))
    db.executemany("INSERT INTO deployment_model VALUES (?, ?, ?)",
                   [(deployer["id"], i, e["deploymentComposition"]["experimentId"])
                    for i, e in enumerate(_elements(deployer, _mode(deployer)))])


def _spec(deployer: dict[str, Any], names: Sequence[str] = ()) -> DeploymentSpec:
    mode = _mode(deployer)
    models = []
    for i, element in enumerate(_elements(deployer, mode)):
        composition = element["deploymentComposition"]
        resources = element.get("kubernetesResourceSpec", {})
        replicas = resources.get("replicas", 1) if "replicas" in resources else 1
        models.append(ModelSpec(
            experiment_id=composition["experimentId"], artifact_id=composition["artifactId"],
            processor=composition["artifactProcessorName"], runtime=composition["runtimeName"],
            name=names[i] if i < len(names) else "",
            environment=dict(element.get("deploymentEnvironmentVariables", {}).get("runtimeVariables", {})),
            replicas=replicas, weight=element.get("weight", 0)))
    return DeploymentSpec(deployer["id"], deployer["revisionId"], mode, tuple(models))


def _names(store: Store, deployer: dict[str, Any]) -> list[str]:
    names = []
    for element in _elements(deployer, _mode(deployer)):
        experiment = store.get("experiment", element["deploymentComposition"]["experimentId"]) or {}
        names.append(experiment.get("displayName", ""))
    return names


def deployment_view(call: Call, deployment_id: str, kind: str = DEPLOYER_KIND, *, write: bool = False,
                    field: str = "deployment_id") -> dict[str, Any]:
    """One view of a deployment the caller may read (or change); ``field`` names the id in errors."""
    if not deployment_id:
        raise invalid_argument(f"{field} (the deployment's id) is required")
    row = call.store.row(kind, deployment_id)
    if row is None:
        raise not_found("deployment", deployment_id)
    require_via_project(call, row["project_id"], "deployment", deployment_id, write=write)
    return json.loads(row["data"])


def _supervisor(call: Call) -> Supervisor:
    if call.supervisor is None:
        raise RuntimeError("this sandbox runs no supervisor")
    return call.supervisor


def _wire(message: Any) -> dict[str, Any]:
    return message.to_wire() if message is not None else {}


# -- DeploymentService ---------------------------------------------------------------------------


@handles("deployer.deployment.create_deployment")
def create_deployment(call: Call, request: Any) -> dict[str, Any]:
    given = _wire(request.deployment)
    if not given:
        raise invalid_argument("deployment is required (project_id, one of single/shadow/split_deployment, ...)")
    return {"deployment": create_deployer(call, given)}


def create_deployer(call: Call, given: dict[str, Any]) -> dict[str, Any]:
    """Check, store and start a deployment (the deployer's view, as CreateDeployment takes it); returns it."""
    project_id = given.get("projectId", "")
    project = require_project(call, project_id, write=True)
    environment = given.get("deploymentEnvironmentId") or default_environment_id(project_id)
    environment_in_project(call, project_id, environment, "deployment_environment_id")
    _, names = _check_elements(call, project_id, given)
    _check_security(given)
    created = now()
    deployment_id = new_id()
    deployer = {
        **{k: v for k, v in given.items() if k in ("singleDeployment", "shadowDeployment", "splitDeployment",
                                                     "security", "displayName", "description", "customCors")},
        "id": deployment_id, "projectId": project["id"], "deploymentEnvironmentId": environment,
        "createdTime": created, "lastModifiedTime": created, "revisionId": new_id(), "revisionCreateTime": created,
        "userInfo": {"ownerId": call.user_id, "ownerName": call.user.get("username", ""),
                     "idpId": call.user.get("idpId", "")},
        "monitor": given.get("monitor", {"enable": True}),
    }
    status = {"deploymentId": deployment_id, "state": "PREPARING", "message": "waiting for the supervisor",
              "lastModifiedTime": created}
    with call.store.transaction() as db:
        _write_views(db, deployer, status)
    _supervisor(call).apply(_spec(deployer, names))
    return deployer


_UPDATABLE = {"single_deployment": "singleDeployment", "shadow_deployment": "shadowDeployment",
              "split_deployment": "splitDeployment", "security": "security", "display_name": "displayName",
              "description": "description", "monitor": "monitor", "custom_cors": "customCors"}


@handles("deployer.deployment.update_model_deployment")
def update_model_deployment(call: Call, request: Any) -> dict[str, Any]:
    given = _wire(request.deployment)
    deployment_id = given.get("id", "")
    if not deployment_id:
        raise invalid_argument("deployment.id is required")
    mask = [n.strip() for n in request.update_mask.split(",") if n.strip()]
    by_any_name = {**_UPDATABLE, **{v: v for v in _UPDATABLE.values()}}
    unknown = [n for n in mask if n not in by_any_name]
    if unknown:
        raise invalid_argument(f"update_mask names {unknown[0]!r}, which cannot be updated; updatable: "
                               f"{', '.join(_UPDATABLE)}")
    # As every update of the sandbox: the fields the mask names (cleared when the request leaves
    # them unset), or with no mask every updatable field the request sets (the official client
    # sends the whole deployment back).
    fields = [by_any_name[n] for n in mask] or [k for k in _UPDATABLE.values() if k in given]
    if not fields:
        raise invalid_argument(f"nothing to update: set one of {', '.join(_UPDATABLE)}")
    return {"deployment": update_deployer(call, deployment_id, lambda current: given, fields)}


def update_deployer(call: Call, deployment_id: str, new_values: Callable[[dict[str, Any]], dict[str, Any]],
            fields: Sequence[str]) -> dict[str, Any]:
    """Apply ``fields`` of ``new_values(current deployer view)`` to a deployment; a change to what runs
    starts a new revision. Returns the deployer's view."""
    with call.store.transaction() as db:
        current = deployment_view(call, deployment_id, write=True, field="deployment.id")
        given = new_values(current)
        status = json.loads(db.execute("SELECT data FROM entity WHERE kind = ? AND id = ?",
                                       (STATUS_KIND, deployment_id)).fetchone()["data"])
        if status.get("state") == "TERMINATING":
            raise failed_precondition(f"deployment {deployment_id!r} is being deleted")
        for key in ("projectId", "deploymentEnvironmentId"):
            if given.get(key) and given[key] != current[key]:
                raise invalid_argument(f"a deployment's {key} cannot change ({current[key]!r})")
        updated = dict(current)
        if any(given.get(k) for k in fields if k in MODE_FIELDS.values()):
            for key in MODE_FIELDS.values():  # a new shape replaces the old one
                updated.pop(key, None)
        for key in fields:
            if key in given:
                updated[key] = given[key]
            else:
                updated.pop(key, None)
        _, names = _check_elements(call, current["projectId"], updated)
        _check_security(updated)
        updated["lastModifiedTime"] = now()
        before, after = _spec(current).processes(), _spec(updated).processes()
        if before != after:
            updated["revisionId"], updated["revisionCreateTime"] = new_id(), updated["lastModifiedTime"]
            status.update(state="PREPARING", message=f"revision {updated['revisionId']} queued",
                          lastModifiedTime=updated["lastModifiedTime"])
            _write_views(db, updated, status)
        else:
            _write_views(db, updated, None)
    _supervisor(call).apply(_spec(updated, names))
    return updated


@handles("deployer.deployment.delete_deployment")
def delete_deployment(call: Call, request: Any) -> None:
    delete_deployer(call, request.id, "id")


def delete_deployer(call: Call, deployment_id: str, field: str) -> None:
    with call.store.transaction() as db:
        deployer = deployment_view(call, deployment_id, write=True, field=field)
        target = resource_name(deployer)
        endpoint = db.execute("SELECT data FROM entity WHERE kind = 'endpoint' AND "
                              "json_extract(data, '$.target') = ?", (target,)).fetchone()
        if endpoint is not None:
            name = json.loads(endpoint["data"])["name"]
            raise failed_precondition(f"endpoint {name!r} targets deployment {deployment_id!r}; point it at "
                                      "another deployment (UpdateEndpoint) or delete it first")
    _supervisor(call).remove(deployment_id)


@handles("deployer.deployment.list_project_deployments")
def list_project_deployments(call: Call, request: Any) -> dict[str, Any]:
    query = _in_project(call, DEPLOYER_KIND, "DeployDeployment", request.project_id)
    items, token = list_page(call, query, request)
    if project_role(call, require_project(call, request.project_id)) == "VIEWER":
        items = [redacted(d) for d in items]
    return page_response("deployment", items, token)


REDACTED = "<redacted>"


def redacted(deployer: dict[str, Any]) -> dict[str, Any]:
    """A deployment as one who may not change it sees it: no passphrase, no environment variable values."""
    hidden = json.loads(json.dumps(deployer))
    passphrase = hidden.get("security", {}).get("passphrase", {})
    if passphrase.get("hash"):
        passphrase["hash"] = REDACTED
    for element in _elements(hidden, _mode(hidden)):
        variables = element.get("deploymentEnvironmentVariables", {}).get("runtimeVariables", {})
        for name in variables:
            variables[name] = REDACTED
    return hidden


# -- what the supervisor reports, kept in the store -------------------------------------------------


class StoreEvents:
    """The supervisor's events written to the store: statuses, their history, logs, samples, removal."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._log_count = 0
        self._lock = threading.Lock()

    def status(self, deployment_id: str, state: str, message: str) -> None:
        with self.store.transaction() as db:
            row = db.execute("SELECT data FROM entity WHERE kind = ? AND id = ?",
                             (STATUS_KIND, deployment_id)).fetchone()
            if row is None:
                return  # removed meanwhile
            status = json.loads(row["data"])
            if status.get("state") == "TERMINATING" and state != "TERMINATING":
                return  # a late report from a process being stopped
            changed = now()
            status.update(state=state, message=message, lastModifiedTime=changed)
            db.execute("UPDATE entity SET data = ? WHERE kind = ? AND id = ?",
                       (json.dumps(status, separators=(",", ":")), STATUS_KIND, deployment_id))
            db.execute("INSERT INTO deployment_state VALUES (?, ?, ?, ?)", (deployment_id, changed, state, message))

    def log(self, deployment_id: str, source: str, text: str) -> None:
        with self.store.transaction() as db:
            db.execute("INSERT INTO deployment_log (deployment_id, time, source, text) VALUES (?, ?, ?, ?)",
                       (deployment_id, now(), source, text))
        with self._lock:
            self._log_count += 1
            trim = self._log_count % 500 == 0
        if trim:
            with self.store.transaction() as db:
                db.execute("DELETE FROM deployment_log WHERE deployment_id = ? AND seq <= (SELECT seq FROM "
                           "deployment_log WHERE deployment_id = ? ORDER BY seq DESC LIMIT 1 OFFSET ?)",
                           (deployment_id, deployment_id, LOG_LINES_KEPT))

    def sample(self, deployment_id: str, experiment_id: str, rss_bytes: int, cpu_seconds: float) -> None:
        with self.store.transaction() as db:
            db.execute("INSERT INTO deployment_sample VALUES (?, ?, ?, ?, ?)",
                       (deployment_id, experiment_id, now(), rss_bytes, cpu_seconds))

    def removed(self, deployment_id: str) -> None:
        with self.store.transaction() as db:
            _forget(db, deployment_id)


def _forget(db: sqlite3.Connection, deployment_id: str) -> None:
    db.execute("DELETE FROM entity WHERE kind IN (?, ?, ?) AND id = ?",
               (STORAGE_KIND, DEPLOYER_KIND, STATUS_KIND, deployment_id))
    for table in ("deployment_model", "deployment_log", "deployment_state", "deployment_sample"):
        db.execute(f"DELETE FROM {table} WHERE deployment_id = ?", (deployment_id,))
    for hook in DEPLOYMENT_REMOVE_HOOKS:
        hook(db, deployment_id)


def restore(store: Store, supervisor: Supervisor) -> None:
    """At start: run every stored deployment again, and finish the removals a stop cut short."""
    with store.reading() as db:
        rows = db.execute("SELECT d.data AS deployer, s.data AS status FROM entity d JOIN entity s "
                          "ON s.kind = ? AND s.id = d.id WHERE d.kind = ? ORDER BY d.created_time",
                          (STATUS_KIND, DEPLOYER_KIND)).fetchall()
    for row in rows:
        deployer = json.loads(row["deployer"])
        if json.loads(row["status"]).get("state") == "TERMINATING":
            with store.transaction() as db:
                _forget(db, deployer["id"])
            continue
        try:
            spec = _spec(deployer, _names(store, deployer))
        except (KeyError, ValueError) as e:  # written by an older sandbox without a runnable composition
            StoreEvents(store).status(deployer["id"], "FAILED", f"this deployment cannot be restarted: {e}")
            continue
        StoreEvents(store).status(deployer["id"], "PREPARING", "the sandbox restarted; starting the scorers again")
        supervisor.apply(spec)


def supervisor_artifacts(store: Store) -> Callable[[str], Iterator[bytes]]:
    """What the supervisor reads an artifact's bytes with."""
    return lambda artifact_id: artifact_chunks(store, artifact_id)


def leave_deleted_project(call: Call, db: sqlite3.Connection, project_id: str) -> None:
    """A deleted project's deployments go with it; the supervisor then stops their processes."""
    ids = [r["id"] for r in db.execute("SELECT id FROM entity WHERE kind = ? AND project_id = ?",
                                       (DEPLOYER_KIND, project_id))]
    for deployment_id in ids:
        _forget(db, deployment_id)
    if ids and call.supervisor is not None:
        supervisor = call.supervisor
        # After the deleting transaction: stopping takes seconds and needs no lock.
        threading.Thread(target=lambda: [supervisor.remove(i) for i in ids], daemon=True).start()



def deployments_serving(store: Store, experiment_ids: Sequence[str]) -> dict[str, str]:
    """Which of these experiments a deployment serves: experiment id -> a deployment id."""
    with store.reading() as db:
        rows = db.execute("SELECT experiment_id, deployment_id FROM deployment_model "
                          "WHERE experiment_id IN (SELECT value FROM json_each(?))",
                          (json.dumps(list(experiment_ids)),)).fetchall()
    return {r["experiment_id"]: r["deployment_id"] for r in rows}


# -- storage DeploymentService ---------------------------------------------------------------


def _in_project(call: Call, kind: str, message: str, project_id: str) -> ListQuery:
    require_project(call, project_id)
    return ListQuery(kind=kind, message=message, where="e.project_id = ?", params=[project_id])


def _readable(call: Call, kind: str, message: str) -> ListQuery:
    where, params = readable_projects_sql(call)
    return ListQuery(kind=kind, message=message, where=where, params=params)


@handles("storage.deployment.get_deployment")
def get_deployment(call: Call, request: Any) -> dict[str, Any]:
    return {"deployment": deployment_view(call, request.deployment_id, STORAGE_KIND)}


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


# -- storage's own deploy calls, on the deployer's machinery --------------------------------------

_MODE_OF_TYPE = {v: k for k, v in _TRAFFIC_TYPES.items()}


def _element_for(call: Call, experiment_id: str, field: str, keep: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A deployer element serving the experiment: the one ``keep`` has for it, or profiling's first suggestion."""
    if experiment_id in keep:
        return {k: v for k, v in keep[experiment_id].items() if k != "weight"}
    suggestions = _suggested_compositions(call, experiment_id, field)
    if not suggestions:
        raise invalid_argument(f"{field}: experiment {experiment_id!r} has no uploaded artifact that a runtime "
                               "serves; upload its model (e.g. an MLflow model zip) first")
    return {"deploymentComposition": suggestions[0]}


def _shape(call: Call, storage: dict[str, Any], keep: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The deployer's single/shadow/split field for a storage deployment's experiment, type and secondary scorers."""
    kind = storage.get("type") or "DEPLOYMENT_TYPE_UNSPECIFIED"
    kind = "SINGLE_MODEL" if kind == "DEPLOYMENT_TYPE_UNSPECIFIED" else kind
    mode = _MODE_OF_TYPE.get(kind)
    if mode is None:
        raise invalid_argument(f"type must be one of {', '.join(_MODE_OF_TYPE)}, not {kind!r}")
    secondary = storage.get("secondaryScorer", [])
    if mode == "single" and secondary:
        raise invalid_argument("a SINGLE_MODEL deployment takes no secondary_scorer; use SPLIT_TRAFFIC or "
                               "SHADOW_TRAFFIC")
    if mode == "shadow" and len(secondary) != 1:
        raise invalid_argument(f"a SHADOW_TRAFFIC deployment takes one secondary_scorer, got {len(secondary)}")
    if mode == "split" and not secondary:
        raise invalid_argument("a SPLIT_TRAFFIC deployment takes one or more secondary_scorer, each with its fraction")
    primary = _element_for(call, storage.get("experimentId", ""), "experiment_id", keep)
    others = [_element_for(call, s.get("experimentId", ""), f"secondary_scorer[{i}].experiment_id", keep)
              for i, s in enumerate(secondary)]
    if mode == "single":
        return {"singleDeployment": primary}
    if mode == "shadow":
        return {"shadowDeployment": {"primaryElement": primary, "secondaryElement": others[0]}}
    fractions = [float(s.get("fraction", 0)) for s in secondary]
    weights = [max(1, round(100 * f)) for f in fractions]  # hundredths: a sliver still gets some traffic
    if any(f <= 0 for f in fractions) or sum(weights) >= 100:
        raise invalid_argument("secondary_scorer fractions must each be above 0 and together below 1 (the primary "
                               f"experiment takes the rest, at least 0.01); got {fractions}")
    return {"splitDeployment": {"splitElements": [{**primary, "weight": 100 - sum(weights)},
                                                  *({**e, "weight": w} for e, w in zip(others, weights, strict=True))]}}


def _elements_by_experiment(deployer: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["deploymentComposition"]["experimentId"]: e for e in _elements(deployer, _mode(deployer))}


@handles("storage.deployment_environment.deploy")
def deploy(call: Call, request: Any) -> dict[str, Any]:
    environment = stored_environment(call, request.deployment_environment_id, write=True)
    storage = request.to_wire()
    if not storage.get("experimentId"):
        raise invalid_argument("experiment_id is required")
    deployer = create_deployer(call, {"projectId": environment["projectId"], "deploymentEnvironmentId": environment["id"],
                              **_shape(call, storage, {})})
    return {"deployment": _storage_view(deployer)}


@handles("storage.deployment.undeploy")
def undeploy(call: Call, request: Any) -> None:
    delete_deployer(call, request.deployment_id, "deployment_id")


_STORAGE_UPDATABLE = {"experiment_id": "experimentId", "type": "type", "secondary_scorer": "secondaryScorer"}


@handles("storage.deployment.update_deployment")
def update_deployment(call: Call, request: Any) -> dict[str, Any]:
    given = _wire(request.deployment)
    if not given.get("id"):
        raise invalid_argument("deployment.id is required")
    mask = [n.strip() for n in request.update_mask.split(",") if n.strip()]
    by_any_name = {**_STORAGE_UPDATABLE, **{v: v for v in _STORAGE_UPDATABLE.values()}}
    unknown = [n for n in mask if n not in by_any_name]
    if unknown:
        raise invalid_argument(f"update_mask names {unknown[0]!r}, which cannot be updated here; updatable: "
                               f"{', '.join(_STORAGE_UPDATABLE)} (options such as security are the deployer's: "
                               "UpdateModelDeployment)")
    fields = [by_any_name[n] for n in mask] or [k for k in _STORAGE_UPDATABLE.values() if k in given]
    if not fields:
        raise invalid_argument(f"nothing to update: set one of {', '.join(_STORAGE_UPDATABLE)}")

    def new_shape(current: dict[str, Any]) -> dict[str, Any]:
        storage = _storage_view(current)
        for key in fields:
            storage[key] = given.get(key, [] if key == "secondaryScorer" else "")
        return _shape(call, storage, _elements_by_experiment(current))

    deployer = update_deployer(call, given["id"], new_shape, list(MODE_FIELDS.values()))
    return {"deployment": _storage_view(deployer)}


# -- statuses --------------------------------------------------------------------------------


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
    return {"deploymentStatus": _with_scorer(call, deployment_view(call, request.deployment_id, STATUS_KIND))}


@handles("deployer.deployment_status.list_deployment_statuses")
def list_deployment_statuses(call: Call, request: Any) -> dict[str, Any]:
    query = _in_project(call, STATUS_KIND, "DeployDeploymentStatus", request.project_id)
    items, token = list_page(call, query, request)
    return page_response("deploymentStatus", [_with_scorer(call, s) for s in items], token)


# -- logs --------------------------------------------------------------------------------------------


def _deployment_of_parent(call: Call, parent: str) -> dict[str, Any]:
    if not parent:
        raise invalid_argument("parent is required: the deployment id, or "
                               "projects/{project}/environments/{environment}/deployments/{deployment}")
    deployer = deployment_view(call, parent.rsplit("/", 1)[-1], field="parent")
    if "/" in parent and parent != resource_name(deployer):
        raise not_found("deployment", parent)
    return deployer


@handles("deployer.log.list_log_entries")
def list_log_entries(call: Call, request: Any) -> dict[str, Any]:
    deployer = _deployment_of_parent(call, request.parent)
    if request.max_lines < 0 or request.page_size < 0:
        raise invalid_argument("max_lines and page_size must not be negative")
    try:
        after = int(request.page_token or 0)
    except ValueError:
        raise invalid_argument("page_token is not a token this server issued") from None
    where, params = "deployment_id = ?", [deployer["id"]]
    if request.filter:
        where += " AND instr(lower(source || ' ' || text), lower(?)) > 0"
        params.append(request.filter)
    with call.store.reading() as db:
        if request.max_lines:
            first = db.execute(f"SELECT seq FROM deployment_log WHERE {where} ORDER BY seq DESC LIMIT 1 OFFSET ?",
                               [*params, request.max_lines - 1]).fetchone()
            after = max(after, first["seq"] - 1 if first else 0)
        size = min(request.page_size or 1000, 1000)
        rows = db.execute(f"SELECT seq, time, source, text FROM deployment_log WHERE {where} AND seq > ? "
                          "ORDER BY seq LIMIT ?", [*params, after, size + 1]).fetchall()
    name = resource_name(deployer)
    entries = [{"name": f"{name}/logEntries/{r['seq']}", "textPayload": f"{r['time']} [{r['source']}] {r['text']}"}
               for r in rows[:size]]
    token = str(rows[size - 1]["seq"]) if len(rows) > size else ""
    return {"logEntries": entries, **({"nextPageToken": token} if token else {})}


# -- catalogs, environments and profiling ------------------------------------------------------------


@handles("deployer.composition.list_artifact_compositions")
def list_artifact_compositions(call: Call, request: None) -> dict[str, Any]:
    return {"artifactComposition": CATALOGS.compositions()}


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


@handles("deployer.profiling.list_suggested_scoring_compositions")
def list_suggested_scoring_compositions(call: Call, request: Any) -> dict[str, Any]:
    suggestions = _suggested_compositions(call, request.experiment_id)
    items, token = _static_page(suggestions, request.page_size, request.page_token)
    return {"deploymentCompositions": items, **({"nextPageToken": token} if token else {})}


def _suggested_compositions(call: Call, experiment_id: str, field: str = "experiment_id") -> list[dict[str, Any]]:
    """Every composition that can serve the experiment's uploaded artifacts, the best first."""
    experiment = find_experiment(call, experiment_id, field=field)
    with call.store.reading() as db:
        artifacts = [a for a in _experiment_artifacts(db, experiment.id) if a.get("state") == "AVAILABLE"]
    runnable = set(runnable_runtimes())
    suggestions = []
    for artifact in artifacts:
        for row in CATALOGS.artifacts:
            if row["artifact_type"] != artifact.get("type"):
                continue
            for runtime in CATALOGS.runtimes_of(MODEL_TYPE_OF_ARTIFACT.get(row["artifact_type"])):
                suggestions.append({
                    "experimentId": experiment.id, "artifactId": artifact["id"],
                    "deployableArtifactTypeName": row["deployable_artifact_type_name"],
                    "artifactProcessorName": row["artifact_processor_name"], "runtimeName": runtime["runtime_name"]})
    # What the sandbox can run first, newest runtime (last in the seed's table) first among those.
    return sorted(reversed(suggestions), key=lambda s: s["runtimeName"] not in runnable)


_MEBI = 1024 * 1024


@handles("deployer.profiling.get_suggested_scoring_resource_spec")
def get_suggested_scoring_resource_spec(call: Call, request: Any) -> dict[str, Any]:
    composition = request.deployment_composition
    if composition is None or not composition.experiment_id:
        raise invalid_argument("deployment_composition.experiment_id is required")
    experiment = find_experiment(call, composition.experiment_id)
    if composition.runtime_name and (reason := cannot_run(composition.runtime_name)):
        raise failed_precondition(reason)
    workers = request.workers or 1
    if workers < 0:
        raise invalid_argument("workers must not be negative")
    with call.store.reading() as db:
        measured = db.execute("SELECT max(rss_bytes) FROM deployment_sample WHERE experiment_id = ?",
                              (experiment.id,)).fetchone()[0]
        sizes = [int(a.get("size", 0)) for a in _experiment_artifacts(db, experiment.id)
                 if not composition.artifact_id or a["id"] == composition.artifact_id]
    # Unmeasured: a scorer's own footprint (Python, pandas, MLflow: about 250 MiB) plus the model at
    # ten times its zipped size; measured: the largest resident size seen, with a quarter more.
    memory = int(measured * 1.25) if measured else 250 * _MEBI + 10 * max(sizes or [0])
    request_mib = -(-memory // _MEBI)
    spec = {"kubernetesResourceRequirement": {
        "requests": {"cpu": f"{250 * workers}m", "memory": f"{request_mib}Mi"},
        "limits": {"cpu": str(workers), "memory": f"{2 * request_mib}Mi"}}, "replicas": 1}
    return {"kubernetesResourceSpec": spec}


@handles("deployer.kubernetes_configuration.discover_kubernetes_configuration_shortcut")
def discover_kubernetes_configuration_shortcut(call: Call, request: None) -> dict[str, Any]:
    # The sandbox's environment has no node pools: no affinity or toleration to choose from.
    return {"kubernetesAffinityShortcuts": [], "kubernetesTolerationShortcuts": []}


@handles("deployer.environment.list_environments")
def list_environments(call: Call, request: Any) -> dict[str, Any]:
    environment = {
        "name": TARGET_NAME, "displayName": "Sandbox", "type": "KUBERNETES",
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
    if request.parent not in ("", TARGET_NAME):
        raise not_found("deployment environment", request.parent)
    profiles = [
        {"name": p["name"], "displayName": p["displayName"], "description": p["description"],
         "isDefault": p.get("isDefault", False), "kubernetesOption": {"kubernetesResourceSpec": _resource_spec(p)}}
        for p in _PROFILES
    ]
    items, token = _static_page(profiles, request.page_size, request.page_token)
    return {"deploymentProfiles": items, **({"nextPageToken": token} if token else {})}

