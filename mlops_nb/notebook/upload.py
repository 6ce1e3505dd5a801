"""A model into a project: :func:`upload_model`.

Uploads the model's zip as an artifact of the project (with a progress bar), has it ingested and
makes the experiment of it, with the artifact moved to it (each step as the client's generation
of the API spells it: :mod:`~mlops_nb.notebook.generations`).
A model is a path (an MLflow model folder or zip, an H2O-3 MOJO, a DAI MOJO pipeline), an
in-memory scikit-learn estimator, which MLflow saves, or a trained H2O-3 model (from the ``h2o``
package), which H2O-3 exports as a MOJO.
"""

from __future__ import annotations

import io
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import pandas as pd

from mlops_nb.notebook.generations import entity_id, operations
from mlops_nb.notebook.lookup import project_of
from mlops_nb.notebook.progress import progress
from mlops_nb.wire.messages import Message

__all__ = ["upload_model"]

MLMODEL = "MLmodel"


def zip_folder(folder: Path) -> bytes:
    """The files under ``folder`` as a zip, by their paths relative to it (what an MLflow model zip holds)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(folder).as_posix())
    return buffer.getvalue()


def _is_estimator(model: Any) -> bool:
    return hasattr(model, "fit") and hasattr(model, "predict") and hasattr(model, "get_params")


def _is_h2o_model(model: Any) -> bool:
    """An H2O-3 model object (it has scikit-learn's fit and get_params too, so ask this first)."""
    return type(model).__module__.split(".", 1)[0] == "h2o" and hasattr(model, "save_mojo")


def _export_mojo(model: Any) -> bytes:
    """An H2O-3 model's MOJO, exported by its cluster (``save_mojo``)."""
    if getattr(model, "model_id", None) is None:
        raise ValueError("the H2O-3 model has not been trained yet; train it, then upload it")
    if not getattr(model, "have_mojo", True):
        raise ValueError(f"H2O-3 cannot export {model.model_id} ({model.algo}) as a MOJO, which the MOJO runtime "
                         "scores; choose an algorithm with MOJO support (GBM, GLM, DRF, XGBoost, ...)")
    with tempfile.TemporaryDirectory() as scratch:
        try:
            path = model.save_mojo(scratch)
        except Exception as e:  # h2o's own error: an old cluster, a release that refuses MOJO export, ...
            hint = (" (h2o 3.46.0.12 refuses MOJO export, 3.46.0.6 exports: pip install 'mlops_nb[h2o]')"
                    if "requires H2O-3 Secure" in str(e) else "")
            raise ValueError(f"H2O-3 could not export {model.model_id} as a MOJO: {e}{hint}") from e
        return Path(path).read_bytes()


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
        return zip_folder(folder)


def _model_bytes(model: Any, input_example: Any) -> tuple[bytes, str]:
    """(zip bytes, a default name) for a path or an in-memory estimator."""
    if isinstance(model, (str, Path)):
        path = Path(model).expanduser()
        if path.is_dir():
            if not (path / MLMODEL).is_file():
                raise ValueError(f"{path} is a folder without an MLmodel file; pass an MLflow model folder, or a zip "
                                 "(MLflow model, H2O-3 MOJO or DAI MOJO pipeline)")
            return zip_folder(path), path.name
        if not path.is_file():
            raise FileNotFoundError(f"no file or folder {path}")
        if not zipfile.is_zipfile(path):
            raise ValueError(f"{path} is not a zip file; pass an MLflow model (folder or zip), an H2O-3 MOJO zip or "
                             "a DAI MOJO pipeline zip")
        return path.read_bytes(), path.stem
    if _is_h2o_model(model):
        return _export_mojo(model), str(model.model_id)
    if _is_estimator(model):
        return _save_estimator(model, input_example), type(model).__name__
    raise TypeError(f"model must be a path (an MLflow model folder or zip, an H2O-3 MOJO, a DAI MOJO pipeline), "
                    f"a scikit-learn estimator or pipeline, or an H2O-3 model; got {type(model).__name__}")


def _upload(client: Any, artifact_id: str, data: bytes, show: bool) -> None:
    bar = progress("uploading", f"artifact {artifact_id}", len(data)) if show else None
    sent = 0

    def step(done: int) -> None:
        nonlocal sent
        sent = done
        if bar is not None:
            bar.update(done, f"{done / 2**20:,.1f} / {len(data) / 2**20:,.1f} MiB", len(data))

    try:
        operations(client).upload(artifact_id, data, step)
    finally:
        if bar is not None:
            bar.close(sent, f"{sent / 2**20:,.1f} MiB uploaded", sent == len(data))


def _training_dataset(client: Any, project_id: str, name: str, frame: Any, show: bool | None) -> str:
    """The training data as a dataset of the project, with its CSV uploaded; returns the dataset's id."""
    if type(frame).__name__ == "H2OFrame":
        frame = frame.as_data_frame(use_multi_thread=False)
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"training_data must be a DataFrame (or an H2OFrame), got {type(frame).__name__}")
    data = frame.to_csv(index=False).encode()
    dataset = client.storage.dataset.create_dataset(project_id=project_id, dataset={
        "display_name": f"{name} training data", "row_count": len(frame), "col_count": len(frame.columns),
        "size": len(data)}).dataset
    artifact = client.storage.artifact.create_artifact(artifact={
        "entity_id": dataset.id, "type": f"{name}.csv", "mime_type": "text/csv"}).artifact
    _upload(client, artifact.id, data, show if show is not None else len(data) > 2**20)
    return dataset.id


def upload_model(client: Any, project: Message | str, model: Any, name: str | None = None, description: str = "",
                 *, input_example: pd.DataFrame | None = None, training_data: Any = None,
                 progress: bool | None = None) -> Message:
    """Put a model into ``project`` as a new experiment; returns the ``StorageExperiment``.

    On the legacy generation of the API the bytes go over ByteStream and the ingest server reads
    them; on the workspaces generation they go to a presigned URL and storage ingests them (as
    H2O's ``h2o-mlops`` 1.6 does): the same experiment either way.

    ``model`` is a path (an MLflow model folder or zip, an H2O-3 MOJO zip, a DAI MOJO pipeline
    zip), an in-memory scikit-learn estimator or pipeline, which MLflow saves
    (``mlflow.sklearn.save_model``, skops format) with a signature inferred from
    ``input_example`` (a few input rows; without it the model has no signature), or a trained
    H2O-3 model, whose MOJO its cluster exports (named after its ``model_id``). ``project``
    is a project (a workspace on the workspaces generation of the API), its id or its display name. ``training_data`` (the frame the model was fitted
    on: a DataFrame, or an H2OFrame) becomes a dataset of the project linked as the experiment's
    training dataset: model monitoring measures drift against it. The upload shows a progress bar for models over 1 MiB
    (``progress=True`` always, ``False`` never).
    """
    target = entity_id(project_of(client, project))
    data, default_name = _model_bytes(model, input_example)
    artifact = client.storage.artifact.create_artifact(artifact={
        "entity_id": target, "mime_type": "application/zip"}).artifact
    _upload(client, artifact.id, data, progress if progress is not None else len(data) > 2**20)
    parameters = {}
    if training_data is not None:
        parameters["training_dataset_id"] = _training_dataset(client, target, name or default_name, training_data,
                                                              progress)
    experiment_id = operations(client).experiment_from_model(
        target, artifact.id, {"display_name": name or default_name, "description": description}, parameters)
    return client.storage.experiment.get_experiment(id=experiment_id, response_metadata={"pattern": ["%"]}).experiment
