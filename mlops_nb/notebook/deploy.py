"""From an experiment to a deployment, one call per step, over the generic client.

Each helper makes the calls a user could make with ``client.<server>.<entity>.<method>``, the
way H2O's own clients do, and returns the API's own messages (which show as cards):

* :func:`register_model` makes the experiment the next version of a registered model.
* :func:`deploy`, :func:`deploy_split`, :func:`deploy_shadow` create deployments; the runtime
  comes from the seed's catalog for the experiment's artifact type unless named, and a runtime
  that cannot serve the artifact is refused before any call. What they create is a
  :class:`~mlops_nb.notebook.generations.DeploymentSpec`, which the client's generation of the
  API sends its own way (the legacy deployer's ``DeployDeployment`` in a project environment, or
  the workspaces deployer's ``V2Deployment`` in a workspace).

The other steps have modules of their own: ``upload`` (:func:`upload_model`), ``waiting``
(:func:`wait_for_healthy`), ``scoring`` (:func:`score`), ``logs`` (:func:`deployment_logs`);
names are resolved by ``lookup``.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any, NamedTuple

from mlops_nb.api import CATALOGS
from mlops_nb.notebook.frames import list_all
from mlops_nb.notebook.generations import DeploymentSpec, Element, operations
from mlops_nb.notebook.lookup import experiment_id, home_project_id
from mlops_nb.wire.errors import NotFound
from mlops_nb.wire.messages import Message

__all__ = [
    "RegisteredVersion",
    "deploy",
    "deploy_shadow",
    "deploy_split",
    "register_model",
]


class RegisteredVersion(NamedTuple):
    """A registered model and one of its versions."""

    model: Message
    version: Message

    def _repr_html_(self) -> str:
        return "".join(part._repr_html_() or html.escape(repr(part)) for part in self)


def _experiment_of(client: Any, experiment_or_version: Message | str) -> Message:
    """The StorageExperiment of an experiment, a registered model version, or the id of either."""
    kind = type(experiment_or_version).__name__
    if kind == "StorageExperiment":
        return experiment_or_version  # type: ignore[return-value]
    if kind == "StorageRegisteredModelVersion":
        found_id = experiment_or_version.experiment_id  # type: ignore[union-attr]
    elif kind == "RegisteredVersion":
        found_id = experiment_or_version.version.experiment_id  # type: ignore[union-attr]
    elif isinstance(experiment_or_version, str):
        found_id = experiment_id(client, experiment_or_version)
    else:
        raise TypeError("pass an experiment (StorageExperiment), a registered model version, or the id of either; "
                        f"got {kind}")
    return client.storage.experiment.get_experiment(id=found_id, response_metadata={"pattern": ["%"]}).experiment


def register_model(client: Any, experiment: Message | str, model_name: str, description: str = "") -> RegisteredVersion:
    """Register ``experiment`` as the next version of the registered model ``model_name`` in its project.

    The model is created when the project has none of that name. Returns the model and the new version.
    """
    found = _experiment_of(client, experiment)
    project_id = home_project_id(client, found)
    try:
        model = client.storage.registered_model.get_registered_model_by_name(
            model_name=model_name, project_id=project_id).registered_model
    except NotFound:
        model = client.storage.registered_model.create_registered_model(registered_model={
            "display_name": model_name, "description": description, "project_id": project_id}).registered_model
    version = client.storage.registered_model_version.create_model_version(registered_model_version={
        "registered_model_id": model.id, "experiment_id": found.id}).registered_model_version
    return RegisteredVersion(model, version)


# -- deployments ------------------------------------------------------------------------------------


def _deployable(client: Any, experiment: Message) -> tuple[Message, dict[str, Any]]:
    """The experiment's artifact to deploy and its row of the artifact catalog."""
    artifacts = list_all(client.storage.artifact.list_entity_artifacts, entity_id=experiment.id,
                         progress=False).entities
    for artifact in artifacts:
        row = next((r for r in CATALOGS.artifacts if r["artifact_type"] == artifact.type), None)
        if row is not None and CATALOGS.runtimes_of(row["model_type"]) and str(artifact.state) == "AVAILABLE":
            return artifact, row
    have = ", ".join(f"{a.type or '(no type)'}" for a in artifacts) or "none"
    raise ValueError(f"experiment {experiment.display_name!r} ({experiment.id}) has no uploaded artifact of a type "
                     f"a runtime serves (its artifacts: {have})")


def _python_version(experiment: Message) -> str:
    values = experiment.metadata.values if experiment.metadata is not None else {}
    saved = values.get("mlflow/flavors/python_function/python_version")
    return saved.string_value if saved is not None else ""


def _runtime(experiment: Message, row: dict[str, Any], runtime: str | None) -> str:
    choices = CATALOGS.runtimes_of(row["model_type"])
    names = [r["runtime_name"] for r in choices]
    if runtime is not None:
        chosen = next((r["runtime_name"] for r in choices if runtime in (r["runtime_name"], r["runtime_display_name"])),
                      None)
        if chosen is None:
            raise ValueError(f"runtime {runtime!r} cannot serve {row['artifact_type']} artifacts; choose one of "
                             f"{', '.join(names)}")
        return chosen
    # An MLflow model runs best on the runtime of the Python it was saved with; the newest otherwise.
    major_minor = "".join(_python_version(experiment).split(".")[:2])
    return next((n for n in names if n.endswith(f"_{major_minor}")), names[-1]) if major_minor else names[-1]


def _element(client: Any, experiment_or_version: Message | str, runtime: str | None,
             weight: int | None = None) -> tuple[Message, Element]:
    experiment = _experiment_of(client, experiment_or_version)
    artifact, row = _deployable(client, experiment)
    return experiment, Element(experiment_id=experiment.id, artifact_id=artifact.id,
                               deployable_artifact_type=row["deployable_artifact_type_name"],
                               artifact_processor=row["artifact_processor_name"],
                               runtime=_runtime(experiment, row, runtime), weight=weight)


def _create(client: Any, first: Message, mode: str, elements: Sequence[Element], *, name: str, description: str,
            environment: str | None, passphrase: str | None, monitoring: bool) -> Message:
    return operations(client).create_deployment(DeploymentSpec(
        project_id=home_project_id(client, first), name=name, mode=mode, elements=tuple(elements),
        description=description, passphrase=passphrase, monitoring=monitoring, environment=environment))


def deploy(client: Any, experiment_or_version: Message | str, name: str | None = None, runtime: str | None = None,
           environment: str | None = None, passphrase: str | None = None, *, description: str = "",
           monitoring: bool = True) -> Message:
    """Deploy one model; returns the deployer's deployment (it starts PREPARING): a ``DeployDeployment``
    on the legacy generation of the API, a ``V2Deployment`` on the workspaces one.

    ``experiment_or_version`` is an experiment, a registered model version (or what
    :func:`register_model` returned), the id of either, or an experiment's display name. ``runtime`` (a runtime name or
    display name) defaults to the catalog's for the experiment's artifact type (for an MLflow
    model, the runtime of the Python it was saved with, else the newest); one that cannot
    serve the artifact raises ``ValueError`` with the choices, before any deployment call.
    ``environment`` (id or name) defaults to the project's DEV (else its first); the workspaces
    generation has no environments (giving one raises ``GenerationLacks``). ``passphrase`` protects the
    scoring URL (send it with :func:`score`).
    """
    experiment, element = _element(client, experiment_or_version, runtime)
    return _create(client, experiment, "single", [element], name=name or experiment.display_name,
                   description=description, environment=environment, passphrase=passphrase, monitoring=monitoring)


def deploy_split(client: Any, models: Sequence[Message | str], weights: Sequence[int] | None = None,
                 name: str | None = None, runtime: str | None = None, environment: str | None = None,
                 passphrase: str | None = None, *, description: str = "", monitoring: bool = True) -> Message:
    """Deploy two or more models that share the traffic by ``weights`` (equal shares by default)."""
    if len(models) < 2:
        raise ValueError(f"a split deployment takes two or more models, got {len(models)}")
    weights = list(weights) if weights is not None else [100 // len(models)] * len(models)
    if len(weights) != len(models) or any(w <= 0 for w in weights):
        raise ValueError(f"give one positive weight per model ({len(models)} models), got {weights}")
    parts = [_element(client, m, runtime, w) for m, w in zip(models, weights, strict=True)]
    return _create(client, parts[0][0], "split", [element for _, element in parts],
                   name=name or " / ".join(e.display_name for e, _ in parts), description=description,
                   environment=environment, passphrase=passphrase, monitoring=monitoring)


def deploy_shadow(client: Any, primary: Message | str, shadow: Message | str, name: str | None = None,
                  runtime: str | None = None, environment: str | None = None, passphrase: str | None = None, *,
                  description: str = "", monitoring: bool = True) -> Message:
    """Deploy ``primary``, which answers every request, with ``shadow`` scoring a copy of each (for monitoring)."""
    (first, primary_element), (second, shadow_element) = (_element(client, primary, runtime),
                                                          _element(client, shadow, runtime))
    return _create(client, first, "shadow", [primary_element, shadow_element],
                   name=name or f"{first.display_name} (shadow: {second.display_name})", description=description,
                   environment=environment, passphrase=passphrase, monitoring=monitoring)
