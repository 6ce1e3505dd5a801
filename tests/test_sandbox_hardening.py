"""The deployment and scoring surface under attack and misbehaviour (issue 19), with real scorer processes.

Side doors (a scorer's port, another user's token, a VIEWER reading secrets, server paths in
statuses), a model that hangs in ``predict`` or never finishes loading, hostile artifacts and
scoring bodies, and bounded monitoring storage. Everything runs against a real sandbox on
127.0.0.1 with small deadlines, so that each test takes seconds.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from mlops_nb.sandbox import Sandbox
from mlops_nb.sandbox.services import monitoring
from mlops_nb.sandbox.services.access import ROLE_VIEWER
from tests.deploying import deploy, experiment_with, iris_model, python_model_zip, status, wait_for_state
from tests.test_sandbox_artifacts import new_project
from tests.test_sandbox_projects import me

DEADLINE = 2.0  # seconds a scoring request may take here
MAX_UNPACKED = 32 * 2**20  # bytes an artifact may unpack to here
LOAD_TIMEOUT = 120.0  # seconds a scorer may take to load its model here (a cold one imports MLflow first)
SHORT_LOAD_TIMEOUT = 8.0  # ... in the test of a model that never finishes loading (on a warm spare)

DOUBLING = '''
import json
import time


class Doubling:
    def predict(self, frame, params=None):
        if (frame["x"] == 99).any():  # a model that hangs on this input
            time.sleep(3600)
        return frame[["x"]] * 2


def _load_pyfunc(path):
    return Doubling()
'''


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with Sandbox(db=str(tmp_path_factory.mktemp("hardening") / "h.sqlite3"), data="empty",
                 score_deadline=DEADLINE, model_load_timeout=LOAD_TIMEOUT, max_unpacked_bytes=MAX_UNPACKED) as sb:
        yield sb


@pytest.fixture(scope="module")
def served(sandbox: Sandbox, alice: Any) -> dict[str, Any]:
    """A healthy deployment of the iris classifier, and one of the doubling model, shared by the tests below."""
    project = new_project(alice, "hardening")
    data, X, _ = iris_model()
    iris = deploy(alice, project, experiment_with(alice, project, data), display_name="iris").id
    doubling = deploy(alice, project, experiment_with(alice, project, python_model_zip(DOUBLING)),
                      display_name="doubling").id
    for deployment in (iris, doubling):
        healthy = wait_for_state(alice, deployment, "HEALTHY", "FAILED")
        assert healthy.state.value == "HEALTHY", healthy.message
    return {"project": project, "iris": iris, "doubling": doubling, "X": X,
            "url": status(alice, iris).scorer.score.url, "doubling_url": status(alice, doubling).scorer.score.url}


def iris_request(served: dict[str, Any]) -> dict[str, Any]:
    X = served["X"]
    return {"fields": list(X.columns), "rows": [[str(v) for v in row] for row in X.head(2).itertuples(index=False)]}


def scorer_port(sandbox: Sandbox, deployment_id: str) -> int:
    assert sandbox.supervisor is not None
    route = sandbox.supervisor.route(deployment_id)
    assert route is not None
    return route.models[0].ports[0]


# -- side doors ------------------------------------------------------------------------------------


def test_a_scorer_answers_only_its_sandbox(sandbox: Sandbox, alice: Any, served: dict[str, Any]) -> None:
    port = scorer_port(sandbox, served["iris"])
    direct = f"http://127.0.0.1:{port}"
    for headers in ({}, {"X-Scorer-Secret": "guess"}):
        answer = requests.post(f"{direct}/model/score", json=iris_request(served), headers=headers, timeout=10)
        assert answer.status_code == 401 and "only the sandbox" in answer.json()["message"]
        assert requests.get(f"{direct}/model/schema", headers=headers, timeout=10).status_code == 401
        assert requests.get(f"{direct}/readyz", headers=headers, timeout=10).status_code == 401
    through_the_gateway = requests.post(served["url"], json=iris_request(served), timeout=30)
    assert through_the_gateway.status_code == 200 and len(through_the_gateway.json()["score"]) == 2
    logs = "\n".join(e.text_payload for e in
                     alice.deployer.log.list_log_entries(parent=served["iris"]).log_entries)
    assert sandbox.supervisor is not None
    assert sandbox.supervisor.secret_of(port) and sandbox.supervisor.secret_of(port) not in logs


def test_token_auth_takes_only_users_who_may_read_the_project(sandbox: Sandbox, alice: Any, bob: Any,
                                                               served: dict[str, Any]) -> None:
    deployment = served["iris"]
    alice.deployer.deployment.update_model_deployment(deployment={"id": deployment, "security": {
        "token_auth": {"authentication_protocol": "AUTHORIZATION_PROTOCOL_OIDC"}}}, update_mask="security")
    try:
        def score_as(username: str) -> requests.Response:
            token = sandbox.token_provider(username)()
            return requests.post(served["url"], json=iris_request(served), timeout=30,
                                 headers={"Authorization": f"Bearer {token}"})

        refused = score_as("bob")
        assert refused.status_code == 403 and "may not read the deployment's project" in refused.json()["message"]
        assert score_as("alice").status_code == 200
        alice.storage.project.share_project(project_id=served["project"], user_id=me(bob),
                                            restriction_role_id=ROLE_VIEWER)
        assert score_as("bob").status_code == 200
    finally:
        alice.deployer.deployment.update_model_deployment(deployment={"id": deployment, "security": {}},
                                                          update_mask="security")


def test_viewers_read_passphrases_and_environment_values_redacted(alice: Any, bob: Any) -> None:
    project = new_project(alice, "secrets")
    alice.storage.project.share_project(project_id=project, user_id=me(bob), restriction_role_id=ROLE_VIEWER)
    deployment = deploy(alice, project, experiment_with(alice, project, iris_model()[0]),
                        security={"passphrase": {"hash": "open sesame",
                                                 "passphrase_hash_type": "PASSPHRASE_HASH_TYPE_PLAINTEXT"}},
                        element={"kubernetes_resource_spec": {"replicas": 0},  # no process needed here
                                 "deployment_environment_variables": {"runtime_variables": {"API_KEY": "k-123"}}}).id

    def seen_by(client: Any) -> Any:
        return next(d for d in client.deployer.deployment.list_project_deployments(project_id=project).deployment
                    if d.id == deployment)

    owner, viewer = seen_by(alice), seen_by(bob)
    assert owner.security.passphrase.hash == "open sesame"
    assert owner.single_deployment.deployment_environment_variables.runtime_variables == {"API_KEY": "k-123"}
    assert viewer.security.passphrase.hash == "<redacted>"
    assert viewer.security.passphrase.passphrase_hash_type.value == "PASSPHRASE_HASH_TYPE_PLAINTEXT"
    assert viewer.single_deployment.deployment_environment_variables.runtime_variables == {"API_KEY": "<redacted>"}
    alice.deployer.deployment.delete_deployment(id=deployment)


def test_failed_messages_name_no_server_paths(sandbox: Sandbox, alice: Any) -> None:
    project = new_project(alice, "paths")
    source = "import os\n\n\ndef _load_pyfunc(path):\n    return open(os.path.join(path, 'weights.bin'))\n"
    deployment = deploy(alice, project, experiment_with(alice, project, python_model_zip(source))).id
    failed = wait_for_state(alice, deployment, "FAILED", "HEALTHY")
    assert failed.state.value == "FAILED"
    assert "No such file or directory: 'weights.bin'" in failed.message, failed.message
    assert sandbox.supervisor is not None and str(sandbox.supervisor.workdir) not in failed.message
    assert "/" not in failed.message.split("FileNotFoundError")[1]


def test_an_endpoint_path_in_use_by_another_user_is_refused_without_saying_whose(alice: Any, bob: Any) -> None:
    import mlops_nb

    def parent_of(client: Any, project: str) -> str:
        environment = client.storage.deployment_environment.list_deployment_environments(
            project_id=project).deployment_environment[0].id
        return f"projects/{project}/environments/{environment}"

    alices = parent_of(alice, new_project(alice, "paths of alice"))
    endpoint = alice.deployer.endpoint.create_endpoint(parent=alices, endpoint={"path": "alice-credit"}).endpoint
    with pytest.raises(mlops_nb.AlreadyExists, match=f"taken by endpoint '{endpoint.name}'"):
        alice.deployer.endpoint.create_endpoint(parent=alices, endpoint={"path": "alice-credit"})
    bobs = parent_of(bob, new_project(bob, "paths of bob"))
    with pytest.raises(mlops_nb.AlreadyExists) as refused:
        bob.deployer.endpoint.create_endpoint(parent=bobs, endpoint={"path": "alice-credit"})
    assert "'alice-credit' is not available; choose another" in str(refused.value)
    assert "endpoint" not in str(refused.value).split("not available")[1] and alices not in str(refused.value)


# -- a model that hangs ------------------------------------------------------------------------------


def test_a_model_stuck_in_predict_is_seen_killed_and_replaced(sandbox: Sandbox, alice: Any,
                                                               served: dict[str, Any]) -> None:
    deployment, url = served["doubling"], served["doubling_url"]
    assert sandbox.supervisor is not None
    [stuck_pid] = sandbox.supervisor.pids(deployment)
    started = time.monotonic()
    answer = requests.post(url, json={"fields": ["x"], "rows": [["99"]]}, timeout=30)
    assert answer.status_code == 504 and "did not answer within 2 s" in answer.json()["message"]
    assert time.monotonic() - started < DEADLINE + 5
    unhealthy = wait_for_state(alice, deployment, "UNHEALTY", timeout=10)
    assert f"(pid {stuck_pid}) did not answer model/score within 2 s" in unhealthy.message
    healthy = wait_for_state(alice, deployment, "HEALTHY", timeout=60)
    assert "restarted" in healthy.message
    assert sandbox.supervisor.pids(deployment) != [stuck_pid]
    again = requests.post(url, json={"fields": ["x"], "rows": [["1.5"]]}, timeout=30)
    assert again.status_code == 200 and again.json()["score"] == [["3.0"]]
    logs = "\n".join(e.text_payload for e in alice.deployer.log.list_log_entries(parent=deployment).log_entries)
    assert "did not answer model/score within 2 s; killing it" in logs


def test_a_model_that_never_finishes_loading_fails_with_the_reason(tmp_path: Any) -> None:
    source = "import time\n\n\ndef _load_pyfunc(path):\n    time.sleep(3600)\n"
    with Sandbox(db=str(tmp_path / "slow.sqlite3"), data="empty", warm_scorers=1, model_load_timeout=SHORT_LOAD_TIMEOUT
                 ) as sb, sb.client("alice") as alice:
        deadline = time.monotonic() + 60
        assert sb.supervisor is not None
        while not sb.supervisor.spares_warm():  # the load is timed, not the spare's imports
            assert time.monotonic() < deadline, "no warm spare scorer within a minute"
            time.sleep(0.1)
        project = new_project(alice, "slow")
        deployment = deploy(alice, project, experiment_with(alice, project, python_model_zip(source))).id
        started = time.monotonic()
        failed = wait_for_state(alice, deployment, "FAILED", "HEALTHY", timeout=SHORT_LOAD_TIMEOUT + 30)
        assert failed.state.value == "FAILED"
        assert f"did not load the model within {SHORT_LOAD_TIMEOUT:g} s (the model load timeout)" in failed.message
        assert time.monotonic() - started < SHORT_LOAD_TIMEOUT + 15


# -- bounded monitoring storage ----------------------------------------------------------------------


def stored(store: Any, experiment_id: str) -> dict[str, int]:
    """What the record holds of a model, counted from its tables (not from the running totals)."""
    with store.reading() as db:
        requests_kept = db.execute("SELECT count(*) FROM scoring_request WHERE experiment_id = ?",
                                   (experiment_id,)).fetchone()[0]
        figures = {"requests": requests_kept}
        for baseline, name in ((0, "recent"), (1, "baseline")):
            rows, size = db.execute("SELECT coalesce(sum(row_count), 0), coalesce(sum(length(request) + "
                                    "length(response)), 0) FROM scoring_rows WHERE experiment_id = ? AND baseline = ?",
                                    (experiment_id, baseline)).fetchone()
            figures[f"{name}_rows"], figures[f"{name}_bytes"] = rows, size
    return figures


def test_monitoring_keeps_rows_and_bytes_within_bounds_after_every_request(tmp_path: Any, monkeypatch: Any) -> None:
    """record_scoring on a real SQLite store, with bounds made small so that a few hundred requests cross
    them: mixed one-row and 100-row requests, some with a large unused field, a primary and its shadow."""
    import random

    from mlops_nb.sandbox import services
    from mlops_nb.sandbox.store import Store

    bounds = {"REQUESTS_KEPT": 150, "ROWS_KEPT": 400, "BYTES_KEPT": 40_000, "BASELINE_ROWS": 60,
              "BASELINE_BYTES": 5_000}
    for name, value in bounds.items():
        monkeypatch.setattr(monitoring, name, value)
    store = Store(str(tmp_path / "monitoring.sqlite3"), services.migrations())
    rng = random.Random(19)
    for n in range(300):
        count = rng.choice([1, 1, 1, 100])
        unused = "u" * rng.choice([0, 0, 50_000])
        request = {"fields": ["x", "unused", "long"],
                   "rows": [[str(n + i), unused, "L" * 1000] for i in range(count)]}
        response = {"fields": ["id", "y"], "score": [[str(i), str(2 * (n + i))] for i in range(count)]}
        scored = monitoring.Scored(json.dumps(request).encode(), json.dumps(response).encode(), count,
                                   ["x", "long"], copied=1)
        for model in ("primary", "shadow"):
            monitoring.record_scoring(store, "d", model, latency_ms=1.0, status=200, rows=count, scored=scored)
            kept = stored(store, model)
            assert kept["requests"] <= bounds["REQUESTS_KEPT"], (n, kept)
            assert kept["recent_rows"] <= bounds["ROWS_KEPT"] and kept["recent_bytes"] <= bounds["BYTES_KEPT"], (n, kept)
            assert kept["baseline_rows"] <= bounds["BASELINE_ROWS"], (n, kept)
            assert kept["baseline_bytes"] <= bounds["BASELINE_BYTES"], (n, kept)
    # trimmed, not emptied: the latest rows fill at least half of the tighter bound
    assert kept["recent_rows"] > bounds["ROWS_KEPT"] // 2 or kept["recent_bytes"] > bounds["BYTES_KEPT"] // 2
    with store.reading() as db:
        request, response = db.execute("SELECT request, response FROM scoring_rows ORDER BY request_id DESC").fetchone()
    request, response = json.loads(request), json.loads(response)
    assert request["fields"] == ["x", "long"] and len(request["rows"][0][1]) == monitoring.VALUE_CHARS
    assert response["fields"] == ["y"] and all(len(row) == 1 for row in response["score"])


def test_a_large_unused_field_costs_the_record_nothing_and_drift_reads_quickly(
        sandbox: Sandbox, alice: Any, served: dict[str, Any]) -> None:
    assert sandbox.store is not None
    X, deployment = served["X"], served["iris"]
    fields = [*X.columns, "notes"]
    before = Path(sandbox.db).stat().st_size
    for _ in range(4):
        rows = [[*(str(v) for v in row), "n" * 8_000_000] for row in X.head(1).itertuples(index=False)]
        assert requests.post(served["url"], json={"fields": fields, "rows": rows}, timeout=60).status_code == 200
    monitoring.settle(sandbox.store)  # recording runs off the request's path: wait for what is queued
    assert Path(sandbox.db).stat().st_size - before < 4_000_000  # the 32 MB sent were not kept
    with sandbox.store.reading() as db:
        largest = db.execute("SELECT max(length(request)) FROM scoring_rows WHERE deployment_id = ?",
                             (deployment,)).fetchone()[0]
    assert largest < 2_000
    started = time.monotonic()
    alice.model_monitoring.monitoring_service.get_model_drift_metrics(deployment, served_experiment(alice, served))
    assert time.monotonic() - started < 30


def served_experiment(alice: Any, served: dict[str, Any]) -> str:
    view = next(d for d in alice.deployer.deployment.list_project_deployments(project_id=served["project"]).deployment
                if d.id == served["iris"])
    return view.single_deployment.deployment_composition.experiment_id


def test_oversized_and_deeply_nested_bodies_are_400s_and_413s(sandbox: Sandbox, alice: Any,
                                                             served: dict[str, Any]) -> None:
    nested = ("[" * 10_000) + ("]" * 10_000)
    for body in ('{"fields": ["x"], "rows": ' + nested + "}", '{"idField": ' + nested + "}"):
        answer = requests.post(served["url"], data=body, headers={"Content-Type": "application/json"}, timeout=30)
        assert answer.status_code == 400, answer.text
        assert answer.json()["message"]
    monitoring.settle(sandbox.store)  # recording runs off the request's path: wait for what is queued
    with sandbox.store.reading() as db:  # type: ignore[union-attr]
        statuses = [r[0] for r in db.execute("SELECT status FROM scoring_request WHERE deployment_id = ? "
                                             "ORDER BY id DESC LIMIT 2", (served["iris"],))]
    assert statuses == [400, 400]  # both are in the monitoring record
    # A body declared larger than the bound is refused before it is read: only the headers are sent.
    import socket

    host, port = sandbox.gateway_url.rsplit("/", 1)[-1].split(":")
    path = served["url"].split(str(port), 1)[1]
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                           f"Content-Length: {200 * 2**20}\r\n\r\n".encode())
        reply = ""
        while "larger than" not in reply and (chunk := connection.recv(4096)):
            reply += chunk.decode()
    assert reply.startswith("HTTP/1.1 413") and "larger than" in reply


def test_drift_reads_every_missing_value_token_of_the_scorer_as_missing() -> None:
    import numpy as np
    import pandas as pd

    from mlops_nb.sandbox.runtime.scorer import MISSING
    from mlops_nb.sandbox.services.monitoring import _psi, _shares, bins_of

    rng = np.random.default_rng(19)
    baseline = pd.Series([f"{v:.3f}" for v in rng.normal(size=1000)], dtype=object)
    later = pd.Series([f"{v:.3f}" for v in rng.normal(size=1000)], dtype=object)
    kind, bins = bins_of(baseline)
    assert kind == "numeric"
    clean = _psi(_shares(baseline, kind, bins), _shares(later, kind, bins))
    for token in sorted(MISSING) + ["NULL", " None "]:
        with_token = later.copy()
        with_token.iloc[0] = token
        assert abs(_psi(_shares(baseline, kind, bins), _shares(with_token, kind, bins)) - clean) < 0.01, token
    assert clean < 0.1


# -- hostile artifacts ------------------------------------------------------------------------------

MLMODEL = "flavors:\n  python_function:\n    loader_module: test_model\n    code: code\n"
ALIASES = "a: &a [" + ",".join(["x"] * 9) + "]\n" + "".join(
    f"{chr(c)}: &{chr(c)} [" + ",".join([f"*{chr(c - 1)}"] * 9) + "]\n" for c in range(ord("b"), ord("j")))


def damaged(kind: str) -> bytes:
    """A small MLflow-like zip with its MLmodel damaged: 'crc' (stored bytes changed) or 'deflate' (a broken
    stream)."""
    import io
    import zipfile

    mlmodel = MLMODEL + "# " + "".join(f"{n:x}" for n in range(4000)) + "\n"
    buffer = io.BytesIO()
    compression = zipfile.ZIP_STORED if kind == "crc" else zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        archive.writestr("MLmodel", mlmodel)
    data = bytearray(buffer.getvalue())
    start = data.index(b"MLmodel") + len("MLmodel")  # the member's data follows its local header's name
    if kind == "crc":
        at = data.index(b"# ", start) + 100  # inside the comment: still YAML, but not the bytes the CRC is of
        data[at] = ord("z")
    else:
        data[start + 20:start + 36] = b"\xff" * 16
    return bytes(data)


@pytest.mark.parametrize("kind", ["crc", "deflate"])
def test_a_damaged_zip_is_a_400_at_ingest_and_failed_at_deploy(alice: Any, kind: str) -> None:
    import mlops_nb

    project = new_project(alice, f"damaged {kind}")
    experiment = experiment_with(alice, project, damaged(kind))
    artifact = alice.storage.artifact.list_entity_artifacts(entity_id=experiment).artifact[0].id
    with pytest.raises(mlops_nb.InvalidArgument, match="is a damaged zip archive"):
        alice.ingest.model.create_model_ingestion(artifact_id=artifact)
    failed = wait_for_state(alice, deploy(alice, project, experiment).id, "FAILED", "HEALTHY", timeout=60)
    assert failed.state.value == "FAILED" and "the artifact is a damaged zip archive" in failed.message


@pytest.mark.parametrize("metadata, reason", [
    (ALIASES, "YAML aliases (*name) are not accepted in model metadata"),
    (MLMODEL + "# " + "c" * (2 * 2**20) + "\n", "larger than 1048576 bytes"),
])
def test_hostile_mlmodel_files_are_refused_quickly(alice: Any, metadata: str, reason: str) -> None:
    import mlops_nb
    from tests.deploying import zip_of

    project = new_project(alice, "hostile metadata")
    experiment = experiment_with(alice, project, zip_of({"MLmodel": metadata}))
    artifact = alice.storage.artifact.list_entity_artifacts(entity_id=experiment).artifact[0].id
    started = time.monotonic()
    with pytest.raises(mlops_nb.InvalidArgument, match=reason.replace("(", r"\(").replace(")", r"\)").replace(
            "*", r"\*")):
        alice.ingest.model.create_model_ingestion(artifact_id=artifact)
    assert time.monotonic() - started < 10
    failed = wait_for_state(alice, deploy(alice, project, experiment).id, "FAILED", "HEALTHY", timeout=60)
    assert failed.state.value == "FAILED" and reason.split(" (")[0] in failed.message, failed.message


def test_an_artifact_that_unpacks_past_the_bound_fails_counting_real_bytes(sandbox: Sandbox, alice: Any) -> None:
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("MLmodel", MLMODEL)
        archive.writestr("weights.bin", bytes(2 * MAX_UNPACKED))  # zeros: a few hundred kilobytes deflated
    assert len(buffer.getvalue()) < MAX_UNPACKED // 32
    project = new_project(alice, "bomb")
    deployment = deploy(alice, project, experiment_with(alice, project, buffer.getvalue())).id
    failed = wait_for_state(alice, deployment, "FAILED", "HEALTHY", timeout=60)
    assert failed.state.value == "FAILED"
    assert f"the artifact unpacks to more than {MAX_UNPACKED} bytes" in failed.message
    assert sandbox.supervisor is not None
    leftovers = [p for p in (sandbox.supervisor.workdir / "artifacts").rglob("weights.bin")]
    assert not leftovers


def test_an_artifact_is_unpacked_once_for_every_revision_that_runs_it(sandbox: Sandbox, alice: Any,
                                                                     served: dict[str, Any]) -> None:
    assert sandbox.supervisor is not None
    experiment = served_experiment(alice, served)
    artifacts = sandbox.supervisor.workdir / "artifacts"
    before = sorted(p.name for p in artifacts.iterdir())
    again = deploy(alice, served["project"], experiment, element={"kubernetes_resource_spec": {"replicas": 0}}).id
    assert wait_for_state(alice, again, "PENDING", "FAILED", timeout=60).state.value == "PENDING"
    logs = "\n".join(e.text_payload for e in alice.deployer.log.list_log_entries(parent=again).log_entries)
    assert "is unpacked already" in logs and "unpacking artifact" not in logs
    assert sorted(p.name for p in artifacts.iterdir()) == before
    alice.deployer.deployment.delete_deployment(id=again)
    deadline = time.monotonic() + 30
    while any(d.id == again for d in alice.deployer.deployment.list_project_deployments(
            project_id=served["project"]).deployment):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert sorted(p.name for p in artifacts.iterdir()) == before  # the serving deployment still uses it


# -- smaller faults ----------------------------------------------------------------------------------


def test_identity_endpoints_do_their_blocking_work_off_the_event_loop(sandbox: Sandbox, monkeypatch: Any) -> None:
    """The device grant and the refresh grant, end to end; the password check (PBKDF2) and the grants
    (SQLite) are observed (wrapped, then called as they are) to run outside the server's event loop thread."""
    import threading

    idp = sandbox._idp()
    threads: dict[str, str] = {}

    def observed(name: str) -> None:
        original = getattr(idp, name)

        def record(*args: Any, **kwargs: Any) -> Any:
            threads[name] = threading.current_thread().name
            return original(*args, **kwargs)

        monkeypatch.setattr(idp, name, record)

    for name in ("_password_matches", "_refresh_grant", "_device_code_grant", "_authenticate_client"):
        observed(name)
    client_id = sandbox.client_id
    started = requests.post(idp.device_authorization_endpoint, data={"client_id": client_id}, timeout=10).json()
    approved = requests.post(idp.verification_uri, timeout=10, data={
        "user_code": started["user_code"], "username": "alice", "password": "alice", "action": "approve"})
    assert approved.status_code == 200 and "Device approved" in approved.text
    tokens = requests.post(idp.token_endpoint, timeout=10, data={
        "grant_type": "urn:ietf:params:oauth:grant-type:device_code", "client_id": client_id,
        "device_code": started["device_code"]}).json()
    refreshed = requests.post(idp.token_endpoint, timeout=10, data={
        "grant_type": "refresh_token", "client_id": client_id, "refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 200 and refreshed.json()["access_token"]
    assert set(threads) == {"_password_matches", "_refresh_grant", "_device_code_grant", "_authenticate_client"}
    event_loop_thread = f"mlops-nb-sandbox-{sandbox.port}"
    assert all(name != event_loop_thread for name in threads.values()), threads


def test_the_input_fields_are_asked_again_of_a_restarted_scorer(sandbox: Sandbox, alice: Any,
                                                                served: dict[str, Any]) -> None:
    """The gateway's cache of the models' input fields is keyed by scorer process (its secret), not by
    port: a restarted scorer, on whatever port, is asked again."""
    import os
    import signal

    gateway, supervisor = sandbox._scoring, sandbox.supervisor
    assert gateway is not None and supervisor is not None
    port = scorer_port(sandbox, served["iris"])
    old = supervisor.secret_of(port)
    assert gateway._model_inputs(port) == list(served["X"].columns) and old in gateway._inputs
    [pid] = supervisor.pids(served["iris"])
    os.kill(pid, signal.SIGKILL)
    wait_for_state(alice, served["iris"], "UNHEALTY", timeout=30)
    assert wait_for_state(alice, served["iris"], "HEALTHY", timeout=60).state.value == "HEALTHY"
    new_port = scorer_port(sandbox, served["iris"])
    new = supervisor.secret_of(new_port)
    assert new != old and new not in gateway._inputs
    assert gateway._model_inputs(new_port) == list(served["X"].columns) and new in gateway._inputs
