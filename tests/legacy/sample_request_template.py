"""Run INSIDE the legacy venv: the sample request as a template, as scripts that score a CSV do.

For each deployment in the JSON file CASES (name -> deployment id and data rows as records), the
legacy client finds its scorer URLs; the sample request is sent as it is, then used as a template:
its fields kept, each field's value replaced by the row's. Prints one JSON line: per case the sample
request, the status of scoring it as it is, and the predictions for the rows.
"""

import json
import os

import h2o_mlops  # noqa: F401  (makes h2o_mlops_client importable)
import h2o_mlops_client as mlops
import httpx
from in_venv import legacy_client

client = legacy_client()
with open(os.environ["CASES"]) as f:
    cases = json.load(f)
seen = {}
for name, case in cases.items():
    scorer = client.deployer.deployment_status.get_deployment_status(
        mlops.DeployGetDeploymentStatusRequest(deployment_id=case["deployment_id"])).deployment_status.scorer
    sample = httpx.get(scorer.sample_request.url).json()
    as_is = httpx.post(scorer.score.url, json=sample)
    request = dict(sample)
    request["rows"] = [[str(record[field]) for field in sample["fields"]] for record in case["records"]]
    answer = httpx.post(scorer.score.url, json=request)
    answer.raise_for_status()
    seen[name] = {"sample": sample, "as_is": as_is.status_code,
                  "predictions": [row[-1] for row in answer.json()["score"]]}
print(json.dumps(seen))
