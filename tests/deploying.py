"""Helpers for tests that deploy: real MLflow model zips, deployments made through the API, waiting."""

from __future__ import annotations

import io
import time
import zipfile
from functools import cache
from pathlib import Path
from typing import Any

from mlops_nb.notebook.upload import zip_folder

RUNNABLE = "python-scorer_mlflow_39"
DEPLOYABLE = {  # storage artifact type -> (deployable artifact type, processor, a runtime)
    "python/mlflow": ("python/mlflow.zip", "unzip_processor", RUNNABLE),
    "dai/mojo_pipeline": ("dai_mojo_pipeline", "dai_mojo_pipeline_extractor", "dai_mojo_runtime"),
    "h2o3/mojo": ("h2o3_mojo", "h2o3_mojo_extractor", "h2o3_mojo_runtime"),
}


@cache
def iris_model(kind: str = "logistic") -> tuple[bytes, Any, Any]:
    """(MLflow model zip, the iris features, the fitted model): a real scikit-learn model saved by MLflow."""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LinearRegression, LogisticRegression

    X, y = load_iris(return_X_y=True, as_frame=True)
    model = (LogisticRegression(max_iter=500) if kind == "logistic" else LinearRegression()).fit(X, y)
    return mlflow_zip(model, X), X, model


def mlflow_zip(model: Any, X: Any) -> bytes:
    """A fitted scikit-learn model saved by MLflow (signature and input example from ``X``), zipped."""
    import tempfile

    import mlflow.sklearn
    from mlflow.models import infer_signature

    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "model"
        mlflow.sklearn.save_model(model, str(folder), signature=infer_signature(X, model.predict(X)),
                                  input_example=X.head(3))
        return zip_folder(folder)


@cache
def typed_models() -> dict[str, tuple[bytes, Any, Any]]:
    """(MLflow zip, features, fitted model) for inputs of each kind: strings, integers, floats and a mix.

    The string and mixed models' encoders refuse categories they have not seen (scikit-learn's
    default), so H2O's placeholder "text" does not score with them; the mixed one is a two-class
    Pipeline whose input example mixes strings with NumPy floats and integers.
    """
    import numpy as np
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    rng = np.random.default_rng(7)
    n = 200
    colour = rng.choice(["red", "white", "rose"], n)
    region = rng.choice(["north", "south"], n)
    age = rng.integers(18, 80, n)
    visits = rng.integers(0, 30, n)
    alcohol = rng.normal(11, 1.5, n).round(2)
    acidity = rng.normal(3.2, 0.3, n).round(3)
    strings = pd.DataFrame({"colour": colour, "region": region})
    integers = pd.DataFrame({"age": age, "visits": visits})
    floats = pd.DataFrame({"alcohol": alcohol, "acidity": acidity})
    mixed = pd.DataFrame({"colour": colour, "alcohol": alcohol, "age": age})
    liked = (alcohol + (colour == "red") * 1.5 > 11.7).astype(int)
    string_model = Pipeline([("encode", OneHotEncoder()), ("classify", LogisticRegression())]).fit(strings, liked)
    integer_model = LinearRegression().fit(integers, 2.0 * age + visits)
    float_model = LinearRegression().fit(floats, 3.0 * alcohol - acidity)
    mixed_model = Pipeline([
        ("prepare", ColumnTransformer([("colour", OneHotEncoder(), ["colour"])],
                                      remainder="passthrough")),
        ("classify", LogisticRegression(max_iter=500)),
    ]).fit(mixed, liked)
    return {name: (mlflow_zip(model, X), X, model) for name, model, X in (
        ("strings", string_model, strings), ("integers", integer_model, integers), ("floats", float_model, floats),
        ("mixed", mixed_model, mixed))}


def zip_of(files: dict[str, bytes | str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def experiment_with(client: Any, project_id: str, data: bytes, artifact_type: str = "python/mlflow",
                    name: str = "model") -> str:
    """An experiment with an uploaded artifact of that type and those bytes; returns its id."""
    experiment = client.storage.experiment.create_experiment(project_id=project_id,
                                                             experiment={"display_name": name}).experiment.id
    artifact = client.storage.artifact.create_artifact(artifact={"entity_id": experiment, "type": artifact_type,
                                                                 "mime_type": "application/zip"}).artifact.id
    client.storage.artifact.upload_artifact(artifact, io.BytesIO(data))
    return experiment


def composition(experiment_id: str, artifact_type: str = "python/mlflow", runtime: str = "") -> dict[str, Any]:
    deployable, processor, default_runtime = DEPLOYABLE[artifact_type]
    return {"deployment_composition": {"experiment_id": experiment_id, "deployable_artifact_type_name": deployable,
                                       "artifact_processor_name": processor, "runtime_name": runtime or default_runtime}}


def deploy(client: Any, project_id: str, experiment_id: str, artifact_type: str = "python/mlflow",
           **fields: Any) -> Any:
    """A single-model deployment through the API (the deployer's view)."""
    return client.deployer.deployment.create_deployment(deployment={
        "project_id": project_id, "display_name": fields.pop("display_name", "d"),
        "single_deployment": {**composition(experiment_id, artifact_type), **fields.pop("element", {})},
        **fields}).deployment


def status(client: Any, deployment_id: str) -> Any:
    return client.deployer.deployment_status.get_deployment_status(deployment_id=deployment_id).deployment_status


def wait_for_state(client: Any, deployment_id: str, *states: str, timeout: float = 240.0) -> Any:
    """Poll the status until it is one of ``states``; the status, or AssertionError with the last one."""
    deadline = time.monotonic() + timeout
    while True:
        current = status(client, deployment_id)
        if current.state.value in states:
            return current
        assert time.monotonic() < deadline, f"still {current.state.value} ({current.message}) after {timeout} s"
        time.sleep(0.1)


def python_model_zip(source: str, module: str = "test_model") -> bytes:
    """An MLflow model zip whose pyfunc is ``source``'s ``_load_pyfunc(path)`` (MLflow's loader_module way),
    for models that misbehave on purpose: hang in predict, never finish loading."""
    return zip_of({"MLmodel": f"flavors:\n  python_function:\n    loader_module: {module}\n    code: code\n",
                   f"code/{module}.py": source})
