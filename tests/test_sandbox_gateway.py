"""The sandbox's gateway as a whole: routes, authentication, request checking, UNIMPLEMENTED."""

from __future__ import annotations

import time

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

import mlops_nb as mlops
from mlops_nb.api import API, description
from mlops_nb.sandbox import Sandbox
from mlops_nb.sandbox.identity import AUDIENCE

WHO_AM_I = "/storage/ai.h2o.storage.UserService/WhoAmI"
GET_PROJECT = "/storage/ai.h2o.storage.ProjectService/GetProject"


def post(sb: Sandbox, path: str, body: bytes | None = b"{}", token: str | None = None) -> requests.Response:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return requests.post(sb.gateway_url + path, data=body, headers=headers, timeout=10)


@pytest.fixture(scope="module")
def token(sandbox: Sandbox) -> str:
    return sandbox.token_provider("alice")()


def test_index_lists_every_route_as_html_and_json(sandbox: Sandbox) -> None:
    listing = requests.get(sandbox.gateway_url + "/", headers={"Accept": "application/json"}, timeout=10).json()
    routes = listing["routes"]
    assert listing["faces"] == ["legacy", "workspaces"]
    # Every legacy route, then the workspaces API's routes that are not legacy routes too.
    legacy_routes = {(m.verb, m.full_path) for m in API.methods}
    workspaces_own = [m for m in description("workspaces").methods
                      if (m.verb, m.full_path) not in legacy_routes]
    assert len(routes) == len(API.methods) + len(workspaces_own)
    by_method = {r["method"]: r for r in routes}
    assert by_method["storage.project.list_projects"] == {
        "verb": "POST", "path": "/storage/ai.h2o.storage.ProjectService/ListProjects",
        "method": "storage.project.list_projects", "faces": ["legacy", "workspaces"], "served": True,
        "implemented": True}
    assert by_method["authz.workspace.list_workspaces"]["path"] == "/authz/v1/workspaces"
    assert by_method["deployer.deployment.list_deployments"]["faces"] == ["workspaces"]
    assert by_method["storage.deployment.undeploy"]["implemented"] is True
    assert by_method["model_monitoring.monitoring_service.export_metric"]["implemented"] is False
    page = requests.get(sandbox.gateway_url + "/", timeout=10)
    assert page.headers["content-type"].startswith("text/html")
    assert "/deployer/ai.h2o.deploy.DeploymentStatusService/ListDeploymentStatuses" in page.text


@pytest.mark.parametrize("header", [None, "", "Basic abc", "Bearer ", "Bearer not-a-jwt"])
def test_missing_or_malformed_tokens_are_unauthenticated(sandbox: Sandbox, header: str | None) -> None:
    headers = {"Authorization": header} if header is not None else {}
    answer = requests.post(sandbox.gateway_url + WHO_AM_I, json={}, headers=headers, timeout=10)
    assert answer.status_code == 401
    assert answer.json()["code"] == 16


def _forged(sandbox: Sandbox, **claims: object) -> str:
    # A token with the right shape signed by a key the sandbox never published: what an
    # attacker (or another realm) could send.
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())
    payload = {"iss": sandbox.issuer, "sub": "x", "aud": AUDIENCE, "typ": "Bearer", "iat": now, "exp": now + 60,
               **claims}
    return jwt.encode(payload, key, algorithm="RS256")


def test_bad_signature_wrong_audience_and_refresh_token_are_rejected(sandbox: Sandbox) -> None:
    forged = post(sandbox, WHO_AM_I, token=_forged(sandbox))
    assert forged.status_code == 401 and "bad signature" in forged.json()["message"]
    # Signed by the sandbox itself but for another audience: only the provider's own signer can
    # make one, so this reaches into it (there is no public way to mint a wrong token).
    other_audience = sandbox.idp._sign({"sub": "x", "aud": "someone-else", "typ": "Bearer"}, 60)
    wrong = post(sandbox, WHO_AM_I, token=other_audience)
    assert wrong.status_code == 401 and "wrong audience" in wrong.json()["message"]
    refresh = post(sandbox, WHO_AM_I, token=sandbox.refresh_token("alice"))
    assert refresh.status_code == 401 and "not an access token" in refresh.json()["message"]


def test_expired_access_token_is_rejected(tmp_path) -> None:
    with Sandbox(db=str(tmp_path / "s.sqlite3"), data="empty", token_ttl=1) as sb:
        token = sb.token_provider("alice")()
        assert post(sb, WHO_AM_I, token=token).status_code == 200
        time.sleep(2)
        expired = post(sb, WHO_AM_I, token=token)
        assert expired.status_code == 401 and "expired" in expired.json()["message"]
        assert token not in expired.text


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'{"projectId": 5}', "StorageGetProjectRequest.project_id (projectId): expected str, got int"),
        (b'{"projectID": "x"}', "has no field 'projectID'"),
    ],
)
def test_bad_requests_are_invalid_argument_naming_the_problem(sandbox: Sandbox, token: str, body: bytes,
                                                              words: str) -> None:
    answer = post(sandbox, GET_PROJECT, body=body, token=token)
    assert answer.status_code == 400
    assert answer.json()["code"] == 3 and words in answer.json()["message"]


def test_nested_unknown_field_is_named_with_its_path(sandbox: Sandbox, token: str) -> None:
    answer = post(sandbox, "/storage/ai.h2o.storage.ProjectService/ListProjects",
                  body=b'{"paging": {"pageSize": 5, "size": 1}}', token=token)
    assert answer.status_code == 400 and "StorageListProjectsRequest.paging has no field 'size'" in answer.text


def test_empty_request_methods_refuse_fields(sandbox: Sandbox, token: str) -> None:
    answer = post(sandbox, WHO_AM_I, body=b'{"user": "x"}', token=token)
    assert answer.status_code == 400 and "takes an empty request" in answer.json()["message"]


def test_unimplemented_methods_answer_501_code_12(sandbox: Sandbox, alice) -> None:
    with pytest.raises(mlops.Unimplemented) as e:
        list(alice.model_monitoring.monitoring_service.export_metric(deployment_id="d1", model_id="m1"))
    assert e.value.http_status == 501 and e.value.code == 12
    assert "sandbox does not implement ai.h2o.mlops.monitoring.api.ModelMonitoringService/ExportMetric" \
        in e.value.message


def test_several_sandboxes_run_at_once(tmp_path) -> None:
    with Sandbox(db=str(tmp_path / "a.sqlite3"), data="empty") as a, \
            Sandbox(db=str(tmp_path / "b.sqlite3"), data="empty") as b:
        assert a.port != b.port
        assert a.client("alice").storage.user.who_am_i().user.username == "alice"
        assert b.client("bob").storage.user.who_am_i().user.username == "bob"
        # A token of one sandbox means nothing to the other.
        stranger = post(b, WHO_AM_I, token=a.token_provider("alice")())
        assert stranger.status_code == 401
