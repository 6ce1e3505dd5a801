"""Hostile input against every route of the sandbox gateway: never a 5xx (501 only where a
method is not implemented), every error an RpcStatus body, the store intact afterwards.

The fuzzing is done by hypothesis, bounded in examples and so in time; the requests are
real HTTP over loopback, sent as a user who owns nothing (so nothing the fuzz sends may
change the demo data, whatever ids it guesses).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlops_nb.api import API, Method, description
from mlops_nb.sandbox import Sandbox
from mlops_nb.sandbox.faces import NAME_SHAPES, Match, TemplateRouter, served_path, workspaces_only
from mlops_nb.sandbox.rpc import MAX_NESTING, WORKSPACES_HANDLERS
from mlops_nb.sandbox.server import implemented

NESTED_10000 = b'{"a":' * 10_000 + b"1" + b"}" * 10_000


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with Sandbox(db=str(tmp_path_factory.mktemp("fuzz") / "fuzz.sqlite3"), data="demo") as sb:
        yield sb


@pytest.fixture(scope="module")
def snapshot(demo: Sandbox) -> dict[tuple[str, str], str]:
    """Every entity row before any fuzzing (the stranger's first use takes it)."""
    return _rows(demo)


@pytest.fixture(scope="module")
def stranger(demo: Sandbox, snapshot: dict[tuple[str, str], str]) -> requests.Session:
    assert demo.idp is not None
    demo.idp.add_account("mallory", "mallory@example.com", "mallory")
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {demo.idp.issue_access_token('mallory')}"
    return session


def _rows(sb: Sandbox) -> dict[tuple[str, str], str]:
    assert sb.store is not None
    with sb.store.reading() as db:
        return {(r["kind"], r["id"]): r["data"] for r in db.execute("SELECT kind, id, data FROM entity")}


def _real_ids(sb: Sandbox) -> list[str]:
    return sorted({entity_id for _, entity_id in _rows(sb)})[:20]


def check_answer(method: Method | None, response: requests.Response) -> None:
    """What every answer must be: below 500 (or 501 UNIMPLEMENTED), errors as RpcStatus."""
    what = f"{method.qualified_name if method else 'no method'}: HTTP {response.status_code} {response.text[:300]}"
    if response.status_code == 501:
        assert method is None or not implemented(method), what
    else:
        assert response.status_code < 500, what
    if response.status_code >= 400:
        body = response.json()
        assert set(body) == {"code", "message", "details"}, what
        assert isinstance(body["code"], int) and 0 < body["code"] <= 16, what
        assert isinstance(body["message"], str) and body["message"], what
        assert body["details"] == [], what
    elif response.headers.get("content-type", "").startswith("application/json"):
        assert isinstance(response.json(), dict), what


# -- strategies --------------------------------------------------------------------------------

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=16)
bad_ids = st.sampled_from(["", " ", "../../etc/passwd", "' OR 1=1 --", "\x00", "é" * 300, "x" * 5000,
                           "00000000-0000-0000-0000-000000000000", "%2F", "{projectId}", "null"])
huge_strings = st.integers(min_value=100_000, max_value=2_000_000).map(lambda n: "A" * n)


def _field_bodies(method: Method) -> st.SearchStrategy[bytes]:
    fields = API.messages.get(method.request or "", ())
    if not fields:
        return json_values.map(lambda v: json.dumps({"field": v}).encode())
    value = json_values | bad_ids | huge_strings
    return st.dictionaries(st.sampled_from([f.json for f in fields]), value, max_size=4).map(
        lambda body: json.dumps(body).encode())


raw_bodies = st.sampled_from([
    b"", b"{", b"null", b"[]", b"\"text\"", b"1e999999", b'{"a": NaN}', b'{"projectId": "\xff\xfe"}',
    b"\xff\xfe\xfd", b'{"\xc3\x28": 1}', b"[" * 5000 + b"]" * 5000, NESTED_10000,
    b'{"a":' * (MAX_NESTING + 1) + b"1" + b"}" * (MAX_NESTING + 1),
])


@st.composite
def requests_for(draw: Any, method: Method) -> tuple[str, str, bytes | None, dict[str, str]]:
    if method.verb == "GET":
        path = method.full_path
        for param in method.path_params:
            path = path.replace("{" + param.wire + "}", quote(draw(bad_ids | st.text(max_size=30)), safe=""))
        query = {p.wire: draw(st.text(max_size=40) | bad_ids) for p in method.query_params if draw(st.booleans())}
        return "GET", path, None, query
    body = draw(_field_bodies(method) | raw_bodies | st.binary(max_size=200)
                | json_values.map(lambda v: json.dumps(v).encode()))
    return "POST", method.full_path, body, {}


calls = st.sampled_from(API.methods).flatmap(lambda m: st.tuples(st.just(m), requests_for(m)))

# The workspaces API's own routes: REST templates whose names span slashes.
WORKSPACES_OWN = workspaces_only()
ROUTER = TemplateRouter(WORKSPACES_OWN)
names = bad_ids | st.text(max_size=30) | st.builds(
    lambda kind, a, b: f"workspaces/{a}/{kind}/{b}",
    st.sampled_from(["deployments", "endpoints", "jobs", "runtimes", "runtimeImages", "experiments"]),
    bad_ids | st.just("-"), bad_ids) | st.sampled_from(["users/x", "workspaces/-", "configuration/monitoring"])


@st.composite
def workspaces_requests_for(draw: Any, method: Method) -> tuple[str, str, bytes | None, dict[str, str]]:
    path = served_path(method)
    for param in method.path_params:
        path = path.replace("{" + param.wire + "}", quote(draw(names), safe="/"))
    query = {p.wire: draw(st.text(max_size=40) | bad_ids) for p in method.query_params if draw(st.booleans())}
    body = None
    if method.verb in ("POST", "PATCH"):
        fields = description("workspaces").messages.get(method.request or "", ())
        keyed = st.dictionaries(st.sampled_from([f.json for f in fields] or ["field"]),
                                json_values | bad_ids | huge_strings, max_size=4).map(lambda b: json.dumps(b).encode())
        body = draw(keyed | raw_bodies | st.binary(max_size=200))
    return method.verb, path, body, query


workspaces_calls = st.sampled_from(WORKSPACES_OWN).flatmap(lambda m: workspaces_requests_for(m))


def _routed(verb: str, url: str) -> Method | None:
    """The method the sandbox routes a workspaces request to (None: no route, or no such name shape)."""
    try:
        found = ROUTER.match(verb, requests.utils.unquote(requests.utils.urlparse(url).path), WORKSPACES_HANDLERS)
    except ValueError:
        return None
    return found.method if isinstance(found, Match) else None


# -- tests ---------------------------------------------------------------------------------------


@settings(max_examples=400, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(call=calls)
def test_hostile_requests_on_every_route(demo: Sandbox, stranger: requests.Session, call: Any) -> None:
    method, (verb, path, body, query) = call
    response = stranger.request(verb, demo.gateway_url + path, data=body, params=query, timeout=60,
                                headers={"Content-Type": "application/json"})
    check_answer(method, response)


@settings(max_examples=400, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(call=workspaces_calls)
def test_hostile_requests_on_every_workspaces_route(demo: Sandbox, stranger: requests.Session, call: Any) -> None:
    verb, path, body, query = call
    response = stranger.request(verb, demo.gateway_url + path, data=body, params=query, timeout=60,
                                headers={"Content-Type": "application/json"})
    check_answer(_routed(verb, response.url), response)


def test_deep_nesting_is_invalid_argument_on_every_post_route(demo: Sandbox, stranger: requests.Session) -> None:
    for method in API.methods:
        if method.verb != "POST" or method.streaming or method.service.server == "bytestream":
            continue
        response = stranger.post(demo.gateway_url + method.full_path, data=NESTED_10000, timeout=60)
        check_answer(method, response)
        if implemented(method):
            assert response.status_code == 400 and "nested more than 100 levels" in response.json()["message"]
    for method in WORKSPACES_OWN:
        if method.verb not in ("POST", "PATCH") or method.body_field is None:
            continue
        path = served_path(method)
        for param in method.path_params:
            path = path.replace("{" + param.wire + "}", NAME_SHAPES.get(method.qualified_name, "workspaces/*")
                                .replace("*", "w"))
        response = stranger.request(method.verb, demo.gateway_url + path, data=NESTED_10000, timeout=60)
        check_answer(method, response)
        if implemented(method):
            assert response.status_code == 400 and "nested more than 100 levels" in response.json()["message"]


def test_a_body_over_4_mib_is_refused(demo: Sandbox, stranger: requests.Session) -> None:
    body = json.dumps({"project": {"displayName": "x" * (5 * 1024 * 1024)}}).encode()
    response = stranger.post(demo.gateway_url + "/storage/ai.h2o.storage.ProjectService/CreateProject", data=body,
                             timeout=60)
    check_answer(None, response)
    assert response.status_code == 400 and "larger than 4 MiB" in response.json()["message"]


@pytest.mark.parametrize(("verb", "path", "status", "code"), [
    ("GET", "/nowhere", 404, 5),
    ("POST", "/storage/ai.h2o.storage.ProjectService/NoSuchMethod", 404, 5),
    ("DELETE", "/storage/ai.h2o.storage.ProjectService/ListProjects", 405, 12),
    ("GET", "/storage/ai.h2o.storage.ProjectService/ListProjects", 405, 12),
    ("POST", "/model-monitoring/v1/deployment", 405, 12),
    ("PUT", "/", 405, 12),
    ("GET", "/auth/realms/mlops/no-such-endpoint", 404, 5),
])
def test_unknown_paths_and_wrong_verbs_answer_rpc_status(demo: Sandbox, stranger: requests.Session, verb: str,
                                                        path: str, status: int, code: int) -> None:
    response = stranger.request(verb, demo.gateway_url + path, data=b"{}", timeout=10)
    check_answer(None, response)
    assert (response.status_code, response.json()["code"]) == (status, code)
    assert path in response.json()["message"]
    if status == 405:
        assert response.headers["Allow"]


def test_ids_of_other_users_entities_do_not_leak_or_change(demo: Sandbox, stranger: requests.Session) -> None:
    for entity_id in _real_ids(demo):
        for path, field in (("/storage/ai.h2o.storage.ProjectService/DeleteProject", "projectId"),
                            ("/storage/ai.h2o.storage.ExperimentService/DeleteExperiment", "id"),
                            ("/storage/ai.h2o.storage.ProjectService/GetProject", "projectId")):
            response = stranger.post(demo.gateway_url + path, json={field: entity_id}, timeout=10)
            check_answer(None, response)
            assert response.status_code in (400, 403, 404), response.text


def test_the_store_is_intact_afterwards(demo: Sandbox, snapshot: dict[tuple[str, str], str],
                                        stranger: requests.Session) -> None:
    # Runs last in this module (pytest keeps file order): after everything above.
    assert demo.store is not None
    with demo.store.reading() as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    after = _rows(demo)
    # A deployment's status moves by itself (its scorer starts, gets healthy): not the fuzz's doing.
    changed = {key for key, data in snapshot.items() if after.get(key) != data and key[0] != "deployment_status"}
    assert changed == set()
    assert {key for key in snapshot if key not in after} == set()
    with demo.client("alice") as alice:
        assert {p.display_name for p in alice.storage.project.list_projects().project} == {
            "Credit risk", "Customer churn"}
