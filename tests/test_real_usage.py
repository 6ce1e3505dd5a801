"""Real users' code against the sandbox: patterns from public scripts written for H2O's official clients.

Each script under ``tests/legacy/`` runs in the official clients' own virtual environment
(h2o-mlops 1.0.1 with h2o-cloud-discovery), against a sandbox over 127.0.0.1: connecting through
H2O AI Cloud discovery with ``h2o_mlops.Client()`` and no arguments, picking DEV by name, the
update sequence that scales a deployment and then sets a passphrase, storage's own deploy calls
(Deploy, UpdateDeployment, Undeploy) with the legacy client, drift read by deployment id, and
sample requests used as templates for models with string, integer, float and mixed inputs.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import requests

from mlops_nb.sandbox import Sandbox
from tests.deploying import deploy, experiment_with, iris_model, typed_models, wait_for_state
from tests.test_sandbox_artifacts import new_project

pytestmark = pytest.mark.legacy

HERE = Path(__file__).parent / "legacy"


def run_legacy(python: str, script: str, **env: str) -> dict[str, Any]:
    """Run a script of tests/legacy in the official clients' venv; the JSON line it prints last."""
    # The discovery package also reads H2O_CLOUD_DISCOVERY and H2OCONFIG: only what the test sets counts.
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("H2O_CLOUD_", "H2OCONFIG"))}
    done = subprocess.run([python, str(HERE / script)], capture_output=True, text=True, env={**clean, **env},
                          timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_discovery_dev_by_name_and_the_scale_then_passphrase_updates(legacy_python: str, sandbox: Sandbox,
                                                                     tmp_path: Path) -> None:
    model_zip = tmp_path / "iris.zip"
    model_zip.write_bytes(iris_model()[0])
    refresh_token = sandbox.refresh_token("alice")
    seen = run_legacy(legacy_python, "real_usage_high_level.py", H2O_CLOUD_ENVIRONMENT=sandbox.gateway_url,
                      H2O_CLOUD_CLIENT_PLATFORM_TOKEN=refresh_token, MODEL_ZIP=str(model_zip))
    assert seen["discovered"] == [sandbox.gateway_url, sandbox.issuer, "mlops-nb"]
    assert seen["environments"] == ["DEV", "PROD"]
    assert seen["in_dev"] == ["iris in DEV"] and seen["in_prod"] == 0
    assert seen["status_after_updates"] == "HEALTHY"
    assert seen["kubernetes"] == [2, {"cpu": "250m", "memory": "512Mi"}, {"cpu": "1", "memory": "1Gi"}]
    assert sandbox.supervisor is not None and len(sandbox.supervisor.pids(seen["deployment"])) == 2
    assert seen["without_passphrase"] == 401
    assert seen["with_passphrase"] == [200, ["prediction"]]
    assert refresh_token not in json.dumps(seen)


def test_storage_deploy_update_and_undeploy_are_the_deployers_deployment(legacy_python: str, sandbox: Sandbox,
                                                                           alice: Any) -> None:
    project = new_project(alice, "storage deploy")
    first = experiment_with(alice, project, iris_model()[0], name="logistic")
    second = experiment_with(alice, project, iris_model("linear")[0], name="linear")
    seen = run_legacy(legacy_python, "legacy_storage_deploy.py", **sandbox.connection_constants("alice"),
                      PROJECT_ID=project, EXPERIMENT_ID=first, SECOND_EXPERIMENT_ID=second)
    deployment_id, kind, in_dev = seen["deployed"]
    assert kind == "SINGLE_MODEL" and in_dev
    assert seen["score_url"] == f"{sandbox.gateway_url}/deployments/{deployment_id}/model/score"
    assert seen["scored"] == [[200, 5]] * 4
    assert seen["deployer_view"] == [[deployment_id, True]]
    assert seen["logged_healthy"] is True
    assert seen["drift_features"] == sorted(iris_model()[1].columns)
    assert seen["updated"] == ["SPLIT_TRAFFIC", [[second, 0.2]]]
    assert seen["split_weights"] == [80, 20]
    assert seen["after_undeploy"] == 404
    assert len(alice.deployer.deployment.list_project_deployments(project_id=project)) == 0


def test_every_sample_request_scores_and_serves_as_a_template(legacy_python: str, sandbox: Sandbox, alice: Any,
                                                              tmp_path: Path) -> None:
    project = new_project(alice, "sample requests")
    models = typed_models()
    deployments = {name: deploy(alice, project, experiment_with(alice, project, data, name=name),
                                display_name=name).id for name, (data, _, _) in models.items()}
    cases = {}
    for name, deployment_id in deployments.items():
        healthy = wait_for_state(alice, deployment_id, "HEALTHY", "FAILED")
        assert healthy.state.value == "HEALTHY", healthy.message
        X = models[name][1]
        cases[name] = {"deployment_id": deployment_id, "records": json.loads(X.head(20).to_json(orient="records"))}
    schema_types = {name: requests.get(f"{sandbox.gateway_url}/deployments/{d}/model/schema", timeout=10).json()
                    ["properties"]["scoringType"] for name, d in deployments.items()}
    assert schema_types == {"strings": "BINOMIAL", "integers": "REGRESSION", "floats": "REGRESSION",
                            "mixed": "BINOMIAL"}
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    seen = run_legacy(legacy_python, "sample_request_template.py", **sandbox.connection_constants("alice"),
                      CASES=str(tmp_path / "cases.json"))

    # H2O's typed placeholders where the model takes them; where it refuses "text" (a category it
    # never saw), the input example's first row, its NumPy numbers written as plain numbers.
    assert seen["integers"]["sample"] == {"fields": ["age", "visits"], "rows": [["0", "0"]]}
    assert seen["floats"]["sample"] == {"fields": ["alcohol", "acidity"], "rows": [["0", "0"]]}
    first = models["mixed"][1].iloc[0]
    assert seen["mixed"]["sample"] == {"fields": ["colour", "alcohol", "age"],
                                       "rows": [[first["colour"], repr(float(first["alcohol"])), str(first["age"])]]}
    assert seen["strings"]["sample"]["rows"] == [models["strings"][1].iloc[0].tolist()]
    for name, (_, X, model) in models.items():
        assert seen[name]["as_is"] == 200, name
        expected = model.predict(X.head(20)).tolist()
        assert [float(p) for p in seen[name]["predictions"]] == pytest.approx(expected), name
