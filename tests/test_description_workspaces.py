"""The workspaces generation's API description: reproducible from the wheels, whole, and true to them.

The figures and facts below were read in ``h2o-mlops`` 1.6.5 (``h2o_mlops/_client``) and
1.5.4 (``h2o_mlops/_autogen``); the tests marked so check them against the downloaded wheels
by other means than the generator's (regular expressions over the source, not ``ast``).
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import pytest

from mlops_nb.api import API, ApiDescription, description
from tests.test_description import assert_every_referenced_type_exists
from tests.test_startup import fresh
from tests.wheels import download_wheel, regenerate

WS = description("workspaces")
COMMITTED = Path(__file__).resolve().parent.parent / "mlops_nb" / "api" / "description_workspaces.json"


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    where = tmp_path_factory.mktemp("wheels")
    return download_wheel("h2o-mlops==1.6.5", where), download_wheel("h2o-mlops==1.5.4", where)


def test_the_generator_reproduces_the_committed_description(wheels: tuple[Path, Path], tmp_path: Path) -> None:
    produced = regenerate("regen_api_description_workspaces.py", list(wheels), tmp_path / "out.json")
    assert produced == COMMITTED.read_text(encoding="utf-8")


def test_operations_per_server_match_the_calls_in_the_newest_client(wheels: tuple[Path, Path]) -> None:
    # A public method of a 1.6.5 service module is an operation when it calls the gateway itself.
    with zipfile.ZipFile(wheels[0]) as whl:
        for server in WS.servers:
            source = whl.read(f"h2o_mlops/_client/services/{server}.py").decode()
            chunks = re.split(r"\n    def ", source)
            calls = [c for c in chunks if not c.startswith("_")
                     and re.search(r"self\._http\.request(_raw)?\(|self\._call\(", c)]
            described = [m for s in WS.services_of(server) for m in s.methods]
            assert len(described) == len(calls), server
            for chunk in calls:
                python = chunk.split("(", 1)[0]
                method = next(m for m in described if m.python == python)
                # The call's own path (an f-string of python names) has the described path's shape.
                paths = re.findall(r'\n\s+f?"(/[^"]*)",', chunk) + re.findall(r'self\._call\("(\w+)"', chunk)
                shapes = {re.sub(r"\{[^}]+\}", "{}", p) for p in paths}
                described_shape = re.sub(r"\{[^}]+\}", "{}", method.path)
                assert described_shape in shapes or method.rpc in shapes, (server, python, shapes)


def test_counts() -> None:
    per_server = {s: sum(len(x.methods) for x in WS.services_of(s)) for s in WS.servers}
    assert per_server == {"storage": 87, "deployer": 43, "batch": 12, "monitoring": 9, "runtime": 25, "authz": 16}
    assert len(WS.methods) == 192
    assert (len(WS.messages), len(WS.enums)) == (467, 29)
    assert sum(m.read_only for m in WS.methods) == 100


def test_servers_gateways_and_discovery() -> None:
    assert WS.generation == "workspaces"
    assert WS.servers == {"storage": "/storage", "deployer": "/deployer", "batch": "/batch",
                          "monitoring": "/monitoring", "runtime": "/runtime", "authz": ""}
    assert {s for s, g in WS.gateways.items() if g != "mlops"} == {"authz"}
    assert WS.discovery["services"] == {"mlops-api": "gateway_url", "authz-gateway": "authz_gateway_url",
                                        "secure-store": "endpoint"}
    assert WS.discovery["clients"] == {"platform": "client_id"}
    assert WS.identity == {"verb": "GET", "gateway": "mlops", "path": "/me", "header": "X-User-Id",
                           "then": "authz.user.get_user"}


def test_deployment_create_and_update() -> None:
    create = WS.method("deployer.deployment.create_deployment")
    assert (create.verb, create.full_path) == ("POST", "/deployer/v2/{parent}/deployments")
    assert (create.request, create.body_field, create.response) == ("V2Deployment", "deployment",
                                                                      "V2CreateDeploymentResponse")
    assert [(p.name, p.wire) for p in create.path_params] == [("parent", "parent")]
    update = WS.method("deployer.deployment.update_deployment")
    assert (update.verb, update.path) == ("PATCH", "/v2/{deployment.name}")
    assert [(p.name, p.wire) for p in update.path_params] == [("deployment_name", "deployment.name")]
    assert [p.wire for p in update.query_params] == ["updateMask"]
    assert update.request == "TheDeploymentToUpdate"  # 1.5.4's typed inline body, not 1.6.5's untyped copy
    assert {f.name for f in WS.messages["TheDeploymentToUpdate"]} >= {"single", "security", "monitoring_options"}


def test_monitoring_aggregates_and_batch_jobs() -> None:
    aggregates = WS.method("monitoring.aggregate.list_aggregates")
    assert (aggregates.verb, aggregates.full_path) == ("GET", "/monitoring/v2/{parent}/aggregates")
    assert [p.wire for p in aggregates.query_params] == ["pageSize", "pageToken", "filter", "orderBy"]
    assert aggregates.query_params[0].type == "int32"
    statuses = WS.method("deployer.status.batch_get_deployment_statuses")
    assert statuses.query_params[0].wire == "names" and statuses.query_params[0].repeated
    output = WS.method("batch.job.get_job_output")
    assert output.streaming and output.read_only
    assert WS.method("batch.job.create_job").full_path == "/batch/v1/{parent}/jobs"
    assert WS.method("runtime.runtime.list_runtimes").full_path == "/runtime/v1/{parent}/runtimes"


def test_read_only_flags() -> None:
    # A batch job is cancelled with a GET: the one GET that is a write.
    assert not WS.method("batch.job.cancel_job").read_only
    assert {m.qualified_name for m in WS.methods if m.verb == "GET" and not m.read_only} == {"batch.job.cancel_job"}
    assert WS.method("authz.user.list_users_by_email2").read_only  # a POST that only lists
    assert not WS.method("deployer.deployment.pause_deployment").read_only
    assert WS.method("storage.project.list_projects").read_only
    assert not WS.method("storage.artifact.generate_artifact_upload_url").read_only
    assert all(not m.read_only for m in WS.methods if m.verb in ("PATCH", "DELETE"))


def test_workspaces_live_behind_the_authz_gateway() -> None:
    create = WS.method("authz.workspace.create_workspace")
    assert WS.gateways[create.service.server] == "authz"
    assert (create.verb, create.full_path, create.request, create.body_field) == (
        "POST", "/v1/workspaces", "V1Workspace", "workspace")
    assert [p.wire for p in WS.method("authz.workspace.list_workspaces").query_params] == [
        "pageSize", "pageToken", "filter", "orderBy", "showDeleted", "showArchived"]


def test_enums_and_inferred_field_types() -> None:
    assert WS.enums["DeploymentStatusDeploymentState"] == (
        "DEPLOYMENT_STATE_UNSPECIFIED", "PREPARING", "LAUNCHING", "FAILED", "HEALTHY", "UNHEALTHY",
        "TERMINATING", "PENDING", "TERMINATED", "STOPPED", "DEPLOYED")
    assert "BCRYPT" in WS.enums["AuthenticationPassphraseHashAlgorithm"]
    artifact = {f.name: f.type for f in WS.messages["StorageArtifact"]}
    assert (artifact["size"], artifact["md5_digest"]) == ("int64", "bytes")
    paging = {f.name: f.type for f in WS.messages["StoragePagingRequest"]}
    assert paging == {"page_size": "int32", "page_token": "bytes"}
    deployment = {f.name: f for f in WS.messages["V2Deployment"]}
    assert (deployment["create_time"].json, deployment["create_time"].type) == ("createTime", "timestamp")


def test_storage_keeps_the_legacy_rpc_paths_and_adds_presigned_uploads() -> None:
    legacy = {(m.verb, m.full_path) for m in API.methods}
    storage = [m for m in WS.methods if m.service.server == "storage"]
    assert sum((m.verb, m.full_path) in legacy for m in storage) == 73
    upload = WS.method("storage.artifact.generate_artifact_upload_url")
    assert upload.full_path == "/storage/ai.h2o.storage.ArtifactService/GenerateArtifactUploadURL"
    assert upload.request == "StorageGenerateArtifactUploadURLRequest"


def test_every_referenced_type_exists_and_path_params_are_in_their_paths() -> None:
    assert_every_referenced_type_exists(WS)
    for m in WS.methods:
        assert (m.request is None) == (m.body_field is None), m
        if m.verb in ("GET", "DELETE"):
            assert m.request is None, m
        assert re.findall(r"\{([^}]+)\}", m.path) == [p.wire for p in m.path_params], m
    names = [m.qualified_name for m in WS.methods]
    assert len(set(names)) == len(names)


def test_one_loader_and_the_legacy_view_unchanged() -> None:
    assert type(WS) is type(API) is ApiDescription
    assert description("legacy") is API and description("workspaces") is WS
    assert API.generation == "legacy" and set(API.gateways.values()) == {"mlops"}
    assert API.discovery == {} and API.identity is None
    assert API.method("storage.project.list_projects").full_path == "/storage/ai.h2o.storage.ProjectService/ListProjects"
    with pytest.raises(ValueError, match="no API generation 'v3'; known: legacy, workspaces"):
        description("v3")


def test_import_does_not_load_the_workspaces_description() -> None:
    loaded = fresh("""
        import json
        import mlops_nb
        from mlops_nb import api
        before = api.description.cache_info().currsize
        api.description("workspaces")
        print(json.dumps([before, api.description.cache_info().currsize]))
    """)
    assert loaded == [1, 2]
