"""The seed's artifact and runtime tables, and what serves what."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

import mlops_nb
from mlops_nb.api import CATALOGS
from mlops_nb.notebook.catalogs import (
    MODEL_TYPES,
    DeployableArtifact,
    artifact_compositions,
    artifact_types,
    deployable_artifact,
    runtimes,
    runtimes_for,
)


def test_the_two_tables() -> None:
    artifacts = artifact_types()
    assert list(artifacts.columns) == ["artifact_type", "deployable_artifact_type_name", "artifact_processor_name",
                                       "model_type"]
    assert len(artifacts) == len(CATALOGS.artifacts) == 7
    assert (artifacts.dtypes == pd.StringDtype()).all()
    pickle = artifacts.set_index("artifact_type").loc["python/pickle"]
    assert pickle["deployable_artifact_type_name"] == "python/pickle" and pd.isna(pickle["model_type"])
    table = runtimes()
    assert list(table.columns) == ["model_type", "model_description", "runtime_display_name", "runtime_name"]
    assert len(table) == len(CATALOGS.runtimes) and table["runtime_name"].is_unique


def test_every_mapped_model_type_has_runtimes() -> None:
    model_types = set(runtimes()["model_type"])
    assert set(MODEL_TYPES.values()) == model_types
    deployables = {a["deployable_artifact_type_name"] for a in CATALOGS.artifacts}
    assert set(MODEL_TYPES) == deployables - {"python/pickle"}


@pytest.mark.parametrize(("name", "model_type"), [
    ("dai/mojo_pipeline", "dai_mojo"),
    ("dai_mojo_pipeline", "dai_mojo"),
    ("dai_mojo", "dai_mojo"),
    ("mlflow/mojo_pipeline", "dai_mojo"),
    ("dai/scoring_pipeline", "dai_python_scoring_pipeline"),
    ("mlflow/scoring_pipeline", "dai_python_scoring_pipeline"),
    ("h2o3/mojo", "h2o3_mojo"),
    ("python/mlflow", "mlflow"),
    ("mlflow", "mlflow"),
])
def test_runtimes_for_artifact_and_model_types(name: str, model_type: str) -> None:
    found = runtimes_for(name)
    expected = [r["runtime_name"] for r in CATALOGS.runtimes if r["model_type"] == model_type]
    assert list(found["runtime_name"]) == expected and expected
    assert list(found.index) == list(range(len(found)))


def test_runtimes_for_what_nothing_serves_or_nobody_knows() -> None:
    assert runtimes_for("python/pickle").empty
    assert list(runtimes_for("python/pickle").columns) == list(runtimes().columns)
    with pytest.raises(LookupError, match="neither a model type nor an artifact type"):
        runtimes_for("sklearn")


def test_deployable_artifact() -> None:
    assert deployable_artifact("h2o3/mojo") == DeployableArtifact("h2o3_mojo", "h2o3_mojo_extractor")
    deployable, processor = deployable_artifact("dai/scoring_pipeline")
    assert (deployable, processor) == ("dai_python_scoring_pipeline", "artifact-processor_dai_pipelines_193")
    assert deployable_artifact("python/mlflow").deployable_artifact_type_name == "python/mlflow.zip"
    with pytest.raises(LookupError, match="known: dai/mojo_pipeline"):
        deployable_artifact("dai_mojo_pipeline")  # a deployable type, not a storage one


def test_compositions_are_the_deployers(alice: Any) -> None:
    ours = artifact_compositions()
    served = alice.deployer.composition.list_artifact_compositions()
    pd.testing.assert_frame_equal(ours, served)
    # One row per runtime of each artifact type; python/pickle, which no runtime serves, has none.
    assert len(ours) == sum(len(runtimes_for(a["artifact_type"])) for a in CATALOGS.artifacts)
    assert "python/pickle" not in set(ours["deployable_artifact_type_artifact_type"]) and ours["runtime_name"].notna().all()
    assert ours.artifact_composition == served.artifact_composition
    mojo = ours[ours["deployable_artifact_type_artifact_type"] == "dai/mojo_pipeline"]
    assert set(mojo["runtime_name"]) == set(runtimes_for("dai_mojo")["runtime_name"])


def test_the_facade_exports_the_catalogs() -> None:
    assert mlops_nb.runtimes_for is runtimes_for and mlops_nb.deployable_artifact is deployable_artifact
    assert mlops_nb.artifact_types is artifact_types and mlops_nb.runtimes is runtimes
