"""From a trained model to a served deployment, one call per step, over the generic client.

Each helper makes the calls a user could make with ``client.<server>.<entity>.<method>``, the
way H2O's own clients do, and returns the API's own messages (which show as cards):

* :func:`upload_model` puts a model into a project: uploads the zip as an artifact of the
  project (with a progress bar), has the ingest server read it, creates the experiment with
  what ingest found, and moves the artifact to it.
* :func:`register_model` makes the experiment the next version of a registered model.
* :func:`deploy`, :func:`deploy_split`, :func:`deploy_shadow` create deployments; the runtime
  comes from the seed's catalog for the experiment's artifact type unless named, and a runtime
  that cannot serve the artifact is refused before any call.
* :func:`wait_for_healthy` shows the deployment's state live until it serves.
* :func:`score` sends a DataFrame to a deployment and gives the predictions back as one.
* :func:`deployment_logs` gives a deployment's log lines as a DataFrame.
"""

from __future__ import annotations

import contextlib
import html
import io
import re
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd

from mlops_nb.api import CATALOGS
from mlops_nb.notebook.lookup import find_deployment, find_experiment, find_project
from mlops_nb.notebook.progress import in_kernel, progress
from mlops_nb.wire.errors import MLOpsError, NotFound
from mlops_nb.wire.messages import Message

__all__ = [
    "DeploymentFailed",
    "DeploymentTimeout",
    "RegisteredVersion",
    "ScoringError",
    "deploy",
    "deploy_shadow",
    "deploy_split",
    "deployment_logs",
    "register_model",
    "score",
    "upload_model",
    "wait_for_healthy",
]

MLMODEL = "MLmodel"
LOG_LINES_IN_ERRORS = 20


# -- errors ------------------------------------------------------------------------------------


class DeploymentFailed(MLOpsError):
    """The deployment ended FAILED. ``reason`` is the status message, ``logs`` its last log lines."""

    def __init__(self, deployment_id: str, reason: str, logs: Sequence[str] = ()) -> None:
        self.deployment_id, self.reason, self.logs = deployment_id, reason, list(logs)
        tail = ("\nlast log lines:\n  " + "\n  ".join(self.logs)) if self.logs else ""
        super().__init__(f"deployment {deployment_id} FAILED: {reason}{tail}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.deployment_id, self.reason, self.logs))


class DeploymentTimeout(MLOpsError, TimeoutError):
    """The deployment was not HEALTHY in time; it carries on, and ``state`` is where it was."""

    def __init__(self, deployment_id: str, state: str, message: str, timeout: float) -> None:
        self.deployment_id, self.state, self.status_message, self.timeout = deployment_id, state, message, timeout
        super().__init__(f"deployment {deployment_id} is still {state} after {timeout:g} s ({message}); it carries "
                         f"on: wait again with wait_for_healthy, or look at deployment_logs")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.deployment_id, self.state, self.status_message, self.timeout))


class ScoringError(MLOpsError):
    """The deployment refused to score (``status`` is the HTTP status, ``message`` what it said)."""

    def __init__(self, status: int, message: str) -> None:
        self.status, self.message = status, message
        super().__init__(f"the deployment answered {status}: {message}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.status, self.message))


# -- models into projects ---------------------------------------------------------------------------


def _project(client: Any, project: Message | str) -> Message:
    if isinstance(project, Message) and type(project).__name__ == "StorageProject":
        return project
    if isinstance(project, str):
        return find_project(client, project)
    raise TypeError(f"project must be a StorageProject, a project id or a display name, got {type(project).__name__}")


def _zip_folder(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(folder).as_posix())
    return buffer.getvalue()


def _is_estimator(model: Any) -> bool:
    return hasattr(model, "fit") and hasattr(model, "predict") and hasattr(model, "get_params")


def _save_estimator(model: Any, input_example: Any) -> bytes:
    """A scikit-learn estimator as an MLflow model zip, saved by MLflow itself (skops format)."""
    import mlflow.sklearn
    import skops.io
    from mlflow.models import infer_signature

    signature = None
    if input_example is not None:
        if not isinstance(input_example, pd.DataFrame):
            raise TypeError(f"input_example must be a DataFrame of a few input rows, got {type(input_example).__name__}")
        signature = infer_signature(input_example, model.predict(input_example))
    # The estimator was made in this session: its own types are trusted, as skops asks to say
    # (tree models, for one, hold types skops does not trust by default).
    trusted = skops.io.get_untrusted_types(data=skops.io.dumps(model))
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "model"
        mlflow.sklearn.save_model(model, str(folder), signature=signature, input_example=input_example,
                                  serialization_format="skops", skops_trusted_types=trusted or None)
        return _zip_folder(folder)


def _model_bytes(model: Any, input_example: Any) -> tuple[bytes, str]:
    """(zip bytes, a default name) for a path or an in-memory estimator."""
    if isinstance(model, (str, Path)):
        path = Path(model).expanduser()
        if path.is_dir():
            if not (path / MLMODEL).is_file():
                raise ValueError(f"{path} is a folder without an MLmodel file; pass an MLflow model folder, or a zip "
                                 "(MLflow model, H2O-3 MOJO or DAI MOJO pipeline)")
            return _zip_folder(path), path.name
        if not path.is_file():
            raise FileNotFoundError(f"no file or folder {path}")
        if not zipfile.is_zipfile(path):
            raise ValueError(f"{path} is not a zip file; pass an MLflow model (folder or zip), an H2O-3 MOJO zip or "
                             "a DAI MOJO pipeline zip")
        return path.read_bytes(), path.stem
    if _is_estimator(model):
        return _save_estimator(model, input_example), type(model).__name__
    raise TypeError(f"model must be a path (an MLflow model folder or zip, an H2O-3 MOJO, a DAI MOJO pipeline) or "
                    f"a scikit-learn estimator or pipeline; got {type(model).__name__}")


def _upload(client: Any, artifact_id: str, data: bytes, show: bool) -> None:
    bar = progress("uploading", f"artifact {artifact_id}", len(data)) if show else None
    sent = 0

    def step(done: int) -> None:
        nonlocal sent
        sent = done
        if bar is not None:
            bar.update(done, f"{done / 2**20:,.1f} / {len(data) / 2**20:,.1f} MiB", len(data))

    try:
        client.storage.artifact.upload_artifact(artifact_id, io.BytesIO(data), progress=step)
    finally:
        if bar is not None:
            bar.close(sent, f"{sent / 2**20:,.1f} MiB uploaded", sent == len(data))


def _training_dataset(client: Any, project_id: str, name: str, frame: pd.DataFrame, show: bool | None) -> str:
    """The training data as a dataset of the project, with its CSV uploaded; returns the dataset's id."""
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"training_data must be a DataFrame, got {type(frame).__name__}")
    data = frame.to_csv(index=False).encode()
    dataset = client.storage.dataset.create_dataset(project_id=project_id, dataset={
        "display_name": f"{name} training data", "row_count": len(frame), "col_count": len(frame.columns),
        "size": len(data)}).dataset
    artifact = client.storage.artifact.create_artifact(artifact={
        "entity_id": dataset.id, "type": f"{name}.csv", "mime_type": "text/csv"}).artifact
    _upload(client, artifact.id, data, show if show is not None else len(data) > 2**20)
    return dataset.id


def upload_model(client: Any, project: Message | str, model: Any, name: str | None = None, description: str = "",
                 *, input_example: pd.DataFrame | None = None, training_data: pd.DataFrame | None = None,
                 progress: bool | None = None) -> Message:
    """Put a model into ``project`` as a new experiment; returns the ``StorageExperiment``.

    ``model`` is a path (an MLflow model folder or zip, an H2O-3 MOJO zip, a DAI MOJO pipeline
    zip) or an in-memory scikit-learn estimator or pipeline, which MLflow saves
    (``mlflow.sklearn.save_model``, skops format) with a signature inferred from
    ``input_example`` (a few input rows; without it the model has no signature). ``project``
    is a project, its id or its display name. ``training_data`` (the frame the model was fitted
    on) becomes a dataset of the project linked as the experiment's training dataset: model
    monitoring measures drift against it. The upload shows a progress bar for models over 1 MiB
    (``progress=True`` always, ``False`` never).
    """
    target = _project(client, project)
    data, default_name = _model_bytes(model, input_example)
    artifact = client.storage.artifact.create_artifact(artifact={
        "entity_id": target.id, "mime_type": "application/zip"}).artifact
    _upload(client, artifact.id, data, progress if progress is not None else len(data) > 2**20)
    ingestion = client.ingest.model.create_model_ingestion(artifact_id=artifact.id).ingestion
    target_column = ingestion.model_parameters.target_column if ingestion.model_parameters is not None else ""
    parameters = {"target_column": target_column}
    if training_data is not None:
        parameters["training_dataset_id"] = _training_dataset(client, target.id, name or default_name, training_data,
                                                              progress)
    experiment = client.storage.experiment.create_experiment(project_id=target.id, experiment={
        "display_name": name or default_name, "description": description,
        "metadata": ingestion.model_metadata.to_dict() if ingestion.model_metadata is not None else {},
        "parameters": parameters}).experiment
    client.storage.artifact.update_artifact(artifact={"id": artifact.id, "entity_id": experiment.id,
                                                      "type": ingestion.artifact_type},
                                            update_mask="type,entityId")
    return client.storage.experiment.get_experiment(id=experiment.id,
                                                    response_metadata={"pattern": ["%"]}).experiment


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
        experiment_id = experiment_or_version.experiment_id  # type: ignore[union-attr]
    elif kind == "RegisteredVersion":
        experiment_id = experiment_or_version.version.experiment_id  # type: ignore[union-attr]
    elif isinstance(experiment_or_version, str):
        experiment_id = _experiment_id(client, experiment_or_version)
    else:
        raise TypeError("pass an experiment (StorageExperiment), a registered model version, or the id of either; "
                        f"got {kind}")
    return client.storage.experiment.get_experiment(id=experiment_id, response_metadata={"pattern": ["%"]}).experiment


def _named_in_any_project(client: Any, find: Callable[[Any, Message, str], Message], name: str, kind: str,
                          instead: str) -> str | None:
    """The id of the one entity ``find(client, project, name)`` finds among the projects the user may
    see; None if none has that name; LookupError (saying to pass ``instead``) if several have."""
    named = []
    for project in client.storage.project.list_projects().project:
        with contextlib.suppress(LookupError):
            named.append(find(client, project, name).id)
    if len(named) > 1:
        raise LookupError(f"{len(named)} {kind} are named {name!r}; pass {instead} ({', '.join(named)})")
    return named[0] if named else None


def _experiment_id(client: Any, text: str) -> str:
    """The experiment an id, a registered model version's id, or an experiment's display name names."""
    with contextlib.suppress(NotFound):
        return client.storage.experiment.get_experiment(id=text).experiment.id
    with contextlib.suppress(NotFound):
        return client.storage.registered_model_version.get_model_version(
            model_version_id=text).registered_model_version.experiment_id
    named = _named_in_any_project(client, find_experiment, text, "experiments", "an id")
    if named is not None:
        return named
    raise LookupError(f"no experiment or registered model version has the id or name {text!r} in the projects you "
                      "may see")


def _home_project(client: Any, experiment: Message) -> str:
    """The id of the project an experiment is in (the first one, if it is linked into several)."""
    projects = client.storage.project.list_projects_containing_experiment(experiment_id=experiment.id).project
    if not projects:
        raise LookupError(f"experiment {experiment.id} is in no project you may see")
    return projects[0].id


def register_model(client: Any, experiment: Message | str, model_name: str, description: str = "") -> RegisteredVersion:
    """Register ``experiment`` as the next version of the registered model ``model_name`` in its project.

    The model is created when the project has none of that name. Returns the model and the new version.
    """
    found = _experiment_of(client, experiment)
    project_id = _home_project(client, found)
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
    artifacts = client.storage.artifact.list_entity_artifacts(entity_id=experiment.id).artifact
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


def _composition(client: Any, experiment_or_version: Message | str, runtime: str | None) -> tuple[Message, dict]:
    experiment = _experiment_of(client, experiment_or_version)
    artifact, row = _deployable(client, experiment)
    return experiment, {"deployment_composition": {
        "experiment_id": experiment.id, "artifact_id": artifact.id,
        "deployable_artifact_type_name": row["deployable_artifact_type_name"],
        "artifact_processor_name": row["artifact_processor_name"],
        "runtime_name": _runtime(experiment, row, runtime)}}


def _environment_id(client: Any, project_id: str, environment: str | None) -> str:
    environments = client.storage.deployment_environment.list_deployment_environments(
        project_id=project_id).deployment_environment
    if environment is None:
        if not environments:
            raise LookupError(f"project {project_id} has no deployment environment")
        return environments[0].id
    for candidate in environments:
        if environment in (candidate.id, candidate.display_name):
            return candidate.id
    raise ValueError(f"project {project_id} has no deployment environment {environment!r}; it has "
                     f"{', '.join(repr(e.display_name) for e in environments)}")


def _create(client: Any, project_id: str, shape: dict[str, Any], *, name: str, description: str,
            environment: str | None, passphrase: str | None, monitoring: bool) -> Message:
    security = {"passphrase": {"hash": passphrase, "passphrase_hash_type": "PASSPHRASE_HASH_TYPE_PLAINTEXT"}} \
        if passphrase else {}
    return client.deployer.deployment.create_deployment(deployment={
        "project_id": project_id, "deployment_environment_id": _environment_id(client, project_id, environment),
        "display_name": name, "description": description, "security": security,
        "monitor": {"enable": monitoring}, **shape}).deployment


def deploy(client: Any, experiment_or_version: Message | str, name: str | None = None, runtime: str | None = None,
           environment: str | None = None, passphrase: str | None = None, *, description: str = "",
           monitoring: bool = True) -> Message:
    """Deploy one model; returns the deployer's ``DeployDeployment`` (it starts PREPARING).

    ``experiment_or_version`` is an experiment, a registered model version (or what
    :func:`register_model` returned), the id of either, or an experiment's display name. ``runtime`` (a runtime name or
    display name) defaults to the catalog's for the experiment's artifact type (for an MLflow
    model, the runtime of the Python it was saved with, else the newest); one that cannot
    serve the artifact raises ``ValueError`` with the choices, before any deployment call.
    ``environment`` (id or name) defaults to the project's first; ``passphrase`` protects the
    scoring URL (send it with :func:`score`).
    """
    experiment, element = _composition(client, experiment_or_version, runtime)
    return _create(client, _home_project(client, experiment), {"single_deployment": element},
                   name=name or experiment.display_name, description=description, environment=environment,
                   passphrase=passphrase, monitoring=monitoring)


def deploy_split(client: Any, models: Sequence[Message | str], weights: Sequence[int] | None = None,
                 name: str | None = None, runtime: str | None = None, environment: str | None = None,
                 passphrase: str | None = None, *, description: str = "", monitoring: bool = True) -> Message:
    """Deploy two or more models that share the traffic by ``weights`` (equal shares by default)."""
    if len(models) < 2:
        raise ValueError(f"a split deployment takes two or more models, got {len(models)}")
    weights = list(weights) if weights is not None else [100 // len(models)] * len(models)
    if len(weights) != len(models) or any(w <= 0 for w in weights):
        raise ValueError(f"give one positive weight per model ({len(models)} models), got {weights}")
    parts = [_composition(client, m, runtime) for m in models]
    elements = [{**element, "weight": w} for (_, element), w in zip(parts, weights, strict=True)]
    first = parts[0][0]
    return _create(client, _home_project(client, first), {"split_deployment": {"split_elements": elements}},
                   name=name or " / ".join(e.display_name for e, _ in parts), description=description,
                   environment=environment, passphrase=passphrase, monitoring=monitoring)


def deploy_shadow(client: Any, primary: Message | str, shadow: Message | str, name: str | None = None,
                  runtime: str | None = None, environment: str | None = None, passphrase: str | None = None, *,
                  description: str = "", monitoring: bool = True) -> Message:
    """Deploy ``primary``, which answers every request, with ``shadow`` scoring a copy of each (for monitoring)."""
    (first, primary_element), (second, shadow_element) = (_composition(client, primary, runtime),
                                                          _composition(client, shadow, runtime))
    return _create(client, _home_project(client, first),
                   {"shadow_deployment": {"primary_element": primary_element, "secondary_element": shadow_element}},
                   name=name or f"{first.display_name} (shadow: {second.display_name})", description=description,
                   environment=environment, passphrase=passphrase, monitoring=monitoring)


# -- which deployment -------------------------------------------------------------------------------


def deployment_id(client: Any, deployment: Message | str, project: Message | str | None = None) -> str:
    """The id of a deployment given as a message, an id, or a display name (in ``project``, or any project)."""
    if isinstance(deployment, Message):
        kind = type(deployment).__name__
        if kind == "DeployDeploymentStatus":
            return deployment.deployment_id
        if kind in ("DeployDeployment", "StorageDeployment"):
            return deployment.id
        raise TypeError(f"a {kind} is not a deployment; pass a DeployDeployment, its status, or its id or name")
    if not isinstance(deployment, str) or not deployment:
        raise TypeError(f"pass a deployment (a message, its id or its name), got {type(deployment).__name__}")
    if project is not None:
        return find_deployment(client, project, deployment).id
    try:
        client.deployer.deployment_status.get_deployment_status(deployment_id=deployment)
        return deployment
    except NotFound:
        pass
    named = _named_in_any_project(client, find_deployment, deployment, "deployments", "project= or an id")
    if named is not None:
        return named
    raise LookupError(f"no deployment has the id or name {deployment!r} in the projects you may see")


def _status(client: Any, deployment: str) -> Message:
    return client.deployer.deployment_status.get_deployment_status(deployment_id=deployment).deployment_status


# -- waiting ---------------------------------------------------------------------------------------


class _Timeline:
    """The states a deployment went through while we watched, for the live display."""

    def __init__(self, deployment: str) -> None:
        self.deployment = deployment
        self.started = time.monotonic()
        self.states: list[tuple[str, float, str]] = []  # (state, monotonic time entered, message)

    def see(self, status: Message) -> bool:
        state, message = str(status.state), status.message or ""
        if self.states and self.states[-1][0] == state:
            if self.states[-1][2] != message:
                self.states[-1] = (state, self.states[-1][1], message)
            return False
        self.states.append((state, time.monotonic(), message))
        return True

    def html(self) -> str:
        from mlops_nb.notebook.display import state_badge

        now = time.monotonic()
        rows = []
        for i, (state, since, message) in enumerate(self.states):
            until = self.states[i + 1][1] if i + 1 < len(self.states) else now
            rows.append(f"<tr><td>{state_badge(state)}</td><td style='text-align:right'>{until - since:.1f} s</td>"
                        f"<td style='text-align:left'>{html.escape(message)}</td></tr>")
        return ("<div class='mlops-nb-wait'><b>deployment " + html.escape(self.deployment) + "</b>, waiting "
                f"{now - self.started:.0f} s<table>{''.join(rows)}</table></div>")

    def line(self) -> str:
        state, since, message = self.states[-1]
        return f"[{since - self.started:6.1f} s] {self.deployment}: {state} {message}".rstrip()


def _log_tail(client: Any, deployment: str) -> list[str]:
    with contextlib.suppress(MLOpsError):
        entries = client.deployer.log.list_log_entries(parent=deployment, max_lines=LOG_LINES_IN_ERRORS).log_entries
        return [e.text_payload for e in entries]
    return []


def wait_for_healthy(client: Any, deployment: Message | str, timeout: float = 300, interval: float = 1.0, *,
                     project: Message | str | None = None) -> Message:
    """Wait until the deployment is HEALTHY; returns its ``DeployDeploymentStatus``.

    In a notebook one output updates in place: each state the deployment went through, how long
    it stayed, what the deployer said; it ends as the deployment's card. In a terminal, a line
    per state change. FAILED raises :class:`DeploymentFailed` with the reason and the last log
    lines; no HEALTHY within ``timeout`` seconds raises :class:`DeploymentTimeout` (also a
    ``TimeoutError``). Ctrl-C (interrupting the kernel) stops waiting and leaves the deployment
    alone: the last status is returned.
    """
    if timeout <= 0 or interval <= 0:
        raise ValueError(f"timeout and interval must be positive, got {timeout} and {interval}")
    target = deployment_id(client, deployment, project)
    timeline = _Timeline(target)
    live = in_kernel()
    handle = None
    if live:
        from IPython.display import HTML, display

        handle = display(HTML(timeline.html()), display_id=True)
    deadline = time.monotonic() + timeout
    status = _status(client, target)
    try:
        while True:
            changed = timeline.see(status)
            if handle is not None:
                handle.update(HTML(timeline.html()))
            elif changed:
                print(timeline.line(), flush=True)
            state = str(status.state)
            if state == "HEALTHY":
                break
            if state == "FAILED":
                raise DeploymentFailed(target, status.message or "no reason given", _log_tail(client, target))
            if time.monotonic() >= deadline:
                raise DeploymentTimeout(target, state, status.message or "", timeout)
            time.sleep(min(interval, max(deadline - time.monotonic(), 0.01)))
            status = _status(client, target)
    except KeyboardInterrupt:
        note = f"stopped waiting; deployment {target} is {status.state} and carries on"
        if handle is not None:
            handle.update(HTML(timeline.html() + f"<p>{html.escape(note)}</p>"))
        else:
            print(note, flush=True)
        return status
    if handle is not None:
        handle.update(_card(client, target, status))
    return status


def _card(client: Any, deployment: str, status: Message) -> Any:
    """The deployment's card (the deployer's view, with the status the client just saw)."""
    from IPython.display import HTML

    projects = client.storage.deployment.get_deployment(deployment_id=deployment).deployment.project_id
    view = next((d for d in client.deployer.deployment.list_project_deployments(project_id=projects).deployment
                 if d.id == deployment), None)
    shown = view if view is not None else status
    return HTML(shown._repr_html_() or html.escape(repr(shown)))


# -- scoring ---------------------------------------------------------------------------------------

# Scoring API data types -> pandas dtypes of the output columns.
_DTYPES = {"Float64": "float64", "Float32": "float32", "Int64": "Int64", "Int32": "Int32", "Bool": "boolean",
           "Str": "string", "Bytes": "string"}
RETRY_STATUSES = (404, 502, 503, 504)  # a just-healthy deployment's routes can answer these for a moment


def _session(client: Any, passphrase: str | None) -> Any:
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    session = requests.Session()
    retry = Retry(total=8, backoff_factor=0.25, status_forcelist=RETRY_STATUSES, allowed_methods=["GET", "POST"],
                  raise_on_status=False, respect_retry_after_header=True)
    session.mount("http://", HTTPAdapter(max_retries=retry))
    session.mount("https://", HTTPAdapter(max_retries=retry))
    transport = getattr(client, "_transport", None)
    session.verify = getattr(transport, "verify", True)
    if transport is not None:
        session.proxies.update(transport.session.proxies)
    if passphrase:
        session.headers["Authorization"] = f"Bearer {passphrase}"
    return session


def _answer(response: Any) -> Any:
    if response.status_code == 401:
        raise ScoringError(401, "the deployment wants a passphrase (or a different one): pass passphrase=")
    if not 200 <= response.status_code < 300:
        try:
            message = response.json().get("message", response.text)
        except ValueError:
            message = response.text[:500]
        raise ScoringError(response.status_code, message)
    return response.json()


def _as_text(column: pd.Series) -> list[str]:
    """One input column as the scoring API wants it: strings, missing values as empty ones."""
    if pd.api.types.is_bool_dtype(column):
        text = column.map({True: "true", False: "false"})
    elif pd.api.types.is_datetime64_any_dtype(column):
        text = column.map(lambda v: v.isoformat() if not pd.isna(v) else None)
    else:
        text = column.astype(object).map(lambda v: v if isinstance(v, str) else repr(v) if isinstance(v, float)
                                          else str(v))
    return text.where(column.notna(), "").tolist()


def _typed(values: list[list[str]], fields: list[str], kinds: dict[str, str], index: pd.Index) -> pd.DataFrame:
    frame = pd.DataFrame(values, columns=fields, index=index, dtype=object)
    for name in fields:
        kind = kinds.get(name, "Str")
        column = frame[name].replace({"": None, "NaN": None})
        if kind == "Time64":
            frame[name] = pd.to_datetime(column, utc=True)
        elif kind == "Bool":
            frame[name] = column.map({"true": True, "false": False, "1": True, "0": False}).astype("boolean")
        elif kind in ("Float64", "Float32", "Int64", "Int32"):
            frame[name] = pd.to_numeric(column).astype(_DTYPES[kind])
        else:
            frame[name] = frame[name].astype("string")
    return frame


def score(client: Any, deployment: Message | str, frame: pd.DataFrame, passphrase: str | None = None,
          batch_size: int = 1000, *, project: Message | str | None = None, progress: bool | None = None) -> pd.DataFrame:
    """Score ``frame`` on a deployment; returns the predictions as a DataFrame on ``frame``'s index.

    The columns the model takes (from the deployment's schema) are sent as the scoring API wants
    them (strings, in batches of ``batch_size`` rows, with a progress bar past a few batches);
    other columns are left out. The output columns are typed from the schema. A column the model
    needs and ``frame`` lacks raises ``KeyError`` naming it, before anything is sent; the short
    404/502/503 of a just-healthy deployment is retried; other refusals raise :class:`ScoringError`
    with the deployment's words.
    """
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"score takes a pandas DataFrame, got {type(frame).__name__}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    target = deployment_id(client, deployment, project)
    url = _status(client, target).scorer.score.url
    if not url:
        raise ScoringError(503, f"deployment {target} has no scoring URL yet; wait_for_healthy first")
    session = _session(client, passphrase)
    try:
        schema = _answer(session.get(url.rsplit("/", 1)[0] + "/schema", timeout=60))["schema"]
        inputs = [f["name"] for f in schema["inputFields"]]
        missing = [name for name in inputs if name not in frame.columns]
        if missing:
            raise KeyError(f"the frame lacks the column{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))}"
                           f" that the model takes; it takes {', '.join(inputs)}")
        kinds = {f["name"]: f["dataType"] for f in schema["outputFields"]}
        columns = {name: _as_text(frame[name]) for name in inputs}
        batches = range(0, len(frame), batch_size)
        show = progress if progress is not None else len(batches) > 3
        bar = _bar(len(frame)) if show else None
        out_fields: list[str] = [f["name"] for f in schema["outputFields"]]
        scored: list[list[str]] = []
        try:
            for start in batches:
                rows = [list(r) for r in zip(*(c[start:start + batch_size] for c in columns.values()), strict=True)]
                body = _answer(session.post(url, json={"fields": inputs, "rows": rows}, timeout=300))
                out_fields = body.get("fields", out_fields)
                scored.extend(body["score"])
                if bar is not None:
                    bar.update(len(scored), f"{len(scored):,} / {len(frame):,} rows", len(frame))
        finally:
            if bar is not None:
                bar.close(len(scored), f"{len(scored):,} rows scored", len(scored) == len(frame))
    finally:
        session.close()
    return _typed(scored, out_fields, kinds, frame.index)


def _bar(total: int) -> Any:
    return progress("scoring", "rows", total)


# -- logs --------------------------------------------------------------------------------------------

_LOG_LINE = re.compile(r"^(?P<time>\d{4}-\d\d-\d\dT[\d:.]+Z) \[(?P<source>[^\]]*)\] (?P<message>.*)$", re.S)


def deployment_logs(client: Any, deployment: Message | str, max_lines: int | None = None, filter: str = "", *,
                    project: Message | str | None = None) -> pd.DataFrame:
    """A deployment's log lines, oldest first: ``time`` (UTC), ``source``, ``message``.

    ``max_lines`` keeps the last ones; ``filter`` keeps those containing it. Lines not in the
    ``TIME [SOURCE] TEXT`` layout keep their text in ``message``.
    """
    target = deployment_id(client, deployment, project)
    rows = []
    for entry in _entries(client, target, max_lines, filter):
        match = _LOG_LINE.match(entry.text_payload)
        rows.append(match.groupdict() if match else {"time": None, "source": "", "message": entry.text_payload})
    logs = pd.DataFrame(rows, columns=["time", "source", "message"])
    logs["time"] = pd.to_datetime(logs["time"], utc=True)
    logs[["source", "message"]] = logs[["source", "message"]].astype("string")
    return logs


def _entries(client: Any, target: str, max_lines: int | None, filter: str) -> Iterator[Message]:
    token = ""
    while True:
        page = client.deployer.log.list_log_entries(parent=target, max_lines=max_lines or 0, filter=filter,
                                                    page_token=token or None)
        yield from page.log_entries
        token = page.next_page_token
        if not token or max_lines:
            return

