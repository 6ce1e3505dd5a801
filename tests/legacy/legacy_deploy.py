"""Run INSIDE the legacy venv: the legacy low-level client creates, watches and deletes a deployment
of an experiment that the test prepared (EXPERIMENT_ID and PROJECT_ID from the environment, beside
the four constants). Prints one JSON line with what it saw."""

import json
import os

import h2o_mlops  # noqa: F401
import h2o_mlops_client as mlops
from in_venv import legacy_client, legacy_states

client = legacy_client()
project_id, experiment_id = os.environ["PROJECT_ID"], os.environ["EXPERIMENT_ID"]
seen = {}

environment = client.storage.deployment_environment.list_deployment_environments(
    mlops.StorageListDeploymentEnvironmentsRequest(project_id=project_id)).deployment_environment[0]
created = client.deployer.deployment.create_deployment(mlops.DeployCreateDeploymentRequest(
    deployment=mlops.DeployDeployment(
        project_id=project_id, deployment_environment_id=environment.id, display_name="legacy deployment",
        single_deployment=mlops.DeploySingleDeployment(deployment_composition=mlops.DeployDeploymentComposition(
            experiment_id=experiment_id, deployable_artifact_type_name="python/mlflow.zip",
            artifact_processor_name="unzip_processor", runtime_name="python-scorer_mlflow_38"))))).deployment
seen["states"], status = legacy_states(client, created.id)
seen["score_url"] = status.scorer.score.url
seen["storage_type"] = client.storage.deployment.get_deployment(
    mlops.StorageGetDeploymentRequest(deployment_id=created.id)).deployment.type
client.deployer.deployment.delete_deployment(mlops.DeployDeleteDeploymentRequest(id=created.id))
seen["after_delete"] = client.deployer.deployment_status.get_deployment_status(
    mlops.DeployGetDeploymentStatusRequest(deployment_id=created.id)).deployment_status.state
print(json.dumps(seen))
