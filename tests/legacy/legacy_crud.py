"""Run INSIDE the legacy venv against a sandbox (four constants from the environment): list,
create, get, update and delete projects, and upload and download an artifact. Prints one
JSON line with what it saw, for tests/test_legacy_client.py to check."""

import hashlib
import io
import json
import os

import h2o_mlops  # noqa: F401
import h2o_mlops_client as mlops
from in_venv import legacy_client

client = legacy_client()
seen = {}

before = client.storage.project.list_projects(mlops.StorageListProjectsRequest()).project
seen["before"] = len(before)
created = client.storage.project.create_project(mlops.StorageCreateProjectRequest(
    project=mlops.StorageProject(display_name="legacy project", description="made by h2o-mlops 1.0.1"))).project
got = client.storage.project.get_project(mlops.StorageGetProjectRequest(project_id=created.id)).project
seen["got"] = got.display_name
client.storage.project.update_project(mlops.StorageUpdateProjectRequest(
    project=mlops.StorageProject(id=created.id, display_name="legacy project, renamed"), update_mask="display_name"))
seen["renamed"] = client.storage.project.get_project(
    mlops.StorageGetProjectRequest(project_id=created.id)).project.display_name
seen["listed"] = len(client.storage.project.list_projects(mlops.StorageListProjectsRequest()).project)

experiment = client.storage.experiment.create_experiment(mlops.StorageCreateExperimentRequest(
    project_id=created.id, experiment=mlops.StorageExperiment(display_name="exp"))).experiment
artifact = client.storage.artifact.create_artifact(mlops.StorageCreateArtifactRequest(
    artifact=mlops.StorageArtifact(entity_id=experiment.id, type="python/pickle"))).artifact
payload = os.urandom(100_000)
client.storage.artifact.upload_artifact(artifact.id, io.BytesIO(payload), chunk_size=8192)
out = io.BytesIO()
client.storage.artifact.download_artifact(artifact.id, out)
seen["download_ok"] = out.getvalue() == payload
stored = client.storage.artifact.get_artifact(mlops.StorageGetArtifactRequest(id=artifact.id)).artifact
seen["artifact_state"] = stored.state
seen["artifact_size"] = stored.size
seen["md5_ok"] = stored.md5_digest == __import__("base64").b64encode(hashlib.md5(payload).digest()).decode()

client.storage.project.delete_project(mlops.StorageDeleteProjectRequest(project_id=created.id))
seen["after"] = len(client.storage.project.list_projects(mlops.StorageListProjectsRequest()).project)
print(json.dumps(seen))
