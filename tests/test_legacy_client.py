"""The official legacy client (h2o-mlops==1.0.1) is the reference for the wire.

It runs in an isolated virtual environment (its hard pins must not touch ours),
created once per test session; `MLOPS_NB_LEGACY_VENV` names a venv to reuse.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import pytest

import mlops_nb as mlops
from tests.capture import CaptureServer

pytestmark = pytest.mark.legacy

HERE = Path(__file__).parent / "legacy"


def _canned(server: CaptureServer) -> None:
    server.respond("/storage/google.bytestream.ByteStream/Write", {"committedSize": "10"})
    data = base64.b64encode(b"blob").decode()
    server.respond("/storage/google.bytestream.ByteStream/Read",
                   raw=json.dumps({"result": {"data": data}}).encode() + b"\n")


def _same_calls_with_mlops_nb(client: mlops.Client) -> None:
    import io

    when = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
    client.storage.user.who_am_i(body={})
    client.storage.project.list_projects(mlops.StorageListProjectsRequest(
        paging={"page_size": 5, "page_token": b"abc"},
        filter={"query": {"clause": [{"property_constraint": [
            {"property": {"field": "display_name"}, "operator": "CONTAINS", "value": {"string_value": "churn"}}]}]}},
        sorting={"property": [{"property": {"field": "created_time"}, "order": "DESCENDING"}]},
    ))
    client.storage.project.create_project(project={"display_name": "Churn", "description": "models of churn"})
    client.storage.project.get_project(project_id="p1")
    client.storage.experiment.list_experiments(project_id="p1", filter={"query": {"clause": [{
        "property_constraint": [{"property": {"field": "size"}, "operator": "GREATER_THAN",
                                 "value": {"int64_value": 12}}]}]}})
    client.storage.user.batch_get_users(i_ds=["u1", "u2"])
    client.deployer.deployment_status.list_deployment_statuses(project_id="p1")
    client.deployer.composition.list_artifact_compositions()
    client.ingest.model.create_model_ingestion(artifact_id="a1")
    client.model_monitoring.monitoring_service.get_model_drift_metrics("d1", "m1", start_date_time=when)
    client.model_monitoring.monitoring_service.list_monitored_deployments(page_size=10)
    client.storage.artifact.upload_artifact("a1", io.BytesIO(b"0123456789"), chunk_size=4)
    client.storage.artifact.download_artifact("a1", io.BytesIO())


def _normalise(captured) -> list[tuple]:
    out = []
    for r in captured:
        body = r.ndjson() if r.path.endswith("ByteStream/Write") else r.json() if r.body else None
        query = []
        for key, value in r.query:
            # Both spell the same instant in RFC 3339: legacy as +00:00, mlops_nb as Z.
            if key.endswith("DateTime"):
                value = datetime.fromisoformat(value.replace("Z", "+00:00")).isoformat()
            query.append((key, value))
        out.append((r.verb, r.path, query, body, r.headers.get("authorization")))
    return out


def test_same_requests_as_the_legacy_client(legacy_python) -> None:
    with CaptureServer() as server:
        _canned(server)
        done = subprocess.run([legacy_python, str(HERE / "legacy_calls.py"), server.url], capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        legacy = _normalise(server.requests)
        client = mlops.Client(server.url, lambda: "legacy-token")
        assert client.generation == "legacy"  # found by a probe of its own, not one of the compared calls
        server.requests.clear()
        _same_calls_with_mlops_nb(client)
        ours = _normalise(server.requests)
    assert len(legacy) == 13
    for theirs, mine in zip(legacy, ours, strict=True):
        assert mine == theirs


@pytest.fixture(scope="module")
def sandbox_constants(tmp_path_factory):
    from mlops_nb.sandbox import Sandbox

    with Sandbox(db=str(tmp_path_factory.mktemp("legacy-sb") / "s.sqlite3"), data="empty") as sb:
        yield sb, sb.connection_constants("alice")


def _run_legacy(python: str, script: str, constants: dict[str, str]) -> subprocess.CompletedProcess:
    env = {**os.environ, **constants}
    return subprocess.run([python, str(HERE / script)], capture_output=True, text=True, env=env, timeout=120)


def test_seed_connection_py_prints_the_user(legacy_python, sandbox_constants) -> None:
    _, constants = sandbox_constants
    done = _run_legacy(legacy_python, "connection.py", constants)
    assert done.returncode == 0, done.stderr
    assert "'username': 'alice'" in done.stdout
    assert "'primary_email': 'alice@example.com'" in done.stdout
    assert constants["REFRESH_TOKEN"] not in done.stdout + done.stderr


def test_legacy_client_manages_projects_and_artifacts(legacy_python, sandbox_constants) -> None:
    _, constants = sandbox_constants
    done = _run_legacy(legacy_python, "legacy_crud.py", constants)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["got"] == "legacy project"
    assert seen["renamed"] == "legacy project, renamed"
    assert seen["listed"] == seen["before"] + 1
    assert seen["after"] == seen["before"]
    assert seen["download_ok"] and seen["md5_ok"]
    assert seen["artifact_state"] == "AVAILABLE" and seen["artifact_size"] == "100000"


# -- deployments: H2O's own clients take a model to a deployment against the sandbox --------------


@pytest.fixture(scope="module")
def model_zip(tmp_path_factory) -> Path:
    from tests.deploying import iris_model

    path = tmp_path_factory.mktemp("model") / "iris-mlflow.zip"
    path.write_bytes(iris_model()[0])
    return path


def test_official_high_level_client_runs_the_whole_workflow(legacy_python, sandbox_constants, model_zip) -> None:
    sb, constants = sandbox_constants
    done = subprocess.run([legacy_python, str(HERE / "official_workflow.py")], capture_output=True, text=True,
                          env={**os.environ, **constants, "MODEL_ZIP": str(model_zip)}, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["scoring_artifact_types"] == ["python/mlflow.zip"]
    assert seen["loader_module"] == "mlflow.sklearn"
    assert seen["experiments"] == ["iris classifier"] and seen["tags"] == ["candidate"]
    assert seen["versions"] == [1] and seen["environment"] == "DEV"
    assert "python-scorer_mlflow_39" in seen["runtimes"]
    assert seen["status"] == "HEALTHY" and seen["mode"] == "Single Model"
    assert seen["security"] == ["hunter2", False] and seen["listed"] == ["official single"]
    assert seen["schema_inputs"] == ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
    assert seen["capabilities"] == ["SCORE"]
    assert seen["score"]["fields"] == ["prediction"] and len(seen["score"]["score"]) == 3
    assert seen["refused_without_passphrase"] == 401
    assert "Status: HEALTHY" in seen["description"]
    assert seen["environment_variables"] == {"SCORER_GREETING": "hello"}
    assert seen["monitoring"] == [True, True] and seen["status_after_update"] == "HEALTHY"
    assert seen["endpoint_target"] is True and seen["endpoints"] == ["official-iris"]
    assert seen["deleted"] is True
    assert constants["REFRESH_TOKEN"] not in done.stdout + done.stderr


def test_legacy_client_creates_and_deletes_a_deployment(legacy_python, sandbox_constants, model_zip) -> None:
    from tests.deploying import experiment_with

    sb, constants = sandbox_constants
    with sb.client("alice") as alice:
        project = alice.storage.project.create_project(project={"display_name": "legacy deploy"}).project.id
        experiment = experiment_with(alice, project, model_zip.read_bytes())
    done = subprocess.run([legacy_python, str(HERE / "legacy_deploy.py")], capture_output=True, text=True,
                          env={**os.environ, **constants, "PROJECT_ID": project, "EXPERIMENT_ID": experiment},
                          timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["states"][-1] == "HEALTHY" and set(seen["states"]) <= {"PREPARING", "LAUNCHING", "HEALTHY"}
    assert seen["score_url"].endswith("/model/score") and seen["storage_type"] == "SINGLE_MODEL"
    assert seen["after_delete"] == "TERMINATING"


@pytest.mark.mojo
def test_official_clients_deploy_and_score_an_h2o3_mojo(legacy_python, sandbox_constants, h2o_models,
                                                        tmp_path) -> None:
    import numpy as np

    from tests.h2o3 import FEATURES, as_request_values

    _, constants = sandbox_constants
    trained = h2o_models["binomial"]
    (tmp_path / "gbm.zip").write_bytes(trained.mojo)
    (tmp_path / "rows.json").write_text(json.dumps({"fields": FEATURES, "rows": as_request_values(trained.rows)}))
    done = subprocess.run([legacy_python, str(HERE / "official_mojo.py")], capture_output=True, text=True,
                          env={**os.environ, **constants, "MOJO_ZIP": str(tmp_path / "gbm.zip"),
                               "ROWS_JSON": str(tmp_path / "rows.json")}, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["scoring_artifact_types"] == ["h2o3_mojo"]
    assert (seen["tool"], seen["model_type"]) == ("H2O-3", "Gradient Boosting Machine")
    assert "h2o3_mojo_runtime" in seen["runtimes"] and seen["status"] == "HEALTHY"
    assert seen["schema_outputs"] == list(trained.expected.columns) == ["predict", "no", "yes"]
    assert seen["sample"]["fields"] == FEATURES
    assert seen["legacy_states"][-1] == "HEALTHY"
    for answer in (seen["high_level_score"], seen["legacy_score"]):
        assert answer["fields"] == ["predict", "no", "yes"]
        assert [row[0] for row in answer["score"]] == trained.expected["predict"].tolist()
        np.testing.assert_allclose(np.array([row[1:] for row in answer["score"]], dtype=float),
                                   trained.expected[["no", "yes"]].to_numpy(), rtol=0, atol=1e-6)
