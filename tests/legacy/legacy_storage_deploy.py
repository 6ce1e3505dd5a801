"""Run INSIDE the legacy venv: H2O's legacy tutorial's way to deploy, with storage's own calls.

The legacy low-level client looks for the DEV environment in a loop, deploys EXPERIMENT_ID there
with ``DeploymentEnvironmentService/Deploy``, waits on the deployer's status, scores the sample
request, reads drift with the deployment's id as the model id (as H2O's monitoring examples do),
turns the deployment into an 80/20 split with SECOND_EXPERIMENT_ID through storage's
``UpdateDeployment``, and removes it with ``Undeploy``. Prints one JSON line with what it saw.
"""

import json
import os
import time

import h2o_mlops  # noqa: F401  (makes h2o_mlops_client importable)
import h2o_mlops_client as mlops
import httpx
from in_venv import legacy_client

client = legacy_client()
project_id = os.environ["PROJECT_ID"]
seen = {}


def status_of(deployment_id):
    return client.deployer.deployment_status.get_deployment_status(
        mlops.DeployGetDeploymentStatusRequest(deployment_id=deployment_id)).deployment_status


def wait_for_healthy(deployment_id, timeout=240):
    deadline = time.monotonic() + timeout
    while True:
        status = status_of(deployment_id)
        if status.state == "HEALTHY":
            return status
        if status.state == "FAILED" or time.monotonic() > deadline:
            raise RuntimeError(f"deployment {deployment_id} is {status.state}: {status.message}")
        time.sleep(0.3)


dev_id = None
for environment in client.storage.deployment_environment.list_deployment_environments(
        mlops.StorageListDeploymentEnvironmentsRequest(project_id=project_id)).deployment_environment:
    if environment.display_name == "DEV":
        dev_id = environment.id

deployed = client.storage.deployment_environment.deploy(mlops.StorageDeployRequest(
    deployment_environment_id=dev_id, experiment_id=os.environ["EXPERIMENT_ID"],
    type=mlops.StorageDeploymentType.SINGLE_MODEL)).deployment
seen["deployed"] = [deployed.id, deployed.type, deployed.deployment_environment_id == dev_id]
status = wait_for_healthy(deployed.id)
seen["score_url"] = status.scorer.score.url
sample = httpx.get(status.scorer.sample_request.url).json()
# Some traffic, as the DAG's deployment gets before drift is read: four requests of five rows.
answers = [httpx.post(status.scorer.score.url, json={**sample, "rows": sample["rows"] * 5}) for _ in range(4)]
seen["scored"] = [[a.status_code, len(a.json()["score"])] for a in answers]
seen["deployer_view"] = [(d.id, d.deployment_environment_id == dev_id) for d in
                         client.deployer.deployment.list_project_deployments(
                             mlops.DeployListProjectDeploymentsRequest(project_id=project_id)).deployment]
logs = client.deployer.log.list_log_entries(mlops.DeployListLogEntriesRequest(parent=deployed.id)).log_entries
seen["logged_healthy"] = any("HEALTHY" in entry.text_payload for entry in logs)
drift = client.model_monitoring.monitoring_service.get_model_drift_metrics(
    deployment_id=deployed.id, model_id=deployed.id)
seen["drift_features"] = sorted(f.name for f in drift.feature_summary.feature)

deployed.type = mlops.StorageDeploymentType.SPLIT_TRAFFIC
deployed.secondary_scorer = [mlops.StorageSecondaryScorer(experiment_id=os.environ["SECOND_EXPERIMENT_ID"],
                                                          fraction=0.2)]
updated = client.storage.deployment.update_deployment(mlops.StorageUpdateDeploymentRequest(
    deployment=deployed, update_mask="type,secondary_scorer")).deployment
seen["updated"] = [updated.type, [(s.experiment_id, s.fraction) for s in updated.secondary_scorer]]
wait_for_healthy(deployed.id)
split = [d for d in client.deployer.deployment.list_project_deployments(
    mlops.DeployListProjectDeploymentsRequest(project_id=project_id)).deployment if d.id == deployed.id]
seen["split_weights"] = [e.weight for e in split[0].split_deployment.split_elements]

client.storage.deployment.undeploy(mlops.StorageUndeployRequest(deployment_id=deployed.id))
deadline = time.monotonic() + 60
while True:
    try:
        client.storage.deployment.get_deployment(mlops.StorageGetDeploymentRequest(deployment_id=deployed.id))
    except mlops.storage.ApiException as error:
        seen["after_undeploy"] = error.status
        break
    if time.monotonic() > deadline:
        raise TimeoutError("the undeployed deployment is still there")
    time.sleep(0.3)
print(json.dumps(seen))
