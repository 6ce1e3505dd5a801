"""The sandbox's workspaces face against the newest official client, h2o-mlops 1.6.5, unchanged.

The client runs in its own virtual environment (the ``workspaces_python`` fixture; set
``MLOPS_NB_WORKSPACES_VENV`` to reuse one), with scripts in ``tests/workspaces/``. What it makes
is then read through the legacy face with our own client: one store, two faces, a workspace is
a project. The routing checks at the end need no official client.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from mlops_nb.api import CATALOGS, description
from mlops_nb.sandbox import Sandbox
from mlops_nb.sandbox.runtime.runtimes import runnable_runtimes
from mlops_nb.sandbox.server import implemented
from mlops_nb.wire.errors import InvalidArgument
from tests.deploying import iris_model

# Tests that run the official client in its isolated virtual environment.
official = pytest.mark.legacy

SCRIPTS = Path(__file__).parent / "workspaces"


def _run(python: str, script: str, *args: str) -> dict[str, Any]:
    done = subprocess.run([python, str(SCRIPTS / script), *args], capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def mlflow_zip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    data, _, _ = iris_model()
    path = tmp_path_factory.mktemp("model") / "iris.zip"
    path.write_bytes(data)
    return path, data


@pytest.fixture(scope="module")
def workflow(sandbox: Sandbox, workspaces_python: str, mlflow_zip: tuple[Path, bytes]) -> dict[str, Any]:
    """What the official client saw while making a workspace, an experiment, a model and a version."""
    started = time.monotonic()
    seen = _run(workspaces_python, "official_workflow.py", sandbox.gateway_url, sandbox.refresh_token("alice"),
                str(mlflow_zip[0]))
    seen["seconds"] = time.monotonic() - started
    return seen


@official
def test_official_client_connects_through_discovery_and_knows_who_it_is(workflow: dict[str, Any], alice: Any) -> None:
    me = alice.storage.user.who_am_i().user
    assert workflow["me"] == {"name": f"users/{me.id}", "login": "alice"}
    assert workflow["workspace"]["creator"] == me.id


@official
def test_a_workspace_made_by_the_official_client_is_a_project(workflow: dict[str, Any], alice: Any) -> None:
    made = workflow["workspace"]
    project = alice.storage.project.get_project(project_id=made["uid"]).project
    assert (project.display_name, project.description) == ("Workspaces face", "made by h2o-mlops 1.6.5")
    assert (made["name"], made["description"]) == ("Workspaces face", "made by h2o-mlops 1.6.5")
    assert made["annotations"] == {"team": "sbcore"}
    assert workflow["listed"] == [made["uid"]]  # listed by name, as the client filters
    assert workflow["count"] == len(alice.storage.project.list_projects().project)


@official
def test_an_experiment_from_an_mlflow_zip_is_the_same_experiment_in_both_faces(
        workflow: dict[str, Any], alice: Any, mlflow_zip: tuple[Path, bytes]) -> None:
    made = workflow["experiment"]
    listed = alice.storage.experiment.list_experiments(project_id=workflow["workspace"]["uid"]).experiment
    assert [(e.id, e.display_name) for e in listed] == [(made["uid"], "iris logistic")]
    # Model ingestion ran on the uploaded bytes: the experiment carries what MLmodel says.
    assert made["metadata"]["tool"] == "MLflow" and made["metadata"]["model_type"] == "sklearn"
    assert made["metadata"]["mlflow/flavors/python_function/loader_module"] == "mlflow.sklearn"
    # The artifact became the experiment's, typed by ingestion, with the bytes that were uploaded.
    assert [(a["name"], a["state"]) for a in workflow["artifacts"]] == [("python/mlflow", "AVAILABLE")]
    artifacts = alice.storage.artifact.list_entity_artifacts(entity_id=made["uid"]).artifact
    assert [(a.id, a.type, a.state) for a in artifacts] == [(workflow["artifacts"][0]["uid"], "python/mlflow",
                                                             "AVAILABLE")]
    assert workflow["counts"] == {"artifacts": 1, "comments": 1, "datasets": 0, "tags": 0}
    comments = alice.storage.experiment.list_experiment_comments(experiment_id=made["uid"]).comment
    assert [c.message for c in comments] == ["made by h2o-mlops 1.6.5"]
    downloaded = io.BytesIO()
    alice.storage.artifact.download_artifact(artifacts[0].id, downloaded)
    assert downloaded.getvalue() == mlflow_zip[1]


@official
def test_a_model_and_its_version_registered_by_the_official_client(workflow: dict[str, Any], alice: Any) -> None:
    models = alice.storage.registered_model.list_registered_models(project_id=workflow["workspace"]["uid"])
    # Renamed by the official client after it registered the version (it names the field "name").
    assert [(m.id, m.display_name) for m in models.registered_models] == [(workflow["model"]["uid"], "iris v2")]
    assert workflow["all_models"] == [workflow["model"]["uid"]]  # listed across workspaces
    versions = alice.storage.registered_model_version.list_model_versions_for_model(
        registered_model_id=workflow["model"]["uid"]).model_versions
    assert [(v.version, v.experiment_id) for v in versions] == [(1, workflow["experiment"]["uid"])]
    assert workflow["versions"] == 1
    assert workflow["registered"] == {"model": workflow["model"]["uid"], "version": 1}


@official
def test_runtimes_are_the_sandboxs_own(workflow: dict[str, Any]) -> None:
    states = {r["uid"]: r["state"] for r in workflow["runtimes"]}
    assert set(states) == {r["runtime_name"] for r in CATALOGS.runtimes}
    assert {uid for uid, state in states.items() if state == "ACTIVE"} == set(runnable_runtimes())
    assert {state for uid, state in states.items() if uid not in runnable_runtimes()} == {"DISABLED"}
    assert workflow["mlflow_runtimes"] == len([r for r in CATALOGS.runtimes if r["model_type"] == "mlflow"])
    first = workflow["runtimes"][0]["uid"]
    assert workflow["runtime_image"] == next(r["runtime_display_name"] for r in CATALOGS.runtimes
                                             if r["runtime_name"] == first)


@official
def test_what_the_legacy_face_makes_the_official_client_reads(
        sandbox: Sandbox, workspaces_python: str, alice: Any) -> None:
    project = alice.storage.project.create_project(project={"display_name": "Made by the legacy face"}).project
    experiment = alice.storage.experiment.create_experiment(
        project_id=project.id, experiment={"display_name": "legacy experiment"}).experiment
    artifact = alice.storage.artifact.create_artifact(
        artifact={"entity_id": experiment.id, "type": "python/pickle", "mime_type": "application/octet-stream"}
    ).artifact
    blob = bytes(range(256)) * 1000
    alice.storage.artifact.upload_artifact(artifact.id, io.BytesIO(blob))
    alice.storage.registered_model.create_registered_model(
        registered_model={"display_name": "legacy model", "project_id": project.id})
    seen = _run(workspaces_python, "official_reads.py", sandbox.gateway_url, sandbox.refresh_token("alice"),
                project.id, experiment.id)
    assert seen["workspace"] == "Made by the legacy face" and seen["in_list"]
    assert (seen["experiments"], seen["experiment"]) == ([experiment.id], "legacy experiment")
    assert seen["artifacts"] == [{"uid": artifact.id, "name": "python/pickle", "size": len(blob),
                                  "sha256": hashlib.sha256(blob).hexdigest()}]
    assert seen["models"] == ["legacy model"]


@official
def test_the_workflow_takes_seconds(workflow: dict[str, Any]) -> None:
    # Connect, workspace, upload + ingestion, experiment, model, version, runtimes: one process.
    assert workflow["seconds"] < 60, workflow["seconds"]


# -- routing (no official client) ----------------------------------------------------------


@pytest.fixture(scope="module")
def one_face(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Sandbox]]:
    faces = {}
    try:
        for face, data in (("legacy", "empty"), ("workspaces", "scale:3")):
            faces[face] = Sandbox(db=":memory:", data=data, faces=(face,), warm_scorers=0).start()
        yield faces
    finally:
        for sb in faces.values():
            sb.stop()


def _get(sb: Sandbox, path: str, **kwargs: Any) -> requests.Response:
    token = sb.token_provider("alice")()
    return requests.get(sb.gateway_url + path, headers={"Authorization": f"Bearer {token}"}, timeout=10, **kwargs)


def test_a_face_not_served_answers_not_found_saying_so(one_face: dict[str, Sandbox]) -> None:
    legacy, workspaces = one_face["legacy"], one_face["workspaces"]
    for sb, path in ((legacy, "/authz/v1/workspaces"), (legacy, "/me"), (legacy, "/runtime/v1/workspaces/-/runtimes")):
        answer = _get(sb, path)
        assert answer.status_code == 404 and answer.json()["code"] == 5
        assert "workspaces API, which this sandbox does not serve" in answer.json()["message"]
    token = workspaces.token_provider("alice")()
    legacy_only = requests.post(workspaces.gateway_url + "/deployer/ai.h2o.deploy.DeploymentStatusService/"
                                "ListDeploymentStatuses", json={}, headers={"Authorization": f"Bearer {token}"},
                                timeout=10)
    assert legacy_only.status_code == 404 and "legacy API" in legacy_only.json()["message"]
    # The sandbox seeds its data through the legacy API, whatever faces it serves.
    assert _get(workspaces, "/authz/v1/workspaces:count").json() == {"totalSize": "3"}
    # Storage's routes are both faces'.
    shared = requests.post(workspaces.gateway_url + "/storage/ai.h2o.storage.ProjectService/ListProjects",
                           json={}, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert shared.status_code == 200 and len(shared.json()["project"]) == 3
    secrets = requests.get(workspaces.gateway_url + "/secure-store/v1/workspaces/w/secrets", timeout=10)
    assert secrets.status_code == 501 and "no secure store" in secrets.json()["message"]
    services = requests.get(legacy.gateway_url + "/.ai.h2o.cloud.discovery/v1/services", timeout=10).json()
    assert [s["name"] for s in services["services"]] == ["services/mlops-api"]
    services = requests.get(workspaces.gateway_url + "/.ai.h2o.cloud.discovery/v1/services", timeout=10).json()
    assert {s["name"]: s["uri"] for s in services["services"]} == {
        "services/mlops-api": workspaces.gateway_url, "services/authz-gateway": workspaces.authz_gateway_url,
        "services/secure-store": workspaces.gateway_url + "/secure-store"}


def test_me_and_resource_name_shapes(sandbox: Sandbox, alice: Any) -> None:
    me = _get(sandbox, "/me")
    assert me.status_code == 200 and me.headers["X-User-Id"] == alice.storage.user.who_am_i().user.id
    assert requests.get(sandbox.gateway_url + "/me", timeout=10).status_code == 401
    # GET /deployer/v2/{name} is several methods, told apart by the name's shape.
    odd = _get(sandbox, "/deployer/v2/workspaces/W/somethings/X")
    assert odd.status_code == 404 and "workspaces/*/deployments/*/status" in odd.json()["message"]
    status = _get(sandbox, "/deployer/v2/workspaces/W/deployments/D/status")
    if implemented(description("workspaces").method("deployer.status.get_deployment_status")):
        assert status.json()["code"] in (3, 5, 7), status.text  # no workspace W
    else:
        assert status.status_code == 501 and "deployer.status.get_deployment_status" in status.json()["message"]
    token = sandbox.token_provider("alice")()
    undelete = requests.post(sandbox.gateway_url + "/authz/v1/workspaces/w:undelete", json={},
                             headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert undelete.status_code == 501 and undelete.json()["message"].startswith(
        "the mlops_nb sandbox does not implement undeleting workspaces (the sandbox deletes a workspace at once")
    assert "(POST /authz/v1/{name}:undelete, authz.workspace.undelete_workspace)" in undelete.json()["message"]
    wrong_verb = requests.put(sandbox.gateway_url + "/authz/v1/workspaces:count", timeout=10)
    assert wrong_verb.status_code == 405 and wrong_verb.headers["Allow"] == "GET"
    bad_query = _get(sandbox, "/authz/v1/workspaces", params={"pageSize": "many"})
    assert bad_query.status_code == 400 and "pageSize" in bad_query.json()["message"]


def test_a_presigned_url_works_once(sandbox: Sandbox, alice: Any) -> None:
    project = alice.storage.project.create_project(project={"display_name": "presigned"}).project
    artifact = alice.storage.artifact.create_artifact(artifact={"entity_id": project.id, "type": "raw"}).artifact
    token = sandbox.token_provider("alice")()
    headers = {"Authorization": f"Bearer {token}"}
    storage = sandbox.gateway_url + "/storage/ai.h2o.storage.ArtifactService/"
    url = requests.post(storage + "GenerateArtifactUploadURL", json={"id": artifact.id}, headers=headers,
                        timeout=10).json()["presignedUrl"]["url"]
    assert url.startswith(sandbox.gateway_url + "/presigned/")
    assert requests.put(url, data=b"hello", timeout=10).status_code == 200
    again = requests.put(url, data=b"other", timeout=10)
    assert again.status_code == 403 and "used already" in again.json()["message"]
    wrong = requests.post(storage + "CompleteArtifactUpload", json={"id": artifact.id, "sizeBytes": "6"},
                          headers=headers, timeout=10)
    assert wrong.status_code == 400 and "sizeBytes is 6 but 5 bytes arrived" in wrong.json()["message"]
    assert alice.storage.artifact.get_artifact(id=artifact.id).artifact.state == "UPLOAD_FAILED"


# -- the authz server through our own client ------------------------------------------------------


@pytest.fixture(scope="module")
def alice_workspaces(sandbox: Sandbox) -> Any:
    client = sandbox.client("alice", generation="workspaces")
    assert (client.generation, client.authz_gateway_url) == ("workspaces", sandbox.authz_gateway_url)
    return client


def test_workspaces_list_filter_order_pages_and_archive(alice_workspaces: Any, alice: Any) -> None:
    workspace = alice_workspaces.authz.workspace
    made = [workspace.create_workspace(workspace={"display_name": f"zz paged {i}"}).workspace for i in range(3)]
    ordered = "display_name desc"
    pages, token = [], None
    while True:
        page = workspace.list_workspaces(page_size=2, page_token=token, filter="display_name:'zz paged'",
                                         order_by=ordered)
        pages.append([w.display_name for w in page.workspaces])
        token = page.next_page_token
        if not token:
            break
    assert pages == [["zz paged 2", "zz paged 1"], ["zz paged 0"]]
    assert workspace.count_workspaces(filter="display_name = 'zz paged 1' OR display_name = 'zz paged 0'"
                                      ).total_size == 2
    by_name = workspace.list_workspaces(filter=f'name = "{made[2].name}" AND create_time >= timestamp("2000-01-01T00:00:00Z")')
    assert [w.display_name for w in by_name.workspaces] == ["zz paged 2"]
    grouped = workspace.count_workspaces(
        filter="(display_name = 'zz paged 1' OR display_name = \"zz paged 2\") AND description = ''")
    assert grouped.total_size == 2
    with pytest.raises(InvalidArgument, match="does not take NOT"):
        workspace.list_workspaces(filter="NOT display_name = 'x'")
    with pytest.raises(InvalidArgument, match="use one of: create_time, description"):
        workspace.list_workspaces(order_by="owner desc")
    archived = workspace.archive_workspace(name=made[0].name).workspace
    assert archived.archiver == f"users/{alice.storage.user.who_am_i().user.id}" and archived.archive_time
    names = {w.name for w in workspace.list_workspaces(filter="display_name:'zz paged'").workspaces}
    assert names == {made[1].name, made[2].name}
    shown = workspace.list_workspaces(filter="display_name:'zz paged'", show_archived=True).workspaces
    assert {w.name for w in shown} == {m.name for m in made}
    assert workspace.get_workspace(name=made[0].name).workspace.archive_time  # still there, still readable
    assert not workspace.unarchive_workspace(name=made[0].name).workspace.archive_time
    renamed = workspace.update_workspace(name=made[1].name, workspace={"display_name": "zz renamed"},
                                         update_mask="display_name").workspace
    assert renamed.display_name == "zz renamed"
    assert alice.storage.project.get_project(project_id=made[1].name.split("/")[1]).project.display_name == \
        "zz renamed"
    for m in made:
        workspace.delete_workspace(name=m.name)
    assert not workspace.list_workspaces(filter="display_name:'zz '").workspaces


def test_users_by_id_and_email(alice_workspaces: Any, bob: Any) -> None:
    users = alice_workspaces.authz.user
    bob_id = bob.storage.user.who_am_i().user.id
    found = users.list_users_by_email(email="bob@example.com").users
    assert [(u.name, u.login_principal) for u in found] == [(f"users/{bob_id}", "bob")]
    assert users.get_user(name=f"users/{bob_id}").user.emails[0].address == "bob@example.com"
    assert {u.login_principal for u in users.list_users().users} >= {"alice", "bob"}


def test_implicit_registration_and_link_checks(alice_workspaces: Any, alice: Any) -> None:
    project = alice.storage.project.create_project(project={"display_name": "implicit"}).project
    experiment = alice.storage.experiment.create_experiment(
        project_id=project.id, experiment={"display_name": "churn gbm"}).experiment
    storage = alice_workspaces.storage.experiment
    first = storage.implicit_register_model(experiment_id=experiment.id, project_id=project.id)
    assert first.registered and first.registered_model.display_name == "churn gbm"
    assert first.registered_model_version.version == 1
    again = storage.implicit_register_model(experiment_id=experiment.id, project_id=project.id)
    assert not again.registered and again.registered_model_version.id == first.registered_model_version.id
    assert storage.is_experiment_linked_into_project(experiment_id=experiment.id, project_id=project.id).is_linked
    other = alice.storage.project.create_project(project={"display_name": "implicit elsewhere"}).project
    assert not storage.is_experiment_linked_into_project(experiment_id=experiment.id, project_id=other.id).is_linked
    versions = alice.storage.registered_model_version.list_model_versions_for_model(
        registered_model_id=first.registered_model.id).model_versions
    assert [v.experiment_id for v in versions] == [experiment.id]


def test_sandbox_client_passes_a_generation_only_when_given(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlops_nb

    made: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(mlops_nb, "Client", lambda url, provider, **kwargs: made.append((url, kwargs)))
    sandbox.client("alice")
    sandbox.client("alice", generation="legacy")
    sandbox.client("bob", generation="workspaces")
    assert made == [(sandbox.gateway_url, {"ca_bundle": None}),
                    (sandbox.gateway_url, {"ca_bundle": None, "generation": "legacy"}),
                    (sandbox.gateway_url, {"ca_bundle": None, "generation": "workspaces",
                                           "authz_gateway_url": sandbox.gateway_url + "/authz"})]


def test_every_workspaces_route_leads_back_to_its_method() -> None:
    from mlops_nb.sandbox.faces import NAME_SHAPES, Match, TemplateRouter, served_path, workspaces_only

    router = TemplateRouter(workspaces_only())
    for method in workspaces_only():
        path, values = served_path(method), {}
        for i, param in enumerate(method.path_params):
            value = NAME_SHAPES.get(method.qualified_name, "workspaces/*").replace("*", f"id{i}") if i == 0 \
                else f"workspaces/id{i}"
            path = path.replace("{" + param.wire + "}", value)
            values[param.wire] = value
        found = router.match(method.verb, path)
        assert isinstance(found, Match), (method.qualified_name, path, found)
        assert found.path_params == values, method.qualified_name
        # Two methods of one template and one name shape are the same call (get_job_output and its
        # streaming twin): either may serve it.
        assert found.method == method or (
            served_path(found.method) == served_path(method) and found.method.verb == method.verb
            and NAME_SHAPES.get(found.method.qualified_name) == NAME_SHAPES.get(method.qualified_name)
        ), (method.qualified_name, found.method.qualified_name)


@official
def test_the_official_workflow_needs_only_the_workspaces_face(one_face: dict[str, Sandbox], workspaces_python: str,
                                                              mlflow_zip: tuple[Path, bytes]) -> None:
    sb = one_face["workspaces"]
    seen = _run(workspaces_python, "official_workflow.py", sb.gateway_url, sb.refresh_token("alice"),
                str(mlflow_zip[0]))
    assert seen["me"]["login"] == "alice" and seen["count"] == 4  # the 3 generated projects and this one
    assert [(a["name"], a["state"]) for a in seen["artifacts"]] == [("python/mlflow", "AVAILABLE")]
    assert seen["registered"] == {"model": seen["model"]["uid"], "version": 1}


def test_presigned_upload_and_download_of_more_than_a_gateway_call_takes(sandbox: Sandbox, alice: Any) -> None:
    import os

    project = alice.storage.project.create_project(project={"display_name": "big upload"}).project
    artifact = alice.storage.artifact.create_artifact(artifact={"entity_id": project.id, "type": "raw"}).artifact
    headers = {"Authorization": f"Bearer {sandbox.token_provider('alice')()}"}
    storage = sandbox.gateway_url + "/storage/ai.h2o.storage.ArtifactService/"
    blob = os.urandom(6 * 1024 * 1024)  # more than the 4 MiB a gateway call may carry
    url = requests.post(storage + "GenerateArtifactUploadURL", json={"id": artifact.id}, headers=headers,
                        timeout=10).json()["presignedUrl"]["url"]
    assert requests.put(url, data=blob, timeout=60).status_code == 200
    done = requests.post(storage + "CompleteArtifactUpload", json={"id": artifact.id, "sizeBytes": str(len(blob)),
                         "md5Digest": hashlib.md5(blob).hexdigest()}, headers=headers, timeout=10)
    assert done.status_code == 200 and done.json()["artifact"]["state"] == "AVAILABLE"
    assert done.json()["artifact"]["size"] == str(len(blob))
    download = requests.post(storage + "GenerateArtifactDownloadURL", json={"id": artifact.id}, headers=headers,
                             timeout=10).json()["presignedUrl"]
    assert download["method"] == "HTTP_METHOD_GET"
    got = requests.get(download["url"], timeout=60)
    assert got.status_code == 200 and hashlib.sha256(got.content).digest() == hashlib.sha256(blob).digest()
    assert requests.get(download["url"], timeout=10).status_code == 403  # once
    legacy = io.BytesIO()
    alice.storage.artifact.download_artifact(artifact.id, legacy)
    assert legacy.getvalue() == blob


def test_a_presigned_upload_past_the_bound_is_refused(sandbox: Sandbox, alice: Any,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from mlops_nb.sandbox.services import uploads

    monkeypatch.setattr(uploads, "MAX_UPLOAD_BYTES", 1000)
    project = alice.storage.project.create_project(project={"display_name": "bounded"}).project
    headers = {"Authorization": f"Bearer {sandbox.token_provider('alice')()}"}
    storage = sandbox.gateway_url + "/storage/ai.h2o.storage.ArtifactService/"
    for body in (b"x" * 2000, (b"x" * 500 for _ in range(4))):  # declared length, then chunked without one
        artifact = alice.storage.artifact.create_artifact(artifact={"entity_id": project.id, "type": "raw"}).artifact
        url = requests.post(storage + "GenerateArtifactUploadURL", json={"id": artifact.id}, headers=headers,
                            timeout=10).json()["presignedUrl"]["url"]
        refused = requests.put(url, data=body, timeout=10)
        assert refused.status_code == 400 and "(1000 bytes)" in refused.json()["message"]
        assert alice.storage.artifact.get_artifact(id=artifact.id).artifact.state in ("EMPTY", "UPLOAD_FAILED")
