"""Run INSIDE the legacy venv: how public code written for h2o_mlops 1.0.1 connects and deploys.

The environment points at a sandbox the H2O AI Cloud way (``H2O_CLOUD_ENVIRONMENT`` and
``H2O_CLOUD_CLIENT_PLATFORM_TOKEN``), so ``h2o_mlops.Client()`` takes no arguments and finds the
gateway and the identity provider through discovery. Then DEV is picked by name and the model
(MODEL_ZIP) deployed there; the deployment is scaled to two replicas with resources, and a
passphrase is set right after, as scripts do. Prints one JSON line with what it saw.
"""

import json
import os

import h2o_discovery
import h2o_mlops
import httpx
from in_venv import wait_until_healthy

seen = {}

discovered = h2o_discovery.discover(os.environ["H2O_CLOUD_ENVIRONMENT"])
seen["discovered"] = [discovered.services["mlops-api"].uri, discovered.environment.issuer_url,
                      discovered.clients["platform"].oauth2_client_id]

mlops = h2o_mlops.Client()
project = mlops.projects.create(name="real usage", description="found through discovery")
environments = project.environments.list()
seen["environments"] = sorted(environments[i].name for i in range(len(environments)))
dev = project.environments.list(name="DEV")[0]
prod = project.environments.list(name="PROD")[0]

experiment = project.experiments.create(data=os.environ["MODEL_ZIP"], name="iris")
model = project.models.create(name="iris")
model.register(experiment)
runtime = mlops.runtimes.scoring.list(artifact_type="python/mlflow.zip", uid="python-scorer_mlflow_39")[0]
deployment = dev.deployments.create_single(name="iris in DEV", model=model, scoring_runtime=runtime)
wait_until_healthy(deployment)
seen["in_dev"] = [dev.deployments.list()[i].name for i in range(len(dev.deployments.list()))]
seen["in_prod"] = len(prod.deployments.list())
seen["deployment"] = deployment.uid

deployment.update_kubernetes_options(replicas=2, requests={"cpu": "250m", "memory": "512Mi"},
                                     limits={"cpu": "1", "memory": "1Gi"})
deployment.update_security_options(passphrase="s3cret")
wait_until_healthy(deployment)
seen["status_after_updates"] = deployment.status()
options = deployment.kubernetes_options
seen["kubernetes"] = [options.replicas, options.requests, options.limits]
sample = deployment.get_sample_request(passphrase="s3cret")
seen["without_passphrase"] = httpx.post(deployment.url_for_scoring, json=sample).status_code
scored = httpx.post(deployment.url_for_scoring, json=sample, headers={"Authorization": "Bearer s3cret"})
seen["with_passphrase"] = [scored.status_code, scored.json().get("fields")]
print(json.dumps(seen))
