"""H2O-3 MOJOs deployed in the sandbox: genmodel scores them as H2O-3 itself does.

Three models trained in this session's h2o cluster (tests/h2o3.py: a binomial and a multinomial
GBM, a regression GLM, each with a categorical input) are uploaded and ingested as the official
client does, deployed on ``h2o3_mojo_runtime`` and scored, 1,000 rows each (with missing values,
an unseen level and a field the model does not use), through the scoring URL and through
``mlops_nb.score``; the answers match H2O-3's in-cluster predictions to 1e-6. Then a split
between a MOJO and an MLflow model, monitoring, a restart, a damaged MOJO and a missing genmodel.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import requests

import mlops_nb
from mlops_nb.sandbox import Sandbox
from tests.deploying import composition, deploy, iris_model, wait_for_state, zip_of
from tests.h2o3 import FEATURES, TrainedModel, as_request_values
from tests.test_sandbox_artifacts import new_project
from tests.test_sandbox_scoring import ingest_like_the_official_client

pytestmark = pytest.mark.mojo

KINDS = ("binomial", "multinomial", "regression")
SCORING_TYPES = {"binomial": "BINOMIAL", "multinomial": "CLASSIFICATION", "regression": "REGRESSION"}


@pytest.fixture(scope="module")
def deployed(sandbox: Sandbox, alice: Any, h2o_models: dict[str, TrainedModel]) -> dict[str, Any]:
    """Each model's experiment and HEALTHY deployment (all three deployed at once)."""
    project = new_project(alice, "h2o-3 models")
    experiments = {kind: ingest_like_the_official_client(alice, project, h2o_models[kind].mojo, f"gbm {kind}")
                   for kind in KINDS}
    deployments = {kind: deploy(alice, project, experiments[kind], "h2o3/mojo", display_name=kind).id
                   for kind in KINDS}
    statuses = {}
    for kind, deployment in deployments.items():
        statuses[kind] = wait_for_state(alice, deployment, "HEALTHY", "FAILED")
        assert statuses[kind].state.value == "HEALTHY", statuses[kind].message
    return {"project": project, "experiments": experiments, "deployments": deployments, "statuses": statuses}


def _schema(status: Any) -> dict[str, Any]:
    return requests.get(status.scorer.sample_request.url.rsplit("/", 1)[0] + "/schema", timeout=10).json()


def _assert_matches(kind: str, got: pd.DataFrame, expected: pd.DataFrame) -> None:
    """Labels equal, numbers within 1e-6 of H2O-3's own."""
    assert list(got.columns) == list(expected.columns)
    if kind != "regression":
        assert got["predict"].astype(str).tolist() == expected["predict"].astype(str).tolist()
    numbers = [c for c in expected.columns if kind == "regression" or c != "predict"]
    np.testing.assert_allclose(got[numbers].astype(float).to_numpy(), expected[numbers].to_numpy(dtype=float),
                               rtol=0, atol=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_the_schema_is_the_mojos(kind: str, alice: Any, deployed: dict[str, Any],
                                 h2o_models: dict[str, TrainedModel]) -> None:
    trained = h2o_models[kind]
    status = deployed["statuses"][kind]
    assert status.message.startswith("1 scorer ready")
    schema = _schema(status)
    assert schema["id"] == deployed["experiments"][kind]
    # In the MOJO's order (a GLM puts its categorical columns first).
    inputs = schema["schema"]["inputFields"]
    assert {f["name"]: f["dataType"] for f in inputs} == {"size": "Float64", "weight": "Float64", "color": "Str"}
    # H2O's names: the label ("predict"), then one probability per class, as its own prediction frame.
    outputs = schema["schema"]["outputFields"]
    assert [f["name"] for f in outputs] == list(trained.expected.columns)
    assert [f["dataType"] for f in outputs] == (["Float64"] if kind == "regression"
                                                else ["Str"] + ["Float64"] * (len(outputs) - 1))
    assert schema["properties"]["scoringType"] == SCORING_TYPES[kind]
    sample = requests.get(status.scorer.sample_request.url, timeout=10).json()
    assert sample["fields"] == [f["name"] for f in inputs]
    # H2O's typed placeholders ("text" is a level the model never saw: it scores as missing).
    assert dict(zip(sample["fields"], sample["rows"][0], strict=True)) == {"size": "0", "weight": "0", "color": "text"}
    assert requests.post(status.scorer.score.url, json=sample, timeout=10).status_code == 200
    assert requests.get(status.scorer.capabilities.url, timeout=10).json() == ["SCORE"]
    # What ingest read off the MOJO, stored on the experiment as the official client stores it.
    experiment = alice.storage.experiment.get_experiment(id=deployed["experiments"][kind],
                                                         response_metadata={"pattern": ["%"]}).experiment
    values = experiment.metadata.values
    assert values["tool"].string_value == "H2O-3" and values["tool_version"].string_value == "3.46.0.6"
    assert values["h2o3/category"].string_value == {"binomial": "Binomial", "multinomial": "Multinomial",
                                                     "regression": "Regression"}[kind]
    assert values["model_type"].string_value == ("Generalized Linear Modeling" if kind == "regression"
                                                 else "Gradient Boosting Machine")
    assert values["h2o3/response_column"].string_value == "label" == experiment.parameters.target_column
    domains = json.loads(values["h2o3/domains"].json_value)
    assert domains["color"] == ["blue", "green", "red"]
    assert domains.get("label") == (None if kind == "regression" else sorted(set(trained.train["label"])))


@pytest.mark.parametrize("kind", KINDS)
def test_the_scoring_url_answers_what_h2o_predicts(kind: str, deployed: dict[str, Any],
                                                   h2o_models: dict[str, TrainedModel]) -> None:
    trained = h2o_models[kind]
    # Fields in another order, plus one the model does not use; rows come back in the order sent.
    fields = ["color", "note", "weight", "size"]
    rows = [[c, "ignored", w, s] for s, w, c in as_request_values(trained.rows)]
    response = requests.post(deployed["statuses"][kind].scorer.score.url, timeout=60,
                             json={"fields": fields, "rows": rows, "includeFieldsInOutput": ["color"]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["fields"] == ["color", *trained.expected.columns]
    assert [row[0] for row in body["score"]] == [row[0] for row in rows]
    got = pd.DataFrame([row[1:] for row in body["score"]], columns=body["fields"][1:])
    _assert_matches(kind, got, trained.expected)


@pytest.mark.parametrize("kind", KINDS)
def test_score_returns_typed_predictions_on_the_frames_index(kind: str, alice: Any, deployed: dict[str, Any],
                                                              h2o_models: dict[str, TrainedModel]) -> None:
    trained = h2o_models[kind]
    rows = trained.rows.set_axis(pd.RangeIndex(5000, 5000 + len(trained.rows)))
    predictions = mlops_nb.score(alice, deployed["deployments"][kind], rows.assign(extra="unused"),
                                 batch_size=300)
    assert predictions.index.equals(rows.index)
    _assert_matches(kind, predictions, trained.expected)
    numbers = list(predictions.columns) if kind == "regression" else list(predictions.columns[1:])
    assert all(predictions[c].dtype == "float64" for c in numbers)
    if kind != "regression":
        assert predictions["predict"].dtype == "string"


def test_a_bad_number_is_refused_naming_its_row(deployed: dict[str, Any]) -> None:
    response = requests.post(deployed["statuses"]["binomial"].scorer.score.url, timeout=10, json={
        "fields": FEATURES, "rows": [["1", "2", "red"], ["big", "2", "red"]]})
    assert response.status_code == 400
    assert response.json()["message"].startswith("row 1: hex.genmodel.easy.exception.PredictNumberFormatException")


def test_a_split_between_a_mojo_and_an_mlflow_model_serves_both(sandbox: Sandbox, alice: Any,
                                                                  deployed: dict[str, Any]) -> None:
    project = deployed["project"]
    data, iris, _ = iris_model()
    mlflow_experiment = ingest_like_the_official_client(alice, project, data, "iris")
    split = alice.deployer.deployment.create_deployment(deployment={
        "project_id": project, "display_name": "mojo and mlflow", "split_deployment": {"split_elements": [
            {**composition(deployed["experiments"]["binomial"], "h2o3/mojo"), "weight": 50},
            {**composition(mlflow_experiment), "weight": 50}]}}).deployment.id
    healthy = wait_for_state(alice, split, "HEALTHY", "FAILED")
    assert healthy.state.value == "HEALTHY", healthy.message
    assert "H2O.ai MOJO scorer" in " ".join(mlops_nb.deployment_logs(alice, split)["message"])
    # One request format for both: each scorer takes its own fields and ignores the others.
    fields = [*FEATURES, *iris.columns]
    row = ["11.5", "3.0", "red", *map(repr, iris.iloc[0].tolist())]
    answered = set()
    for _ in range(40):
        body = requests.post(healthy.scorer.score.url, json={"fields": fields, "rows": [row]}, timeout=30).json()
        answered.add(tuple(body["fields"]))
        if len(answered) == 2:
            break
    assert answered == {("predict", "no", "yes"), ("prediction",)}
    alice.deployer.deployment.delete_deployment(id=split)


def test_monitoring_watches_mojo_traffic(alice: Any, deployed: dict[str, Any],
                                         h2o_models: dict[str, TrainedModel]) -> None:
    rows = h2o_models["multinomial"].rows
    for _ in range(2):  # the first 1,000 rows are drift's baseline (no training dataset is linked)
        mlops_nb.score(alice, deployed["deployments"]["multinomial"], rows)
    watched = mlops_nb.monitoring(alice, deployed["deployments"]["multinomial"])
    assert watched.model_id == deployed["experiments"]["multinomial"]
    assert watched.operational["successful_rows"].sum() >= 2 * len(rows)
    assert set(watched.predictions["value"]) <= {"low", "mid", "high"}  # the label, H2O's first output
    assert set(watched.drift.index) == set(FEATURES)
    assert (watched.drift["importance"] > 0).any()  # against a class probability, the first numeric output


def test_a_killed_mojo_scorer_comes_back(sandbox: Sandbox, alice: Any, deployed: dict[str, Any]) -> None:
    deployment = deployed["deployments"]["regression"]
    assert sandbox.supervisor is not None
    [pid] = sandbox.supervisor.pids(deployment)
    os.kill(pid, signal.SIGKILL)
    unhealthy = wait_for_state(alice, deployment, "UNHEALTY", timeout=30)
    assert f"(pid {pid}) exited with code -9; restarting in 1 s" in unhealthy.message
    healthy = wait_for_state(alice, deployment, "HEALTHY")
    assert "restarted" in healthy.message
    sample = requests.get(healthy.scorer.sample_request.url, timeout=10).json()
    assert requests.post(healthy.scorer.score.url, json=sample, timeout=10).status_code == 200


def test_a_damaged_mojo_fails_with_the_reason(alice: Any, deployed: dict[str, Any],
                                              h2o_models: dict[str, TrainedModel]) -> None:
    import io
    import zipfile

    with zipfile.ZipFile(io.BytesIO(h2o_models["binomial"].mojo)) as whole:
        kept = {name: whole.read(name) for name in whole.namelist() if not name.startswith("domains/")}
    experiment = ingest_like_the_official_client(alice, deployed["project"], zip_of(kept), "damaged")
    failed = wait_for_state(alice, deploy(alice, deployed["project"], experiment, "h2o3/mojo").id, "FAILED", "HEALTHY")
    assert failed.state.value == "FAILED"
    assert "genmodel could not load the H2O-3 MOJO" in failed.message
    assert "d000.txt" in failed.message  # genmodel's own words: the domain file it looked for


def test_without_genmodel_the_deployment_says_what_to_install(tmp_path: Path, h2o_models: dict[str, TrainedModel],
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    # Scorer processes inherit the sandbox's environment: in this one, genmodel's jar is nowhere.
    # A sandbox of its own, whose first MOJO scorer starts here (no spare made before).
    monkeypatch.setenv("MLOPS_NB_H2O_GENMODEL_JAR", "/nonexistent/h2o-genmodel.jar")
    with Sandbox(db=str(tmp_path / "s.sqlite3"), data="empty", warm_scorers=0) as sb, sb.client("alice") as alice:
        project = new_project(alice, "no genmodel")
        experiment = ingest_like_the_official_client(alice, project, h2o_models["binomial"].mojo, "gbm")
        failed = wait_for_state(alice, deploy(alice, project, experiment, "h2o3/mojo").id, "FAILED", "HEALTHY")
    assert failed.state.value == "FAILED"
    # FAILED messages name no server paths (issue 19): the file's name is kept, its folder is not.
    assert ("the H2O-3 MOJO scorer needs H2O's genmodel jar: MLOPS_NB_H2O_GENMODEL_JAR names "
            "h2o-genmodel.jar, which is not a file") in failed.message
    assert "/nonexistent" not in failed.message


def test_dai_mojo_runtimes_stay_failed_with_the_reason(alice: Any, deployed: dict[str, Any]) -> None:
    pipeline = zip_of({"mojo-pipeline/pipeline.mojo": b"\x00"})
    experiment = ingest_like_the_official_client(alice, deployed["project"], pipeline, "dai")
    failed = wait_for_state(alice, deploy(alice, deployed["project"], experiment, "dai/mojo_pipeline").id,
                            "FAILED", "HEALTHY")
    assert failed.message.startswith("the sandbox cannot run H2O.ai MOJO scorer (dai_mojo_runtime): it needs "
                                     "Driverless AI's MOJO pipeline runtime and a Driverless AI license")


def test_upload_model_takes_an_h2o_model_and_deploy_picks_the_mojo_runtime(
        alice: Any, deployed: dict[str, Any], h2o_models: dict[str, TrainedModel]) -> None:
    trained = h2o_models["binomial"]
    experiment = mlops_nb.upload_model(alice, deployed["project"], trained.model, training_data=trained.train)
    assert experiment.display_name == trained.model.model_id
    assert experiment.parameters.target_column == "label" and experiment.parameters.training_dataset_id
    deployment = mlops_nb.deploy(alice, experiment, name="from the notebook")
    assert deployment.single_deployment.deployment_composition.runtime_name == "h2o3_mojo_runtime"
    mlops_nb.wait_for_healthy(alice, deployment)
    _assert_matches("binomial", mlops_nb.score(alice, deployment, trained.rows), trained.expected)
    watched = mlops_nb.monitoring(alice, deployment)
    assert set(watched.drift.index) == set(FEATURES)  # against the training data: no first rows needed
    with pytest.raises(ValueError, match="has not been trained yet"):
        from h2o.estimators import H2OGradientBoostingEstimator

        mlops_nb.upload_model(alice, deployed["project"], H2OGradientBoostingEstimator())
