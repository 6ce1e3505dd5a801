"""Run in the h2o-mlops 1.6.5 virtual environment: the newest official client against the sandbox.

Usage: python official_workflow.py ENVIRONMENT_URL REFRESH_TOKEN MLFLOW_ZIP

Connects the way H2O AI Cloud code does (discovery -> mlops-api, authz-gateway, secure store,
platform client), makes a workspace, an experiment from an MLflow zip (presigned upload, model
ingestion), a registered model and a version, reads the runtimes, and prints one JSON object of
what it saw, for the test to compare with what the sandbox holds.
"""

import json
import sys

import h2o_mlops

url, refresh_token, zip_path = sys.argv[1:4]
mlops = h2o_mlops.Client(h2o_cloud_url=url, refresh_token=refresh_token)

me = mlops._backend.authz.user.get_me().user
workspace = mlops.workspaces.create(name="Workspaces face", description="made by h2o-mlops 1.6.5",
                                    annotations={"team": "sbcore"})
fetched = mlops.workspaces.get(workspace.uid)
listed = [w.uid for w in mlops.workspaces.list(name="Workspaces face")]

experiment = workspace.experiments.create(data=zip_path, name="iris logistic")
artifacts = experiment.artifacts.list()
experiment.comments.add("made by h2o-mlops 1.6.5")
counts = {"artifacts": experiment.artifacts.count(), "comments": experiment.comments.count(),
          "datasets": workspace.datasets.count(), "tags": workspace.tags.count()}
model = workspace.models.create(name="iris", description="registered by 1.6.5")
model.register(experiment=experiment)
versions = model.versions()
registered = experiment.registered_model
all_models = [m.uid for m in mlops.models.list()]
model.update(name="iris v2")
runtimes = workspace.runtimes.list()
mlflow_runtimes = mlops.runtimes.list(model_type="mlflow")
runtime = workspace.runtimes.get(runtimes[0].uid)
image = runtime.runtime_image

print(json.dumps({
    "me": {"name": me.name, "login": me.login_principal},
    "workspace": {"uid": workspace.uid, "name": fetched.name, "description": fetched.description,
                  "annotations": fetched.annotations, "creator": fetched.creator.uid if fetched.creator else None},
    "listed": listed,
    "count": mlops.workspaces.count(),
    "counts": counts,
    "experiment": {"uid": experiment.uid, "name": experiment.name,
                   "metadata": {k: str(v) for row in experiment.metadata for k, v in row.items()},
                   "target": experiment.parameters.target_column if experiment.parameters else None},
    "artifacts": [{"uid": a.uid, "name": a.name, "state": str(a.state)} for a in artifacts],
    "model": {"uid": model.uid, "name": model.name},
    "versions": len(versions),
    "all_models": all_models,
    "registered": {"model": registered[0].uid, "version": registered[1]} if registered else None,
    "runtimes": [{"uid": r.uid, "model_type": r.model_type, "state": str(r.state)} for r in runtimes],
    "mlflow_runtimes": len(mlflow_runtimes),
    "runtime_image": image.name if image else None,
}))
