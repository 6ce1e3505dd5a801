"""The notebook helpers on both generations of the API: one sandbox, a client forced to each face.

upload -> register -> deploy -> wait -> score -> monitoring -> logs -> delete through the helpers
on the workspaces face as on the legacy one, a deployment made through one face seen through the
other, the clear error where a generation lacks a step, and ``%mlops`` on a workspaces client in a
real IPython shell. The first tests need no sandbox: the monitoring figures the workspaces
generation's aggregates give.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest

import mlops_nb
from mlops_nb.notebook import session
from mlops_nb.notebook.generations import (
    HIGH_DRIFT,
    MEDIUM_DRIFT,
    GenerationLacks,
    aggregate_metrics,
    entity_id,
    operations,
    psi,
)
from mlops_nb.notebook.lookup import deployment_id
from mlops_nb.sandbox import Sandbox
from tests.deploying import iris_model

# -- the workspaces monitoring figures, from aggregates made here of known data ------------------------

EDGES = np.linspace(-4.0, 8.0, 25)  # as the API sends them: the outer -inf and +inf left out
BINS = [-np.inf, *EDGES, np.inf]


def _numerical(values: np.ndarray) -> dict[str, Any]:
    counts, _ = np.histogram(values, bins=BINS)
    return {"binEdges": EDGES.tolist(), "binCount": counts.tolist(), "min": float(values.min()),
            "max": float(values.max()), "mean": float(values.mean()), "sum": float(values.sum())}


def _scored(start: str, column: str, values: np.ndarray, *, output: bool = False, missing: int = 0) -> dict[str, Any]:
    return {"id": f"{start}-{column}", "column": column, "startTime": start, "segmentDuration": "3600s",
            "isModelOutput": output, "logicalType": "NUMERICAL", "numericalAggregate": _numerical(values),
            "missingValues": {"rowCount": missing}}


@pytest.fixture(scope="module")
def windows() -> dict[str, Any]:
    rng = np.random.default_rng(11)
    training = rng.normal(0.0, 1.0, 5000)
    same = rng.normal(0.0, 1.0, 800)
    shifted = rng.normal(2.5, 1.0, 600)
    predictions = [rng.normal(1.0, 0.5, 800), rng.normal(3.0, 0.5, 600)]
    scored = [_scored("2026-01-01T10:00:00Z", "x", same, missing=7),
              _scored("2026-01-01T11:00:00Z", "x", shifted),
              _scored("2026-01-01T10:00:00Z", "y", predictions[0], output=True),
              _scored("2026-01-01T11:00:00Z", "y", predictions[1], output=True)]
    baseline = [{"id": "b-x", "column": "x", "isModelOutput": False, "logicalType": "NUMERICAL",
                 "numericalAggregate": _numerical(training)}]
    return {"scored": scored, "baseline": baseline, "same": same, "shifted": shifted, "predictions": predictions}


def test_rows_and_predictions_come_from_the_model_output_aggregates(windows: dict[str, Any]) -> None:
    found = aggregate_metrics(windows["scored"], windows["baseline"], None, None)
    assert list(found.operational["successful_rows"]) == [len(p) for p in windows["predictions"]]
    assert found.summary["rows_scored"] == sum(len(p) for p in windows["predictions"])
    assert found.summary["prediction_name"] == "y"
    every = np.concatenate(windows["predictions"])
    expected, _ = np.histogram(every, bins=BINS)
    assert found.predictions["rows"].tolist() == expected.tolist()
    # The open outer bins are shown from the smallest and to the largest prediction.
    assert found.predictions["low"].tolist() == [min(every.min(), EDGES[0]), *EDGES]
    assert found.predictions["high"].tolist() == [*EDGES, max(every.max(), EDGES[-1])]
    # Quartiles read off each window's histogram: within one bin width of the data's own.
    width = EDGES[1] - EDGES[0]
    for (_, row), values in zip(found.prediction_values.iterrows(), windows["predictions"], strict=True):
        assert (row["min"], row["max"]) == (values.min(), values.max())
        assert abs(row["median"] - np.median(values)) <= width
    # What the aggregates do not measure is empty, and said so.
    assert found.operational[["scoring_latency_ms", "memory_mib", "cpu_percent", "availability_percent"]].isna().all().all()
    assert "latency" in found.summary["not_measured"]


def test_drift_is_the_stability_index_of_each_window_against_the_baseline(windows: dict[str, Any]) -> None:
    found = aggregate_metrics(windows["scored"], windows["baseline"], None, None)
    over_time = found.drift_over_time["x"]
    assert over_time.iloc[0] < MEDIUM_DRIFT < HIGH_DRIFT < over_time.iloc[1]
    assert found.drift.loc["x", "level"] == "high"  # both windows together: the shifted one weighs in
    assert found.drift.loc["x", "missing_values"] == pytest.approx(7 / (len(windows["same"]) + 7 + len(windows["shifted"])))
    assert (found.summary["features_drifting"], found.summary["high_drift"]) == (1, 1)
    assert found.summary["baseline_rows"] == 5000
    # The index is zero against itself and symmetric.
    a = {"1": 10.0, "2": 30.0, "3": 60.0}
    b = {"1": 40.0, "2": 40.0, "3": 20.0}
    assert psi(a, a) == 0.0 and psi(a, b) == pytest.approx(psi(b, a)) and psi(a, b) > HIGH_DRIFT
    assert math.isnan(psi({}, a))


def test_a_time_range_keeps_the_windows_inside_it(windows: dict[str, Any]) -> None:
    found = aggregate_metrics(windows["scored"], windows["baseline"], "2026-01-01T10:30:00Z", None)
    assert list(found.operational["successful_rows"]) == [len(windows["predictions"][1])]
    assert found.summary["rows_scored"] == len(windows["predictions"][1])
    none = aggregate_metrics(windows["scored"], windows["baseline"], None, "2026-01-01T09:00:00+00:00")
    assert none.operational.empty and none.summary["rows_scored"] == 0


# -- the helpers against both faces of one sandbox ----------------------------------------------------

GENERATIONS = ("legacy", "workspaces")


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with Sandbox(db=str(tmp_path_factory.mktemp("nb-workspaces") / "s.sqlite3"), data="empty") as sb:
        yield sb


@pytest.fixture(scope="module")
def clients(sandbox: Sandbox) -> dict[str, Any]:
    """alice's client on each face, forced (a client left to find it speaks legacy to the sandbox)."""
    return {generation: sandbox.client("alice", generation=generation) for generation in GENERATIONS}


@pytest.fixture(scope="module")
def workspace(clients: dict[str, Any]) -> str:
    """A project made through the legacy face: a workspace on the other."""
    return clients["legacy"].storage.project.create_project(project={"display_name": "Iris"}).project.id


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    data, X, fitted = iris_model()
    path = tmp_path_factory.mktemp("model") / "iris.zip"
    path.write_bytes(data)
    return {"path": path, "X": X, "fitted": fitted}


@pytest.fixture(scope="module")
def flows(clients: dict[str, Any], workspace: str, model: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """On each face, with the same helpers: upload, register, deploy with a passphrase, wait."""
    made = {}
    for generation, client in clients.items():
        experiment = mlops_nb.upload_model(client, "Iris", model["path"], name=f"iris-{generation}")
        registered = mlops_nb.register_model(client, experiment, "iris")
        deployment = mlops_nb.deploy(client, registered, name=f"iris-{generation}", passphrase="petal")
        status = mlops_nb.wait_for_healthy(client, deployment, timeout=300)
        made[generation] = {"experiment": experiment, "registered": registered, "deployment": deployment,
                            "status": status, "id": deployment_id(client, deployment)}
    return made


def test_each_face_uploads_registers_and_deploys_with_the_same_calls(clients: dict[str, Any], workspace: str,
                                                                     flows: dict[str, dict[str, Any]]) -> None:
    for generation, flow in flows.items():
        client, experiment = clients[generation], flow["experiment"]
        assert experiment.display_name == f"iris-{generation}"
        assert experiment.metadata.values["tool"].string_value == "MLflow"
        [artifact] = client.storage.artifact.list_entity_artifacts(entity_id=experiment.id).artifact
        assert (artifact.type, str(artifact.state)) == ("python/mlflow", "AVAILABLE")
        assert str(flow["status"].state) == "HEALTHY"
    # One registered model, a version from each face.
    versions = [flows[g]["registered"].version.version for g in GENERATIONS]
    assert versions == [1, 2]
    assert len({flows[g]["registered"].model.id for g in GENERATIONS}) == 1
    assert type(flows["legacy"]["deployment"]).__name__ == "DeployDeployment"
    made = flows["workspaces"]["deployment"]
    assert type(made).__name__ == "V2Deployment"
    assert made.name == f"workspaces/{workspace}/deployments/{flows['workspaces']['id']}"
    assert clients["legacy"].storage.artifact.list_entity_artifacts(entity_id=workspace).artifact == []


def test_score_on_each_face_gives_the_models_predictions(clients: dict[str, Any], flows: dict[str, dict[str, Any]],
                                                         model: dict[str, Any]) -> None:
    X, fitted = model["X"], model["fitted"]
    for generation, client in clients.items():
        scored = mlops_nb.score(client, flows[generation]["deployment"], X, passphrase="petal", batch_size=40)
        assert list(scored.index) == list(X.index) and list(scored.columns) == ["prediction"]
        assert scored["prediction"].tolist() == fitted.predict(X).tolist()
        with pytest.raises(mlops_nb.ScoringError, match="401: the deployment wants a passphrase"):
            mlops_nb.score(client, flows[generation]["deployment"], X.head(2), passphrase="stem")


def test_a_deployment_made_through_one_face_is_one_the_other_sees(clients: dict[str, Any],
                                                                  flows: dict[str, dict[str, Any]],
                                                                  model: dict[str, Any]) -> None:
    X = model["X"].head(12)
    for made, seen in (("legacy", "workspaces"), ("workspaces", "legacy")):
        client, deployment = clients[seen], flows[made]["id"]
        # By id and by name (looked up in every project / workspace the user may see).
        assert deployment_id(client, f"iris-{made}") == deployment
        assert str(mlops_nb.wait_for_healthy(client, deployment, timeout=30).state) == "HEALTHY"
        ours = mlops_nb.score(client, f"iris-{made}", X, passphrase="petal")
        theirs = mlops_nb.score(clients[made], deployment, X, passphrase="petal")
        pd.testing.assert_frame_equal(ours, theirs)
        assert mlops_nb.monitoring(client, deployment).model_id == flows[made]["experiment"].id


def test_monitoring_on_each_face_counts_the_rows_scored(clients: dict[str, Any], flows: dict[str, dict[str, Any]],
                                                        model: dict[str, Any]) -> None:
    X = model["X"]
    for generation, client in clients.items():
        deployment = flows[generation]["deployment"]
        mlops_nb.score(client, deployment, X, passphrase="petal")
        watched = mlops_nb.monitoring(client, deployment)
        assert watched.model_id == flows[generation]["experiment"].id
        assert watched.deployment_name == f"iris-{generation}"
        assert str(watched.operational.index.tz) == "UTC"
        assert set(watched.drift.index) == set(X.columns)
        assert "data:image/png;base64," in watched._repr_html_()
        # The same traffic through both faces: the legacy metrics and the workspaces aggregates count
        # every row; the baseline (the model's first traffic here) is within it.
        views = {g: mlops_nb.monitoring(c, flows[generation]["id"]) for g, c in clients.items()}
        total, aggregated = views["legacy"].summary["rows_scored"], views["workspaces"].summary
        assert total >= 2 * len(X)
        assert aggregated["rows_scored"] == total and 0 < aggregated["baseline_rows"] < total
        assert views["workspaces"].operational["successful_rows"].sum() == aggregated["rows_scored"] > 0
        assert views["legacy"].operational["successful_rows"].sum() == total


def test_logs_on_each_face(clients: dict[str, Any], flows: dict[str, dict[str, Any]]) -> None:
    for generation, client in clients.items():
        logs = mlops_nb.deployment_logs(client, flows[generation]["deployment"])
        assert list(logs.columns) == ["time", "source", "message"] and str(logs["time"].dt.tz) == "UTC"
        assert logs["time"].notna().all() and logs["time"].is_monotonic_increasing
        assert logs["message"].str.contains("HEALTHY").any()
        assert len(mlops_nb.deployment_logs(client, flows[generation]["id"], max_lines=3)) == 3


def test_workspaces_are_found_by_name_as_projects_are(clients: dict[str, Any], workspace: str,
                                                      flows: dict[str, dict[str, Any]]) -> None:
    client = clients["workspaces"]
    found = mlops_nb.find_project(client, "Iris")
    assert type(found).__name__ == "V1Workspace" and entity_id(found) == workspace
    assert entity_id(mlops_nb.find_project(client, workspace)) == workspace
    with pytest.raises(mlops_nb.NameNotFound, match="no workspace has the id or name 'Iri'; similar names: 'Iris'"):
        mlops_nb.find_project(client, "Iri")
    deployment = mlops_nb.find_deployment(client, "Iris", "iris-legacy")
    assert type(deployment).__name__ == "V2Deployment" and entity_id(deployment) == flows["legacy"]["id"]
    with pytest.raises(mlops_nb.NameNotFound, match=f"no deployment has the id or name 'nope' in workspace {workspace}"):
        mlops_nb.find_deployment(client, "Iris", "nope")
    frame = mlops_nb.all_deployments(client)
    assert set(frame["display_name"]) >= {"iris-legacy", "iris-workspaces"}
    assert set(frame["state"]) == {"HEALTHY"} and set(frame["project"]) == {"Iris"}


def test_what_a_generation_lacks_is_said(clients: dict[str, Any], flows: dict[str, dict[str, Any]]) -> None:
    experiment = flows["workspaces"]["experiment"]
    with pytest.raises(GenerationLacks, match="the workspaces generation of the MLOps API has no deployment "
                                              "environments .*leave environment out"):
        mlops_nb.deploy(clients["workspaces"], experiment, environment="PROD")
    with pytest.raises(TypeError, match="names a deployment of the workspaces generation; this client speaks the "
                                        "legacy one"):
        deployment_id(clients["legacy"], flows["workspaces"]["deployment"])


def test_split_and_shadow_on_the_workspaces_face(clients: dict[str, Any], flows: dict[str, dict[str, Any]],
                                                 model: dict[str, Any], tmp_path: Any) -> None:
    client, X = clients["workspaces"], model["X"]
    data, _, _ = iris_model("linear")
    (tmp_path / "linear.zip").write_bytes(data)
    # Uploaded with its training data: the monitoring baseline (a dataset of the workspace).
    second = mlops_nb.upload_model(client, "Iris", tmp_path / "linear.zip", name="linear", training_data=X)
    assert second.parameters.training_dataset_id
    first = flows["workspaces"]["experiment"]
    split = mlops_nb.deploy_split(client, [first, second], weights=[70, 30])
    assert [e.weight for e in split.split.split_elements] == [70, 30] and split.display_name == "iris-workspaces / linear"
    shadow = mlops_nb.deploy_shadow(client, first, second.id)
    assert shadow.shadow.secondary_element.deployment_composition.experiment_id == second.id
    for deployment in (split, shadow):
        assert str(mlops_nb.wait_for_healthy(client, deployment, timeout=300).state) == "HEALTHY"
    # The shadow answers with the primary; both score each request, and both are monitored.
    scored = mlops_nb.score(client, shadow, X)
    assert scored["prediction"].tolist() == model["fitted"].predict(X).tolist()
    # The shadow scores its copy after the primary has answered: its rows arrive a moment later.
    deadline = time.monotonic() + 60
    while (watched := mlops_nb.monitoring(client, shadow, model=second.id)).summary["rows_scored"] < len(X):
        assert time.monotonic() < deadline, f"the shadow's rows are not counted: {watched.summary}"
        time.sleep(0.2)
    assert watched.model_id == second.id and watched.summary["baseline_rows"] == len(X)
    assert watched.summary["rows_scored"] == len(X) and set(watched.drift.index) == set(X.columns)
    assert (watched.drift["drift"] < MEDIUM_DRIFT).all()  # scored the data it was trained on
    with pytest.raises(ValueError, match="serves the models"):
        mlops_nb.monitoring(client, split, model="someone-else")
    assert mlops_nb.monitoring(client, split, model=second.id).model_id == second.id
    for deployment in (split, shadow):
        operations(client).delete_deployment(entity_id(deployment))


# -- %mlops on a workspaces client, in a real IPython shell ----------------------------------------------


@pytest.fixture
def ip(clients: dict[str, Any]) -> Iterator[Any]:
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.testing.globalipapp import get_ipython

    # globalipapp starts its shell once per process and hands it only to the first caller.
    shell = get_ipython() or InteractiveShell.instance()
    shell.run_line_magic("load_ext", "mlops_nb")
    client = clients["workspaces"]
    session.set_current_client(client, operations(client).who_am_i())
    yield shell
    session.logout()
    shell.run_line_magic("unload_ext", "mlops_nb")


def test_magics_on_a_workspaces_client(ip: Any, workspace: str, flows: dict[str, dict[str, Any]],
                                       model: dict[str, Any]) -> None:
    def line(text: str) -> Any:
        result = ip.run_cell(text, store_history=False)
        assert result.success, result.error_in_exec or result.error_before_exec
        return result.result

    me = line("%mlops whoami")
    assert type(me).__name__ == "V1User" and me.display_name == "alice"
    for command in ("projects", "workspaces"):
        assert "Iris" in set(line(f"%mlops {command}")["display_name"])
    assert set(line("%mlops experiments Iris")["display_name"]) >= {"iris-legacy", "iris-workspaces"}
    listed = line("%mlops deployments Iris").set_index("display_name")
    assert set(listed.loc[["iris-legacy", "iris-workspaces"], "state"]) == {"HEALTHY"}
    status = line("%mlops status iris-legacy")
    assert type(status).__name__ == "V2DeploymentStatus" and str(status.state) == "HEALTHY"
    ip.user_ns.update(frame=model["X"].head(7), secret="petal")
    scored = line("%mlops score iris-workspaces frame --passphrase-from secret")
    assert scored["prediction"].tolist() == model["fitted"].predict(model["X"].head(7)).tolist()
    assert len(line("%mlops logs iris-workspaces --lines 2")) == 2
    got = line(f"%mlops call deployer.deployment.get_deployment name=workspaces/{workspace}/deployments/"
               f"{flows['legacy']['id']}")
    assert got.deployment.display_name == "iris-legacy"
    made = line("%mlops deploy iris-workspaces --project Iris --name by-magic --no-wait")
    assert type(made).__name__ == "V2Deployment" and made.display_name == "by-magic"
    assert str(line("%mlops wait by-magic --timeout 300").state) == "HEALTHY"
    operations(session.current_client()).delete_deployment(entity_id(made))


def test_mlops_sandbox_logs_in_to_the_workspaces_face(ip: Any, tmp_path: Any,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    def line(text: str) -> Any:
        result = ip.run_cell(text, store_history=False)
        assert result.success, result.error_in_exec or result.error_before_exec
        return result.result

    try:
        me = line(f"%mlops sandbox --db {tmp_path / 'ws.sqlite3'} --data empty --generation workspaces")
        assert type(me).__name__ == "V1User" and me.display_name == "alice"
        assert "logged in as alice" in capsys.readouterr().out
        client = session.current_client()
        assert client.generation == "workspaces" and client.authz_gateway_url == client.gateway_url + "/authz"
        line("%mlops call authz.workspace.create_workspace workspace='{\"display_name\": \"Mine\"}'")
        assert list(line("%mlops workspaces")["display_name"]) == ["Mine"]
    finally:
        line("%mlops sandbox --stop")


# -- last: deleting through one face removes it from both -------------------------------------------------


def test_a_deployment_deleted_through_either_face_is_gone_from_both(clients: dict[str, Any],
                                                                     flows: dict[str, dict[str, Any]]) -> None:
    for deleted_by, other in (("workspaces", "legacy"), ("legacy", "workspaces")):
        deployment = flows[other]["id"]
        operations(clients[deleted_by]).delete_deployment(deployment)
        for client in clients.values():
            deadline = time.monotonic() + 60
            while operations(client).deployment_exists(deployment):
                assert time.monotonic() < deadline, f"deployment {deployment} is still there"
                time.sleep(0.2)
            with pytest.raises(mlops_nb.NameNotFound, match=f"iris-{other}"):
                deployment_id(client, f"iris-{other}")
