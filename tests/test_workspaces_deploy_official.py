"""Deploying through the sandbox's workspaces face with the newest official client, h2o-mlops 1.6.5, unchanged.

1.6.5 runs in its own virtual environment (the ``workspaces_python`` fixture; set
``MLOPS_NB_WORKSPACES_VENV`` to reuse one) with the scripts ``tests/workspaces/deploy_*.py``: it
deploys with a passphrase, waits, scores, runs a batch job over a small CSV, reads the monitoring
aggregates, updates, and later lists and deletes. What it made is checked through the legacy face
with our own client: one store and one supervisor, so a deployment made through either face is the
same deployment (views, scorers, logs, monitoring).
"""

from __future__ import annotations

import csv
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from mlops_nb.api import CATALOGS
from mlops_nb.sandbox import Sandbox
from mlops_nb.sandbox.runtime.runtimes import runnable_runtimes
from mlops_nb.sandbox.services.access import ROLE_VIEWER
from mlops_nb.wire.errors import NotFound, PermissionDenied
from tests.deploying import iris_model

pytestmark = pytest.mark.legacy  # an official client in an isolated virtual environment

SCRIPTS = Path(__file__).parent / "workspaces"
ROWS = [["5.1", "3.5", "1.4", "0.2"], ["6.7", "3.0", "5.2", "2.3"], ["5.9", "3.0", "4.2", "1.5"]] * 40


@pytest.fixture(scope="module", autouse=True)
def unknown_fields() -> Any:
    """Every field a workspaces message decoded in this process did not know: the sandbox's answers (and
    what our client decodes of them) must use the description's own names, at every level."""
    from mlops_nb.wire import messages

    seen: list[tuple[str, list[str]]] = []
    original = messages.Message.__dict__["from_wire"].__func__

    def from_wire(cls: Any, data: Any) -> Any:
        decoded = original(cls, data)
        if messages.generation_of(cls) == "workspaces" and decoded.unknown_fields:
            seen.append((cls.__name__, sorted(decoded.unknown_fields)))
        return decoded

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(messages.Message, "from_wire", classmethod(from_wire))
        yield seen


def _run(python: str, script: str, *args: str) -> dict[str, Any]:
    done = subprocess.run([python, str(SCRIPTS / script), *args], capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _mlflow_runtime() -> str:
    """The newest MLflow runtime the sandbox runs (what the official client is asked to deploy with)."""
    runnable = set(runnable_runtimes())
    return [r["runtime_name"] for r in CATALOGS.runtimes if r["model_type"] == "mlflow" and r["runtime_name"]
            in runnable][-1]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    data, features, _ = iris_model()
    root = tmp_path_factory.mktemp("deploying")
    (root / "iris.zip").write_bytes(data)
    with (root / "rows.csv").open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(list(features.columns))
        writer.writerows(ROWS)
    (root / "output").mkdir()
    return {"zip": root / "iris.zip", "csv": root / "rows.csv", "output": root / "output"}


@pytest.fixture(scope="module")
def deployed(sandbox: Sandbox, workspaces_python: str, files: dict[str, Path]) -> dict[str, Any]:
    started = time.monotonic()
    seen = _run(workspaces_python, "deploy_workflow.py", sandbox.gateway_url, sandbox.refresh_token("alice"),
                str(files["zip"]), _mlflow_runtime(), str(files["csv"]), str(files["output"]))
    seen["seconds"]["script"] = time.monotonic() - started
    print("measured (s):", {k: round(v, 1) for k, v in seen["seconds"].items()})
    return seen


def test_official_client_deploys_waits_and_scores_with_a_passphrase(deployed: dict[str, Any],
                                                                   sandbox: Sandbox) -> None:
    assert deployed["states"][0] in ("PREPARING", "PENDING", "LAUNCHING", "HEALTHY")
    assert deployed["states"][-1] == "HEALTHY"
    # The scoring URL names the deployment in its first segment, as 1.6.5 derives the schema's URL.
    assert deployed["score_url"] == f"{sandbox.gateway_url}/{deployed['deployment']}/model/score"
    assert deployed["schema_url"] == f"{sandbox.gateway_url}/{deployed['deployment']}/model/schema"
    assert len(deployed["schema_fields"]) == 4
    assert len(deployed["scored"]["score"]) == len(deployed["sample"]["rows"])
    assert len(deployed["scored_rows"]["score"]) == 3
    assert deployed["refused"] == 401


def test_the_deployment_is_the_legacy_faces_deployment(deployed: dict[str, Any], sandbox: Sandbox,
                                                        alice: Any) -> None:
    deployment_id = deployed["deployment"]
    storage = alice.storage.deployment.get_deployment(deployment_id=deployment_id).deployment
    assert (storage.project_id, storage.experiment_id, storage.type) == (
        deployed["workspace"], deployed["experiment"], "SINGLE_MODEL")
    status = alice.deployer.deployment_status.get_deployment_status(deployment_id=deployment_id).deployment_status
    assert status.state == "HEALTHY"
    legacy_url = status.scorer.score.url
    assert legacy_url == f"{sandbox.gateway_url}/deployments/{deployment_id}/model/score"
    # One deployment, one scorer: both URLs answer alike, with the passphrase the update set.
    body = {"fields": deployed["schema_fields"], "rows": ROWS[:3]}
    headers = {"Authorization": "Bearer n3w-hashed"}
    legacy = requests.post(legacy_url, json=body, headers=headers, timeout=30)
    workspaces = requests.post(deployed["score_url"], json=body, headers=headers, timeout=30)
    assert legacy.status_code == workspaces.status_code == 200
    assert legacy.json()["score"] == workspaces.json()["score"] == deployed["scored_rows"]["score"]
    deployer = next(d for d in alice.deployer.deployment.list_project_deployments(
        project_id=deployed["workspace"]).deployment if d.id == deployment_id)
    assert (deployer.display_name, deployer.description) == ("iris renamed", "updated by h2o-mlops 1.6.5")
    assert deployer.security.passphrase.passphrase_hash_type == "PASSPHRASE_HASH_TYPE_BCRYPT"


def test_a_workspace_viewer_reads_the_deployment_without_its_secrets(deployed: dict[str, Any], sandbox: Sandbox,
                                                                    alice: Any, bob: Any) -> None:
    bob_id = bob.storage.user.who_am_i().user.id
    alice.storage.project.share_project(project_id=deployed["workspace"], user_id=bob_id, restriction_role_id=ROLE_VIEWER)
    viewer = sandbox.client("bob", generation="workspaces")
    name = f"workspaces/{deployed['workspace']}/deployments/{deployed['deployment']}"
    seen = viewer.deployer.deployment.get_deployment(name=name).deployment
    assert seen.display_name == "iris renamed"
    assert [s.passphrase.passphrase for s in seen.securities if s.passphrase is not None] == [""]  # hashed: never sent
    with pytest.raises(PermissionDenied):
        viewer.deployer.deployment.delete_deployment(name=name)


def test_the_rest_of_the_deployer_face_through_our_own_client(deployed: dict[str, Any], sandbox: Sandbox,
                                                              alice: Any) -> None:
    client = sandbox.client("alice", generation="workspaces")
    workspace = f"workspaces/{deployed['workspace']}"
    name = f"{workspace}/deployments/{deployed['deployment']}"
    missing = f"{workspace}/deployments/no-such-deployment"
    statuses = client.deployer.status.batch_get_deployment_statuses(parent=workspace, names=[f"{name}/status", missing])
    assert [(s.name, s.state) for s in statuses.deployment_statuses] == [(f"{name}/status", "HEALTHY")]
    assert list(statuses.errors) == [missing]
    metadata = client.deployer.metadata.batch_get_deployments_metadata(parent=workspace, names=[f"{name}/metadata"])
    assert [m.scoring_interface.score.uri for m in metadata.deployments_metadata] == [deployed["score_url"]]
    assert client.deployer.deployment.count_deployments(parent=workspace, filter="display_name = 'iris renamed'").count \
        == 1
    endpoints = client.deployer.endpoint.list_endpoints(parent=workspace, filter=f"target = '{name}'").endpoints
    assert [(e.path, e.state) for e in endpoints] == [("iris-ws", "ENDPOINT_STATE_READY")]
    assert client.deployer.endpoint.count_endpoints(parent=workspace).count == 1
    types = client.deployer.config.list_security_option_types().security_option_types
    assert {t.hash_algorithm for t in types} >= {"PLAINTEXT", "BCRYPT", "PBKDF2"}
    assert client.deployer.config.get_default_security_option_type().default_security_option_type.hash_algorithm \
        == "PBKDF2"
    assert client.deployer.config.get_monitoring_config(name="configuration/monitoring").monitoring_config.enabled
    assert client.deployer.config.discover_kubernetes_config_shortcuts().kubernetes_affinity_shortcuts == []
    defaults = client.deployer.config.discover_default_runtime_kubernetes_resource_requirements()
    assert defaults.default_runtime_kubernetes_resource_requirements.requests == {"cpu": "250m", "memory": "512Mi"}
    compositions = client.deployer.composition.list_experiment_artifact_compositions(
        parent=f"{workspace}/experiments/{deployed['experiment']}").experiment_artifact_compositions
    assert {c.deployable_artifact_type.artifact_type for c in compositions} == {"python/mlflow"}
    assert _mlflow_runtime() in {c.runtime.name for c in compositions}
    assert "mlflow" in {t.name for t in client.deployer.composition.list_model_types().model_types}
    assert [s.name for s in client.batch.source_spec.list_source_specs().source_specs] == ["sourceSpecs/local"]
    assert client.batch.sink_spec.get_sink_spec(name="sinkSpecs/local").sink_spec.supported_mime_types
    # Logs again: the archive replaces the one the official client's logs() made (one per deployment).
    archive = client.deployer.log.generate_logs(name=name).artifact_id
    kept = [a.id for a in alice.storage.artifact.list_entity_artifacts(entity_id=deployed["workspace"]).artifact
            if a.type == "deployment/logs"]
    assert kept == [archive]


def test_a_batch_job_scores_a_local_csv_through_the_models_scorer(deployed: dict[str, Any],
                                                                files: dict[str, Path]) -> None:
    job = deployed["job"]
    assert (job["state"], job["processed"], job["errors"]) == ("FINISHED", str(len(ROWS)), "0")
    assert job["listed"] == [job["uid"]]
    # Monitored: every row of the file, per input column, counted in the job's own aggregates.
    assert set(job["aggregate_rows"]) >= set(deployed["schema_fields"])
    assert set(job["aggregate_rows"].values()) == {len(ROWS)}
    written = list(csv.reader((files["output"] / f"{job['uid']}.csv").open()))
    # A header (the score's fields), then the scorer's answer for every row: the same as scoring them online.
    assert written[0] == deployed["scored_rows"]["fields"] and len(written) == len(ROWS) + 1
    assert written[1:4] == [[str(v) for v in row] for row in deployed["scored_rows"]["score"]]


def test_the_jobs_record_outlives_its_scorer(deployed: dict[str, Any], sandbox: Sandbox) -> None:
    """Read later, through our own client's workspaces face: the job's scorer is gone, its aggregates are not."""
    client = sandbox.client("alice", generation="workspaces")
    job = f"workspaces/{deployed['workspace']}/jobs/{deployed['job']['uid']}"
    aggregates = client.monitoring.aggregate.list_aggregates2(f"{job}/experiments/-").aggregates
    counted = {a.column: sum(int(c) for c in a.numerical_aggregate.bin_count) + int(a.missing_values.row_count)
               for a in aggregates if a.numerical_aggregate is not None}
    assert counted == deployed["job"]["aggregate_rows"]
    assert client.batch.job.get_job(name=job).job.state == "FINISHED"
    assert job in [j.name for j in client.batch.job.list_jobs(parent="workspaces/-").jobs]  # every workspace's
    every = client.deployer.deployment.list_deployments(parent="workspaces/-").deployments
    assert f"workspaces/{deployed['workspace']}/deployments/{deployed['deployment']}" in [d.name for d in every]


def test_monitoring_aggregates_after_traffic(deployed: dict[str, Any]) -> None:
    inputs = set(deployed["schema_fields"])
    assert inputs <= set(deployed["baselines"]["columns"])
    # The scores so far (the sample request, three rows, a refused one not) within one hour, per column.
    assert inputs < set(deployed["aggregates"]["columns"])
    assert deployed["aggregates"]["count"] == len(deployed["aggregates"]["columns"])
    assert deployed["aggregates"]["first_type"] == "NUMERICAL"


def test_the_official_client_reads_the_sandboxs_configuration_and_the_deployments_make_up(
        deployed: dict[str, Any]) -> None:
    assert deployed["configs"] == {
        "security_types": ["SecurityType.DISABLED", "SecurityType.HASHED_PASSPHRASE", "SecurityType.OIDC_AUTH",
                           "SecurityType.PLAIN_PASSPHRASE"],
        "max_replicas": 4, "requests": {"cpu": "250m", "memory": "512Mi"}, "monitoring": True}
    assert deployed["described"] == {"mode": "DeploymentModeType.SINGLE_MODEL", "endpoints": 1,
                                     "runtimes": [_mlflow_runtime()], "replicas": 1}


def test_an_ab_test_of_two_versions_is_a_legacy_split(deployed: dict[str, Any], alice: Any) -> None:
    ab = deployed["ab"]
    assert (ab["mode"], ab["weights"]) == ("DeploymentModeType.AB_TEST", [70, 30])
    assert ab["experiments"] == [deployed["experiment"], deployed["second_experiment"]]
    assert len(ab["scored"]["score"]) == len(deployed["sample"]["rows"])  # no security: scored without a credential
    # Deleted by the script: gone from the legacy face (or on its way out).
    left = {d.id: d.type for d in alice.storage.deployment.list_deployments(project_id=deployed["workspace"]).deployment}
    assert ab["uid"] not in left or left[ab["uid"]] == "SPLIT_TRAFFIC"


def test_update_logs_and_endpoint(deployed: dict[str, Any], sandbox: Sandbox, alice: Any) -> None:
    updated = deployed["updated"]
    assert (updated["name"], updated["description"]) == ("iris renamed", "updated by h2o-mlops 1.6.5")
    assert updated["security"] == ["SecurityType.HASHED_PASSPHRASE"]
    assert len(updated["scored"]["score"]) == len(deployed["sample"]["rows"])
    assert updated["securities"] == ["SecurityType.HASHED_PASSPHRASE", "SecurityType.OIDC_AUTH"]
    assert updated["with_token"] == updated["scored"]  # the same rows scored with an access token instead
    assert deployed["paused"] == {"is_paused": True, "can_resume": True, "state": "STOPPED"}
    assert deployed["after_resume"] == updated["scored"]
    assert sum(deployed["logs"].values()) > 0
    endpoint = deployed["endpoint"]
    assert (endpoint["path"], endpoint["target"]) == ("iris-ws", deployed["deployment"])
    answer = requests.post(f"{sandbox.gateway_url}/endpoints/iris-ws/model/score",
                           json={"fields": deployed["schema_fields"], "rows": ROWS[:1]},
                           headers={"Authorization": "Bearer n3w-hashed"}, timeout=30)
    assert answer.status_code == 200


def test_the_official_client_lists_the_legacy_faces_deployment_and_deletes_its_own(
        deployed: dict[str, Any], sandbox: Sandbox, workspaces_python: str, alice: Any) -> None:
    processor = next(r["artifact_processor_name"] for r in CATALOGS.artifacts if r["artifact_type"] == "python/mlflow")
    deployable = next(r["deployable_artifact_type_name"] for r in CATALOGS.artifacts
                      if r["artifact_type"] == "python/mlflow")
    legacy = alice.deployer.deployment.create_deployment(deployment={
        "project_id": deployed["workspace"], "display_name": "made by the legacy face",
        "single_deployment": {"deployment_composition": {
            "experiment_id": deployed["experiment"], "deployable_artifact_type_name": deployable,
            "artifact_processor_name": processor, "runtime_name": _mlflow_runtime()}}}).deployment
    seen = _run(workspaces_python, "deploy_reads_and_deletes.py", sandbox.gateway_url, sandbox.refresh_token("alice"),
                deployed["workspace"], deployed["deployment"])
    # (the A/B test the first script deleted may still be on its way out)
    assert set(seen["listed"]) - {deployed["ab"]["uid"]} == {deployed["deployment"], legacy.id}
    assert seen["count"] == len(seen["listed"])
    made = seen["listed"][legacy.id]
    assert (made["name"], made["mode"], made["security"]) == (
        "made by the legacy face", "DeploymentModeType.SINGLE_MODEL", ["SecurityType.DISABLED"])
    assert made["score_url"] == f"{sandbox.gateway_url}/{legacy.id}/model/score"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            alice.storage.deployment.get_deployment(deployment_id=deployed["deployment"])
        except NotFound:
            break
        time.sleep(0.5)
    else:
        pytest.fail("the deployment the official client deleted is still there after 60 s")
    alice.deployer.deployment.delete_deployment(id=legacy.id)


def test_a_batch_job_with_no_deployment_of_its_model_runs_its_own_scorer(
        deployed: dict[str, Any], sandbox: Sandbox, files: dict[str, Path]) -> None:
    client = sandbox.client("alice", generation="workspaces")
    workspace = f"workspaces/{deployed['workspace']}"
    deadline = time.monotonic() + 60
    while client.deployer.deployment.list_deployments(parent=workspace).deployments:  # the earlier test deleted them
        assert time.monotonic() < deadline, "the deployments are still there"
        time.sleep(0.5)
    source = files["csv"].with_suffix(".jsonl")
    fields = deployed["schema_fields"]
    source.write_text("".join(json.dumps(dict(zip(fields, row, strict=True))) + "\n" for row in ROWS[:7]))
    sink = files["output"] / "own-scorer.jsonl"
    processor = next(r for r in CATALOGS.artifacts if r["artifact_type"] == "python/mlflow")
    started = time.monotonic()
    job = client.batch.job.create_job(parent=workspace, job={
        "display_name": "no deployment",
        "source": {"spec": "sourceSpecs/local", "config": "{}", "mime_type": "text/jsonl", "location": str(source)},
        "sink": {"spec": "sinkSpecs/local", "config": "{}", "mime_type": "text/jsonl", "location": str(sink)},
        "instance_spec": {"deployment_composition": {
            "experiment_id": deployed["experiment"], "artifact_type": processor["deployable_artifact_type_name"],
            "artifact_processor": processor["artifact_processor_name"], "runtime": _mlflow_runtime()}}}).job
    while (state := client.batch.job.get_job(name=job.name).job.state) not in ("FINISHED", "FAILED", "TIMEOUT"):
        assert time.monotonic() - started < 180, f"the job is still {state}"
        time.sleep(0.5)
    print(f"measured: a job starting its own scorer took {time.monotonic() - started:.1f} s")
    finished = client.batch.job.get_job(name=job.name).job
    assert (finished.state, finished.completion_stats.processed_rows) == ("FINISHED", "7")
    written = [json.loads(line) for line in sink.read_text().splitlines()]
    assert [list(r) for r in written] == [deployed["scored_rows"]["fields"]] * 7
    assert [list(r.values()) for r in written] == (deployed["scored_rows"]["score"] * 3)[:7]
    client.batch.job.delete_job(name=job.name)
    assert [j.name for j in client.batch.job.list_jobs(parent=workspace).jobs] == [
        f"{workspace}/jobs/{deployed['job']['uid']}"]


def test_every_answer_used_the_descriptions_field_names(unknown_fields: list[tuple[str, list[str]]]) -> None:
    assert unknown_fields == []
