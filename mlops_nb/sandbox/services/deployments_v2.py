"""The workspaces generation's deployer (``/deployer/v2``), over the legacy deployer's deployments.

One store, one supervisor: a deployment made through either face is the same deployment.
A workspace is a project, so a deployment ``D`` of project ``P`` is
``workspaces/P/deployments/D`` here and ``projects/P/environments/E/deployments/D`` (E its storage
environment) to the legacy face, with the same id; both read and write the legacy deployer's
record (``services/deployments.py``), converted field by field:

* a ``V2Deployment``'s ``single``/``shadow``/``split`` elements are the legacy elements, each
  ``deploymentComposition`` naming ``deployableArtifactType``, ``artifactProcessor`` and
  ``runtime`` (a runtime id, or ``workspaces/<W>/runtimes/<id>``) where the legacy one names
  ``...Name``; resources, environment variables and weights carry over. ``external``
  deployments (a proxy in front of a scorer elsewhere) are refused (FAILED_PRECONDITION): the
  sandbox runs its own scorers.
* ``securities`` (or the older single ``security``): a passphrase (``PLAINTEXT`` kept as sent
  and read back; ``PBKDF2`` or ``BCRYPT`` hashed by the sandbox with bcrypt and never read back:
  the entry reads ``hashAlgorithm: BCRYPT``), token authentication (OIDC: a sandbox access token
  of a user who may read the workspace), or ``disabledSecurity``. Entries get the ids ``1``
  (passphrase) and ``2`` (token); updates take the whole list (``deployment.securities``) or
  per-entry paths (``deployment.securities.<id>``, ``deployment.securities.+<N>``). A deployment
  keeps at most one passphrase and one token entry; server-generated API keys are refused
  (INVALID_ARGUMENT). With both, the scoring URL takes either.
* ``monitoringOptions.enabled`` is the legacy ``monitor.enable``; ``cors`` is ``customCors``.
* Create, update (PATCH with ``updateMask``: ``display_name``, ``description``, and the paths
  1.6.5 writes, ``deployment.securities``, ``deployment.kubernetes_resource_spec``,
  ``deployment.environment_variables``, ``deployment.cors``, ``deployment.monitoring``,...) and
  delete go through the legacy create/update/delete path, so checks, revisions and the
  supervisor are the same.

Statuses are ``.../deployments/D/status`` (the legacy states; ``UNHEALTY`` reads
``UNHEALTHY``, and a deployment at zero replicas reads ``STOPPED``), metadata
``.../deployments/D/metadata`` with the scoring interface ``{gateway}/D/model/score`` (``sample_request``, ``capabilities``; ``schema`` and ``/D/readyz``
beside it, as 1.6.5 derives them from the score URL's first segment): the same scorers as the
legacy ``{gateway}/deployments/D/model/...``. ``generateLogs`` stores the deployment's log lines
as a zip artifact of the workspace (one ``<source>.log`` per source, lines ``TIME [SOURCE] TEXT``;
type ``deployment/logs``, location the deployment's name), replacing the one an earlier call made.

Endpoints are the legacy endpoints (``services/endpoints.py``), ``workspaces/P/endpoints/E``
targeting ``workspaces/P/deployments/D``; a new one lives in its target's environment (the
project's DEV one when it has none). Pause and resume set the replicas of every element to 0
and back (the legacy ``replicas`` rule: 0 runs no scorer); ``retry`` rolls a FAILED deployment
out again. Not implemented (the gateway answers UNIMPLEMENTED): schedules, on-demand scaling,
runtime image upgrades, deleting monitoring data alone, the profiling suggestion.
"""

from __future__ import annotations

import io
import json
import re
import sqlite3
import zipfile
from collections.abc import Callable
from typing import Any

from mlops_nb.api import API, CATALOGS
from mlops_nb.sandbox.rpc import (
    Call,
    RpcError,
    failed_precondition,
    handles,
    invalid_argument,
    new_id,
    not_found,
    not_implemented,
    now,
)
from mlops_nb.sandbox.runtime.runtimes import cannot_run
from mlops_nb.sandbox.services import endpoints as legacy_endpoints
from mlops_nb.sandbox.services.access import project_role, readable_projects_sql, require_project
from mlops_nb.sandbox.services.artifacts import delete_artifacts, write_artifact_bytes
from mlops_nb.sandbox.services.deployments import (
    DEPLOYER_KIND,
    MODE_FIELDS,
    MODEL_TYPE_OF_ARTIFACT,
    STATUS_KIND,
    create_deployer,
    delete_deployer,
    deployment_view,
    elements_of,
    redacted,
    resource_name,
    update_deployer,
)
from mlops_nb.sandbox.services.environments import default_environment_id
from mlops_nb.sandbox.services.rest import memory_count, memory_list, public_fields, workspace_parent
from mlops_nb.wire.messages import message_class, parse_timestamp

__all__ = ["MIGRATIONS", "deployment_name", "forget_pause", "legacy_deployment", "scoring_root", "v2_deployment"]

MIGRATIONS: list[tuple[str, str]] = [
    # What PauseDeployment scaled to zero, restored by ResumeDeployment.
    ("2300_deployment_pause", "CREATE TABLE deployment_pause (deployment_id TEXT PRIMARY KEY, replicas TEXT NOT NULL);"),
]

_NAME = re.compile(r"^workspaces/([^/]+)/deployments/([^/]+)$")
_ENDPOINT = re.compile(r"^workspaces/([^/]+)/endpoints/([^/]+)$")
_V2_MODES = {"single": "singleDeployment", "shadow": "shadowDeployment", "split": "splitDeployment"}
_STATES = {"UNHEALTY": "UNHEALTHY"}  # the legacy enum's spelling
PASSPHRASE_ID, TOKEN_ID = "1", "2"


# -- names ---------------------------------------------------------------------------------------


def deployment_name(deployer: dict[str, Any]) -> str:
    """``workspaces/<project id>/deployments/<deployment id>``."""
    return f"workspaces/{deployer['projectId']}/deployments/{deployer['id']}"


def _parse(name: Any, suffix: str = "") -> tuple[str, str]:
    text = str(name or "")
    if suffix:
        if not text.endswith(suffix):
            raise invalid_argument(f"name must look like 'workspaces/<workspace>/deployments/<deployment>{suffix}', "
                                   f"got {name!r}")
        text = text[:-len(suffix)]
    match = _NAME.match(text)
    if match is None:
        raise invalid_argument(f"name must look like 'workspaces/<workspace>/deployments/<deployment>{suffix}', "
                               f"got {name!r}")
    return match.group(1), match.group(2)


def _deployer(call: Call, name: Any, *, suffix: str = "", write: bool = False) -> dict[str, Any]:
    """The legacy deployer view of the deployment ``name`` names, once the caller may read (or change) it."""
    project_id, deployment_id = _parse(name, suffix)
    deployer = deployment_view(call, deployment_id, write=write, field="name")
    if deployer["projectId"] != project_id:
        raise not_found("deployment", str(name))
    return deployer


# -- V2Deployment <-> the legacy deployer view ------------------------------------------------------------


def _v2_element(project_id: str, element: dict[str, Any], mode: str, total: int) -> dict[str, Any]:
    composition = element["deploymentComposition"]
    runtime = composition.get("runtimeName", "")
    spec = element.get("kubernetesResourceSpec", {})
    requirement = spec.get("kubernetesResourceRequirement", {})
    replicas = spec.get("replicas", 1) if "replicas" in spec else 1
    out: dict[str, Any] = {
        "deploymentComposition": {
            "experimentId": composition.get("experimentId", ""),
            "deployableArtifactType": composition.get("deployableArtifactTypeName", ""),
            "artifactProcessor": composition.get("artifactProcessorName", ""),
            "runtime": runtime,
            "runtimeImage": f"workspaces/{project_id}/runtimeImages/{runtime}/versions/1",
            "runtimeImageUpgradeAvailable": False},
        "kubernetesResourceSpec": {
            "kubernetesResourceRequirements": {"requests": requirement.get("requests", {}),
                                               "limits": requirement.get("limits", {})},
            "replicas": replicas},
        "kubernetesConfigShortcut": {},
        "runtimeEnvironmentVariables": dict(element.get("deploymentEnvironmentVariables", {})
                                            .get("runtimeVariables", {})),
        "effectiveReplicas": max(replicas, 0),
    }
    if mode == "split":
        out["weight"] = element.get("weight", 0)
        out["effectivePercentage"] = 100.0 * element.get("weight", 0) / (total or 1)
    return out


def _v2_securities(deployer: dict[str, Any], hide: bool) -> list[dict[str, Any]]:
    security = deployer.get("security", {})
    passphrase = security.get("passphrase", {})
    entries = []
    if passphrase.get("hash"):
        plain = passphrase.get("passphraseHashType") == "PASSPHRASE_HASH_TYPE_PLAINTEXT"
        entries.append({"id": PASSPHRASE_ID, "passphrase": {
            "passphrase": ("<redacted>" if hide else passphrase["hash"]) if plain else "",
            "hashAlgorithm": "PLAINTEXT" if plain else "BCRYPT"}})
    if security.get("tokenAuth", {}).get("authenticationProtocol") == "AUTHORIZATION_PROTOCOL_OIDC":
        entries.append({"id": TOKEN_ID, "tokenAuth": {"authenticationProtocol": "OIDC"}})
    return entries or [{"id": PASSPHRASE_ID, "disabledSecurity": {}}]


def v2_deployment(call: Call, deployer: dict[str, Any]) -> dict[str, Any]:
    """The ``V2Deployment`` wire JSON of a legacy deployer view (secrets hidden from a VIEWER)."""
    hide = project_role(call, require_project(call, deployer["projectId"])) == "VIEWER"
    if hide:
        deployer = redacted(deployer)
    elements = elements_of(deployer)
    mode = next(m for m, key in _V2_MODES.items() if deployer.get(key))
    total = sum(e.get("weight", 0) for e in elements)
    v2 = [_v2_element(deployer["projectId"], e, mode, total) for e in elements]
    replicas = [e["kubernetesResourceSpec"]["replicas"] for e in v2]
    paused = _paused(call, deployer["id"]) is not None
    out: dict[str, Any] = {
        "name": deployment_name(deployer), "displayName": deployer.get("displayName", ""),
        "description": deployer.get("description", ""), "etag": deployer.get("lastModifiedTime", ""),
        "createTime": deployer["createdTime"], "updateTime": deployer["lastModifiedTime"],
        "creator": f"users/{deployer['userInfo']['ownerId']}",
        "securities": _v2_securities(deployer, hide),
        "monitoringOptions": {"enabled": bool(deployer.get("monitor", {}).get("enable"))},
        "namespace": "mlops-nb-sandbox", "paused": paused,
        "canPause": not paused and any(r > 0 for r in replicas), "canResume": paused or not any(r > 0 for r in replicas),
    }
    if mode == "single":
        out["single"] = v2[0]
    elif mode == "shadow":
        out["shadow"] = {"primaryElement": v2[0], "secondaryElement": v2[1]}
    else:
        out["split"] = {"splitElements": v2}
    if deployer.get("customCors", {}).get("origins"):
        out["cors"] = {"origins": list(deployer["customCors"]["origins"])}
    return out


def _runtime_id(value: Any, where: str) -> str:
    text = str(value or "")
    parts = text.split("/")
    if len(parts) == 4 and parts[0] == "workspaces" and parts[2] == "runtimes":
        return parts[3]
    if "/" in text:
        raise invalid_argument(f"{where}.runtime must be a runtime id or 'workspaces/<workspace>/runtimes/<id>', "
                               f"got {value!r}")
    return text


def _legacy_element(element: dict[str, Any], where: str, *, weight: bool = False) -> dict[str, Any]:
    composition = element.get("deploymentComposition") or {}
    if not composition:
        raise invalid_argument(f"{where}.deployment_composition is required")
    out: dict[str, Any] = {"deploymentComposition": {
        "experimentId": composition.get("experimentId", ""),
        "deployableArtifactTypeName": composition.get("deployableArtifactType", ""),
        "artifactProcessorName": composition.get("artifactProcessor", ""),
        "runtimeName": _runtime_id(composition.get("runtime"), f"{where}.deployment_composition")}}
    spec = element.get("kubernetesResourceSpec") or {}
    requirement = spec.get("kubernetesResourceRequirements") or {}
    legacy_spec: dict[str, Any] = {"kubernetesResourceRequirement": {
        k: dict(v) for k in ("requests", "limits") if (v := requirement.get(k))}}
    legacy_spec["replicas"] = spec["replicas"] if spec.get("replicas") is not None else 1
    out["kubernetesResourceSpec"] = legacy_spec
    if element.get("runtimeEnvironmentVariables"):
        out["deploymentEnvironmentVariables"] = {"runtimeVariables": dict(element["runtimeEnvironmentVariables"])}
    if weight:
        out["weight"] = element.get("weight", 0)
    return out


def _legacy_shape(v2: dict[str, Any]) -> dict[str, Any]:
    """The legacy single/shadow/split field of a V2Deployment's elements."""
    if v2.get("external"):
        raise failed_precondition("the sandbox runs no external deployments (a proxy to a scorer elsewhere); "
                                  "deploy a model with single, shadow or split")
    given = [m for m in _V2_MODES if v2.get(m)]
    if len(given) != 1:
        raise invalid_argument(f"a deployment sets exactly one of single, shadow and split (got "
                               f"{', '.join(given) or 'none'})")
    mode = given[0]
    if mode == "single":
        return {"singleDeployment": _legacy_element(v2["single"], "single")}
    if mode == "shadow":
        shadow = v2["shadow"]
        return {"shadowDeployment": {
            "primaryElement": _legacy_element(shadow.get("primaryElement") or {}, "shadow.primary_element"),
            "secondaryElement": _legacy_element(shadow.get("secondaryElement") or {}, "shadow.secondary_element")}}
    return {"splitDeployment": {"splitElements": [
        _legacy_element(e, f"split.split_elements[{i}]", weight=True)
        for i, e in enumerate(v2["split"].get("splitElements") or [])]}}


def _bcrypt(passphrase: str) -> str:
    import bcrypt

    return bcrypt.hashpw(passphrase.encode(), bcrypt.gensalt(rounds=10)).decode()


def _legacy_security(v2: dict[str, Any], current: dict[str, Any] | None) -> dict[str, Any]:
    """The legacy ``security`` of a V2Deployment's ``securities`` (or ``security``)."""
    entries = v2.get("securities") or ([v2["security"]] if v2.get("security") else [])
    kept = (current or {}).get("security", {}).get("passphrase", {})
    passphrase: dict[str, Any] = {"hash": "", "passphraseHashType": "PASSPHRASE_HASH_TYPE_UNSPECIFIED"}
    token: dict[str, Any] = {}
    seen = []
    for i, entry in enumerate(entries):
        where = f"securities[{i}]"
        if entry.get("apiKey") is not None:
            raise invalid_argument(f"{where}.api_key: the sandbox generates no API keys; use a passphrase or "
                                   "token_auth")
        if entry.get("passphrase") is not None:
            seen.append("passphrase")
            given = entry["passphrase"]
            plain, algorithm = given.get("passphrase", ""), given.get("hashAlgorithm") or "PLAINTEXT"
            if not plain and current is not None and entry.get("id") == PASSPHRASE_ID and kept.get("hash"):
                passphrase = dict(kept)  # an entry sent back without its passphrase keeps the stored one
            elif not plain:
                raise invalid_argument(f"{where}.passphrase.passphrase is required")
            elif algorithm == "PLAINTEXT":
                passphrase = {"hash": plain, "passphraseHashType": "PASSPHRASE_HASH_TYPE_PLAINTEXT"}
            elif algorithm in ("BCRYPT", "PBKDF2"):
                hashed = plain if algorithm == "BCRYPT" and plain.startswith(("$2a$", "$2b$", "$2y$")) else _bcrypt(plain)
                passphrase = {"hash": hashed, "passphraseHashType": "PASSPHRASE_HASH_TYPE_BCRYPT"}
            else:
                raise invalid_argument(f"{where}.passphrase.hash_algorithm {algorithm!r} is not one of PLAINTEXT, "
                                       "BCRYPT, PBKDF2")
        elif entry.get("tokenAuth") is not None:
            seen.append("token_auth")
            protocol = entry["tokenAuth"].get("authenticationProtocol", "")
            if protocol != "OIDC":
                raise invalid_argument(f"{where}.token_auth.authentication_protocol must be OIDC, got {protocol!r}")
            token = {"authenticationProtocol": "AUTHORIZATION_PROTOCOL_OIDC"}
        elif entry.get("disabledSecurity") is not None:
            seen.append("disabled_security")
        else:
            raise invalid_argument(f"{where} sets none of passphrase, token_auth, disabled_security")
    for kind in set(seen):
        if seen.count(kind) > 1:
            raise invalid_argument(f"the sandbox keeps one {kind} entry per deployment, got {seen.count(kind)}")
    if "disabled_security" in seen and len(seen) > 1:
        raise invalid_argument("disabled_security cannot be combined with other security entries")
    return {"passphrase": passphrase, **({"tokenAuth": token} if token else {})}


def legacy_deployment(v2: dict[str, Any], current: dict[str, Any] | None = None) -> dict[str, Any]:
    """The legacy deployer fields of a V2Deployment (``current``: the deployment it updates)."""
    out: dict[str, Any] = {**_legacy_shape(v2), "security": _legacy_security(v2, current),
                           "displayName": v2.get("displayName") or "", "description": v2.get("description") or ""}
    monitoring = v2.get("monitoringOptions")
    out["monitor"] = {"enable": bool(monitoring.get("enabled"))} if monitoring else {"enable": False}
    if (v2.get("cors") or {}).get("origins"):
        out["customCors"] = {"origins": list(v2["cors"]["origins"])}
    return out


# -- deployments ---------------------------------------------------------------------------------------


@handles("deployer.deployment.create_deployment", generation="workspaces")
def create_deployment(call: Call, request: dict[str, Any]) -> dict[str, Any]:
    project_id = workspace_parent(call, request.get("parent"), write=True)
    given = request.get("deployment") or {}
    if not given:
        raise invalid_argument("deployment is required (display_name, one of single/shadow/split, securities)")
    if given.get("monitoringOptions") is None:
        given = {**given, "monitoringOptions": {"enabled": True}}
    deployer = create_deployer(call, {"projectId": project_id, **legacy_deployment(given)})
    return {"deployment": v2_deployment(call, deployer)}


@handles("deployer.deployment.get_deployment", generation="workspaces")
def get_deployment(call: Call, request: dict[str, Any]) -> dict[str, Any]:
    return {"deployment": v2_deployment(call, _deployer(call, request.get("name")))}


# REST filter/orderBy names of a deployment (1.6.5's) -> keys of the rows ``_rows`` makes.
_FIELDS = {"display_name": "displayName", "description": "description", "create_time": "createTime",
           "update_time": "updateTime", "creator": "creator", "deployment_type": "_type",
           "deployment_state": "_state", "experiment_ids": "_experiments", "name": "name"}
_TYPES = {"single": "SINGLE", "shadow": "SHADOW", "split": "SPLIT"}


def _rows(call: Call, parent: Any) -> list[dict[str, Any]]:
    """Every deployment of a workspace (``workspaces/-``: of every readable one), with filter keys."""
    if str(parent) == "workspaces/-":
        where, params = readable_projects_sql(call)
    else:
        where, params = "e.project_id = ?", [workspace_parent(call, parent)]
    with call.store.reading() as db:
        rows = db.execute(f"SELECT e.data, s.data AS status FROM entity e LEFT JOIN entity s ON s.kind = ? "
                          f"AND s.id = e.id WHERE e.kind = ? AND {where} ORDER BY e.created_time, e.id",
                          (STATUS_KIND, DEPLOYER_KIND, *params)).fetchall()
    out = []
    for row in rows:
        v2 = v2_deployment(call, json.loads(row["data"]))
        state = json.loads(row["status"] or "{}").get("state", "")
        mode = next(m for m in _TYPES if v2.get(m))
        experiments = [e["deploymentComposition"]["experimentId"] for e in _v2_elements(v2)]
        out.append({**v2, "_type": _TYPES[mode], "_state": _STATES.get(state, state),
                    "_experiments": ",".join(experiments)})
    return out


def _v2_elements(v2: dict[str, Any]) -> list[dict[str, Any]]:
    if v2.get("single"):
        return [v2["single"]]
    if v2.get("shadow"):
        return [v2["shadow"]["primaryElement"], v2["shadow"]["secondaryElement"]]
    return list((v2.get("split") or {}).get("splitElements") or [])


@handles("deployer.deployment.list_deployments", generation="workspaces")
def list_deployments(call: Call, request: dict[str, Any]) -> dict[str, Any]:
    page, token = memory_list(_rows(call, request.get("parent")), request, _FIELDS)
    return {"deployments": [public_fields(r) for r in page], "nextPageToken": token}


@handles("deployer.deployment.count_deployments", generation="workspaces")
def count_deployments(call: Call, request: dict[str, Any]) -> dict[str, Any]:
    return {"count": str(memory_count(_rows(call, request.get("parent")), request, _FIELDS))}


# updateMask paths (as 1.6.5 writes them, with or without ``deployment.``) -> what they change.
_SHAPE_PATHS = {"kubernetes_resource_spec", "kubernetes_config_shortcut", "vpa_spec", "pod_disruption_budget",
                "environment_variables", "runtime_environment_variables", "single", "shadow", "split"}
_OTHER_PATHS = {"display_name": "displayName", "description": "description", "securities": "securities",
                "security": "securities", "cors": "cors", "monitoring": "monitoringOptions",
                "monitoring_options": "monitoringOptions"}


def _masked(mask: str) -> tuple[bool, set[str]]:
    """(whether the elements change, which other V2Deployment fields change) for an updateMask."""
    shape, others = False, set()
    for path in filter(None, (p.strip() for p in mask.split(","))):
        short = path.removeprefix("deployment.")
        head = short.split(".")[0]
        if head in _SHAPE_PATHS:
            shape = True
        elif head in _OTHER_PATHS:
            if head in ("securities", "security") and short != head:
                continue  # a per-entry path: see _granular_securities
            others.add(_OTHER_PATHS[head])
        elif head == "external":
            raise failed_precondition("the sandbox runs no external deployments")
        else:
            raise invalid_argument(f"updateMask names {path!r}, which cannot be updated; updatable: display_name, "
                                   f"description, {', '.join(sorted(f'deployment.{p}' for p in _SHAPE_PATHS))}, "
                                   "deployment.securities, deployment.cors, deployment.monitoring")
    return shape, others


def _granular_securities(current: list[dict[str, Any]], given: list[dict[str, Any]], mask: str,
                         ) -> list[dict[str, Any]] | None:
    """The security entries after per-entry mask paths (None when the mask has none): ``<id>`` replaces
    that entry with the body's entry of that id, or deletes it when the body has none; ``+<N>`` inserts
    the body's N entries without an id."""
    paths = [p.strip().removeprefix("deployment.") for p in mask.split(",")]
    paths = [p.split(".", 1)[1] for p in paths if p.startswith(("securities.", "security."))]
    if not paths:
        return None
    entries = {e.get("id", ""): e for e in current if "disabledSecurity" not in e}
    by_id = {e.get("id"): e for e in given if e.get("id")}
    inserts = [e for e in given if not e.get("id")]
    for path in paths:
        if path.startswith("+"):
            if not path[1:].isdigit() or int(path[1:]) != len(inserts):
                raise invalid_argument(f"updateMask path securities.{path} must be +N with N the body's entries "
                                       f"without an id ({len(inserts)})")
            for entry in inserts:
                entries[PASSPHRASE_ID if entry.get("passphrase") is not None else TOKEN_ID] = entry
        elif path not in entries:
            raise not_found("security entry", path)
        elif path in by_id:
            entries[path] = by_id[path]
        else:
            del entries[path]
    return list(entries.values())


def _apply_v2_update(call: Call, deployer: dict[str, Any], given: dict[str, Any], mask: str) -> dict[str, Any]:
    shape, others = _masked(mask)
    if not mask:  # no mask: every field the body sets
        shape = any(given.get(m) for m in _V2_MODES)
        others = {k for k in ("displayName", "description", "securities", "cors", "monitoringOptions") if k in given}
        if "security" in given:
            others.add("securities")
    if not shape and not others and ".securities." not in f".{mask}":
        raise invalid_argument("nothing to update: name fields in update_mask (e.g. display_name)")
    current = v2_deployment(call, deployer)
    updated = dict(current)
    entries = _granular_securities(current["securities"], given.get("securities") or [], mask)
    if entries is not None:
        if "securities" in others:
            raise invalid_argument("updateMask names deployment.securities and per-entry paths "
                                   "(deployment.securities.<id>); use one or the other")
        updated["securities"] = entries
    if shape:
        if not any(given.get(m) for m in _V2_MODES):
            raise invalid_argument("the update_mask changes the deployment's elements: send single, shadow or split")
        for m in _V2_MODES:
            updated.pop(m, None)
        updated.update({m: given[m] for m in _V2_MODES if given.get(m)})
    for key in others:
        if key == "securities" and "securities" not in given and given.get("security"):
            updated["securities"] = [given["security"]]
        elif key in given and given[key] is not None:
            updated[key] = given[key]
        else:
            updated.pop(key, None)
    return legacy_deployment(updated, deployer)


_LEGACY_FIELDS = [*MODE_FIELDS.values(), "security", "displayName", "description", "monitor", "customCors"]


def _update(call: Call, deployer: dict[str, Any], new_values: Callable[[dict[str, Any]], dict[str, Any]]
            ) -> dict[str, Any]:
    updated = update_deployer(call, deployer["id"], new_values, _LEGACY_FIELDS)
    return v2_deployment(call, updated)


@handles("deployer.deployment.update_deployment", generation="workspaces")
def update_deployment(call: Call, request: dict[str, Any]) -> dict[str, Any]:
    given = request.get("deployment") or {}
    name = request.get("deployment.name") or given.get("name")
    deployer = _deployer(call, name, write=True)
    mask = request.get("updateMask") or ""
    return {"deployment": _update(call, deployer, lambda current: _apply_v2_update(call, current, given, mask))}


@handles("deployer.deployment.delete_deployment", generation="workspaces")
def delete_deployment(call: Call, request: dict[str, Any]) -> None:
    deployer = _deployer(call, request.get("name"), write=True)
    delete_deployer(call, deployer["id"], "name")


def _paused(call: Call, deployment_id: str) -> list[int] | None:
    """The replicas a paused deployment's elements had (None: not paused)."""
    with call.store.reading() as db:
        row = db.execute("SELECT replicas FROM deployment_pause WHERE deployment_id = ?", (deployment_id,)).fetchone()
    return json.loads(row["replicas"]) if row else None


def forget_pause(db: sqlite3.Connection, deployment_id: str) -> None:
    """A removed deployment's pause record goes with it (a DEPLOYMENT_REMOVE_HOOKS hook)."""
    db.execute("DELETE FROM deployment_pause WHERE deployment_id = ?", (deployment_id,))


def _set_replicas(call: Call, request: dict[str, Any], pause: bool) -> dict[str, Any]:
    deployer = _deployer(call, request.get("name"), write=True)

    def scaled(current: dict[str, Any]) -> dict[str, Any]:
        v2 = v2_deployment(call, current)
        specs = [e["kubernetesResourceSpec"] for e in _v2_elements(v2)]
        saved = _paused(call, current["id"])
        if pause and saved is None:
            with call.store.transaction() as db:  # joins update_deployer's transaction
                db.execute("INSERT INTO deployment_pause VALUES (?, ?)",
                           (current["id"], json.dumps([s["replicas"] for s in specs])))
            for spec in specs:
                spec["replicas"] = 0
        elif not pause:
            with call.store.transaction() as db:
                forget_pause(db, current["id"])
            for spec, replicas in zip(specs, saved or [0] * len(specs), strict=True):
                spec["replicas"] = replicas if replicas > 0 else max(spec["replicas"], 1)
        return legacy_deployment(v2, current)

    update_deployer(call, deployer["id"], scaled, _LEGACY_FIELDS)
    return {}


@handles("deployer.deployment.pause_deployment", generation="workspaces")
def pause_deployment(call: Call, request: dict[str, Any]) -> dict[str, Any]:
    return _set_replicas(call, request, True)


@handles("deployer.deployment.resume_deployment", generation="workspaces")
def resume_deployment(call: Call, request: dict[str, Any]) -> dict[str, Any]:
    return _set_replicas(call, request, False)


@handles("deployer.deployment.retry_deployment", generation="workspaces")
def retry_deployment(call: Call, request: dict[str, Any]) -> dict[str, Any]:
    deployer = _deployer(call, request.get("name"), write=True)
    state = _status_row(call, deployer).get("state", "")
    if state != "FAILED":
        raise failed_precondition(f"deployment {request.get('name')!r} is {state or 'unknown'}; only a FAILED "
                                  "deployment is retried")
    update_deployer(call, deployer["id"], lambda current: {}, [])  # the supervisor rolls it out again
    return {}


# -- statuses, metadata ----------------------------------------------------------------------------


def _status_row(call: Call, deployer: dict[str, Any]) -> dict[str, Any]:
    with call.store.reading() as db:
        row = db.execute("SELECT data FROM entity WHERE kind = ? AND id = ?", (STATUS_KIND, deployer["id"])).fetchone()
    return json.loads(row["data"]) if row else {}


def _v2_status(call: Call, deployer: dict[str, Any]) -> dict[str, Any]:
    status = _status_row(call, deployer)
    state = status.get("state", "DEPLOYMENT_STATE_UNSPECIFIED")
    message = status.get("message", "")
    stopped = all(e.get("kubernetesResourceSpec", {}).get("replicas", 1) <= 0 for e in elements_of(deployer))
    if stopped and state not in ("FAILED", "TERMINATING"):  # at zero replicas nothing runs: paused or scaled to 0
        state, message = "STOPPED", "no replicas run (paused or scaled to zero); resume it or give it replicas"
    return {"name": f"{deployment_name(deployer)}/status", "state": _STATES.get(state, state),
            "message": message, "updateTime": status.get("lastModifiedTime") or deployer["createdTime"],
            "updatesAllowed": state != "TERMINATING", "lastUpdateOutcome": "LAST_UPDATE_OUTCOME_UNSPECIFIED"}


def scoring_root(call: Call, deployment_id: str) -> str:
    """``{gateway}/<deployment id>``: the scoring API's base as the workspaces face names it."""
    return f"{call.base_url}/{deployment_id}"


def _v2_metadata(call: Call, deployer: dict[str, Any]) -> dict[str, Any]:
    state = _status_row(call, deployer).get("state", "")
    endpoint_state = {"HEALTHY": "ENDPOINT_STATE_READY", "FAILED": "ENDPOINT_STATE_ERROR"}.get(
        state, "ENDPOINT_STATE_PENDING")
    root = f"{scoring_root(call, deployer['id'])}/model"
    return {"name": f"{deployment_name(deployer)}/metadata", "scoringInterface": {
        "score": {"uri": f"{root}/score", "method": "POST"},
        "sampleRequest": {"uri": f"{root}/sample_request", "method": "GET"},
        "capabilities": {"uri": f"{root}/capabilities", "method": "GET"},
        "defaultEndpointState": endpoint_state}}


def _batch_get(call: Call, request: dict[str, Any], suffix: str, view: Callable[..., dict[str, Any]],
               ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    parent = request.get("parent")
    if str(parent) != "workspaces/-":
        workspace_parent(call, parent)
    found, errors = [], {}
    for name in request.get("names") or []:
        try:
            deployer = _deployer(call, name if name.endswith(suffix) else name + suffix, suffix=suffix)
            if str(parent) != "workspaces/-" and not deployment_name(deployer).startswith(f"{parent}/"):
                raise not_found("deployment", name)
            found.append(view(call, deployer))
        except RpcError as e:
            errors[name] = {"code": e.code, "message": e.message}
    return found, errors


@handles("deployer.status.get_deployment_status", generation="workspaces")
def get_deployment_status(call: Call, request: dict[str, Any]) -> dict[str, Any]:
    return {"deploymentStatus": _v2_status(call, _deployer(call, request.get("name"), suffix="/status"))}


@handles("deployer.status.batch_get_deployment_statuses", generation="workspaces")
def batch_get_deployment_statuses(call: Call, request: dict[str, Any]) -> dict[str, Any]:
    found, errors = _batch_get(call, request, "/status", _v2_status)
    return {"deploymentStatuses": found, "errors": errors}


@handles("deployer.metadata.get_deployment_metadata", generation="workspaces")
def get_deployment_metadata(call: Call, request: dict[str, Any]) -> dict[str, Any]:
    return {"deploymentMetadata": _v2_metadata(call, _deployer(call, request.get("name"), suffix="/metadata"))}


@handles("deployer.metadata.batch_get_deployments_metadata", generation="workspaces")
def batch_get_deployments_metadata(call: Call, request: dict[str, Any]) -> dict[str, Any]:
    found, errors = _batch_get(call, request, "/metadata", _v2_metadata)
    return {"deploymentsMetadata": found, "errors": errors}


# -- logs ------------------------------------------------------------------------------------------------


_SOURCE = re.compile(r"[^A-Za-z0-9._-]+")
LOGS_TYPE = "deployment/logs"


@handles("deployer.log.generate_logs", generation="workspaces")
def generate_logs(call: Call, request: dict[str, Any]) -> dict[str, Any]:
    deployer = _deployer(call, request.get("name"))
    since = request.get("sinceTime") or ""
    if since:
        try:
            since = parse_timestamp(since).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        except ValueError:
            raise invalid_argument(f"sinceTime {since!r} is not an RFC 3339 time") from None
    with call.store.reading() as db:
        rows = db.execute("SELECT time, source, text FROM deployment_log WHERE deployment_id = ? AND time >= ? "
                          "ORDER BY seq", (deployer["id"], since)).fetchall()
    files: dict[str, list[str]] = {}
    for r in rows:
        files.setdefault(_SOURCE.sub("_", r["source"]) or "deployment", []).append(
            f"{r['time']} [{r['source']}] {r['text']}")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for source, lines in (files or {"deployment": []}).items():
            archive.writestr(f"{source}.log", "\n".join(lines) + ("\n" if lines else ""))
    created = now()
    name = deployment_name(deployer)
    # One archive per deployment: the one an earlier call made is replaced.
    with call.store.reading() as db:
        earlier = [r["id"] for r in db.execute(
            "SELECT id FROM entity WHERE kind = 'artifact' AND parent_id = ? AND json_extract(data, '$.type') = ? "
            "AND json_extract(data, '$.location') = ?", (deployer["projectId"], LOGS_TYPE, name))]
    delete_artifacts(call.store, earlier)
    artifact = {"id": new_id(), "entityId": deployer["projectId"], "entityType": "PROJECT", "location": name,
                "type": LOGS_TYPE, "state": "EMPTY", "size": "0", "createdTime": created,
                "lastModifiedTime": created, "mimeType": "application/zip"}
    call.store.put("artifact", artifact, project_id=deployer["projectId"], parent_id=deployer["projectId"],
                   owner_id=call.user_id)
    write_artifact_bytes(call.store, artifact["id"], buffer.getvalue())
    return {"artifactId": artifact["id"], "cachedUntilTime": created}


# -- endpoints -----------------------------------------------------------------------------------------------


def _legacy_request(method: str, wire: dict[str, Any]) -> Any:
    return message_class(API.method(method).request).from_wire(wire)


def _legacy_target(call: Call, project_id: str, target: str) -> str:
    if not target:
        return ""
    match = _NAME.match(target)
    if match is None or match.group(1) != project_id:
        raise invalid_argument(f"target {target!r} must be a deployment of workspaces/{project_id} "
                               f"(workspaces/{project_id}/deployments/<id>)")
    return resource_name(deployment_view(call, match.group(2), field="target"))


def _v2_endpoint(call: Call, endpoint: dict[str, Any]) -> dict[str, Any]:
    project_id = endpoint["name"].split("/")[1]
    target = ""
    state = "ENDPOINT_STATE_PENDING"
    if endpoint.get("target"):
        deployment_id = endpoint["target"].rsplit("/", 1)[-1]
        target = f"workspaces/{project_id}/deployments/{deployment_id}"
        status = call.store.get(STATUS_KIND, deployment_id) or {}
        state = {"HEALTHY": "ENDPOINT_STATE_READY", "FAILED": "ENDPOINT_STATE_ERROR"}.get(
            status.get("state", ""), "ENDPOINT_STATE_PENDING")
    return {"name": f"workspaces/{project_id}/endpoints/{endpoint['name'].rsplit('/', 1)[-1]}",
            "displayName": endpoint.get("displayName", ""), "description": endpoint.get("description", ""),
            "path": endpoint.get("path", ""), "target": target, "effectiveTarget": target,
            "createTime": endpoint.get("createTime", ""), "updateTime": endpoint.get("updateTime", ""),
            "state": state, "namespace": "mlops-nb-sandbox"}


def _legacy_endpoint(call: Call, name: Any) -> dict[str, Any]:
    """The legacy endpoint ``workspaces/P/endpoints/E`` names (wire JSON), once the caller may read it."""
    match = _ENDPOINT.match(str(name or ""))
    if match is None:
        raise invalid_argument(f"name must look like 'workspaces/<workspace>/endpoints/<endpoint>', got {name!r}")
    row = call.store.row(legacy_endpoints.KIND, match.group(2))
    if row is None or row["project_id"] != match.group(1):
        raise not_found("endpoint", str(name))
    data = json.loads(row["data"])
    return legacy_endpoints.get_endpoint(call, _legacy_request("deployer.endpoint.get_endpoint",
                                                               {"name": data["name"]}))["endpoint"]


@handles("deployer.endpoint.create_endpoint", generation="workspaces")
def create_endpoint(call: Call, request: dict[str, Any]) -> dict[str, Any]:
    project_id = workspace_parent(call, request.get("parent"), write=True)
    given = request.get("endpoint") or {}
    target = _legacy_target(call, project_id, given.get("target") or "")
    environment = target.split("/")[3] if target else default_environment_id(project_id)
    answer = legacy_endpoints.create_endpoint(call, _legacy_request("deployer.endpoint.create_endpoint", {
        "parent": f"projects/{project_id}/environments/{environment}",
        "endpoint": {"displayName": given.get("displayName") or "", "description": given.get("description") or "",
                     "path": given.get("path") or "", "target": target}}))
    return {"endpoint": _v2_endpoint(call, answer["endpoint"])}


@handles("deployer.endpoint.get_endpoint", generation="workspaces")
def get_endpoint(call: Call, request: dict[str, Any]) -> dict[str, Any]:
    return {"endpoint": _v2_endpoint(call, _legacy_endpoint(call, request.get("name")))}


_ENDPOINT_FIELDS = {"display_name": "displayName", "description": "description", "path": "path",
                    "create_time": "createTime", "update_time": "updateTime", "target": "target", "name": "name"}


def _endpoint_rows(call: Call, parent: Any) -> list[dict[str, Any]]:
    project_id = workspace_parent(call, parent)
    with call.store.reading() as db:
        rows = db.execute("SELECT data FROM entity WHERE kind = ? AND project_id = ? ORDER BY created_time, id",
                          (legacy_endpoints.KIND, project_id)).fetchall()
    return [_v2_endpoint(call, json.loads(r["data"])) for r in rows]


@handles("deployer.endpoint.list_endpoints", generation="workspaces")
def list_endpoints(call: Call, request: dict[str, Any]) -> dict[str, Any]:
    page, token = memory_list(_endpoint_rows(call, request.get("parent")), request, _ENDPOINT_FIELDS)
    return {"endpoints": page, "nextPageToken": token}


@handles("deployer.endpoint.count_endpoints", generation="workspaces")
def count_endpoints(call: Call, request: dict[str, Any]) -> dict[str, Any]:
    return {"count": str(memory_count(_endpoint_rows(call, request.get("parent")), request, _ENDPOINT_FIELDS))}


@handles("deployer.endpoint.batch_get_endpoints", generation="workspaces")
def batch_get_endpoints(call: Call, request: dict[str, Any]) -> dict[str, Any]:
    workspace_parent(call, request.get("parent"))
    found, errors = [], {}
    for name in request.get("names") or []:
        try:
            found.append(_v2_endpoint(call, _legacy_endpoint(call, name)))
        except RpcError as e:
            errors[name] = {"code": e.code, "message": e.message}
    return {"endpoints": found, "errors": errors}


@handles("deployer.endpoint.update_endpoint", generation="workspaces")
def update_endpoint(call: Call, request: dict[str, Any]) -> dict[str, Any]:
    given = request.get("endpoint") or {}
    name = request.get("endpoint.name") or given.get("name")
    current = _legacy_endpoint(call, name)
    project_id = str(name).split("/")[1]
    wire = {k: given[k] for k in ("displayName", "description", "path") if k in given}
    if "target" in given or "target" in (request.get("updateMask") or ""):
        target = _legacy_target(call, project_id, given.get("target") or "")
        if target and target.split("/")[3] != current["name"].split("/")[3]:
            raise failed_precondition(f"target {given['target']!r} runs in another storage environment of the "
                                      "workspace than this endpoint; make a new endpoint for it")
        wire["target"] = target
    mask = ",".join(p.strip().removeprefix("endpoint.") for p in (request.get("updateMask") or "").split(",")
                    if p.strip())
    answer = legacy_endpoints.update_endpoint(call, _legacy_request("deployer.endpoint.update_endpoint", {
        "endpoint": {**wire, "name": current["name"]}, "updateMask": mask}))
    return {"endpoint": _v2_endpoint(call, answer["endpoint"])}


@handles("deployer.endpoint.delete_endpoint", generation="workspaces")
def delete_endpoint(call: Call, request: dict[str, Any]) -> None:
    current = _legacy_endpoint(call, request.get("name"))
    legacy_endpoints.delete_endpoint(call, _legacy_request("deployer.endpoint.delete_endpoint",
                                                           {"name": current["name"]}))


# -- configuration, catalogs ---------------------------------------------------------------------------------

_SECURITY_TYPES = [
    {"disableSecurityType": {}, "displayName": "No security"},
    {"hashAlgorithm": "PLAINTEXT", "displayName": "Passphrase (stored as plain text)"},
    {"hashAlgorithm": "BCRYPT", "displayName": "Passphrase (stored hashed, bcrypt)"},
    {"hashAlgorithm": "PBKDF2", "displayName": "Passphrase (stored hashed; the sandbox hashes it with bcrypt)"},
    {"authorizationProtocol": "OIDC", "displayName": "Token authentication (sandbox access token)"},
]


@handles("deployer.config.list_security_option_types", generation="workspaces")
def list_security_option_types(call: Call, request: dict[str, Any]) -> dict[str, Any]:
    return {"securityOptionTypes": _SECURITY_TYPES}


@handles("deployer.config.get_default_security_option_type", generation="workspaces")
def get_default_security_option_type(call: Call, request: dict[str, Any]) -> dict[str, Any]:
    return {"defaultSecurityOptionType": _SECURITY_TYPES[3]}


@handles("deployer.config.get_monitoring_config", generation="workspaces")
def get_monitoring_config(call: Call, request: dict[str, Any]) -> dict[str, Any]:
    if request.get("name") != "configuration/monitoring":
        raise not_found("configuration", str(request.get("name")))
    return {"monitoringConfig": {"enabled": True, "frontendUri": "", "maxAllowedFeatures": 100}}


@handles("deployer.config.discover_default_runtime_kubernetes_resource_requirements", generation="workspaces")
def discover_default_runtime_kubernetes_resource_requirements(call: Call, request: dict[str, Any]) -> dict[str, Any]:
    # Recorded on every deployment, not enforced: the sandbox's scorers are local processes.
    return {"defaultRuntimeKubernetesResourceRequirements": {"requests": {"cpu": "250m", "memory": "512Mi"},
                                                             "limits": {"cpu": "1", "memory": "1Gi"}}}


@handles("deployer.config.discover_kubernetes_deployment_max_replicas", generation="workspaces")
def discover_kubernetes_deployment_max_replicas(call: Call, request: dict[str, Any]) -> dict[str, Any]:
    return {"maxReplicas": 4}


@handles("deployer.config.discover_kubernetes_config_shortcuts", generation="workspaces")
def discover_kubernetes_config_shortcuts(call: Call, request: dict[str, Any]) -> dict[str, Any]:
    # The sandbox has no node pools: no affinity, toleration or replica spread to choose from.
    return {"kubernetesAffinityShortcuts": [], "kubernetesTolerationShortcuts": [],
            "kubernetesReplicaSpreadShortcuts": []}


def _runtime(row: dict[str, str]) -> dict[str, Any]:
    return {"name": row["runtime_name"], "displayName": row["runtime_display_name"], "modelType": row["model_type"],
            "image": f"workspaces/global/runtimeImages/{row['runtime_name']}",
            "state": "DISABLED" if cannot_run(row["runtime_name"]) else "ACTIVE"}


def _processor(row: dict[str, str]) -> dict[str, Any]:
    return {"name": row["artifact_processor_name"], "displayName": row["artifact_processor_name"],
            "deployableArtifactType": row["deployable_artifact_type_name"], "modelType": row["model_type"],
            "image": "sandbox"}


def _deployable(row: dict[str, str]) -> dict[str, Any]:
    return {"name": row["deployable_artifact_type_name"], "displayName": row["deployable_artifact_type_name"],
            "artifactType": row["artifact_type"]}


def _compositions(artifact_types: set[str] | None = None) -> list[dict[str, Any]]:
    out = []
    for row in CATALOGS.artifacts:
        if artifact_types is not None and row["artifact_type"] not in artifact_types:
            continue
        for runtime in CATALOGS.runtimes_of(row["model_type"]):
            out.append({"deployableArtifactType": _deployable(row), "artifactProcessor": _processor(row),
                        "modelType": {"name": row["model_type"], "displayName": row["model_type"],
                                      "streaming": False},
                        "runtime": _runtime(runtime)})
    return out


@handles("deployer.composition.list_artifact_compositions", generation="workspaces")
def list_artifact_compositions(call: Call, request: dict[str, Any]) -> dict[str, Any]:
    return {"artifactCompositions": _compositions()}


@handles("deployer.composition.list_experiment_artifact_compositions", generation="workspaces")
def list_experiment_artifact_compositions(call: Call, request: dict[str, Any]) -> dict[str, Any]:
    parts = str(request.get("parent") or "").split("/")
    if len(parts) != 4 or parts[0] != "workspaces" or parts[2] != "experiments":
        raise invalid_argument(f"parent must look like 'workspaces/<workspace>/experiments/<experiment>', "
                               f"got {request.get('parent')!r}")
    require_project(call, parts[1])
    with call.store.reading() as db:
        rows = db.execute("SELECT data FROM entity WHERE kind = 'artifact' AND parent_id = ?", (parts[3],)).fetchall()
    types = {json.loads(r["data"]).get("type", "") for r in rows if json.loads(r["data"]).get("state") == "AVAILABLE"}
    return {"experimentArtifactCompositions": _compositions(types)}


@handles("deployer.composition.list_model_types", generation="workspaces")
def list_model_types(call: Call, request: dict[str, Any]) -> dict[str, Any]:
    names = sorted({t for t in MODEL_TYPE_OF_ARTIFACT.values() if t})
    return {"modelTypes": [{"name": n, "displayName": n, "streaming": False} for n in names]}


@handles("deployer.artifact_processor.list_artifact_processors", generation="workspaces")
def list_artifact_processors(call: Call, request: dict[str, Any]) -> dict[str, Any]:
    return {"artifactProcessors": [_processor(r) for r in CATALOGS.artifacts]}


@handles("deployer.artifact_processor.list_deployable_artifact_types", generation="workspaces")
def list_deployable_artifact_types(call: Call, request: dict[str, Any]) -> dict[str, Any]:
    return {"deployableArtifactTypes": [_deployable(r) for r in CATALOGS.artifacts]}


# -- what the sandbox does not do: said plainly ---------------------------------------------------------------

_NOT_DONE = {
    "deployer.deployment.upgrade_runtime_image": "runtime image upgrades (each sandbox runtime has one image)",
    "deployer.deployment.batch_upgrade_runtime_image": "runtime image upgrades (each sandbox runtime has one image)",
    "deployer.deployment.delete_deployment_monitoring": "deleting a deployment's monitoring data alone",
    "deployer.schedule.get_deployment_schedule": "deployment scaling schedules",
    "deployer.schedule.update_deployment_schedule": "deployment scaling schedules",
    "deployer.schedule.list_deployment_schedule_presets": "deployment scaling schedules",
    "deployer.endpoint_schedule.get_endpoint_schedule": "endpoint target schedules",
    "deployer.endpoint_schedule.update_endpoint_schedule": "endpoint target schedules",
    "deployer.on_demand.get_deployment_on_demand": "on-demand (scale to zero) deployments",
    "deployer.on_demand.update_deployment_on_demand": "on-demand (scale to zero) deployments",
    "deployer.profiling.compute_suggested_scoring_resource_requirements":
        "resource suggestions on the workspaces face (the legacy GetSuggestedScoringResourceSpec has them)",
}


for _method, _what in _NOT_DONE.items():
    not_implemented(_method, _what, generation="workspaces")
