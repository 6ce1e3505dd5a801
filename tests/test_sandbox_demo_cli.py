"""The sandbox's demo data, and ``mlops-nb sandbox`` run as a real process."""

from __future__ import annotations

import io
import json
import os
import queue
import shlex
import signal
import socket
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

import mlops_nb
from mlops_nb.api import API, Method
from mlops_nb.cli import main
from mlops_nb.sandbox import Sandbox
from mlops_nb.sandbox.rpc import HANDLERS, STREAM_HANDLERS
from mlops_nb.sandbox.services.access import ROLE_EDITOR

REPO = Path(mlops_nb.__file__).resolve().parent.parent
READY = "Press Ctrl-C to stop."


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with Sandbox(db=str(tmp_path_factory.mktemp("demo") / "demo.sqlite3"), data="demo") as sb:
        sb.wait_for_deployments()
        yield sb


def _projects(client: Any) -> dict[str, str]:
    return {p.display_name: p.id for p in client.storage.project.list_projects().project}


def _states(client: Any) -> set[str]:
    return {s.state.value for project_id in _projects(client).values()
            for s in client.deployer.deployment_status.list_deployment_statuses(project_id=project_id).deployment_status}


# -- demo data ---------------------------------------------------------------------------------


def test_waiting_for_the_demo_deployments_says_how_many_are_in_each_state(demo: Sandbox) -> None:
    states = demo.wait_for_deployments()
    assert isinstance(states, dict) and set(states.values()) == {"HEALTHY", "FAILED"}
    healthy, failed = (sum(s == state for s in states.values()) for state in ("HEALTHY", "FAILED"))
    assert repr(states) == f"deployments: {failed} FAILED, {healthy} HEALTHY"  # no ids: a notebook shows this


def test_alice_and_bob_see_what_they_should(demo: Sandbox) -> None:
    with demo.client("alice") as alice, demo.client("bob") as bob:
        assert set(_projects(alice)) == {"Credit risk", "Customer churn"}
        assert set(_projects(bob)) == {"Credit risk", "Fraud detection"}
        credit = _projects(alice)["Credit risk"]
        sharings = alice.storage.project.list_project_sharings(project_id=credit).sharing
        assert [(s.user_id, s.restriction_role_id) for s in sharings] == [
            (bob.storage.user.who_am_i().user.id, ROLE_EDITOR)]
        # Real states: the scikit-learn models serve, the stand-in H2O-3 MOJOs fail to load.
        statuses = {s.deployment_id: s for project_id in _projects(alice).values() for s in
                    alice.deployer.deployment_status.list_deployment_statuses(project_id=project_id).deployment_status}
        names = {d.id: d.display_name for project_id in _projects(alice).values() for d in
                 alice.deployer.deployment.list_project_deployments(project_id=project_id).deployment}
        assert {names[i]: s.state.value for i, s in statuses.items()} == {
            "credit-default": "HEALTHY", "credit-default A/B": "HEALTHY",
            "credit-default with H2O-3 shadow": "FAILED", "churn-h2o": "FAILED"}
        assert all("H2O-3 MOJO" in s.message for s in statuses.values() if s.state.value == "FAILED")
        assert _states(bob) == {"HEALTHY", "FAILED"}
        types = {d.type.value for d in alice.storage.deployment.list_all_deployments().deployment}
        assert types == {"SINGLE_MODEL", "SPLIT_TRAFFIC", "SHADOW_TRAFFIC"}
        assert len(alice.storage.deployment.list_all_deployments().deployment) == 4
        assert len(bob.storage.deployment.list_all_deployments().deployment) == 4

        model = alice.storage.registered_model.get_registered_model_by_name(model_name="credit-default",
                                                                           project_id=credit).registered_model
        versions = alice.storage.registered_model_version.list_model_versions_for_model(registered_model_id=model.id)
        assert sorted(v.version for v in versions.model_versions) == [1, 2]
        datasets = alice.storage.dataset.list_datasets(project_id=credit).dataset
        assert [(d.display_name, d.row_count) for d in datasets] == [("credit-train.csv", 2000)]
        for project_id in _projects(alice).values():
            environments = alice.storage.deployment_environment.list_deployment_environments(project_id=project_id)
            assert list(environments["display_name"]) == ["DEV", "PROD"]


def test_experiments_carry_metadata_parameters_and_artifacts(demo: Sandbox) -> None:
    with demo.client("alice") as alice:
        seen_types = set()
        for project_id in _projects(alice).values():
            for experiment in alice.storage.experiment.list_experiments(
                    project_id=project_id, response_metadata={"pattern": ["%"]}).experiment:
                assert experiment.metadata.values["auc"].double_value > 0.5
                tool = experiment.metadata.values["tool"].string_value
                (artifact,) = alice.storage.artifact.list_entity_artifacts(entity_id=experiment.id).artifact
                assert artifact.state.value == "AVAILABLE" and artifact.size > 0
                seen_types.add(artifact.type)
                out = io.BytesIO()
                alice.storage.artifact.download_artifact(artifact.id, out)
                names = zipfile.ZipFile(out).namelist()
                if artifact.type == "python/mlflow":
                    assert tool == "MLflow" and "MLmodel" in names
                else:
                    assert tool == "H2O-3" and "model.ini" in names and experiment.parameters.target_column
        assert seen_types == {"h2o3/mojo", "python/mlflow"}
        # No artifact stayed behind on a project: each moved to its experiment.
        assert all(alice.storage.artifact.list_entity_artifacts(entity_id=p).artifact == []
                   for p in _projects(alice).values())


def test_demo_data_is_seeded_once(tmp_path: Path) -> None:
    db = str(tmp_path / "again.sqlite3")
    with Sandbox(db=db, data="demo") as sb, sb.client("alice") as alice:
        first = _projects(alice)
    with Sandbox(db=db, data="demo") as sb, sb.client("alice") as alice:
        assert _projects(alice) == first
        assert alice.storage.deployment.count_deployments().count == 4


def _my_methods() -> list[Method]:
    """The API methods served by the artifact, model, dataset, environment, deployment, ingest, endpoint and
    monitoring modules."""
    modules = {f"mlops_nb.sandbox.services.{name}" for name in ("artifacts", "models", "datasets", "environments",
                                                                  "deployments", "ingest", "endpoints", "monitoring")}
    handlers = {**HANDLERS, **STREAM_HANDLERS}
    return [m for m in API.methods if getattr(handlers.get(m.qualified_name), "__module__", None) in modules]


def test_odd_requests_never_make_a_server_error(demo: Sandbox) -> None:
    methods = [m for m in _my_methods() if m.verb == "POST"]
    assert len(methods) == 64
    token = demo.idp.issue_access_token("alice")
    with demo.client("alice") as alice:
        project = _projects(alice)["Credit risk"]
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    for method in methods:
        bodies = [b"", b"{}", b"not json", b"[1]"]
        for field in API.messages.get(method.request or "", ()):
            bodies += [json.dumps({field.json: value}).encode() for value in ("nope", project, 5, {"pageSize": -1})]
        for body in bodies:
            response = session.post(demo.gateway_url + method.full_path, data=body, timeout=30)
            assert response.status_code < 500, (method.qualified_name, body, response.text)
            if response.status_code >= 400:
                assert set(response.json()) == {"code", "message", "details"}
    with demo.client("alice") as alice:
        deployment = alice.storage.deployment.list_deployments(project_id=project).deployment[0].id
    rest = [m for m in _my_methods() if m.verb == "GET"]
    assert len(rest) == 6
    for method in rest:
        for value in ("nope", deployment, "-1", "2024-13-45T99:00:00Z"):
            path = method.full_path.replace("{deploymentId}", deployment).replace("{modelId}", value)
            query = {p.wire: value for p in method.query_params}
            response = session.get(demo.gateway_url + path, params=query, timeout=60)
            assert response.status_code < 500, (method.qualified_name, value, response.text)
            if response.status_code >= 400:
                assert set(response.json()) == {"code", "message", "details"}


# -- the command line ------------------------------------------------------------------------


def _env() -> dict[str, str]:
    """This environment, with the package under test importable by a child process."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}


class Running:
    """A ``python -m mlops_nb.sandbox`` process, its output read line by line in the background."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "mlops_nb.sandbox", *args], env=_env(),
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        with self.process.stdout as output:
            for text in output:
                self.lines.put(text.rstrip("\n"))
        self.lines.put(None)

    def until(self, marker: str, timeout: float = 30) -> list[str]:
        seen = []
        while True:
            text = self.lines.get(timeout=timeout)
            assert text is not None, f"the sandbox ended early: {seen}"
            seen.append(text)
            if marker in text:
                return seen

    def stop(self, signum: int) -> tuple[int, list[str]]:
        self.process.send_signal(signum)
        code = self.process.wait(timeout=20)
        rest = []
        while (text := self.lines.get(timeout=5)) is not None:
            rest.append(text)
        return code, rest


def _assignments(text: str) -> dict[str, str]:
    """The NAME=value words of an ``export`` line of the banner, commented out or not."""
    words = shlex.split(text.lstrip("# "))
    assert words[0] == "export", text
    return dict(word.partition("=")[::2] for word in words[1:])


def test_the_cli_prints_working_constants_and_stops_on_sigint(tmp_path: Path) -> None:
    running = Running("sandbox", "--port", "0", "--db", str(tmp_path / "cli.sqlite3"), "--token-ttl", "60")
    try:
        banner = running.until(READY)
    except BaseException:
        running.process.kill()
        raise
    try:
        constants = {k: v for line in banner if line.startswith("export ") for k, v in _assignments(line).items()}
        bob, confidential, cloud = (_assignments(line) for line in banner if line.startswith("# export "))
        gateway = constants["H2O_MLOPS_GATEWAY"]
        assert cloud["H2O_CLOUD_ENVIRONMENT"] == gateway
        discovered = requests.get(f"{gateway}/.ai.h2o.cloud.discovery/v1/environment", timeout=10).json()
        assert discovered["environment"]["issuerUrl"] == f"{gateway}/auth/realms/mlops"
        assert gateway.startswith("http://127.0.0.1:") and f"gateway at {gateway}" in banner[0]
        assert constants["TOKEN_ENDPOINT"] == f"{gateway}/auth/realms/mlops/protocol/openid-connect/token"
        assert any(line.strip() == f"issuer:   {gateway}/auth/realms/mlops" for line in banner)
        providers = {
            "alice": mlops_nb.TokenProvider(constants["REFRESH_TOKEN"], constants["CLIENT_ID"],
                                            constants["TOKEN_ENDPOINT"]),
            "bob": mlops_nb.TokenProvider(bob["REFRESH_TOKEN"], constants["CLIENT_ID"], constants["TOKEN_ENDPOINT"]),
            "alice (confidential client)": mlops_nb.TokenProvider(
                confidential["REFRESH_TOKEN"], confidential["CLIENT_ID"], constants["TOKEN_ENDPOINT"],
                client_secret=confidential["CLIENT_SECRET"]),
        }
        for who, provider in providers.items():
            with mlops_nb.Client(gateway, provider) as client:
                assert who.startswith(client.storage.user.who_am_i().user.username)
        with mlops_nb.Client(gateway, providers["alice"]) as alice:
            assert set(_projects(alice)) == {"Credit risk", "Customer churn"}
        login = mlops_nb.DeviceLogin.from_issuer(f"{gateway}/auth/realms/mlops", constants["CLIENT_ID"]).start()
        assert login.verification_uri_complete.startswith(f"{gateway}/auth/realms/mlops/")
    finally:
        code, rest = running.stop(signal.SIGINT)
    assert code == 0
    assert rest[-1] == "mlops_nb sandbox stopped."


def test_sigterm_stops_it_cleanly_too(tmp_path: Path) -> None:
    running = Running("sandbox", "--port", "0", "--db", str(tmp_path / "term.sqlite3"), "--data", "empty",
                      "--revoke-refresh-tokens")
    try:
        banner = running.until(READY)
    finally:
        code, rest = running.stop(signal.SIGTERM)
    assert banner[1].endswith("term.sqlite3 (--data empty)")
    assert (code, rest) == (0, ["mlops_nb sandbox stopped."])


def test_generated_data_and_latency_from_the_command_line(tmp_path: Path) -> None:
    running = Running("sandbox", "--port", "0", "--db", str(tmp_path / "scale.sqlite3"), "--data", "scale:30",
                      "--latency", "20", "--faces", "workspaces")
    try:
        banner = running.until(READY)
        constants = {k: v for line in banner if line.startswith("export ") for k, v in _assignments(line).items()}
        provider = mlops_nb.TokenProvider(constants["REFRESH_TOKEN"], constants["CLIENT_ID"],
                                          constants["TOKEN_ENDPOINT"])
        with mlops_nb.Client(constants["H2O_MLOPS_GATEWAY"], provider) as alice:
            listed = alice.storage.project.list_projects()
    finally:
        code, _ = running.stop(signal.SIGTERM)
    assert banner[1].endswith("scale.sqlite3 (--data scale:30)")
    assert "  latency:  20 ms added to every gateway call" in banner
    # Storage's routes are the workspaces face's too: the legacy client lists through them.
    gateway = constants["H2O_MLOPS_GATEWAY"]
    assert f"  faces:    workspaces (workspaces API's authz gateway: {gateway}/authz)" in banner
    assert listed.user_project_count == 30 and listed.project[0].display_name == "project 30"
    assert code == 0


def test_module_and_console_script_take_the_same_arguments(capsys: pytest.CaptureFixture[str],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    with pytest.raises(SystemExit) as exited:
        main(["sandbox", "--help"])
    assert exited.value.code == 0
    in_process = capsys.readouterr().out
    as_module = subprocess.run([sys.executable, "-m", "mlops_nb.sandbox", "sandbox", "--help"], env=_env(),
                               capture_output=True, text=True, timeout=30, check=True).stdout
    assert as_module == in_process
    assert "usage: mlops-nb sandbox [-h] [--host HOST] [--port PORT] [--db DB]" in in_process


def test_bad_command_lines(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main([]) == 2
    assert "sandbox" in capsys.readouterr().err
    for argv in (["sandbox", "--port", "70000"], ["sandbox", "--token-ttl", "0"], ["sandbox", "--data", "lots"],
                 ["sandbox", "--data", "scale:0"], ["sandbox", "--data", "scale:many"], ["sandbox", "--latency", "-1"],
                 ["sandbox", "--latency", "nan"], ["sandbox", "--latency", "soon"], ["sandbox", "--faces", "projects"],
                 ["sandbox", "--faces", ""]):
        with pytest.raises(SystemExit) as exited:
            main(argv)
        assert exited.value.code == 2
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = subprocess.run([sys.executable, "-m", "mlops_nb.sandbox", "sandbox", "--port", str(port), "--db",
                               str(tmp_path / "busy.sqlite3"), "--data", "empty"], env=_env(),
                              capture_output=True, text=True, timeout=30)
    assert busy.returncode == 1
    assert f"mlops-nb sandbox: the sandbox could not start on 127.0.0.1:{port}" in busy.stderr
