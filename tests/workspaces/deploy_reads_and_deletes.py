"""Run in the h2o-mlops 1.6.5 virtual environment: read a workspace's deployments, then delete one.

Usage: python deploy_reads_and_deletes.py ENVIRONMENT_URL REFRESH_TOKEN WORKSPACE DEPLOYMENT

Lists the workspace's deployments (the legacy face's among them), reads each one's state, mode and
scoring URL, removes the endpoint that targets DEPLOYMENT and deletes DEPLOYMENT. Prints one JSON
object of what it saw.
"""

import json
import sys
import time

import h2o_mlops

url, refresh_token, workspace_uid, deployment_uid = sys.argv[1:5]
mlops = h2o_mlops.Client(h2o_cloud_url=url, refresh_token=refresh_token)
workspace = mlops.workspaces.get(workspace_uid)
listed = {}
for row in workspace.deployments.list():
    deployment = workspace.deployments.get(row["uid"]) if isinstance(row, dict) else row
    scorer = deployment.scorer
    listed[deployment.uid] = {"name": deployment.name, "state": deployment.state, "mode": str(deployment.mode),
                              "score_url": scorer.scoring_endpoint if scorer else None,
                              "security": [str(s.security_type) for s in deployment.securities_options]}
count = workspace.deployments.count()
statuses = {d: s for d, s in zip(listed, [workspace.deployments.get(d).state for d in listed], strict=True)}
target = workspace.deployments.get(deployment_uid)
for endpoint in target.endpoints:
    endpoint.delete()
started = time.monotonic()
target.delete()
print(json.dumps({"listed": listed, "count": count, "statuses": statuses,
                  "delete_seconds": time.monotonic() - started}))
