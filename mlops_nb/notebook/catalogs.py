"""The seed's artifact and runtime tables, and what can serve what.

Two tables come with the seed (``mlops_nb.api.CATALOGS``):

* artifacts: storage artifact type (``dai/mojo_pipeline``) -> deployable artifact
  type (``dai_mojo_pipeline``) -> artifact processor (``dai_mojo_pipeline_extractor``);
* runtimes: model type (``dai_mojo``) -> runtime (``dai_mojo_runtime``, ...).

The seed does not say which model type a deployable artifact becomes; this module
fixes it (the ``model_type`` column of ``mlops_nb/api/catalogs.json``, as ``MODEL_TYPES``). Where the names agree the link is the name itself
(``h2o3_mojo``, ``dai_python_scoring_pipeline``); DAI MOJO pipelines, plain or in
MLflow format, become ``dai_mojo`` models; DAI Python scoring pipelines in MLflow
format become ``dai_python_scoring_pipeline`` models; zipped MLflow models become
``mlflow`` models. No runtime of the seed serves a ``python/pickle`` artifact, so it
has no model type, no runtimes and no composition.

A composition is one (deployable artifact type, artifact processor, model type,
runtime) row: :func:`artifact_compositions` gives them as the deployer's
``ListArtifactCompositions`` does, as a list frame of ``DeployArtifactComposition``.
The sandbox's deployer serves the same table, from the same data.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import pandas as pd

from mlops_nb.api import API, CATALOGS
from mlops_nb.notebook.frames import ListFrame, frame_from_wire

__all__ = [
    "MODEL_TYPES",
    "DeployableArtifact",
    "artifact_compositions",
    "artifact_types",
    "deployable_artifact",
    "runtimes",
    "runtimes_for",
]

# deployable artifact type -> model type of the runtimes that serve it (see the module docstring).
MODEL_TYPES: dict[str, str] = {
    row["deployable_artifact_type_name"]: row["model_type"] for row in CATALOGS.artifacts if row["model_type"]
}


class DeployableArtifact(NamedTuple):
    """What the deployer makes of a storage artifact type."""

    deployable_artifact_type_name: str
    artifact_processor_name: str


def _strings(rows: list[dict[str, Any]], columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=columns).astype(pd.StringDtype())


def artifact_types() -> pd.DataFrame:
    """The storage artifact types the deployer knows: deployable type, processor and model type."""
    rows = [{**a, "model_type": MODEL_TYPES.get(a["deployable_artifact_type_name"])} for a in CATALOGS.artifacts]
    return _strings(rows, ["artifact_type", "deployable_artifact_type_name", "artifact_processor_name",
                           "model_type"])


def runtimes() -> pd.DataFrame:
    """Every runtime of the seed's table, with the model type it serves."""
    return _strings(list(CATALOGS.runtimes), ["model_type", "model_description", "runtime_display_name",
                                              "runtime_name"])


def _artifact(artifact_type: str) -> dict[str, str] | None:
    return next((a for a in CATALOGS.artifacts
                 if artifact_type in (a["artifact_type"], a["deployable_artifact_type_name"])), None)


def deployable_artifact(artifact_type: str) -> DeployableArtifact:
    """The deployable artifact type and the processor for a storage artifact type (``dai/mojo_pipeline``)."""
    row = next((a for a in CATALOGS.artifacts if a["artifact_type"] == artifact_type), None)
    if row is None:
        known = ", ".join(a["artifact_type"] for a in CATALOGS.artifacts)
        raise LookupError(f"unknown artifact type {artifact_type!r}; known: {known}")
    return DeployableArtifact(row["deployable_artifact_type_name"], row["artifact_processor_name"])


def runtimes_for(artifact_type_or_model_type: str) -> pd.DataFrame:
    """The runtimes that can serve a model type (``dai_mojo``), a storage artifact type
    (``dai/mojo_pipeline``) or a deployable artifact type (``dai_mojo_pipeline``).

    Empty for an artifact type no runtime serves (``python/pickle``); unknown names raise
    ``LookupError``.
    """
    name = artifact_type_or_model_type
    table = runtimes()
    model_types = set(table["model_type"])
    if name not in model_types:
        artifact = _artifact(name)
        if artifact is None:
            known = sorted(model_types | {a["artifact_type"] for a in CATALOGS.artifacts})
            raise LookupError(f"{name!r} is neither a model type nor an artifact type; known: {', '.join(known)}")
        name = MODEL_TYPES.get(artifact["deployable_artifact_type_name"], "")
    return table[table["model_type"] == name].reset_index(drop=True)


def artifact_compositions() -> ListFrame:
    """Every composition, shaped like ``deployer.composition.list_artifact_compositions()``'s result.

    An artifact type no runtime serves (``python/pickle``) has no composition.
    """
    method = API.method("deployer.composition.list_artifact_compositions")
    return frame_from_wire(method, {"artifactComposition": CATALOGS.compositions()})
