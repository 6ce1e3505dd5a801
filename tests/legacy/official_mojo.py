"""Run INSIDE the legacy venv: H2O's official clients deploy an H2O-3 MOJO (MOJO_ZIP) and score the
rows of ROWS_JSON ({"fields", "rows"}), unchanged, two ways:

* the high-level client (h2o_mlops 1.0.1): experiments.create, register, ``create_single`` on the
  ``h2o3_mojo_runtime``;
* the legacy low-level client (h2o_mlops_client) as H2O-3's cloud extensions deploy a published
  MOJO: CreateDeployment with the composition h2o3_mojo / h2o3_mojo_extractor / h2o3_mojo_runtime
  and the artifact's id, polling GetDeploymentStatus, scoring at ``scorer.score.url``.

Prints one JSON line with what it saw, for tests/test_legacy_client.py.
"""

import json
import os

import h2o_mlops  # noqa: F401  (makes h2o_mlops_client importable)
import h2o_mlops_client
import httpx
from in_venv import high_level_client, legacy_client, legacy_states, token_provider, wait_until_healthy

provider = token_provider()
mlops = high_level_client(provider)
with open(os.environ["ROWS_JSON"]) as file:
    request = json.load(file)
seen = {}


project = mlops.projects.create(name="h2o-3 mojo", description="an H2O-3 MOJO through h2o_mlops")
experiment = project.experiments.create(data=os.environ["MOJO_ZIP"], name="gbm")
seen["scoring_artifact_types"] = experiment.scoring_artifact_types
seen["tool"] = experiment.metadata["tool"].string_value
seen["model_type"] = experiment.metadata["model_type"].string_value
model = project.models.create(name="gbm", description="an H2O-3 GBM")
model.register(experiment)
environment = project.environments.list()[0]
seen["runtimes"] = [r.uid for r in mlops.runtimes.scoring.list(artifact_type="h2o3_mojo")]
runtime = mlops.runtimes.scoring.list(uid="h2o3_mojo_runtime")[0]
deployment = environment.deployments.create_single(name="gbm single", model=model, scoring_runtime=runtime)
wait_until_healthy(deployment)
seen["status"] = deployment.status()
schema = deployment.get_schema()
seen["schema_outputs"] = [field["name"] for field in schema["outputFields"]]
seen["sample"] = deployment.get_sample_request()
scored = httpx.post(deployment.url_for_scoring, json=request, timeout=60)
scored.raise_for_status()
seen["high_level_score"] = scored.json()
deployment.delete()

# The legacy client, as H2O-3's cloud extensions deploy: the artifact named in the composition.
backend = legacy_client(provider)
artifact = backend.storage.artifact.list_entity_artifacts(
    h2o_mlops_client.StorageListEntityArtifactsRequest(entity_id=experiment.uid)).artifact[0]
environment_id = backend.storage.deployment_environment.list_deployment_environments(
    h2o_mlops_client.StorageListDeploymentEnvironmentsRequest(project.uid)).deployment_environment[0].id
created = backend.deployer.deployment.create_deployment(h2o_mlops_client.DeployCreateDeploymentRequest(
    deployment=h2o_mlops_client.DeployDeployment(
        project_id=project.uid, display_name="gbm_DEV", deployment_environment_id=environment_id,
        single_deployment=h2o_mlops_client.DeploySingleDeployment(
            deployment_composition=h2o_mlops_client.DeployDeploymentComposition(
                experiment_id=artifact.entity_id, artifact_id=artifact.id, deployable_artifact_type_name="h2o3_mojo",
                artifact_processor_name="h2o3_mojo_extractor", runtime_name="h2o3_mojo_runtime"))))).deployment
seen["legacy_states"], status = legacy_states(backend, created.id)
scored = httpx.post(status.scorer.score.url, json=request, timeout=60)
scored.raise_for_status()
seen["legacy_score"] = scored.json()
backend.deployer.deployment.delete_deployment(h2o_mlops_client.DeployDeleteDeploymentRequest(id=created.id))
print(json.dumps(seen))
