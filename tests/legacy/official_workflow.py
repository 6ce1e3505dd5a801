"""Run INSIDE the legacy venv: H2O's own high-level client (h2o_mlops 1.0.1) takes a model from a zip
to a deployment and back, against a sandbox (the four constants and MODEL_ZIP from the environment),
as its documentation shows. Prints one JSON line with what it saw, for tests/test_legacy_client.py."""

import json
import os
import time

import httpx
from h2o_mlops import options
from in_venv import high_level_client, token_provider, wait_until_healthy

provider = token_provider()
mlops = high_level_client(provider)
seen = {}


project = mlops.projects.create(name="official workflow", description="h2o_mlops 1.0.1 against the sandbox")
experiment = project.experiments.create(data=os.environ["MODEL_ZIP"], name="iris classifier")
seen["scoring_artifact_types"] = experiment.scoring_artifact_types
seen["loader_module"] = experiment.metadata["mlflow/flavors/python_function/loader_module"].string_value
seen["experiments"] = [e.name for e in project.experiments.list()]
experiment.tags.add("candidate")
seen["tags"] = [tag.label for tag in experiment.tags.list()]

model = project.models.create(name="iris", description="registered by h2o_mlops")
model.register(experiment)
seen["versions"] = [row["version"] for row in model.versions()]

environment = project.environments.list()[0]
seen["environment"] = environment.name
runtimes = mlops.runtimes.scoring.list(artifact_type="python/mlflow.zip")
seen["runtimes"] = [r.uid for r in runtimes]
runtime = mlops.runtimes.scoring.list(uid="python-scorer_mlflow_39")[0]

deployment = environment.deployments.create_single(
    name="official single", model=model, scoring_runtime=runtime,
    security_options=options.SecurityOptions(passphrase="hunter2", hashed_passphrase=False))
wait_until_healthy(deployment)
seen["status"] = deployment.status()
seen["mode"] = deployment.mode
seen["security"] = [deployment.security_options.passphrase, deployment.security_options.hashed_passphrase]
seen["listed"] = [d.name for d in environment.deployments.list()]
schema = deployment.get_schema(passphrase="hunter2")
seen["schema_inputs"] = [field["name"] for field in schema["inputFields"]]
sample = deployment.get_sample_request(passphrase="hunter2")
seen["capabilities"] = deployment.get_capabilities(passphrase="hunter2")
scored = httpx.post(deployment.url_for_scoring, json={**sample, "rows": sample["rows"] * 3},
                    headers={"Authorization": "Bearer hunter2"})
scored.raise_for_status()
seen["score"] = scored.json()
seen["refused_without_passphrase"] = httpx.post(deployment.url_for_scoring, json=sample).status_code
seen["description"] = str(deployment)

# An options update: environment variables for the runtime start a new revision.
deployment.set_environment_variables({"SCORER_GREETING": "hello"})
seen["environment_variables"] = deployment.environment_variables
wait_until_healthy(deployment)
deployment.update_monitoring_options(enable=True, save_scoring_inputs=True)
seen["monitoring"] = [deployment.monitoring_options.enable, deployment.monitoring_options.save_scoring_inputs]
seen["status_after_update"] = deployment.status()

endpoint = environment.endpoints.create(name="iris endpoint", path="official-iris", target_deployment=deployment)
seen["endpoint_target"] = endpoint.target_deployment.uid == deployment.uid
seen["endpoints"] = [e.path for e in environment.endpoints.list()]
endpoint.delete()

deployment.delete()
deadline = time.monotonic() + 60
# len() of a Table needs no further calls; its rows would each fetch a deployment that may be gone.
while len(environment.deployments.list()):
    if time.monotonic() > deadline:
        raise TimeoutError("the deleted deployment is still listed")
    time.sleep(0.5)
seen["deleted"] = True
print(json.dumps(seen))
