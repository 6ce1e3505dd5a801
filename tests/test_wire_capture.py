"""What the client puts on the wire, checked against a capturing HTTP server on 127.0.0.1.

The capturing server stands in for the gateway because these tests are about the
exact bytes the client sends and how it reads every kind of answer (including
broken ones no real gateway would give on demand); the sandbox tests cover the
real conversation.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import pickle
import socket
from datetime import datetime, timezone

import pytest

import mlops_nb as mlops
from tests.capture import CaptureServer

TOKEN = "secret-access-token-123"


@pytest.fixture
def server():
    with CaptureServer() as s:
        yield s


@pytest.fixture
def client(server):
    # These tests are about the legacy calls' bytes, one request each: the generation is given, not
    # found (finding it is a request of its own; tests/test_wire_workspaces.py checks that).
    return mlops.wire.Client(server.url, lambda: TOKEN, generation="legacy")


def only(server):
    assert len(server.requests) == 1
    return server.requests[0]


@pytest.mark.parametrize(
    ("call", "path", "body"),
    [
        (lambda c: c.storage.project.list_projects(mlops.StorageListProjectsRequest()),
         "/storage/ai.h2o.storage.ProjectService/ListProjects", {}),
        (lambda c: c.storage.user.who_am_i(body={}), "/storage/ai.h2o.storage.UserService/WhoAmI", {}),
        (lambda c: c.storage.user.who_am_i(), "/storage/ai.h2o.storage.UserService/WhoAmI", {}),
        (lambda c: c.storage.project.get_project(project_id="p1"),
         "/storage/ai.h2o.storage.ProjectService/GetProject", {"projectId": "p1"}),
        (lambda c: c.storage.experiment.list_experiments({"project_id": "p1", "paging": {"page_size": 3}}),
         "/storage/ai.h2o.storage.ExperimentService/ListExperiments", {"projectId": "p1", "paging": {"pageSize": 3}}),
        (lambda c: c.deployer.deployment_status.list_deployment_statuses(
            mlops.DeployListDeploymentStatusesRequest(project_id="p1")),
         "/deployer/ai.h2o.deploy.DeploymentStatusService/ListDeploymentStatuses", {"projectId": "p1"}),
        (lambda c: c.deployer.composition.list_artifact_compositions(),
         "/deployer/ai.h2o.deploy.CompositionService/ListArtifactCompositions", {}),
        (lambda c: c.ingest.model.create_model_ingestion(mlops.IngestCreateModelIngestionRequest(artifact_id="a1")),
         "/ingest/ai.h2o.ingest.ModelIngest/CreateModelIngestion", {"artifactId": "a1"}),
    ],
)
def test_post_calls_of_every_server(server, client, call, path, body) -> None:
    call(client)
    request = only(server)
    assert (request.verb, request.path) == ("POST", path)
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.headers["content-type"] == "application/json"
    assert request.json() == body


def test_model_monitoring_rest_call_has_path_and_query_parameters(server, client) -> None:
    start = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
    client.model_monitoring.monitoring_service.get_model_drift_metrics("dep 1", "m/2", start_date_time=start)
    request = only(server)
    assert request.verb == "GET"
    assert request.path == "/model-monitoring/v1/deployment/dep%201/metrics/m%2F2/drift"
    assert request.query == [("startDateTime", "2024-05-01T12:00:00Z")]
    assert request.body == b""


def test_model_monitoring_needs_its_path_parameters(client) -> None:
    with pytest.raises(TypeError, match="needs deployment_id"):
        client.model_monitoring.monitoring_service.get_monitored_deployment()
    with pytest.raises(TypeError, match="has no parameter 'deploymentid'"):
        client.model_monitoring.monitoring_service.list_monitored_deployments(deploymentid="x")


def test_response_is_typed_and_entity_reachable_by_name(server, client) -> None:
    server.respond("/storage/ai.h2o.storage.ProjectService/GetProject",
                   {"project": {"id": "p1", "displayName": "Churn", "createdTime": "2024-01-01T00:00:00Z"}})
    response = client.storage.project.get_project(project_id="p1")
    assert isinstance(response, mlops.StorageGetProjectResponse)
    assert response.project.display_name == "Churn"
    assert response.project.created_time.tzinfo is not None


def test_empty_response_gives_none(server, client) -> None:
    assert client.storage.project.delete_project(project_id="p1") is None


def test_request_forms_are_checked(client) -> None:
    with pytest.raises(TypeError, match="takes a StorageGetProjectRequest, got a StorageProject"):
        client.storage.project.get_project(mlops.StorageProject(id="x"))
    with pytest.raises(TypeError, match="not both"):
        client.storage.project.get_project({"project_id": "x"}, project_id="y")
    with pytest.raises(TypeError, match="takes no request fields"):
        client.storage.user.who_am_i(user="x")


@pytest.mark.parametrize(
    ("status", "code", "error"),
    [(404, 5, mlops.NotFound), (403, 7, mlops.PermissionDenied), (401, 16, mlops.Unauthenticated),
     (400, 3, mlops.InvalidArgument), (409, 6, mlops.AlreadyExists), (501, 12, mlops.Unimplemented),
     (503, 14, mlops.Unavailable), (504, 4, mlops.DeadlineExceeded), (400, 9, mlops.FailedPrecondition)],
)
def test_rpc_status_becomes_the_matching_exception(server, client, status, code, error) -> None:
    server.respond("/storage/ai.h2o.storage.ProjectService/GetProject",
                   {"code": code, "message": "it went wrong", "details": [{"@type": "x"}]}, status=status)
    with pytest.raises(error) as e:
        client.storage.project.get_project(project_id="p1")
    assert e.value.code == code and e.value.http_status == status
    assert e.value.message == "it went wrong" and e.value.details == [{"@type": "x"}]
    assert e.value.rpc == "storage.project.get_project"
    assert isinstance(e.value, mlops.ApiError) and isinstance(e.value, mlops.MLOpsError)
    again = pickle.loads(pickle.dumps(e.value))
    assert type(again) is error and again.rpc == e.value.rpc


def test_proxy_html_error_becomes_a_clear_gateway_error(server, client) -> None:
    server.respond("/storage/ai.h2o.storage.UserService/WhoAmI", raw=b"<html><h1>502 Bad Gateway</h1></html>",
                   status=502, content_type="text/html")
    with pytest.raises(mlops.GatewayError, match="HTTP 502.*without an API error body.*text/html") as e:
        client.storage.user.who_am_i()
    assert e.value.http_status == 502


def test_connection_refused_names_the_gateway() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = mlops.wire.Client(f"http://127.0.0.1:{port}", lambda: TOKEN)
    with pytest.raises(mlops.ConnectionFailed, match=f"could not reach the MLOps gateway at http://127.0.0.1:{port}"):
        client.storage.user.who_am_i()


def test_timeout_names_the_gateway_and_the_limit(server) -> None:
    server.respond("/storage/ai.h2o.storage.UserService/WhoAmI", {}, delay=1.0)
    client = mlops.wire.Client(server.url, lambda: TOKEN, timeout=0.2)
    with pytest.raises(mlops.ConnectionFailed, match="did not answer within 0.2 s"):
        client.storage.user.who_am_i()


@pytest.mark.parametrize("url", ["api.mlops.my.domain", "ftp://x", "", "https://"])
def test_invalid_gateway_url_fails_at_construction(url) -> None:
    with pytest.raises(ValueError, match="http:// or https://|must be a URL"):
        mlops.Client(url, lambda: TOKEN)


def test_token_provider_must_be_callable() -> None:
    with pytest.raises(TypeError, match="token_provider must be callable"):
        mlops.Client("http://127.0.0.1:9", "a-token")


def test_the_token_appears_in_no_error(server, client) -> None:
    server.respond("/storage/ai.h2o.storage.UserService/WhoAmI", {"code": 16, "message": "no"}, status=401)
    with pytest.raises(mlops.Unauthenticated) as e:
        client.storage.user.who_am_i()
    assert TOKEN not in str(e.value) and TOKEN not in repr(e.value)
    assert TOKEN not in repr(client)


def test_upload_streams_newline_delimited_chunks(server, client) -> None:
    server.respond("/storage/google.bytestream.ByteStream/Write", {"committedSize": "10"})
    seen = []
    response = client.storage.artifact.upload_artifact("a1", io.BytesIO(b"0123456789"), chunk_size=4,
                                                       progress=seen.append)
    assert response.committed_size == 10
    request = only(server)
    assert request.path == "/storage/google.bytestream.ByteStream/Write"
    assert request.headers.get("transfer-encoding") == "chunked"  # streamed, not buffered
    messages = request.ndjson()
    assert [base64.b64decode(m["data"]) for m in messages[:-1]] == [b"0123", b"4567", b"89"]
    assert [m["writeOffset"] for m in messages] == [0, 4, 8, 10]
    assert messages[-1] == {"resourceName": "a1", "writeOffset": 10, "finishWrite": True}
    assert seen == [4, 8, 10]


def test_download_streams_into_the_file(server, client) -> None:
    parts = [b"hello ", b"world", b"!" * 1000]
    lines = b"".join(json.dumps({"result": {"data": base64.b64encode(p).decode()}}).encode() + b"\n" for p in parts)
    server.respond("/storage/google.bytestream.ByteStream/Read", raw=lines)
    out = io.BytesIO()
    assert client.storage.artifact.download_artifact("a1", out) == 1011
    assert out.getvalue() == b"".join(parts)
    assert only(server).json() == {"resourceName": "a1"}
    assert hashlib.md5(out.getvalue()).hexdigest()


def test_streamed_error_line_raises(server, client) -> None:
    server.respond("/storage/google.bytestream.ByteStream/Read",
                   raw=b'{"error": {"code": 5, "message": "no blob"}}\n')
    with pytest.raises(mlops.NotFound, match="no blob"):
        client.storage.artifact.download_artifact("a1", io.BytesIO())


def test_one_pooled_session_serves_every_call(server, client) -> None:
    for _ in range(3):
        client.storage.user.who_am_i()
    assert len(server.requests) == 3
    assert client._transport.session is client._transport.session
