"""What the notebook helpers do, call by call, on each generation of the MLOps API.

The helpers (``upload_model``, ``register_model``, ``deploy``, ``wait_for_healthy``, ``score``,
``deployment_logs``, ``monitoring``, the name lookups, ``all_deployments`` and ``%mlops``) each
have one body. The steps they are made of ("list the deployments of a project", "create a
deployment from this spec", "the status of a deployment", "upload an artifact's bytes") are here,
once per generation, chosen by ``client.generation``: :func:`operations` gives the client's.

* **legacy** (MLOps servers before 1.0, the ``h2o-mlops`` 1.0.1 client): projects; artifacts
  uploaded over ByteStream and read by the ingest server, whose findings the client writes into
  the experiment; deployments in a project's DEV or PROD environment, addressed by id; a status
  that carries the scoring URL; log entries listed page by page; monitoring's operational,
  health and drift metrics.
* **workspaces** (MLOps 1.0 and later, ``h2o-mlops`` 1.4 and later): workspaces (``workspaces/W``,
  listed by the authz gateway; storage still calls a workspace's id ``project_id``); artifacts
  uploaded to a presigned URL, then ingested by storage, which types the artifact and fills the
  experiment made with it; deployments addressed by resource name
  (``workspaces/W/deployments/D``, the same id as the legacy one), their status and metadata
  (scoring URL) at ``.../status`` and ``.../metadata``; logs as a zip of pod logs made on request
  and downloaded from a presigned URL; monitoring as per-column aggregates of the scored data and
  of the baseline, from which the drift figures are computed here.

Storage (experiments, registered models, artifacts' records, datasets) is the same RPC in both
and is called by the helpers directly. A step a generation does not have raises
:class:`GenerationLacks`, which says which generation lacks what and what to do instead.
"""

from __future__ import annotations

import contextlib
import io
import math
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from mlops_nb.notebook.frames import ListPage, list_all, list_all_json, utc_times
from mlops_nb.wire.errors import ConnectionFailed, InvalidArgument, MLOpsError, NotFound
from mlops_nb.wire.messages import Message

__all__ = [
    "DeploymentSpec",
    "Element",
    "GenerationLacks",
    "Metrics",
    "Operations",
    "entity_id",
    "operations",
]

HIGH_DRIFT, MEDIUM_DRIFT = 0.25, 0.1
# Model ingestion (workspaces): how long storage may take, and how often to look.
INGESTION_TIMEOUT, INGESTION_INTERVAL = 300.0, 0.25
PROGRESS_STEP = 2**18  # bytes between two progress reports of a presigned upload


class GenerationLacks(MLOpsError, NotImplementedError):
    """The client's generation of the API has no such step. ``generation``, ``what``, ``instead``."""

    def __init__(self, generation: str, what: str, instead: str) -> None:
        self.generation, self.what, self.instead = generation, what, instead
        super().__init__(f"the {generation} generation of the MLOps API has no {what}; {instead}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.generation, self.what, self.instead))


@dataclass(frozen=True)
class Element:
    """One model of a deployment: the experiment, its artifact and what serves it."""

    experiment_id: str
    artifact_id: str
    deployable_artifact_type: str
    artifact_processor: str
    runtime: str
    weight: int | None = None  # split deployments only


@dataclass(frozen=True)
class DeploymentSpec:
    """A deployment to create, in words both generations understand.

    ``mode`` is ``single`` (one element), ``split`` (weighted elements) or ``shadow`` (primary,
    then shadow). ``environment`` (legacy: DEV, PROD or an id) is None for the default.
    """

    project_id: str
    name: str
    mode: str
    elements: tuple[Element, ...]
    description: str = ""
    passphrase: str | None = field(default=None, repr=False)
    monitoring: bool = True
    environment: str | None = None


@dataclass
class Metrics:
    """A deployment model's monitoring figures, as :class:`~mlops_nb.notebook.monitoring.Monitoring` holds them."""

    operational: pd.DataFrame
    predictions: pd.DataFrame
    prediction_values: pd.DataFrame
    drift: pd.DataFrame
    drift_over_time: pd.DataFrame
    summary: dict[str, Any]


OPERATIONAL_COLUMNS = ["scoring_latency_ms", "memory_mib", "cpu_percent", "availability_percent", "successful_rows",
                       "failed_rows"]
DRIFT_COLUMNS = ["feature", "drift", "importance", "impact", "missing_values", "data_type"]
VALUE_COLUMNS = ["time", "min", "q1", "median", "q3", "max"]


def entity_id(entity: Message | dict[str, Any]) -> str:
    """An entity's id: its ``id`` field, or the last part of its resource name (``workspaces/W`` -> ``W``)."""
    if isinstance(entity, dict):
        return str(entity.get("id") or str(entity.get("name") or "").rsplit("/", 1)[-1])
    found = getattr(entity, "id", None) if "id" in _field_names(entity) else None
    if found:
        return str(found)
    return str(getattr(entity, "name", "") or "").rsplit("/", 1)[-1]


def _field_names(message: Message) -> set[str]:
    return {f.name for f in type(message).fields()}


def storage_constraint(field_name: str, operator: str, text: str) -> dict[str, Any]:
    """One clause of a storage (or legacy deployer) list filter, in wire spelling, so one dict serves
    the filter messages of every server that takes them."""
    return {"propertyConstraint": [{"property": {"field": field_name}, "operator": operator,
                                    "value": {"stringValue": text}}]}


def _bound(client: Any, qualified_name: str) -> Callable[..., Any]:
    server, entity, method = qualified_name.split(".")
    return getattr(getattr(getattr(client, server), entity), method)


def operations(client: Any) -> Operations:
    """The steps of the client's generation (``client.generation``; a client without one is legacy)."""
    generation = getattr(client, "generation", "legacy")
    kind = _GENERATIONS.get(generation)
    if kind is None:
        raise ValueError(f"no notebook operations for the API generation {generation!r}; "
                         f"known: {', '.join(_GENERATIONS)}")
    return kind(client)


class Operations:
    """The steps the helpers are made of, for one client; see the module docstring.

    Subclasses name their generation (``generation``), what a project is called there
    (``project_word``) and where each kind of entity is listed (``lists``: kind -> (method,
    the request field that scopes it to a project, or None)).
    """

    generation = ""
    project_word = "project"
    lists: dict[str, tuple[str, str | None]] = {}

    def __init__(self, client: Any) -> None:
        self.client = client

    # -- listing and finding -------------------------------------------------------------------------

    def list_method(self, kind: str) -> Callable[..., Any]:
        """The bound list method of ``kind`` (project, experiment, registered model, deployment)."""
        return _bound(self.client, self.lists[kind][0])

    def scope(self, kind: str, project_id: str) -> dict[str, Any]:
        """The request fields that list ``kind`` inside one project (workspace)."""
        name = self.lists[kind][1]
        if name is None:
            raise TypeError(f"{kind}s are not listed per {self.project_word}")
        return {name: self.project_field(name, project_id)}

    def project_field(self, name: str, project_id: str) -> str:
        return project_id

    def filters_on_server(self, kind: str) -> bool:
        """Whether ``kind``'s list takes storage-style filters (else the client matches names itself)."""
        return True

    def matching(self, kind: str, text: str, limit: int, scope: dict[str, Any]) -> list[Message]:
        """Up to ``limit`` entities of ``kind`` whose id or display name is ``text``."""
        method = self.list_method(kind)
        if self.filters_on_server(kind):
            clauses = [storage_constraint("id", "EQUAL_TO", text), storage_constraint("display_name", "EQUAL_TO", text)]
            return list_all(method, filter={"query": {"clause": clauses}}, limit=limit, progress=False,
                            **scope).entities
        # Listed whole and matched here: these lists' filter language is not one this client speaks.
        return [e for e in list_all(method, progress=False, **scope).entities
                if text in (entity_id(e), getattr(e, "display_name", None))][:limit]

    def similar(self, kind: str, text: str, limit: int, scope: dict[str, Any]) -> list[Message]:
        """Up to ``limit`` entities of ``kind`` whose display name contains ``text``."""
        method = self.list_method(kind)
        if self.filters_on_server(kind):
            return list_all(method, filter={"query": {"clause": [storage_constraint("display_name", "CONTAINS", text)]}},
                            limit=limit, progress=False, **scope).entities
        folded = text.casefold()
        return [e for e in list_all(method, progress=False, **scope).entities
                if folded in (getattr(e, "display_name", "") or "").casefold()][:limit]

    def projects(self) -> list[Message]:
        """Every project (workspace) the user may see, every page."""
        return list_all(self.list_method("project"), progress=False).entities

    # -- the steps each generation spells its own way ------------------------------------------------

    def who_am_i(self) -> Message:
        raise NotImplementedError

    def upload(self, artifact_id: str, data: bytes, progress: Callable[[int], None]) -> None:
        """Upload ``data`` as the artifact's bytes, calling ``progress(bytes sent so far)``."""
        raise NotImplementedError

    def experiment_from_model(self, project_id: str, artifact_id: str, experiment: dict[str, Any],
                              parameters: dict[str, Any]) -> str:
        """Have the uploaded model artifact ingested and make the experiment of it (``experiment``:
        display name and description; ``parameters``: the experiment's); returns its id, with the
        artifact moved to it and typed."""
        raise NotImplementedError

    def create_deployment(self, spec: DeploymentSpec) -> Message:
        raise NotImplementedError

    def deployment_exists(self, deployment_id: str) -> bool:
        raise NotImplementedError

    def deployment(self, deployment_id: str) -> Message:
        """The deployer's view of a deployment."""
        raise NotImplementedError

    def status(self, deployment_id: str) -> Message:
        """The deployment's status (``state``, ``message``)."""
        raise NotImplementedError

    def scoring_url(self, deployment_id: str) -> str:
        """The deployment's scoring URL (``.../model/score``), "" while it has none."""
        raise NotImplementedError

    def delete_deployment(self, deployment_id: str) -> None:
        raise NotImplementedError

    def models_of(self, deployment_id: str) -> list[str]:
        """The experiment ids a deployment serves, its primary first."""
        raise NotImplementedError

    def log_lines(self, deployment_id: str, max_lines: int | None, contains: str) -> list[str]:
        """The deployment's log lines, oldest first: the last ``max_lines`` (all when None) of those
        containing ``contains``."""
        raise NotImplementedError

    def metrics(self, deployment_id: str, model_id: str, start: datetime | str | None,
                end: datetime | str | None) -> Metrics:
        raise NotImplementedError

    def deployment_calls(self, project_id: str, list_fields: dict[str, Any]) -> list[Callable[[], Any]]:
        """The calls that list a project's deployments (with ``list_fields``: list_all's ``where``,
        ``sort``, ``limit``...) and their states, to run concurrently; :meth:`deployments_found`
        reads their answers."""
        raise NotImplementedError

    def deployments_found(self, answers: Sequence[Any]) -> tuple[list[dict[str, Any]], dict[str, Message]]:
        """(the deployments' wire JSON, deployment id -> status) from one project's :meth:`deployment_calls`."""
        raise NotImplementedError

    @property
    def deployments_method(self) -> Any:
        """The API method whose response the deployments' JSON is part of (for the frame)."""
        return self.client.api.method(self.lists["deployment"][0]) if hasattr(self.client, "api") else None


# -- legacy ---------------------------------------------------------------------------------------------


class Legacy(Operations):
    generation = "legacy"
    project_word = "project"
    lists = {
        "project": ("storage.project.list_projects", None),
        "experiment": ("storage.experiment.list_experiments", "project_id"),
        "registered model": ("storage.registered_model.list_registered_models", "project_id"),
        "deployment": ("deployer.deployment.list_project_deployments", "project_id"),
        "user": ("storage.user.list_users", None),
    }

    @property
    def deployments_method(self) -> Any:
        from mlops_nb.api import API

        return API.method(self.lists["deployment"][0])

    def who_am_i(self) -> Message:
        return self.client.storage.user.who_am_i().user

    def upload(self, artifact_id: str, data: bytes, progress: Callable[[int], None]) -> None:
        self.client.storage.artifact.upload_artifact(artifact_id, io.BytesIO(data), progress=progress)

    def experiment_from_model(self, project_id: str, artifact_id: str, experiment: dict[str, Any],
                              parameters: dict[str, Any]) -> str:
        # The ingest server reads the model; the client writes what it found into the experiment.
        ingestion = self.client.ingest.model.create_model_ingestion(artifact_id=artifact_id).ingestion
        target = ingestion.model_parameters.target_column if ingestion.model_parameters is not None else ""
        made = self.client.storage.experiment.create_experiment(project_id=project_id, experiment={
            **experiment, "metadata": ingestion.model_metadata.to_dict() if ingestion.model_metadata is not None else {},
            "parameters": {"target_column": target, **parameters}}).experiment
        self.client.storage.artifact.update_artifact(artifact={"id": artifact_id, "entity_id": made.id,
                                                               "type": ingestion.artifact_type},
                                                     update_mask="type,entityId")
        return made.id

    def _environment_id(self, project_id: str, environment: str | None) -> str:
        environments = list_all(self.client.storage.deployment_environment.list_deployment_environments,
                                project_id=project_id, progress=False).entities
        if environment is None:
            if not environments:
                raise LookupError(f"project {project_id} has no deployment environment")
            # A project has DEV and PROD, listed in no promised order: DEV unless the caller says otherwise.
            return next((e.id for e in environments if e.display_name == "DEV"), environments[0].id)
        for candidate in environments:
            if environment in (candidate.id, candidate.display_name):
                return candidate.id
        raise ValueError(f"project {project_id} has no deployment environment {environment!r}; it has "
                         f"{', '.join(repr(e.display_name) for e in environments)}")

    @staticmethod
    def _element(element: Element) -> dict[str, Any]:
        return {"deployment_composition": {
            "experiment_id": element.experiment_id, "artifact_id": element.artifact_id,
            "deployable_artifact_type_name": element.deployable_artifact_type,
            "artifact_processor_name": element.artifact_processor, "runtime_name": element.runtime}}

    def create_deployment(self, spec: DeploymentSpec) -> Message:
        elements = [self._element(e) for e in spec.elements]
        shape: dict[str, Any]
        if spec.mode == "single":
            shape = {"single_deployment": elements[0]}
        elif spec.mode == "split":
            shape = {"split_deployment": {"split_elements": [
                {**element, "weight": e.weight} for element, e in zip(elements, spec.elements, strict=True)]}}
        else:
            shape = {"shadow_deployment": {"primary_element": elements[0], "secondary_element": elements[1]}}
        security = ({"passphrase": {"hash": spec.passphrase, "passphrase_hash_type": "PASSPHRASE_HASH_TYPE_PLAINTEXT"}}
                    if spec.passphrase else {})
        return self.client.deployer.deployment.create_deployment(deployment={
            "project_id": spec.project_id,
            "deployment_environment_id": self._environment_id(spec.project_id, spec.environment),
            "display_name": spec.name, "description": spec.description, "security": security,
            "monitor": {"enable": spec.monitoring}, **shape}).deployment

    def deployment_exists(self, deployment_id: str) -> bool:
        try:
            self.status(deployment_id)
        except NotFound:
            return False
        return True

    def deployment(self, deployment_id: str) -> Message:
        project_id = self.client.storage.deployment.get_deployment(deployment_id=deployment_id).deployment.project_id
        clauses = [storage_constraint("id", "EQUAL_TO", deployment_id)]
        found = list_all(self.list_method("deployment"), project_id=project_id, filter={"query": {"clause": clauses}},
                         limit=1, progress=False).entities
        if not found:
            raise NotFound(f"no deployment {deployment_id} in project {project_id}")
        return found[0]

    def status(self, deployment_id: str) -> Message:
        return self.client.deployer.deployment_status.get_deployment_status(
            deployment_id=deployment_id).deployment_status

    def scoring_url(self, deployment_id: str) -> str:
        status = self.status(deployment_id)
        return status.scorer.score.url if status.scorer is not None and status.scorer.score is not None else ""

    def delete_deployment(self, deployment_id: str) -> None:
        self.client.deployer.deployment.delete_deployment(id=deployment_id)

    def models_of(self, deployment_id: str) -> list[str]:
        storage = self.client.storage.deployment.get_deployment(deployment_id=deployment_id).deployment
        return [storage.experiment_id, *(s.experiment_id for s in storage.secondary_scorer)]

    def log_lines(self, deployment_id: str, max_lines: int | None, contains: str) -> list[str]:
        received = list_all_json(self.client.deployer.log.list_log_entries, parent=deployment_id,
                                 max_lines=max_lines or 0, filter=contains, limit=max_lines or None, progress=False)
        return [entry.get("textPayload", "") for entry in received.payload["logEntries"]]

    def metrics(self, deployment_id: str, model_id: str, start: datetime | str | None,
                end: datetime | str | None) -> Metrics:
        span = {k: v for k, v in (("start_date_time", start), ("end_date_time", end)) if v is not None}
        service = self.client.model_monitoring.monitoring_service
        operational = service.get_model_operational_summary_metrics(deployment_id, model_id, **span)
        health = service.get_model_health_metrics(deployment_id, model_id, **span)
        drift = service.get_model_drift_metrics(deployment_id, model_id, **span)

        series = [_graph(operational.scoring_latency, "scoring_latency_ms"),
                  _graph(operational.memory_usage, "memory_mib"), _graph(operational.cpu_usage, "cpu_percent"),
                  _graph(operational.availability, "availability_percent"),
                  _graph(operational.success_prediction, "successful_rows"),
                  _graph(operational.failed_prediction, "failed_rows")]
        frame = pd.concat(series, axis=1, sort=True)
        frame[["successful_rows", "failed_rows"]] = frame[["successful_rows", "failed_rows"]].fillna(0)

        boxes = health.prediction_values.box if health.prediction_values is not None else []
        values = _values_frame([{"time": b.x, "min": b.y0, "q1": b.y1, "median": b.y2, "q3": b.y3, "max": b.y4}
                                for b in boxes])

        features = drift.feature_summary.feature if drift.feature_summary is not None else []
        per_feature = _drift_frame([{"feature": f.name, "drift": f.drift, "importance": f.importance,
                                     "impact": f.impact, "missing_values": f.missing_values, "data_type": f.data_type}
                                    for f in features if f.drift_calculated])
        importance = drift.feature_importance.feature_drift if drift.feature_importance is not None else []
        over_time = (pd.concat([_points(d.drift, d.feature.name) for d in importance if d.feature is not None], axis=1,
                               sort=True)
                     if importance else pd.DataFrame())
        summary = {
            "uptime_percent": operational.uptime, "average_latency_ms": operational.avg_scoring_latency,
            "rows_scored": health.total_predictions, "features_drifting": drift.count_feature_drift,
            "high_drift": drift.high_feature_drift,
            "prediction_name": health.predictions.name if health.predictions is not None else "prediction",
            "baseline": drift.feature_summary.description if drift.feature_summary is not None else "",
        }
        return Metrics(frame, _bins(health.predictions), values, per_feature, over_time, summary)

    def deployment_calls(self, project_id: str, list_fields: dict[str, Any]) -> list[Callable[[], Any]]:
        return [partial(list_all_json, self.client.deployer.deployment.list_project_deployments, project_id=project_id,
                        progress=False, **list_fields),
                partial(list_all_json, self.client.deployer.deployment_status.list_deployment_statuses,
                        project_id=project_id, progress=False)]

    def deployments_found(self, answers: Sequence[Any]) -> tuple[list[dict[str, Any]], dict[str, Message]]:
        deployments, statuses = answers
        return (deployments.payload.get("deployment") or [],
                {s.deployment_id: s for s in statuses.response.deployment_status})


# -- workspaces ---------------------------------------------------------------------------------------


class Workspaces(Operations):
    generation = "workspaces"
    project_word = "workspace"
    lists = {
        "project": ("authz.workspace.list_workspaces", None),
        "experiment": ("storage.experiment.list_experiments", "project_id"),
        "registered model": ("storage.registered_model.list_registered_models", "project_id"),
        "deployment": ("deployer.deployment.list_deployments", "parent"),
        "user": ("authz.user.list_users", None),
    }

    def project_field(self, name: str, project_id: str) -> str:
        return f"workspaces/{project_id}" if name == "parent" else project_id

    def filters_on_server(self, kind: str) -> bool:
        return kind in ("experiment", "registered model")  # storage lists; the REST lists filter another way

    # Deployments are addressed by resource name, which holds the workspace. A deployment's
    # workspace, once seen, is kept on the client; an id never seen is looked for in every workspace.
    def _workspaces_of_deployments(self) -> dict[str, str]:
        return self.client.__dict__.setdefault("_deployment_workspaces", {})

    def remember(self, deployment_name: str) -> str:
        """Keep a deployment's workspace, from its resource name (or its status's or metadata's); its id."""
        parts = deployment_name.split("/")
        if len(parts) >= 4 and parts[0] == "workspaces" and parts[2] == "deployments":
            self._workspaces_of_deployments()[parts[3]] = parts[1]
            return parts[3]
        raise ValueError(f"{deployment_name!r} is not a deployment's resource name (workspaces/W/deployments/D)")

    def name(self, deployment_id: str) -> str:
        """``workspaces/W/deployments/D`` of a deployment id (NotFound when no workspace you may see has it)."""
        known = self._workspaces_of_deployments().get(deployment_id)
        if known is not None:
            return f"workspaces/{known}/deployments/{deployment_id}"
        for workspace in self.projects():
            candidate = f"{workspace.name}/deployments/{deployment_id}"
            try:
                self.client.deployer.deployment.get_deployment(name=candidate)
            except (NotFound, InvalidArgument):  # not there, or not shaped as an id is
                continue
            self.remember(candidate)
            return candidate
        raise NotFound(f"no workspace you may see has a deployment {deployment_id}")

    def who_am_i(self) -> Message:
        # As H2O's 1.6 client does (the wire client's who_am_i): the gateway's /me names the
        # caller in a header, and the authz gateway has the user (a V1User).
        return self.client.who_am_i().user

    def upload(self, artifact_id: str, data: bytes, progress: Callable[[int], None]) -> None:
        # As H2O's 1.6 client does: a presigned URL, one PUT without the token, then "complete"
        # (or, when anything failed, "fail", so that the artifact does not stay BEING_UPLOADED).
        artifacts = self.client.storage.artifact
        url = artifacts.generate_artifact_upload_url(id=artifact_id, public_url=True).presigned_url
        try:
            headers = {"Content-Type": url.content_type} if url.content_type else {}
            try:
                response = self.client._transport.send_outside_api("PUT", url.url, data=_Reading(data, progress),
                                                                   headers=headers)
            except OSError as e:  # requests' errors are OSErrors
                raise ConnectionFailed(f"could not upload artifact {artifact_id} to its presigned URL ({e}); "
                                       "check your network and proxies, then upload again") from None
            if not 200 <= response.status_code < 300:
                raise MLOpsError(f"the presigned upload of artifact {artifact_id} was refused: HTTP "
                                 f"{response.status_code} {response.text[:300]}")
            artifacts.complete_artifact_upload(id=artifact_id)
        except BaseException:
            with contextlib.suppress(MLOpsError):
                artifacts.fail_artifact_upload(id=artifact_id)
            raise

    def experiment_from_model(self, project_id: str, artifact_id: str, experiment: dict[str, Any],
                              parameters: dict[str, Any]) -> str:
        # Storage ingests the model (a job of its own), then makes the experiment of the artifact:
        # metadata and target column from what ingestion found, the artifact moved and typed.
        self.client.storage.model_ingestion.request_model_ingestion(artifact_id=artifact_id)
        deadline = time.monotonic() + INGESTION_TIMEOUT
        while True:
            artifact = self.client.storage.artifact.get_artifact(id=artifact_id).artifact
            state = artifact.model_ingestion_state
            status = str(state.status) if state is not None and state.status is not None else "PENDING"
            if status == "SUCCEEDED":
                break
            if status == "FAILED":
                raise ValueError(f"storage could not ingest the model (artifact {artifact_id}): "
                                 f"{state.error_message or 'no reason given'}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"storage's ingestion of artifact {artifact_id} is still {status} after "
                                   f"{INGESTION_TIMEOUT:g} s")
            time.sleep(INGESTION_INTERVAL)
        return self.client.storage.experiment.create_experiment(
            project_id=project_id, artifact_id=artifact_id, disable_model_registration=True,
            experiment={**experiment, **({"parameters": parameters} if parameters else {})}).experiment.id

    @staticmethod
    def _element(element: Element) -> dict[str, Any]:
        return {"deployment_composition": {
            "experiment_id": element.experiment_id, "deployable_artifact_type": element.deployable_artifact_type,
            "artifact_processor": element.artifact_processor, "runtime": element.runtime}}

    def create_deployment(self, spec: DeploymentSpec) -> Message:
        if spec.environment is not None:
            raise GenerationLacks(self.generation, "deployment environments (DEV, PROD)",
                                  "a deployment belongs to its workspace: leave environment out")
        elements = [self._element(e) for e in spec.elements]
        shape: dict[str, Any]
        if spec.mode == "single":
            shape = {"single": elements[0]}
        elif spec.mode == "split":
            shape = {"split": {"split_elements": [
                {**element, "weight": e.weight} for element, e in zip(elements, spec.elements, strict=True)]}}
        else:
            shape = {"shadow": {"primary_element": elements[0], "secondary_element": elements[1]}}
        security = ({"passphrase": {"passphrase": spec.passphrase, "hash_algorithm": "PLAINTEXT"}} if spec.passphrase
                    else {"disabled_security": {}})
        made = self.client.deployer.deployment.create_deployment(parent=f"workspaces/{spec.project_id}", deployment={
            "display_name": spec.name, "description": spec.description, "securities": [security],
            "monitoring_options": {"enabled": spec.monitoring}, **shape}).deployment
        self.remember(made.name)
        return made

    def deployment_exists(self, deployment_id: str) -> bool:
        try:
            # Asked again even when the workspace is remembered: the deployment may have gone since.
            self.client.deployer.deployment.get_deployment(name=self.name(deployment_id))
        except (NotFound, InvalidArgument):
            return False
        return True

    def deployment(self, deployment_id: str) -> Message:
        return self.client.deployer.deployment.get_deployment(name=self.name(deployment_id)).deployment

    def status(self, deployment_id: str) -> Message:
        return self.client.deployer.status.get_deployment_status(
            name=f"{self.name(deployment_id)}/status").deployment_status

    def scoring_url(self, deployment_id: str) -> str:
        metadata = self.client.deployer.metadata.get_deployment_metadata(
            name=f"{self.name(deployment_id)}/metadata").deployment_metadata
        interface = metadata.scoring_interface if metadata is not None else None
        return interface.score.uri if interface is not None and interface.score is not None else ""

    def delete_deployment(self, deployment_id: str) -> None:
        self.client.deployer.deployment.delete_deployment(name=self.name(deployment_id))

    def models_of(self, deployment_id: str) -> list[str]:
        found = self.deployment(deployment_id)
        if found.single is not None:
            elements = [found.single]
        elif found.split is not None:
            elements = list(found.split.split_elements)
        elif found.shadow is not None:
            elements = [found.shadow.primary_element, found.shadow.secondary_element]
        else:
            raise GenerationLacks(self.generation, "models behind an external deployment",
                                  f"deployment {deployment_id} serves no model of MLOps")
        return [e.deployment_composition.experiment_id for e in elements
                if e is not None and e.deployment_composition is not None]

    def log_lines(self, deployment_id: str, max_lines: int | None, contains: str) -> list[str]:
        # The deployer gathers the pods' logs into an artifact (a zip of POD.log files) and storage
        # hands it out at a presigned URL; lines from all pods, in time order (they start with it).
        made = self.client.deployer.log.generate_logs(name=self.name(deployment_id))
        url = self.client.storage.artifact.generate_artifact_download_url(id=made.artifact_id,
                                                                          public_url=True).presigned_url
        try:
            response = self.client._transport.send_outside_api("GET", url.url)
        except OSError as e:
            raise ConnectionFailed(f"could not download the logs of deployment {deployment_id} from their "
                                   f"presigned URL ({e})") from None
        if not 200 <= response.status_code < 300:
            raise MLOpsError(f"the logs of deployment {deployment_id} could not be downloaded: HTTP "
                             f"{response.status_code} {response.text[:300]}")
        lines: list[str] = []
        with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
            for entry in archive.infolist():
                if entry.filename.endswith(".log"):
                    lines += archive.read(entry).decode("utf-8", "replace").splitlines()
        lines = sorted(line for line in lines if contains in line)  # ISO times first: sorting orders by time
        return lines[-max_lines:] if max_lines else lines

    def metrics(self, deployment_id: str, model_id: str, start: datetime | str | None,
                end: datetime | str | None) -> Metrics:
        parent = f"{self.name(deployment_id)}/experiments/{model_id}"
        aggregate = self.client.monitoring.aggregate
        scored = list_all_json(aggregate.list_aggregates, parent=parent, progress=False).payload.get("aggregates") or []
        baseline = list_all_json(aggregate.list_baseline_aggregates, parent=parent,
                                 progress=False).payload.get("baselineAggregates") or []
        return aggregate_metrics(scored, baseline, start, end)

    def deployment_calls(self, project_id: str, list_fields: dict[str, Any]) -> list[Callable[[], Any]]:
        return [partial(self._deployments_with_states, project_id, list_fields)]

    def _deployments_with_states(self, project_id: str, list_fields: dict[str, Any]) -> tuple[ListPage, ListPage | None]:
        parent = f"workspaces/{project_id}"
        listed = list_all_json(self.client.deployer.deployment.list_deployments, parent=parent, progress=False,
                               **list_fields)
        names = [row["name"] for row in listed.payload.get("deployments") or []]
        for name in names:
            self.remember(name)
        states = (list_all_json(self.client.deployer.status.batch_get_deployment_statuses, parent=parent,
                                names=[f"{n}/status" for n in names], progress=False) if names else None)
        return listed, states

    def deployments_found(self, answers: Sequence[Any]) -> tuple[list[dict[str, Any]], dict[str, Message]]:
        [(listed, states)] = answers
        found = {self.remember(s.name): s for s in states.response.deployment_statuses} if states is not None else {}
        return listed.payload.get("deployments") or [], found


_GENERATIONS: dict[str, type[Operations]] = {"legacy": Legacy, "workspaces": Workspaces}


class _Reading(io.RawIOBase):
    """Bytes for a request body that report how much has been read (sent) so far; requests sends
    it with a Content-Length (presigned URLs refuse chunked bodies)."""

    def __init__(self, data: bytes, progress: Callable[[int], None]) -> None:
        self.data, self.progress, self.offset, self.told = memoryview(data), progress, 0, 0

    def __len__(self) -> int:
        return len(self.data) - self.offset

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        end = len(self.data) if size is None or size < 0 else min(self.offset + size, len(self.data))
        chunk = bytes(self.data[self.offset:end])
        self.offset = end
        if chunk and (self.offset - self.told >= PROGRESS_STEP or self.offset == len(self.data)):
            self.told = self.offset
            self.progress(self.offset)
        return chunk


# -- monitoring figures --------------------------------------------------------------------------------


def _points(points: list[Message], column: str) -> pd.Series:
    """Points of a graph (x: a time, value: a number) as a series on a UTC time index."""
    index = pd.DatetimeIndex(utc_times(p.x_axis for p in points), name="time")
    return pd.Series(pd.to_numeric([p.value for p in points]), index=index, name=column, dtype="float64")


def _graph(graph: Message | None, column: str) -> pd.Series:
    return _points(graph.point if graph is not None else [], column)


def _bin_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["low", "high", "rows"])
    numeric = pd.to_numeric(frame["low"], errors="coerce")
    if len(frame) and numeric.notna().all() and (frame["low"] != frame["high"]).any():
        frame[["low", "high"]] = frame[["low", "high"]].apply(pd.to_numeric)
    else:
        frame = frame.rename(columns={"low": "value"}).drop(columns=["high"])
    return frame


def _bins(histogram: Message | None) -> pd.DataFrame:
    return _bin_frame([{"low": b.x_min, "high": b.x_max, "rows": int(b.y or 0)}
                       for b in (histogram.bin if histogram else [])])


def _values_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    values = pd.DataFrame(rows, columns=VALUE_COLUMNS)
    values["time"] = utc_times(values["time"]).array
    return values.set_index("time").apply(pd.to_numeric)


def level(drift: float) -> str:
    """high, medium or low, by the population stability index."""
    return "high" if drift >= HIGH_DRIFT else "medium" if drift >= MEDIUM_DRIFT else "low"


def _drift_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    per_feature = pd.DataFrame(rows, columns=DRIFT_COLUMNS)
    per_feature["level"] = per_feature["drift"].map(level).astype("string")
    return per_feature.set_index("feature")


def _histogram(numerical: dict[str, Any]) -> tuple[list[float], list[float]]:
    """(edges, counts) of a numerical aggregate, ``len(edges) == len(counts) + 1``. The API leaves
    the outer edges out (-inf and +inf: one more count than edges, as H2O's 1.6 client reads it);
    edges that include them are taken as they are."""
    edges = [float(e) for e in numerical.get("binEdges") or []]
    counts = [float(c) for c in numerical.get("binCount") or []]
    if len(counts) == len(edges) + 1:
        return [-math.inf, *edges, math.inf], counts
    if len(counts) == len(edges) - 1:
        return edges, counts
    return [], []


def _counts(aggregate: dict[str, Any]) -> dict[str, float]:
    """One column's aggregate as bin -> rows: numerical bins by their edges, categories by value."""
    numerical = aggregate.get("numericalAggregate")
    if numerical:
        edges, counts = _histogram(numerical)
        return {f"{low}|{high}": c for low, high, c in zip(edges, edges[1:], counts, strict=False)}
    categorical = aggregate.get("categoricalAggregate") or {}
    return {str(k): float(v) for k, v in (categorical.get("valueCounts") or {}).items()}


def psi(expected: dict[str, float], actual: dict[str, float]) -> float:
    """The population stability index of ``actual`` against ``expected`` (bin -> rows), with empty
    bins counted as half a row, so that a bin one side lacks weighs without being infinite."""
    bins = set(expected) | set(actual)
    total_e, total_a = sum(expected.values()), sum(actual.values())
    if not bins or total_e <= 0 or total_a <= 0:
        return math.nan
    index = 0.0
    for b in bins:
        e = max(expected.get(b, 0.0), 0.5) / total_e
        a = max(actual.get(b, 0.0), 0.5) / total_a
        index += (a - e) * math.log(a / e)
    return index


def _rows(aggregate: dict[str, Any]) -> float:
    return sum(_counts(aggregate).values()) + float((aggregate.get("missingValues") or {}).get("rowCount") or 0)


def _quantiles(numerical: dict[str, Any]) -> dict[str, float]:
    """min, quartiles (read off the histogram, linearly within a bin; the open outer bins end at
    the window's min and max) and max of one window."""
    found = {"min": float(numerical.get("min", math.nan)), "max": float(numerical.get("max", math.nan))}
    edges, counts = _histogram(numerical)
    total = sum(counts)
    if not edges or total <= 0:
        return {**found, "q1": math.nan, "median": math.nan, "q3": math.nan}
    closed = np.clip(np.asarray(edges), min(found["min"], edges[1]), max(found["max"], edges[-2]))
    cumulative = np.concatenate([[0.0], np.cumsum(counts)]) / total
    q1, median, q3 = np.interp([0.25, 0.5, 0.75], cumulative, closed)
    return {**found, "q1": float(q1), "median": float(median), "q3": float(q3)}


def aggregate_metrics(scored: list[dict[str, Any]], baseline: list[dict[str, Any]], start: datetime | str | None,
                      end: datetime | str | None) -> Metrics:
    """The monitoring figures of the workspaces generation's aggregates (wire JSON): rows scored per
    window and the prediction column's distribution from the model-output aggregates; drift per
    feature (population stability index) of the scored inputs against the baseline. That monitoring
    measures no latency, memory, CPU, availability or failed rows: those columns are empty.
    ``baseline_rows`` is how many rows the baseline aggregates hold."""
    scored = [a for a in scored if a.get("startTime") and _in_window(a["startTime"], start, end)]
    outputs = sorted({a["column"] for a in scored if a.get("isModelOutput")})
    prediction = outputs[0] if outputs else ""
    windows = sorted({a["startTime"] for a in scored})
    per_window = {w: next((a for a in scored if a["startTime"] == w and a["column"] == (prediction or a["column"])),
                          None) for w in windows}
    rows = pd.Series([_rows(a) if a is not None else 0.0 for a in per_window.values()],
                     index=pd.DatetimeIndex(utc_times(windows), name="time"), dtype="float64")
    operational = pd.DataFrame({c: pd.Series(math.nan, index=rows.index, dtype="float64") for c in OPERATIONAL_COLUMNS})
    operational["successful_rows"] = rows

    made = [a for a in scored if a["column"] == prediction]
    totals: dict[str, float] = {}
    for a in made:
        for b, c in _counts(a).items():
            totals[b] = totals.get(b, 0.0) + c
    numeric = any(a.get("numericalAggregate") for a in made)
    if numeric:
        # The open outer bins shown from the smallest to the largest prediction (they hold those).
        lowest = min((a["numericalAggregate"].get("min", math.inf) for a in made), default=math.inf)
        highest = max((a["numericalAggregate"].get("max", -math.inf) for a in made), default=-math.inf)
        bins = sorted((float(b.split("|")[0]), float(b.split("|")[1]), c) for b, c in totals.items())
        shown = [{"low": low if math.isfinite(low) else min(lowest, high),
                  "high": high if math.isfinite(high) else max(highest, low), "rows": int(c)} for low, high, c in bins]
    else:
        shown = [{"low": b, "high": b, "rows": int(c)} for b, c in sorted(totals.items())]
    predictions = _bin_frame(shown)
    values = _values_frame([{"time": a["startTime"], **_quantiles(a["numericalAggregate"])}
                            for a in made if a.get("numericalAggregate")])

    reference = {a["column"]: _counts(a) for a in baseline if not a.get("isModelOutput")}
    features = sorted({a["column"] for a in scored if not a.get("isModelOutput")} & set(reference))
    drift_rows, over_time = [], {}
    for feature in features:
        mine = [a for a in scored if a["column"] == feature]
        together: dict[str, float] = {}
        for a in mine:
            for b, c in _counts(a).items():
                together[b] = together.get(b, 0.0) + c
        seen = sum(_rows(a) for a in mine)
        missing = sum(float((a.get("missingValues") or {}).get("rowCount") or 0) for a in mine)
        drift_rows.append({"feature": feature, "drift": psi(reference[feature], together), "importance": math.nan,
                           "impact": math.nan, "missing_values": missing / seen if seen else math.nan,
                           "data_type": str(mine[0].get("logicalType") or "")})
        over_time[feature] = pd.Series([psi(reference[feature], _counts(a)) for a in mine],
                                       index=pd.DatetimeIndex(utc_times(a["startTime"] for a in mine), name="time"),
                                       dtype="float64")
    drift = _drift_frame(drift_rows)
    summary = {
        "uptime_percent": None, "average_latency_ms": None, "rows_scored": int(rows.sum()),
        "features_drifting": int((drift["drift"] >= MEDIUM_DRIFT).sum()),
        "high_drift": int((drift["drift"] >= HIGH_DRIFT).sum()),
        "prediction_name": prediction or "prediction",
        "baseline_rows": int(max((_rows(a) for a in baseline), default=0)),
        "baseline": "the baseline aggregates" if baseline else "no baseline",
        "not_measured": "latency, memory, CPU, availability, failed rows (the workspaces generation's monitoring "
                        "keeps aggregates of the scored data only)",
    }
    return Metrics(operational, predictions, values, drift, pd.DataFrame(over_time) if over_time else pd.DataFrame(),
                   summary)


def _in_window(time_text: str, start: datetime | str | None, end: datetime | str | None) -> bool:
    moment = pd.Timestamp(time_text)
    if moment.tzinfo is None:
        moment = moment.tz_localize("UTC")
    for bound, later in ((start, True), (end, False)):
        if bound is None:
            continue
        limit = pd.Timestamp(bound)
        if limit.tzinfo is None:
            limit = limit.tz_localize("UTC")
        if (moment < limit) if later else (moment > limit):
            return False
    return True
