"""Run in the h2o-mlops 1.6.5 virtual environment: read, through the workspaces face, what the
legacy face made.

Usage: python official_reads.py ENVIRONMENT_URL REFRESH_TOKEN WORKSPACE_ID EXPERIMENT_ID

Prints one JSON object: the workspace's name, the experiment's name and artifacts, the sha256 of
each artifact's bytes (downloaded through a presigned URL), and its models.
"""

import hashlib
import io
import json
import sys

import h2o_mlops

url, refresh_token, workspace_id, experiment_id = sys.argv[1:5]
mlops = h2o_mlops.Client(h2o_cloud_url=url, refresh_token=refresh_token)

workspace = mlops.workspaces.get(workspace_id)
experiment = workspace.experiments.get(experiment_id)
artifacts = []
for artifact in experiment.artifacts.list():
    buffer = artifact.download(buffer=io.BytesIO())
    artifacts.append({"uid": artifact.uid, "name": artifact.name, "size": artifact.size,
                      "sha256": hashlib.sha256(buffer.getvalue()).hexdigest()})

print(json.dumps({
    "workspace": workspace.name,
    "in_list": workspace_id in [w.uid for w in mlops.workspaces.list()],
    "experiments": [e.uid for e in workspace.experiments.list()],
    "experiment": experiment.name,
    "artifacts": artifacts,
    "models": [m.name for m in workspace.models.list()],
}))
