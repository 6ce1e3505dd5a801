"""Deploy and score in the sandbox with real scorer processes: the whole workflow with mlops_nb alone.

A scikit-learn model saved by MLflow is uploaded, ingested, registered and deployed; its
scorer process loads it with MLflow's own loader, and its answers are compared with the
model's own predictions. Then failure paths (a model that cannot load, a scorer killed from
outside), security, endpoints, split and shadow traffic, monitoring, logs and restarts.
"""

from __future__ import annotations

import io
import os
import shlex
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests

import mlops_nb
from mlops_nb.sandbox import Sandbox
from tests.deploying import composition, deploy, experiment_with, iris_model, status, wait_for_state, zip_of
from tests.test_sandbox_artifacts import new_project


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with Sandbox(db=str(tmp_path_factory.mktemp("scoring") / "s.sqlite3"), data="empty") as sb:
        yield sb


def ingest_like_the_official_client(client: Any, project_id: str, data: bytes, name: str) -> str:
    """Upload to the project, ingest, create the experiment with the ingested metadata, move the artifact."""
    artifact = client.storage.artifact.create_artifact(artifact={"entity_id": project_id,
                                                                 "mime_type": "application/zip"}).artifact
    client.storage.artifact.upload_artifact(artifact.id, io.BytesIO(data))
    ingestion = client.ingest.model.create_model_ingestion(artifact_id=artifact.id).ingestion
    experiment = client.storage.experiment.create_experiment(project_id=project_id, experiment={
        "display_name": name, "metadata": ingestion.model_metadata.to_dict(),
        "parameters": {"target_column": ingestion.model_parameters.target_column}}).experiment
    artifact.entity_id, artifact.type = experiment.id, ingestion.artifact_type
    client.storage.artifact.update_artifact(artifact=artifact, update_mask="type,entityId")
    return experiment.id


@pytest.fixture(scope="module")
def served(sandbox: Sandbox, alice: Any) -> dict[str, Any]:
    """One healthy deployment of the iris classifier, shared by the tests below."""
    project = new_project(alice, "scoring")
    data, X, model = iris_model()
    experiment = ingest_like_the_official_client(alice, project, data, "iris")
    alice.storage.registered_model_version.create_model_version(
        registered_model_version={"experiment_id": experiment}, registered_model_display_name="iris",
        project_id=project)
    deployment = deploy(alice, project, experiment, display_name="iris")
    healthy = wait_for_state(alice, deployment.id, "HEALTHY", "FAILED")
    assert healthy.state.value == "HEALTHY", healthy.message
    return {"project": project, "experiment": experiment, "deployment": deployment.id, "status": healthy,
            "X": X, "model": model}


def score(url: str, fields: list[str], rows: list[list[str]], **extra: Any) -> requests.Response:
    return requests.post(url, json={"fields": fields, "rows": rows, **extra}, timeout=60)


def as_rows(frame: Any) -> list[list[str]]:
    return frame.astype(str).to_numpy().tolist()


def test_ingest_reads_what_the_model_is(alice: Any) -> None:
    project = new_project(alice, "ingest")
    data, _, _ = iris_model()
    artifact = alice.storage.artifact.create_artifact(artifact={"entity_id": project}).artifact
    alice.storage.artifact.upload_artifact(artifact.id, io.BytesIO(data))
    ingestion = alice.ingest.model.create_model_ingestion(artifact_id=artifact.id).ingestion
    values = ingestion.model_metadata.values
    assert ingestion.artifact_type == "python/mlflow" and ingestion.artifact_id == artifact.id
    assert values["tool"].string_value == "MLflow" and values["model_type"].string_value == "sklearn"
    assert values["mlflow/flavors/python_function/loader_module"].string_value == "mlflow.sklearn"
    assert '"sepal length (cm)"' in values["mlflow/signature/inputs"].string_value
    assert values["tool_version"].string_value == values["mlflow/mlflow_version"].string_value

    mojo = zip_of({"model.ini": "[info]\nh2o_version = 3.44.0.3\nalgorithm = Gradient Boosting Machine\n"
                                "category = Binomial\nsupervised = true\n\n[columns]\nage\nincome\ndefault\n",
                   "domains/d000.txt": "no\nyes\n"})
    pipeline = zip_of({"mojo-pipeline/pipeline.mojo": b"\x00", "mojo-pipeline/example.csv": "a,b\n1,2\n"})
    notes = zip_of({"notes.txt": "hello"})  # once: a zip records the time its entries were written
    found = {}
    for data in (mojo, pipeline, notes, b"not a zip"):
        artifact = alice.storage.artifact.create_artifact(artifact={"entity_id": project}).artifact
        alice.storage.artifact.upload_artifact(artifact.id, io.BytesIO(data))
        try:
            found[data] = alice.ingest.model.create_model_ingestion(artifact_id=artifact.id).ingestion
        except mlops_nb.InvalidArgument as e:
            found[data] = e.message
    assert found[mojo].artifact_type == "h2o3/mojo" and found[mojo].model_parameters.target_column == "default"
    assert found[mojo].model_metadata.values["model_type"].string_value == "Gradient Boosting Machine"
    assert found[mojo].model_metadata.values["h2o3/columns"].json_value == '["age", "income", "default"]'
    assert found[pipeline].artifact_type == "dai/mojo_pipeline"
    assert found[pipeline].model_metadata.values["dai/input_columns"].json_value == '["a", "b"]'
    assert "looked for an MLflow model (an MLmodel file at the zip's root)" in found[notes]
    assert "the zip holds notes.txt" in found[notes]
    assert "is not a zip archive" in found[b"not a zip"]
    empty = alice.storage.artifact.create_artifact(artifact={"entity_id": project}).artifact
    with pytest.raises(mlops_nb.InvalidArgument, match="has no uploaded bytes .its state is EMPTY"):
        alice.ingest.model.create_model_ingestion(artifact_id=empty.id)
    with pytest.raises(mlops_nb.NotFound):
        alice.ingest.model.create_model_ingestion(artifact_id="no-such-artifact")


def test_a_deployed_model_answers_its_own_predictions(served: dict[str, Any]) -> None:
    scorer = served["status"].scorer
    X, model = served["X"], served["model"]
    schema = requests.get(scorer.sample_request.url.rsplit("/", 1)[0] + "/schema", timeout=10).json()
    assert schema["id"] == served["experiment"]
    assert [f["name"] for f in schema["schema"]["inputFields"]] == list(X.columns)
    assert {f["dataType"] for f in schema["schema"]["inputFields"]} == {"Float64"}
    assert schema["schema"]["outputFields"] == [{"name": "prediction", "dataType": "Int64"}]
    assert schema["properties"]["scoringType"] == "CLASSIFICATION"
    sample = requests.get(scorer.sample_request.url, timeout=10).json()
    assert sample["fields"] == list(X.columns) and len(sample["rows"]) == 1
    assert requests.get(scorer.capabilities.url, timeout=10).json() == ["SCORE"]
    assert requests.get(scorer.score.url.replace("/score", "/id"), timeout=10).text == served["experiment"]
    assert requests.get(scorer.score.url.replace("/model/score", "/readyz"), timeout=10).status_code == 200

    # Shuffled rows with an id column the model does not use, as H2O's scoring client sends them.
    rows = X.sample(frac=1.0, random_state=3)
    fields = ["row_id", *X.columns]
    answer = score(scorer.score.url, fields, [[str(i), *r] for i, r in zip(rows.index, as_rows(rows), strict=True)],
                   idField="row_id", includeFieldsInOutput=["sepal length (cm)"])
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["fields"] == ["sepal length (cm)", "row_id", "prediction"] and body["id"] == served["experiment"]
    assert [int(r[1]) for r in body["score"]] == list(rows.index)  # in the order sent
    assert [int(r[2]) for r in body["score"]] == model.predict(rows).tolist()
    assert "predict;dur=" in answer.headers["Server-Timing"] and "gateway;dur=" in answer.headers["Server-Timing"]
    bare = score(scorer.score.url, list(X.columns), as_rows(X.head(2)), noFieldNamesInOutput=True).json()
    assert "fields" not in bare and len(bare["score"]) == 2
    assert score(scorer.score.url, list(X.columns), []).json()["score"] == []


@pytest.mark.parametrize(("fields", "rows", "extra", "message"), [
    (["sepal length (cm)"], [["5.1"]], {}, "field 'sepal width (cm)' is missing from 'fields'; the model needs: "),
    (None, [["5.1", "3.5", "1.4"]], {}, "row 0 has 3 values but 'fields' names 4"),
    (None, [["5.1", "3.5", "1.4", "0.2"], ["5.1", "wide", "1.4", "0.2"]], {},
     "row 1, field 'sepal width (cm)': 'wide' is not a valid Float64"),
    (None, [["5.1", "3.5", "1.4", "0.2"]], {"requestShapleyValueType": "ORIGINAL"}, "does not compute Shapley"),
    (None, [["5.1", "3.5", "1.4", "0.2"]], {"requestPredictionIntervals": True}, "prediction intervals"),
    (None, [["5.1", "3.5", "1.4", "0.2"]], {"includeFieldsInOutput": ["colour"]}, "'colour', which is not among"),
    (None, "rows", {}, "'rows' must be a list of rows"),
])
def test_bad_scoring_input_is_a_400_that_says_what_is_wrong(served: dict[str, Any], fields: Any, rows: Any,
                                                            extra: dict[str, Any], message: str) -> None:
    url = served["status"].scorer.score.url
    answer = requests.post(url, json={"fields": fields if fields is not None else list(served["X"].columns),
                                      "rows": rows, **extra}, timeout=30)
    assert answer.status_code == 400 and message in answer.json()["message"], answer.text
    # The scorer is still up.
    assert score(url, list(served["X"].columns), as_rows(served["X"].head(1))).status_code == 200


def test_monitoring_reports_the_traffic(alice: Any, served: dict[str, Any]) -> None:
    monitor = alice.model_monitoring.monitoring_service
    url, X = served["status"].scorer.score.url, served["X"]
    before = monitor.get_model_health_metrics(served["deployment"], served["experiment"]).total_predictions
    for start in range(0, 150, 50):
        assert score(url, list(X.columns), as_rows(X.iloc[start:start + 50])).status_code == 200
    score(url, ["sepal length (cm)"], [["1"]])  # a failed request
    health = monitor.get_model_health_metrics(served["deployment"], served["experiment"])
    assert health.total_predictions == before + 150 and health.scoring_latency > 0
    classes = {b.x_min: int(b.y) for b in health.predictions.bin}
    assert set(classes) <= {"0", "1", "2"} and sum(classes.values()) >= 150
    operational = monitor.get_model_operational_summary_metrics(served["deployment"], served["experiment"])
    assert operational.avg_scoring_latency > 0 and 0 < operational.uptime <= 100
    assert sum(float(p.value) for p in operational.success_prediction.point) >= 150
    assert sum(float(p.value) for p in operational.failed_prediction.point) >= 1
    assert operational.scoring_latency.point and operational.scoring_latency.y_label == "ms"
    drift = monitor.get_model_drift_metrics(served["deployment"], served["experiment"])
    assert {f.name for f in drift.feature_summary.feature} == set(X.columns)
    assert all(f.drift_calculated and f.drift >= 0 for f in drift.feature_summary.feature)
    assert "against the first" in drift.feature_summary.description
    assert drift.high_feature_drift + drift.medium_feature_drift + drift.low_feature_drift == 4
    assert len(drift.feature_frequency.feature_density) == 4
    listed = monitor.list_monitored_deployments()
    mine = next(d for d in listed.deployment if d.id == served["deployment"])
    assert mine.mode == "Single Model" and mine.monitoring_enabled and mine.models[0].registered_model_name == "iris"
    models = monitor.get_monitored_models(served["deployment"]).model
    assert models[0].registered_model_version == "1" and models[0].drift_status.value in ("HEALTHY", "AT_RISK")
    with pytest.raises(mlops_nb.NotFound, match="its models: experiments"):
        monitor.get_model_health_metrics(served["deployment"], "no-such-model")
    with pytest.raises(mlops_nb.InvalidArgument, match="RFC 3339"):
        monitor.get_model_health_metrics(served["deployment"], served["experiment"], start_date_time="yesterday")


def test_drift_against_the_training_dataset(alice: Any, served: dict[str, Any]) -> None:
    X, monitor = served["X"], alice.model_monitoring.monitoring_service
    dataset = alice.storage.dataset.create_dataset(project_id=served["project"], dataset={
        "display_name": "iris.csv", "row_count": len(X)}).dataset.id
    artifact = alice.storage.artifact.create_artifact(artifact={"entity_id": dataset, "type": "iris.csv",
                                                                "mime_type": "text/csv"}).artifact.id
    alice.storage.artifact.upload_artifact(artifact, io.BytesIO(X.to_csv(index=False).encode()))
    alice.storage.experiment.update_experiment(experiment={"id": served["experiment"], "parameters": {
        "training_dataset_id": dataset}}, update_mask="parameters")
    window_start = mlops_nb.wire.messages.format_timestamp(
        __import__("datetime").datetime.now(__import__("datetime").timezone.utc))
    shifted = X.copy()
    shifted["petal length (cm)"] = shifted["petal length (cm)"] * 3 + 5  # far outside what it was trained on
    assert score(served["status"].scorer.score.url, list(X.columns), as_rows(shifted)).status_code == 200
    drift = monitor.get_model_drift_metrics(served["deployment"], served["experiment"], start_date_time=window_start)
    by_name = {f.name: f for f in drift.feature_summary.feature}
    assert "the training dataset 'iris.csv' (150 rows)" in drift.feature_summary.description
    assert by_name["petal length (cm)"].drift >= 0.25 and by_name["sepal width (cm)"].drift < 0.1
    assert drift.high_feature_drift >= 1
    [petal] = monitor.get_model_drift_metrics(served["deployment"], served["experiment"],
                                              start_date_time=window_start,
                                              feature_frequency_selected_feature="petal length (cm)"
                                              ).feature_frequency.feature_density
    assert petal.feature_name == "petal length (cm)" and sum(int(b.y) for b in petal.continuous.bin) == 150
    assert monitor.get_monitored_models(served["deployment"]).model[0].drift_status.value in ("FAILING", "AT_RISK")


def test_logs_tell_the_lifecycle_and_the_scorer_output(alice: Any, served: dict[str, Any]) -> None:
    entries = alice.deployer.log.list_log_entries(parent=served["deployment"]).log_entries
    text = "\n".join(e.text_payload for e in entries)
    for expected in ("[lifecycle] PREPARING", "unzip_processor: unpacking artifact", "[lifecycle] LAUNCHING",
                     "loading the MLflow model", "[lifecycle] HEALTHY"):
        assert expected in text
    assert entries[0].name.startswith(f"projects/{served['project']}/environments/")
    last = alice.deployer.log.list_log_entries(parent=served["deployment"], max_lines=2).log_entries
    assert [e.text_payload for e in last] == [e.text_payload for e in entries[-2:]]
    assert all("HEALTHY" in e.text_payload
               for e in alice.deployer.log.list_log_entries(parent=served["deployment"], filter="healthy").log_entries)
    with pytest.raises(mlops_nb.InvalidArgument, match="parent is required"):
        alice.deployer.log.list_log_entries()


def test_a_scorer_killed_from_outside_turns_unhealty_and_comes_back(sandbox: Sandbox, alice: Any,
                                                                     served: dict[str, Any]) -> None:
    assert sandbox.supervisor is not None
    [pid] = sandbox.supervisor.pids(served["deployment"])
    os.kill(pid, signal.SIGKILL)
    unhealthy = wait_for_state(alice, served["deployment"], "UNHEALTY", timeout=30)
    assert f"(pid {pid}) exited with code -9; restarting in 1 s (restart 1)" in unhealthy.message
    healthy = wait_for_state(alice, served["deployment"], "HEALTHY")
    assert "restarted" in healthy.message
    [new_pid] = sandbox.supervisor.pids(served["deployment"])
    assert new_pid != pid
    X = served["X"]
    assert score(served["status"].scorer.score.url, list(X.columns), as_rows(X.head(3))).status_code == 200


def test_a_model_that_cannot_load_fails_with_its_reason(alice: Any) -> None:
    project = new_project(alice, "broken")
    broken = zip_of({"MLmodel": "flavors:\n  python_function:\n    loader_module: mlops_nb_no_such_flavor\n"
                                "    python_version: 3.11.7\n",
                     "model.pkl": b"\x80\x04N."})
    experiment = experiment_with(alice, project, broken)
    deployment = deploy(alice, project, experiment)
    failed = wait_for_state(alice, deployment.id, "FAILED", "HEALTHY")
    assert failed.state.value == "FAILED"
    assert "missing dependency: No module named 'mlops_nb_no_such_flavor'" in failed.message
    logs = "\n".join(e.text_payload for e in alice.deployer.log.list_log_entries(parent=deployment.id).log_entries)
    assert "ModuleNotFoundError" in logs and "[lifecycle] FAILED" in logs
    # A zip that is not an MLflow model fails while it is prepared, saying what was missing.
    other = deploy(alice, project, experiment_with(alice, project, zip_of({"weights.bin": b"1"})))
    failed = wait_for_state(alice, other.id, "FAILED", "HEALTHY")
    assert "unzip_processor takes an MLflow model (an MLmodel file at the zip's root); the artifact holds " \
           "weights.bin" in failed.message
    answer = requests.post(status(alice, other.id).scorer.score.url, json={"fields": [], "rows": []}, timeout=10)
    assert answer.status_code == 503 and "is not serving: it is FAILED" in answer.json()["message"]


def test_security_passphrase_and_token(sandbox: Sandbox, alice: Any, served: dict[str, Any]) -> None:
    X = served["X"]
    fields, rows = list(X.columns), as_rows(X.head(2))
    deployment_id, url = served["deployment"], served["status"].scorer.score.url
    view = next(d for d in alice.deployer.deployment.list_project_deployments(project_id=served["project"]).deployment
                if d.id == deployment_id)
    view.security = {"passphrase": {"hash": "open sesame", "passphrase_hash_type": "PASSPHRASE_HASH_TYPE_PLAINTEXT"}}
    updated = alice.deployer.deployment.update_model_deployment(deployment=view).deployment
    assert updated.revision_id == view.revision_id  # no new processes for a security change
    assert "open sesame" not in repr(updated)
    assert score(url, fields, rows).status_code == 401
    assert requests.post(url, json={"fields": fields, "rows": rows}, timeout=10,
                         headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert requests.post(url, json={"fields": fields, "rows": rows}, timeout=10,
                         headers={"Authorization": "Bearer open sesame"}).status_code == 200
    import bcrypt

    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode()
    alice.deployer.deployment.update_model_deployment(deployment={"id": deployment_id, "security": {
        "passphrase": {"hash": hashed, "passphrase_hash_type": "PASSPHRASE_HASH_TYPE_BCRYPT"}}},
        update_mask="security")
    assert requests.post(url, json={"fields": fields, "rows": rows}, timeout=10,
                         headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert requests.get(url.replace("/score", "/schema"), timeout=10).status_code == 401

    alice.deployer.deployment.update_model_deployment(deployment={"id": deployment_id, "security": {
        "token_auth": {"authentication_protocol": "AUTHORIZATION_PROTOCOL_OIDC"}}}, update_mask="security")
    assert "access token" in score(url, fields, rows).json()["message"]
    token = sandbox.token_provider("alice")()
    assert requests.post(url, json={"fields": fields, "rows": rows}, timeout=10,
                         headers={"Authorization": f"Bearer {token}"}).status_code == 200
    alice.deployer.deployment.update_model_deployment(deployment={"id": deployment_id, "security": {}},
                                                      update_mask="security")
    assert score(url, fields, rows).status_code == 200


def test_endpoints_move_traffic_between_deployments(alice: Any, served: dict[str, Any], sandbox: Sandbox) -> None:
    project, X = served["project"], served["X"]
    environment = alice.storage.deployment_environment.list_deployment_environments(
        project_id=project).deployment_environment[0].id
    parent = f"projects/{project}/environments/{environment}"
    target = f"{parent}/deployments/{served['deployment']}"
    endpoint = alice.deployer.endpoint.create_endpoint(parent=parent, endpoint={
        "display_name": "iris", "path": "iris-classifier", "target": target}).endpoint
    assert endpoint.name.startswith(f"{parent}/endpoints/") and endpoint.target == target
    url = f"{sandbox.gateway_url}/endpoints/iris-classifier/model/score"
    answer = score(url, list(X.columns), as_rows(X.head(3)))
    assert answer.status_code == 200 and answer.json()["id"] == served["experiment"]
    assert [e.name for e in alice.deployer.endpoint.list_endpoints(parent=parent).endpoints] == [endpoint.name]
    with pytest.raises(mlops_nb.AlreadyExists, match="taken"):
        alice.deployer.endpoint.create_endpoint(parent=parent, endpoint={"path": "iris-classifier"})
    with pytest.raises(mlops_nb.InvalidArgument, match="one URL segment"):
        alice.deployer.endpoint.create_endpoint(parent=parent, endpoint={"path": "a/b"})
    with pytest.raises(mlops_nb.FailedPrecondition, match="targets deployment"):
        alice.deployer.deployment.delete_deployment(id=served["deployment"])
    # Moving the target: a regression model behind the same URL.
    data, _, regressor = iris_model("linear")
    other = deploy(alice, project, experiment_with(alice, project, data, name="regression"), display_name="reg")
    assert wait_for_state(alice, other.id, "HEALTHY", "FAILED").state.value == "HEALTHY"
    endpoint.target = f"{parent}/deployments/{other.id}"
    alice.deployer.endpoint.update_endpoint(endpoint=endpoint, update_mask="target")
    moved = score(url, list(X.columns), as_rows(X.head(3))).json()
    assert np.allclose([float(r[0]) for r in moved["score"]], regressor.predict(X.head(3)))
    alice.deployer.endpoint.update_endpoint(endpoint={"name": endpoint.name, "target": ""}, update_mask="target")
    assert score(url, list(X.columns), as_rows(X.head(1))).status_code == 503
    alice.deployer.endpoint.delete_endpoint(name=endpoint.name)
    assert score(url, list(X.columns), as_rows(X.head(1))).status_code == 404
    with pytest.raises(mlops_nb.NotFound):
        alice.deployer.endpoint.get_endpoint(name=endpoint.name)
    alice.deployer.deployment.delete_deployment(id=other.id)


def test_update_to_a_split_switches_when_healthy_then_delete(alice: Any, served: dict[str, Any]) -> None:
    project, X = served["project"], served["X"]
    classifier = served["experiment"]
    data, _, regressor = iris_model("linear")
    regression = experiment_with(alice, project, data, name="regression")
    base = deploy(alice, project, classifier, display_name="to split")
    assert wait_for_state(alice, base.id, "HEALTHY", "FAILED").state.value == "HEALTHY"
    url = status(alice, base.id).scorer.score.url
    base.single_deployment = None
    base.split_deployment = {"split_elements": [{**composition(classifier), "weight": 50},
                                                {**composition(regression), "weight": 50}]}
    updated = alice.deployer.deployment.update_model_deployment(deployment=base).deployment
    assert updated.revision_id != base.revision_id
    # The old revision keeps answering until the new one is healthy.
    while (current := status(alice, base.id)).state.value != "HEALTHY":
        assert current.state.value in ("PREPARING", "LAUNCHING"), current.message
        assert score(url, list(X.columns), as_rows(X.head(1))).status_code == 200
        time.sleep(0.2)
    answers = Counter(score(url, list(X.columns), as_rows(X.head(1))).json()["id"] for _ in range(60))
    assert set(answers) == {classifier, regression} and min(answers.values()) >= 10
    storage = alice.storage.deployment.get_deployment(deployment_id=base.id).deployment
    assert (storage.type.value, [s.fraction for s in storage.secondary_scorer]) == ("SPLIT_TRAFFIC", [0.5])
    alice.deployer.deployment.delete_deployment(id=base.id)
    assert status(alice, base.id).state.value == "TERMINATING"
    deadline = time.monotonic() + 30
    while True:
        try:
            status(alice, base.id)
        except mlops_nb.NotFound:
            break
        assert time.monotonic() < deadline
        time.sleep(0.1)
    with pytest.raises(mlops_nb.NotFound):
        alice.storage.deployment.get_deployment(deployment_id=base.id)
    assert requests.post(url, json={"fields": [], "rows": []}, timeout=10).status_code == 404


def test_shadow_answers_from_the_primary_and_records_the_shadow(alice: Any, served: dict[str, Any]) -> None:
    project, X = served["project"], served["X"]
    data, _, _ = iris_model("linear")
    shadow_model = experiment_with(alice, project, data, name="shadow")
    deployment = alice.deployer.deployment.create_deployment(deployment={
        "project_id": project, "display_name": "shadowed", "shadow_deployment": {
            "primary_element": composition(served["experiment"]), "secondary_element": composition(shadow_model)}}
    ).deployment
    assert wait_for_state(alice, deployment.id, "HEALTHY", "FAILED").state.value == "HEALTHY"
    url = status(alice, deployment.id).scorer.score.url
    for _ in range(5):
        assert score(url, list(X.columns), as_rows(X.head(10))).json()["id"] == served["experiment"]
    monitor = alice.model_monitoring.monitoring_service
    deadline = time.monotonic() + 10
    while monitor.get_model_health_metrics(deployment.id, shadow_model).total_predictions < 50:
        assert time.monotonic() < deadline, "the shadow model's answers were not recorded"
        time.sleep(0.1)
    assert monitor.get_model_health_metrics(deployment.id, served["experiment"]).total_predictions == 50
    alice.deployer.deployment.delete_deployment(id=deployment.id)


def test_restarting_the_sandbox_brings_deployments_back(tmp_path: Path) -> None:
    db = str(tmp_path / "restart.sqlite3")
    data, X, model = iris_model()
    with Sandbox(db=db, data="empty", warm_scorers=0) as sb, sb.client("alice") as alice:
        project = new_project(alice, "restart")
        deployment = deploy(alice, project, experiment_with(alice, project, data)).id
        assert wait_for_state(alice, deployment, "HEALTHY", "FAILED").state.value == "HEALTHY"
        assert sb.supervisor is not None
        pids = sb.supervisor.pids(deployment)
    for pid in pids:  # stopping the sandbox stopped its scorers
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    with Sandbox(db=db, data="empty", warm_scorers=0) as sb, sb.client("alice") as alice:
        back = wait_for_state(alice, deployment, "HEALTHY", "FAILED")
        assert back.state.value == "HEALTHY", back.message
        answer = score(back.scorer.score.url, list(X.columns), as_rows(X.head(5))).json()
        assert [int(r[0]) for r in answer["score"]] == model.predict(X.head(5)).tolist()


def test_no_scorer_outlives_a_killed_sandbox(tmp_path: Path) -> None:
    """The sandbox as a real process, killed with SIGKILL: its scorers exit by themselves within 2 s, the
    serving one and the spare that replaced it (killed while it is still importing MLflow, most likely)."""
    db = tmp_path / "killed.sqlite3"
    process = subprocess.Popen([sys.executable, "-m", "mlops_nb.sandbox", "sandbox", "--port", "0", "--db", str(db),
                                "--data", "empty"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        for line in process.stdout:  # type: ignore[union-attr]
            lines.append(line)
            if "Press Ctrl-C to stop." in line:
                break
        constants = dict(shlex.split(line)[1].split("=", 1) for line in lines if line.startswith("export "))
        client = mlops_nb.Client(constants["H2O_MLOPS_GATEWAY"], mlops_nb.TokenProvider(
            constants["REFRESH_TOKEN"], constants["CLIENT_ID"], constants["TOKEN_ENDPOINT"]))
        project = new_project(client, "doomed")
        deployment = deploy(client, project, experiment_with(client, project, iris_model()[0])).id
        assert wait_for_state(client, deployment, "HEALTHY", "FAILED").state.value == "HEALTHY"
        children = subprocess.run(["pgrep", "-P", str(process.pid)], capture_output=True, text=True).stdout.split()
        assert len(children) >= 2, "the sandbox runs its scorer and its spare as its own child processes"
    finally:
        process.kill()
        process.wait()
    deadline = time.monotonic() + 2
    alive = children
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = [pid for pid in children if Path(f"/proc/{pid}").exists()
                 and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()]
    assert not alive, f"scorer processes {alive} outlived their sandbox"
