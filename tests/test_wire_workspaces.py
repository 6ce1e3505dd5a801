"""The workspaces generation on the wire: its messages, its REST calls' exact bytes, its second
gateway, and finding which generation a gateway speaks.

The capturing server (tests/capture.py) stands in for the gateways where the subject is the exact
request; finding the generation is checked against small loopback servers that answer like each
generation's gateway, and against the sandbox's faces.
"""

from __future__ import annotations

import inspect
import json
import pickle
import socket
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

import mlops_nb as mlops
from mlops_nb.api import description
from mlops_nb.wire.client import Client
from mlops_nb.wire.messages import generation_of, message_class
from tests.capture import Canned, CaptureServer

TOKEN = "secret-access-token-456"
DEPLOYMENT = "workspaces/p1/deployments/d1"
NOT_FOUND = Canned(404, json.dumps({"code": 5, "message": "Not Found"}).encode())


@pytest.fixture
def gateway():
    with CaptureServer() as s:
        yield s


@pytest.fixture
def authz():
    with CaptureServer() as s:
        yield s


@pytest.fixture
def client(gateway, authz):
    return Client(gateway.url, lambda: TOKEN, generation="workspaces", authz_gateway_url=authz.url)


def only(server):
    assert len(server.requests) == 1, [(r.verb, r.path) for r in server.requests]
    return server.requests[0]


# -- messages ---------------------------------------------------------------------------------


def test_workspaces_messages_are_their_own_classes_built_on_first_use() -> None:
    loaded = subprocess.run([sys.executable, "-c", (
        "import sys, mlops_nb; before = 'mlops_nb.wire.workspaces' in sys.modules; "
        "from mlops_nb.wire.messages import message_class; cls = message_class('V2Deployment', 'workspaces'); "
        "print(before, 'mlops_nb.wire.workspaces' in sys.modules, cls.__module__, mlops_nb.workspaces.V2Deployment is cls)")],
        capture_output=True, text=True, timeout=120)
    assert loaded.stdout.split() == ["False", "True", "mlops_nb.wire.workspaces", "True"], loaded.stderr
    # A name both generations have is two classes, with each generation's fields.
    legacy, newer = mlops.StorageCreateExperimentRequest, mlops.workspaces.StorageCreateExperimentRequest
    assert legacy is not newer and generation_of(legacy) == "legacy" and generation_of(newer) == "workspaces"
    assert [f.name for f in newer.fields()] == [f.name for f in description("workspaces").messages[
        "StorageCreateExperimentRequest"]]
    assert message_class("StorageProject") is mlops.StorageProject  # the legacy names stay as they are


def test_workspaces_message_wire_form_signature_and_pickle() -> None:
    cls = message_class("V2Deployment", generation="workspaces")
    made = cls(name=DEPLOYMENT, display_name="churn", create_time=datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc))
    wire = made.to_wire()
    assert wire["name"] == DEPLOYMENT and wire["displayName"] == "churn" and wire["createTime"] == "2026-01-02T03:04:05Z"
    assert list(inspect.signature(cls).parameters)[:3] == ["name", "display_name", "description"]
    again = pickle.loads(pickle.dumps(made))
    assert type(again) is cls and again == made
    assert "workspaces generation" in cls.__doc__
    with pytest.raises(KeyError, match=r"no message named 'V2Deployment' in the legacy API description \(the "
                                       r"workspaces generation has it: message_class\('V2Deployment', 'workspaces'\)\)"):
        message_class("V2Deployment")
    with pytest.raises(KeyError, match="no message named 'Nope' in the workspaces API description"):
        message_class("Nope", "workspaces")
    with pytest.raises(ValueError, match="no API generation 'newest'"):
        message_class("V2Deployment", "newest")


def test_cards_are_registered_per_generation() -> None:
    from mlops_nb.wire import messages

    shown = []
    before = dict(messages._HTML_RENDERERS)
    try:
        messages.register_html_renderer("StorageProject", lambda m: shown.append(generation_of(m)) or "legacy card")
        messages.register_html_renderer("*", lambda m: f"workspaces card of {type(m).__name__}", "workspaces")
        assert mlops.StorageProject(display_name="p")._repr_html_() == "legacy card"
        # The same name in the workspaces generation is another class, with the workspaces renderers.
        assert mlops.workspaces.StorageProject(display_name="p")._repr_html_() == "workspaces card of StorageProject"
        assert mlops.workspaces.V1Workspace()._repr_html_() == "workspaces card of V1Workspace"
        assert shown == ["legacy"]
    finally:
        messages._HTML_RENDERERS.clear()
        messages._HTML_RENDERERS.update(before)


def test_workspaces_secrets_stay_out_of_reprs() -> None:
    from mlops_nb.api import SECRET_FIELDS

    security = mlops.workspaces.V2Security(passphrase={"passphrase": "open sesame", "hash_algorithm": "PLAINTEXT"})
    aws = mlops.workspaces.CredentialsAWSCredentials(access_token="AKIA-secret", secret_token="s3cr3t")
    for message, secret in ((security, "open sesame"), (aws, "AKIA-secret"), (aws, "s3cr3t")):
        assert secret not in repr(message) and "<hidden>" in repr(message)
    assert security.to_wire()["passphrase"]["passphrase"] == "open sesame"  # sent as given
    workspaces = description("workspaces").messages
    assert all(name in workspaces and field in {f.name for f in workspaces[name]} or name in description(
        "legacy").messages for name, field in SECRET_FIELDS)


# -- REST calls: exact bytes -----------------------------------------------------------------------


def test_create_deployment_posts_the_body_field_to_the_parent(gateway, client) -> None:
    gateway.respond("/deployer/v2/workspaces/p1/deployments", {"deployment": {"name": DEPLOYMENT, "displayName": "d"}})
    made = client.deployer.deployment.create_deployment(parent="workspaces/p1",
                                                         deployment={"display_name": "d", "description": "x"})
    sent = only(gateway)
    assert (sent.verb, sent.path, sent.query) == ("POST", "/deployer/v2/workspaces/p1/deployments", [])
    assert sent.json() == {"displayName": "d", "description": "x"}
    assert sent.headers["authorization"] == f"Bearer {TOKEN}" and sent.headers["content-type"] == "application/json"
    assert type(made) is mlops.workspaces.V2CreateDeploymentResponse and made.deployment.name == DEPLOYMENT


def test_get_and_delete_fill_the_name_with_its_slashes_and_send_no_body(gateway, client) -> None:
    client.deployer.deployment.get_deployment(name=DEPLOYMENT)
    client.deployer.deployment.delete_deployment(DEPLOYMENT)  # path parameters may be positional
    got, deleted = gateway.requests
    assert (got.verb, got.path, got.query, got.body) == ("GET", f"/deployer/v2/{DEPLOYMENT}", [], b"")
    assert (deleted.verb, deleted.path, deleted.query, deleted.body) == ("DELETE", f"/deployer/v2/{DEPLOYMENT}", [], b"")
    assert "content-type" not in got.headers


def test_list_sends_query_parameters_by_wire_name(gateway, client) -> None:
    client.deployer.deployment.list_deployments(parent="workspaces/p1", page_size=5, page_token="t 1",
                                                 filter='display_name = "a"')
    sent = only(gateway)
    assert (sent.verb, sent.path) == ("GET", "/deployer/v2/workspaces/p1/deployments")
    assert sent.query == [("pageSize", "5"), ("pageToken", "t 1"), ("filter", 'display_name = "a"')]


def test_repeated_query_parameter_is_repeated(gateway, client) -> None:
    client.deployer.status.batch_get_deployment_statuses(parent="workspaces/p1", names=[DEPLOYMENT, "workspaces/p1/deployments/d2"])
    sent = only(gateway)
    assert sent.path == "/deployer/v2/workspaces/p1/deployments/status:batchGet"
    assert sent.query == [("names", DEPLOYMENT), ("names", "workspaces/p1/deployments/d2")]


def test_update_patches_with_update_mask_and_takes_the_name_from_keyword_or_body(gateway, client) -> None:
    client.deployer.deployment.update_deployment(deployment_name=DEPLOYMENT, deployment={"display_name": "new"},
                                                 update_mask="display_name")
    # The template's {deployment.name} from the body's name (a dict, or the deployment as read).
    client.deployer.deployment.update_deployment(deployment={"name": DEPLOYMENT, "description": "d"},
                                                 update_mask="description")
    first, second = gateway.requests
    assert (first.verb, first.path, first.query, first.json()) == (
        "PATCH", f"/deployer/v2/{DEPLOYMENT}", [("updateMask", "display_name")], {"displayName": "new"})
    assert (second.verb, second.path, second.query, second.json()) == (
        "PATCH", f"/deployer/v2/{DEPLOYMENT}", [("updateMask", "description")], {"description": "d"})
    read = mlops.workspaces.V2Deployment(name=DEPLOYMENT, display_name="as read")
    client.deployer.deployment.update_deployment(deployment=read, update_mask="display_name")
    assert gateway.requests[-1].path == f"/deployer/v2/{DEPLOYMENT}"
    with pytest.raises(TypeError, match="needs deployment_name .or set 'name' in deployment=."):
        client.deployer.deployment.update_deployment(deployment={"display_name": "x"})
    with pytest.raises(TypeError, match="TheDeploymentToUpdate has no field 'colour'"):
        client.deployer.deployment.update_deployment(deployment={"name": DEPLOYMENT, "colour": "red"})


def test_a_template_field_spelt_in_camel_case_is_read_from_the_body(gateway, client) -> None:
    image = "workspaces/p1/runtimeImages/python-scorer"
    client.runtime.runtime_image.update_runtime_image(runtime_image={"name": image, "display_name": "x"},
                                                      update_mask="display_name")
    sent = only(gateway)
    assert (sent.verb, sent.path, sent.json()) == ("PATCH", f"/runtime/v1/{image}", {"displayName": "x"})


def test_body_star_takes_the_request_fields_and_an_empty_request_sends_braces(gateway, client) -> None:
    client.deployer.log.generate_logs(DEPLOYMENT, since_time=datetime(2026, 1, 1, tzinfo=timezone.utc))
    client.deployer.deployment.pause_deployment(name=DEPLOYMENT)
    logs, paused = gateway.requests
    assert (logs.verb, logs.path, logs.json()) == ("POST", f"/deployer/v2/{DEPLOYMENT}:generateLogs",
                                                   {"sinceTime": "2026-01-01T00:00:00Z"})
    assert (paused.verb, paused.path, paused.body) == ("POST", f"/deployer/v2/{DEPLOYMENT}:pause", b"{}")


def test_storage_keeps_the_rpc_style(gateway, client) -> None:
    client.storage.experiment.list_experiments(project_id="p1")
    sent = only(gateway)
    assert (sent.verb, sent.path, sent.json()) == ("POST", "/storage/ai.h2o.storage.ExperimentService/ListExperiments",
                                                   {"projectId": "p1"})


def test_reads_are_sent_again_and_writes_are_not(gateway, authz) -> None:
    unavailable = json.dumps({"code": 14, "message": "busy"}).encode()
    gateway.default = Canned(503, unavailable)
    authz.default = Canned(503, unavailable)
    quick = mlops.RetryPolicy(deadline=2, max_attempts=3, backoff=0.01, jitter=0)
    client = Client(gateway.url, lambda: TOKEN, generation="workspaces", authz_gateway_url=authz.url, retry=quick)
    with pytest.raises(mlops.Unavailable):
        client.deployer.deployment.get_deployment(name=DEPLOYMENT)  # read_only in the description
    with pytest.raises(mlops.Unavailable):
        client.authz.workspace.list_workspaces()  # the second gateway's calls too
    with pytest.raises(mlops.Unavailable):
        client.deployer.deployment.update_deployment(deployment_name=DEPLOYMENT, deployment={}, update_mask="x")
    assert [r.verb for r in gateway.requests] == ["GET", "GET", "GET", "PATCH"]
    assert [r.verb for r in authz.requests] == ["GET", "GET", "GET"]


def test_streamed_job_output_comes_as_messages(gateway, client) -> None:
    lines = [{"result": {"pod": "job-1", "line": "started", "logTime": "2026-01-02T03:04:05Z"}},
             {"result": {"pod": "job-1", "line": "done", "logTime": "2026-01-02T03:04:06Z"}}]
    gateway.respond("/batch/v1/workspaces/p1/jobs/j1:output",
                    raw=b"".join(json.dumps(line).encode() + b"\n" for line in lines))
    received = list(client.batch.job.get_job_output(name="workspaces/p1/jobs/j1"))
    assert all(type(m) is mlops.workspaces.V1JobOutputResponse for m in received)
    assert [m.to_wire() for m in received] == [line["result"] for line in lines]
    assert [m.line for m in received] == ["started", "done"] and received[1].log_time.second == 6


def test_authz_calls_go_to_the_second_gateway(gateway, authz, client) -> None:
    authz.respond("/v1/workspaces", {"workspaces": [{"name": "workspaces/p1", "displayName": "P"}]})
    listed = client.authz.workspace.list_workspaces(page_size=2)
    client.authz.workspace.create_workspace(workspace={"display_name": "W"})
    client.authz.workspace.update_workspace(name="workspaces/p1", workspace={"description": "x"},
                                            update_mask="description")
    assert gateway.requests == []
    listed_req, created, updated = authz.requests
    assert (listed_req.verb, listed_req.path, listed_req.query) == ("GET", "/v1/workspaces", [("pageSize", "2")])
    assert (created.verb, created.path, created.json()) == ("POST", "/v1/workspaces", {"displayName": "W"})
    assert (updated.verb, updated.path, updated.query, updated.json()) == (
        "PATCH", "/v1/workspaces/p1", [("updateMask", "description")], {"description": "x"})
    assert listed.workspaces[0].display_name == "P"


def test_an_authz_gateway_that_never_answered_fails_at_once_whatever_the_other_did(gateway) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = Client(gateway.url, lambda: TOKEN, generation="workspaces", authz_gateway_url=f"http://127.0.0.1:{port}")
    client.deployer.deployment.get_deployment(name=DEPLOYMENT)  # the MLOps gateway has answered
    started = time.monotonic()
    with pytest.raises(mlops.ConnectionFailed, match=f"could not reach the authz gateway at http://127.0.0.1:{port} .*"
                                                     "never answered this client"):
        client.authz.workspace.list_workspaces()
    assert time.monotonic() - started < 2  # not retried for the default 30 s


def test_authz_call_without_its_url_says_how_to_give_it(gateway) -> None:
    client = Client(gateway.url, lambda: TOKEN, generation="workspaces")
    with pytest.raises(ValueError, match="pass authz_gateway_url=.* or connect with Client.from_discovery"):
        client.authz.workspace.list_workspaces()
    assert gateway.requests == []


def test_every_generation_s_servers_are_client_attributes_before_it_is_found() -> None:
    from mlops_nb.wire.client import SERVER_NAMES

    assert sorted(SERVER_NAMES) == sorted({s for g in ("legacy", "workspaces") for s in description(g).servers})
    client = Client("http://127.0.0.1:9", lambda: TOKEN)  # nothing listens there, and nothing is sent
    assert set(SERVER_NAMES) <= set(dir(client))
    assert not hasattr(type(client), "__getattr__")  # IPython's completion evaluates client.storage


def test_every_workspaces_method_resolves_from_the_client() -> None:
    client = Client("http://127.0.0.1:9", lambda: TOKEN, generation="workspaces")
    for m in description("workspaces").methods:
        bound = getattr(getattr(getattr(client, m.service.server), m.service.entity), m.python)
        assert m.full_path in bound.__doc__
        parameters = inspect.signature(bound).parameters
        assert [p.name for p in m.path_params] == list(parameters)[:len(m.path_params)]
        assert {p.name for p in m.query_params} <= set(parameters)


def test_wrong_arguments_are_named(client) -> None:
    with pytest.raises(TypeError, match="has no parameter 'parnt'; did you mean parent"):
        client.deployer.deployment.list_deployments(parnt="workspaces/p1")
    with pytest.raises(TypeError, match="has no parameter 'colour'. Valid: parent, page_size, page_token, filter, order_by"):
        client.deployer.deployment.list_deployments(parent="workspaces/p1", colour="red")
    with pytest.raises(TypeError, match="needs parent"):
        client.deployer.deployment.list_deployments()
    with pytest.raises(AttributeError, match="the workspaces generation of the API has no 'ingest' server"):
        client.ingest  # noqa: B018
    # What only the other generation has says so.
    with pytest.raises(AttributeError, match=r"the deployer server has no entity 'deployment_status'.*\(the legacy "
                                             "generation of the API has it; this client speaks the workspaces one"):
        client.deployer.deployment_status  # noqa: B018
    with pytest.raises(AttributeError, match=r"has no method 'list_project_deployments'.*\(the legacy generation"):
        client.deployer.deployment.list_project_deployments  # noqa: B018
    legacy = Client("http://127.0.0.1:9", lambda: TOKEN, generation="legacy")
    with pytest.raises(AttributeError, match=r"has no method 'list_deployments'.*\(the workspaces generation of the "
                                             "API has it; this client speaks the legacy one"):
        legacy.deployer.deployment.list_deployments  # noqa: B018
    assert not hasattr(client.deployer.deployment, "_repr_html_")
    signature = inspect.signature(client.deployer.deployment.update_deployment)
    assert list(signature.parameters) == ["deployment_name", "update_mask", "deployment"]


def test_result_hook_gets_the_method_of_its_generation(gateway, authz) -> None:
    seen = []

    class Recording(Client):
        def _result(self, method, payload):
            seen.append((method.qualified_name, method.service.api.generation))
            return super()._result(method, payload)

    with Recording(gateway.url, lambda: TOKEN, generation="workspaces", authz_gateway_url=authz.url) as client:
        client.deployer.deployment.get_deployment(name=DEPLOYMENT)
    with Recording(gateway.url, lambda: TOKEN, generation="legacy") as client:
        client.storage.user.who_am_i()
    assert seen == [("deployer.deployment.get_deployment", "workspaces"), ("storage.user.who_am_i", "legacy")]


def test_a_lost_write_suggests_reads_of_its_own_generation(gateway, client) -> None:
    gateway.respond(f"/deployer/v2/{DEPLOYMENT}", {}, delay=1.0)
    slow = client.with_options(timeout=0.2, retry=False)
    assert slow.generation == "workspaces" and slow.authz_gateway_url == client.authz_gateway_url
    with pytest.raises(mlops.WriteOutcomeUnknown) as e:
        slow.deployer.deployment.delete_deployment(name=DEPLOYMENT)
    assert e.value.check_with and all(name.startswith("deployer.deployment.") for name in e.value.check_with)
    assert "deployer.deployment.get_deployment" in e.value.check_with


# -- finding the generation ------------------------------------------------------------------------

LEGACY_PROBE = "/deployer/ai.h2o.deploy.VersionService/GetVersion"


def _legacy_gateway(server: CaptureServer) -> None:
    server.default = NOT_FOUND
    server.respond(LEGACY_PROBE, {"version": "0.70.1"})
    server.respond("/storage/ai.h2o.storage.UserService/WhoAmI", {"user": {"id": "u1"}})


def _workspaces_gateway(server: CaptureServer) -> None:
    server.default = NOT_FOUND
    server.respond("/me", {}, headers={"X-User-Id": "u1"})
    server.respond("/storage/ai.h2o.storage.UserService/WhoAmI", {"user": {"id": "u1"}})


def test_who_am_i_in_each_generation(gateway, authz) -> None:
    _workspaces_gateway(gateway)
    authz.respond("/v1/users/u1", {"user": {"name": "users/u1", "displayName": "Alice"}})
    client = Client(gateway.url, lambda: TOKEN, authz_gateway_url=authz.url)
    assert client.user_id() == "u1"
    assert client.who_am_i().user.display_name == "Alice"
    assert [(r.verb, r.path) for r in authz.requests] == [("GET", "/v1/users/u1")]
    legacy = CaptureServer().__enter__()
    try:
        _legacy_gateway(legacy)
        old = Client(legacy.url, lambda: TOKEN)
        assert old.user_id() == "u1" and old.who_am_i().user.id == "u1"
    finally:
        legacy.__exit__(None, None, None)


def test_a_legacy_gateway_is_found_with_one_probe_on_first_use(gateway) -> None:
    _legacy_gateway(gateway)
    client = Client(gateway.url, lambda: TOKEN)
    assert gateway.requests == []  # nothing is sent at construction
    client.storage.user.who_am_i()
    assert [(r.verb, r.path) for r in gateway.requests] == [("POST", LEGACY_PROBE),
                                                            ("POST", "/storage/ai.h2o.storage.UserService/WhoAmI")]
    assert client.generation == "legacy" and client.api is description("legacy")
    client.storage.user.who_am_i()
    assert len(gateway.requests) == 3  # found once, kept


def test_threads_using_a_new_client_at_once_find_the_generation_once(gateway) -> None:
    from concurrent.futures import ThreadPoolExecutor

    _legacy_gateway(gateway)
    gateway.respond(LEGACY_PROBE, {"version": "0.70.1"}, delay=0.2)  # long enough for every thread to arrive
    client = Client(gateway.url, lambda: TOKEN)
    with ThreadPoolExecutor(8) as pool:
        servers = list(pool.map(lambda _: client.storage, range(8)))
    assert all(server is servers[0] for server in servers)
    assert [r.path for r in gateway.requests] == [LEGACY_PROBE]


def test_a_workspaces_gateway_is_found_and_kept_by_with_options(gateway) -> None:
    _workspaces_gateway(gateway)
    client = Client(gateway.url, lambda: TOKEN)
    assert repr(client) == f"Client(gateway_url={gateway.url!r})"  # a repr asks nothing
    assert client.generation == "workspaces" and client.api is description("workspaces")
    assert repr(client) == f"Client(gateway_url={gateway.url!r}, generation='workspaces')"
    assert [(r.verb, r.path) for r in gateway.requests] == [("POST", LEGACY_PROBE), ("GET", "/me")]
    assert type(client.deployer.deployment).__module__ == "mlops_nb.wire.workspaces"
    other = client.with_options(timeout=5, retry=False)
    assert other.generation == "workspaces"
    assert len(gateway.requests) == 2


def test_a_gateway_answering_both_is_legacy_unless_forced(gateway) -> None:
    _legacy_gateway(gateway)
    gateway.respond("/me", {}, headers={"X-User-Id": "u1"})
    assert Client(gateway.url, lambda: TOKEN).generation == "legacy"
    gateway.requests.clear()
    forced = Client(gateway.url, lambda: TOKEN, generation="workspaces")
    assert forced.generation == "workspaces" and gateway.requests == []  # forced: no probe


def test_neither_generation_says_what_it_saw(gateway) -> None:
    gateway.default = NOT_FOUND
    gateway.respond("/me", raw=b"<html>welcome</html>", content_type="text/html")  # a web page, not MLOps
    client = Client(gateway.url, lambda: TOKEN)
    with pytest.raises(mlops.GenerationUnknown) as e:
        client.storage.user.who_am_i()
    text = str(e.value)
    assert f"could not tell which generation of the MLOps API {gateway.url} speaks" in text
    assert f"POST {LEGACY_PROBE} got HTTP 404 NOT_FOUND" in text
    assert "GET /me got HTTP 200 without the X-User-Id header" in text
    assert "generation='legacy' or generation='workspaces'" in text and isinstance(e.value, mlops.GatewayError)
    again = pickle.loads(pickle.dumps(e.value))
    assert type(again) is mlops.GenerationUnknown and str(again) == text


def test_a_gateway_that_is_down_fails_fast_on_first_use() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = Client(f"http://127.0.0.1:{port}", lambda: TOKEN)  # constructing sends nothing, so it cannot fail
    with pytest.raises(mlops.ConnectionFailed, match=f"could not reach the MLOps gateway at http://127.0.0.1:{port}"
                                                     ".*never answered this client"):
        client.storage.user.who_am_i()


def test_an_unavailable_gateway_is_not_taken_for_either_generation(gateway) -> None:
    gateway.default = Canned(503, json.dumps({"code": 14, "message": "overloaded"}).encode())
    client = Client(gateway.url, lambda: TOKEN, retry=False)
    with pytest.raises(mlops.Unavailable, match="UNAVAILABLE in deployer.version.get_version .generation probe.: "
                                                "overloaded"):
        client.storage.user.who_am_i()
    assert client._generation is None  # not kept: the next use asks again
    _legacy_gateway(gateway)
    assert client.generation == "legacy"


def test_a_probe_refused_on_its_merits_shows_the_route_is_there(gateway) -> None:
    gateway.default = NOT_FOUND
    gateway.respond(LEGACY_PROBE, {"code": 7, "message": "not for you"}, status=403)
    assert Client(gateway.url, lambda: TOKEN).generation == "legacy"


def test_a_refused_token_is_reported_as_such(gateway) -> None:
    gateway.default = Canned(401, json.dumps({"code": 16, "message": "token expired"}).encode())
    with pytest.raises(mlops.Unauthenticated, match="token expired"):
        Client(gateway.url, lambda: TOKEN).generation  # noqa: B018


def test_generation_must_be_known() -> None:
    with pytest.raises(ValueError, match="generation must be one of 'legacy', 'workspaces' or None"):
        Client("http://127.0.0.1:9", lambda: TOKEN, generation="newest")


# -- H2O AI Cloud discovery --------------------------------------------------------------------------

DISCOVERY = "/.ai.h2o.cloud.discovery"


def _discovery(environment: CaptureServer, services: dict[str, str], issuer: str = "https://idp.invalid/realm") -> None:
    environment.respond(f"{DISCOVERY}/v1/environment", {"environment": {
        "h2oCloudEnvironment": environment.url, "issuerUrl": issuer, "h2oCloudPlatformOauth2Scope": "openid"}})
    environment.respond(f"{DISCOVERY}/v1/services", {"services": [
        {"name": f"services/{key}", "displayName": key, "uri": uri} for key, uri in services.items()]})
    environment.respond(f"{DISCOVERY}/v1/clients", {"clients": [
        {"name": "clients/platform", "displayName": "Platform", "oauth2ClientId": "hac-platform-public"}]})


def test_from_discovery_finds_both_gateways_and_is_workspaces_when_authz_is_listed(gateway, authz) -> None:
    with CaptureServer() as environment:
        _discovery(environment, {"mlops-api": gateway.url, "authz-gateway": authz.url,
                                 "secure-store": f"{gateway.url}/secure-store"})
        client = Client.from_discovery(environment.url, token_provider=lambda: TOKEN, timeout=5)
        assert [r.path for r in environment.requests] == [f"{DISCOVERY}/v1/environment", f"{DISCOVERY}/v1/services",
                                                          f"{DISCOVERY}/v1/clients"]
        assert all("authorization" not in r.headers for r in environment.requests)  # discovery is public
    assert (client.gateway_url, client.authz_gateway_url, client.generation) == (gateway.url, authz.url, "workspaces")
    client.authz.workspace.list_workspaces()
    client.deployer.deployment.list_deployments(parent="workspaces/p1")
    assert [r.path for r in authz.requests] == ["/v1/workspaces"]  # no probe: discovery said which
    assert [r.path for r in gateway.requests] == ["/deployer/v2/workspaces/p1/deployments"]


def test_from_discovery_without_authz_finds_the_generation_on_first_use(gateway) -> None:
    _legacy_gateway(gateway)
    with CaptureServer() as environment:
        _discovery(environment, {"mlops-api": gateway.url})
        client = Client.from_discovery(environment.url, token_provider=lambda: TOKEN)
    assert client.authz_gateway_url is None and gateway.requests == []
    assert client.generation == "legacy"


def test_from_discovery_says_what_is_missing(monkeypatch) -> None:
    monkeypatch.delenv("H2O_CLOUD_CLIENT_PLATFORM_TOKEN", raising=False)
    with CaptureServer() as environment:
        _discovery(environment, {"feature-store": "https://fs.invalid"})
        with pytest.raises(mlops.DiscoveryError, match="lists no MLOps API .mlops-api. service; it lists feature-store"):
            Client.from_discovery(environment.url, token_provider=lambda: TOKEN)
        _discovery(environment, {"mlops-api": "https://api.invalid"})
        with pytest.raises(ValueError, match="needs a token_provider, or refresh_token="):
            Client.from_discovery(environment.url)
        environment.respond(f"{DISCOVERY}/v1/environment", raw=b"<html>login</html>", content_type="text/html")
        with pytest.raises(mlops.DiscoveryError, match="without a discovery document"):
            Client.from_discovery(environment.url, token_provider=lambda: TOKEN)


def test_from_discovery_signs_in_with_the_platform_refresh_token_at_a_sandbox(tmp_path, monkeypatch) -> None:
    from mlops_nb.sandbox import Sandbox

    with Sandbox(db=str(tmp_path / "s.sqlite3"), data="empty") as sandbox:
        # As the official client: the environment from H2O_CLOUD_ENVIRONMENT, the token from H2O_CLOUD_CLIENT_PLATFORM_TOKEN.
        monkeypatch.setenv("H2O_CLOUD_ENVIRONMENT", sandbox.gateway_url)
        monkeypatch.setenv("H2O_CLOUD_CLIENT_PLATFORM_TOKEN", sandbox.refresh_token("bob"))
        monkeypatch.delenv("H2O_CLOUD_DISCOVERY", raising=False)
        with Client.from_discovery() as from_variables:
            assert from_variables.who_am_i().user.login_principal == "bob"  # bob's token signs bob in
        client = Client.from_discovery(sandbox.gateway_url, refresh_token=sandbox.refresh_token("alice"))
        assert client.token_provider.client_id == sandbox.client_id
        assert client.token_provider.token_endpoint_url == sandbox.token_endpoint
        # The sandbox serves both faces and its discovery lists the authz gateway: workspaces, as 1.6.5 connects.
        assert (client.generation, client.authz_gateway_url) == ("workspaces", sandbox.authz_gateway_url)
        with Client(sandbox.gateway_url, sandbox.token_provider("alice"), generation="legacy") as legacy:
            assert client.user_id() == legacy.storage.user.who_am_i().user.id
        client.close()


# -- finding the generation of the sandbox's faces ---------------------------------------------------


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    """One sandbox per set of faces: only legacy, only workspaces, both."""
    from mlops_nb.sandbox import Sandbox

    started = {}
    try:
        for served in (("legacy",), ("workspaces",), ("legacy", "workspaces")):
            db = tmp_path_factory.mktemp("faces") / "s.sqlite3"
            started[served] = Sandbox(db=str(db), data="empty", faces=served, warm_scorers=0).start()
        yield started
    finally:
        for sandbox in started.values():
            sandbox.stop()


@pytest.mark.parametrize(("served", "found"), [(("legacy",), "legacy"), (("workspaces",), "workspaces"),
                                               (("legacy", "workspaces"), "legacy")])
def test_each_face_of_the_sandbox_is_found(faces, served, found) -> None:
    sandbox = faces[served]
    with Client(sandbox.gateway_url, sandbox.token_provider("alice"),
                authz_gateway_url=sandbox.authz_gateway_url) as client:
        assert client.generation == found
        # A call of the generation found goes through (storage: one route, both generations' messages).
        made = client.storage.project.create_project(project={"display_name": f"found {found}"})
        listed = client.storage.project.list_projects()
        assert type(made).__module__ == f"mlops_nb.wire.{'messages' if found == 'legacy' else 'workspaces'}"
        assert made.project.id in [p.id for p in listed.project]


def test_a_forced_generation_is_spoken_without_asking(faces) -> None:
    both = faces[("legacy", "workspaces")]
    with Client(both.gateway_url, both.token_provider("alice"), generation="workspaces",
                authz_gateway_url=both.authz_gateway_url) as client:
        assert isinstance(client.storage.project.list_projects(), mlops.workspaces.StorageListProjectsResponse)
    only_workspaces = faces[("workspaces",)]
    client = Client(only_workspaces.gateway_url, only_workspaces.token_provider("alice"), generation="legacy")
    with client, pytest.raises(mlops.NotFound):  # the legacy face is not served there, and nothing asked
        client.deployer.version.get_version()


# -- the same requests as the newest official client ------------------------------------------------


def _newest_client_calls(client: Client) -> None:
    """What tests/legacy/workspaces_calls.py does with h2o-mlops 1.6.5, with mlops_nb."""
    name = "workspaces/p1/deployments/d1"
    client.deployer.deployment.create_deployment(parent="workspaces/p1", deployment={
        "display_name": "churn", "description": "scores churn",
        "security": {"passphrase": {"passphrase": "open sesame", "hash_algorithm": "PLAINTEXT"}}})
    client.deployer.deployment.get_deployment(name=name)
    client.deployer.deployment.list_deployments(parent="workspaces/p1", page_size=5, page_token="t1",
                                                filter='display_name = "churn"', order_by="create_time desc")
    client.deployer.deployment.update_deployment(deployment_name=name, deployment={"display_name": "renamed"},
                                                 update_mask="display_name")
    client.deployer.deployment.pause_deployment(name=name)
    client.deployer.status.batch_get_deployment_statuses(parent="workspaces/p1",
                                                         names=[name, "workspaces/p1/deployments/d2"])
    client.deployer.log.generate_logs(name=name, since_time=datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc))
    client.deployer.deployment.delete_deployment(name=name)
    client.authz.workspace.create_workspace(workspace={"display_name": "W", "description": "d"})
    client.authz.workspace.list_workspaces(page_size=2, show_archived=True)
    client.authz.workspace.update_workspace(name="workspaces/p1", workspace={"description": "new"},
                                            update_mask="description")
    client.authz.workspace.delete_workspace(name="workspaces/p1")
    client.storage.experiment.list_experiments(project_id="p1")


def _as_sent(server: CaptureServer) -> list[tuple]:
    def same_instant(value):  # both spell the same instant in RFC 3339: 1.6.5 as +00:00, mlops_nb as Z
        if isinstance(value, dict):
            return {k: same_instant(v) for k, v in value.items()}
        if isinstance(value, str) and value[:4].isdigit() and "T" in value:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).isoformat()
        return value

    return [(r.verb, r.path, r.query, same_instant(r.json()) if r.body else None,
             r.headers.get("authorization", "").split(" ")[0], r.headers.get("content-type") if r.body else None)
            for r in server.requests]


def test_same_requests_as_the_newest_official_client(workspaces_python, gateway, authz) -> None:
    done = subprocess.run([workspaces_python, "tests/legacy/workspaces_calls.py", gateway.url, authz.url],
                          capture_output=True, text=True, timeout=300, cwd=Path(__file__).resolve().parent.parent)
    assert done.returncode == 0, done.stderr
    theirs = _as_sent(gateway), _as_sent(authz)
    gateway.requests.clear()
    authz.requests.clear()
    _newest_client_calls(Client(gateway.url, lambda: TOKEN, generation="workspaces", authz_gateway_url=authz.url))
    ours = _as_sent(gateway), _as_sent(authz)
    assert [len(sent) for sent in theirs] == [9, 4]
    for their_requests, our_requests in zip(theirs, ours, strict=True):
        for their, our in zip(their_requests, our_requests, strict=True):
            assert our == their


def test_workspaces_rest_calls_round_trip_with_the_sandbox(faces) -> None:
    sandbox = faces[("workspaces",)]
    with Client(sandbox.gateway_url, sandbox.token_provider("alice"),
                authz_gateway_url=sandbox.authz_gateway_url) as client:
        made = client.authz.workspace.create_workspace(workspace={"display_name": "round trip"}).workspace
        assert made.name.startswith("workspaces/") and made.display_name == "round trip"
        listed = client.authz.workspace.list_workspaces(page_size=50).workspaces
        assert made.name in [w.name for w in listed]
        # PATCH with an update mask, the name taken from the body (the workspace as read).
        made.description = "patched"
        client.authz.workspace.update_workspace(workspace=made, update_mask="description")
        assert client.authz.workspace.get_workspace(made.name).workspace.description == "patched"
        assert client.deployer.deployment.list_deployments(parent=made.name, page_size=10).deployments == []
        with pytest.raises(mlops.NotFound):
            client.deployer.deployment.get_deployment(name=f"{made.name}/deployments/none-such")
        runtimes = client.runtime.runtime.list_runtimes(parent=made.name, page_size=1)
        assert len(runtimes.runtimes) == 1 and runtimes.next_page_token  # the query reached it, paged
        assert client.who_am_i().user.name == f"users/{client.user_id()}"
        client.authz.workspace.delete_workspace(made.name)
        with pytest.raises(mlops.NotFound):
            client.authz.workspace.get_workspace(made.name)
