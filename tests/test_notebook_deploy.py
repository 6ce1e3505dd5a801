"""The notebook's deployment helpers against a real sandbox: upload, register, deploy, wait, score, monitor, logs.

They run in a real IPython shell where the output matters (the terminal form of the live
status); notebooks/deploy_a_model.ipynb runs them in a kernel (tests/test_notebooks.py).
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from IPython.core.interactiveshell import InteractiveShell

import mlops_nb
from mlops_nb.notebook.waiting import _Timeline
from mlops_nb.sandbox import Sandbox
from tests.deploying import experiment_with, zip_of


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with Sandbox(db=str(tmp_path_factory.mktemp("nb-deploy") / "s.sqlite3"), data="empty") as sb:
        yield sb


@pytest.fixture(scope="module")
def trained() -> tuple[pd.DataFrame, Any]:
    from sklearn.datasets import load_wine
    from sklearn.ensemble import RandomForestClassifier

    X, y = load_wine(return_X_y=True, as_frame=True)
    return X, RandomForestClassifier(n_estimators=20, random_state=0).fit(X, y)


@pytest.fixture(scope="module")
def project(alice: Any) -> str:
    return alice.storage.project.create_project(project={"display_name": "Wine"}).project.id


@pytest.fixture(scope="module")
def deployed(alice: Any, project: str, trained: tuple[pd.DataFrame, Any]) -> dict[str, Any]:
    """The forest uploaded from memory, registered, deployed with a passphrase and healthy."""
    X, model = trained
    experiment = mlops_nb.upload_model(alice, "Wine", model, name="forest", description="wine classes",
                                       input_example=X.head(5))
    registered = mlops_nb.register_model(alice, experiment, "wine-classifier")
    deployment = mlops_nb.deploy(alice, registered, name="wine", passphrase="grape")
    status = mlops_nb.wait_for_healthy(alice, deployment, timeout=300)
    return {"experiment": experiment, "registered": registered, "deployment": deployment, "status": status}


def test_upload_model_makes_an_experiment_as_the_official_client_does(alice: Any, project: str,
                                                                      deployed: dict[str, Any]) -> None:
    experiment = deployed["experiment"]
    assert (experiment.display_name, experiment.description) == ("forest", "wine classes")
    values = experiment.metadata.values
    assert values["tool"].string_value == "MLflow" and values["model_type"].string_value == "sklearn"
    assert values["mlflow/flavors/sklearn/serialization_format"].string_value == "skops"
    [artifact] = alice.storage.artifact.list_entity_artifacts(entity_id=experiment.id).artifact
    assert (artifact.type, artifact.state.value, artifact.mime_type) == ("python/mlflow", "AVAILABLE", "application/zip")
    assert alice.storage.artifact.list_entity_artifacts(entity_id=project).artifact == []
    assert "mlops-nb-card" in experiment._repr_html_()
    registered = deployed["registered"]
    assert registered.model.display_name == "wine-classifier" and registered.version.version == 1
    assert "mlops-nb-card" in registered._repr_html_()
    with pytest.raises(mlops_nb.AlreadyExists, match="is registered in model 'wine-classifier' already"):
        mlops_nb.register_model(alice, experiment.id, "wine-classifier")


def test_upload_model_refuses_what_it_cannot_take(alice: Any, project: str, tmp_path: Path) -> None:
    with pytest.raises(mlops_nb.NameNotFound, match="no project has the id or name 'Beer'"):
        mlops_nb.upload_model(alice, "Beer", tmp_path)
    with pytest.raises(ValueError, match="without an MLmodel file"):
        mlops_nb.upload_model(alice, project, tmp_path)
    with pytest.raises(FileNotFoundError):
        mlops_nb.upload_model(alice, project, tmp_path / "missing.zip")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match="is not a zip file"):
        mlops_nb.upload_model(alice, project, tmp_path / "notes.txt")
    with pytest.raises(TypeError, match="a scikit-learn estimator or pipeline, or an H2O-3 model; got dict"):
        mlops_nb.upload_model(alice, project, {"weights": [1, 2]})
    (tmp_path / "other.zip").write_bytes(zip_of({"readme.md": "no model here"}))
    with pytest.raises(mlops_nb.InvalidArgument, match="looked for an MLflow model"):
        mlops_nb.upload_model(alice, project, tmp_path / "other.zip")


def test_deploy_refuses_an_incompatible_runtime_before_any_call(alice: Any, deployed: dict[str, Any]) -> None:
    before = alice.storage.deployment.count_deployments().count
    with pytest.raises(ValueError, match="runtime 'h2o3_mojo_runtime' cannot serve python/mlflow artifacts; choose "
                                         "one of python-scorer_mlflow_36, .*python-scorer_mlflow_39"):
        mlops_nb.deploy(alice, deployed["experiment"], runtime="h2o3_mojo_runtime")
    assert alice.storage.deployment.count_deployments().count == before
    view = deployed["deployment"]
    # Saved with this Python (3.10 and newer): the newest MLflow runtime of the catalog serves it.
    assert view.single_deployment.deployment_composition.runtime_name == "python-scorer_mlflow_39"
    assert "grape" not in repr(view)


def test_score_gives_the_model_predictions_on_the_frame_index(alice: Any, deployed: dict[str, Any],
                                                             trained: tuple[pd.DataFrame, Any]) -> None:
    X, model = trained
    rows = X.sample(60, random_state=4)
    rows.index = [f"bottle-{i}" for i in range(60)]
    scored = mlops_nb.score(alice, deployed["deployment"], rows.assign(note="ignored"), passphrase="grape",
                            batch_size=25)
    assert list(scored.index) == list(rows.index) and list(scored.columns) == ["prediction"]
    assert scored["prediction"].dtype == "Int64"
    assert scored["prediction"].tolist() == model.predict(rows).tolist()
    with pytest.raises(KeyError, match="lacks the columns 'alcohol', 'proline' that the model takes"):
        mlops_nb.score(alice, deployed["deployment"], rows.drop(columns=["alcohol", "proline"]), passphrase="grape")
    with pytest.raises(mlops_nb.ScoringError, match="401: the deployment wants a passphrase"):
        mlops_nb.score(alice, deployed["deployment"], rows, passphrase="wine")
    bad = rows.head(3).astype(object)
    bad.iloc[1, 0] = "lots"
    with pytest.raises(mlops_nb.ScoringError, match="row 1, field 'alcohol': 'lots' is not a valid Float64"):
        mlops_nb.score(alice, deployed["deployment"], bad, passphrase="grape")
    assert mlops_nb.score(alice, deployed["deployment"], rows.head(0), passphrase="grape").empty


def test_monitoring_shows_the_traffic_and_plots_it(alice: Any, deployed: dict[str, Any],
                                                   trained: tuple[pd.DataFrame, Any]) -> None:
    X, _ = trained
    mlops_nb.score(alice, deployed["deployment"], X, passphrase="grape", batch_size=50)
    watched = mlops_nb.monitoring(alice, deployed["deployment"])
    assert watched.model_id == deployed["experiment"].id
    assert watched.summary["rows_scored"] >= len(X)
    assert watched.operational["successful_rows"].sum() >= len(X)
    assert isinstance(watched.operational.index, pd.DatetimeIndex) and str(watched.operational.index.tz) == "UTC"
    assert set(watched.predictions["value"]) <= {"0", "1", "2"} and watched.predictions["rows"].sum() >= len(X)
    assert set(watched.drift.index) == set(X.columns) and set(watched.drift["level"]) <= {"low", "medium", "high"}
    figure = watched.plot()
    titles = [axes.get_title() for axes in figure.axes]
    assert titles == ["Scoring latency", "Rows scored", "Predictions", "Drift per feature (PSI)"]
    drift_axes = figure.axes[3]
    assert {label.get_text() for label in drift_axes.get_yticklabels()} == set(X.columns)
    assert len(figure.axes[1].patches) >= 2  # bars of scored and failed rows
    assert figure.axes[1].get_xlabel() == "time (UTC)"
    assert "data:image/png;base64," in watched._repr_html_()
    with pytest.raises(ValueError, match="serves the models"):
        mlops_nb.monitoring(alice, deployed["deployment"], model="someone-else")


def test_logs_as_a_frame(alice: Any, deployed: dict[str, Any]) -> None:
    logs = mlops_nb.deployment_logs(alice, deployed["deployment"])
    assert list(logs.columns) == ["time", "source", "message"] and str(logs["time"].dt.tz) == "UTC"
    assert {"lifecycle", "scorer forest#0"} <= set(logs["source"])
    assert logs["message"].str.contains("HEALTHY").any()
    assert len(mlops_nb.deployment_logs(alice, deployed["deployment"], max_lines=3)) == 3


def test_wait_prints_a_line_per_state_in_a_terminal(alice: Any, project: str, deployed: dict[str, Any]) -> None:
    shell = InteractiveShell.instance()
    shell.user_ns.update(alice=alice, mlops_nb=mlops_nb, registered=deployed["registered"])
    try:
        result = shell.run_cell("d = mlops_nb.deploy(alice, registered.version, name='second')\n"
                                "status = mlops_nb.wait_for_healthy(alice, d.id, interval=0.2)", store_history=False)
        result.raise_error()
    finally:
        shell.user_ns.pop("alice", None)
    status = shell.user_ns["status"]
    assert status.state.value == "HEALTHY"
    # By name, with its project: the same deployment.
    assert mlops_nb.wait_for_healthy(alice, "second", project="Wine").deployment_id == status.deployment_id
    alice.deployer.deployment.delete_deployment(id=status.deployment_id)


def test_wait_output(capsys: pytest.CaptureFixture[str], alice: Any, deployed: dict[str, Any]) -> None:
    status = mlops_nb.wait_for_healthy(alice, deployed["status"], interval=0.1)
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and out[0].endswith(f"{status.deployment_id}: HEALTHY {status.message}")
    timeline = _Timeline("d-1")
    for state in ("PREPARING", "LAUNCHING", "LAUNCHING", "HEALTHY"):
        timeline.see(type(status)(state=state, message=f"{state.lower()} now"))
    assert [s for s, _, _ in timeline.states] == ["PREPARING", "LAUNCHING", "HEALTHY"]
    shown = timeline.html()
    assert shown.count("<tr>") == 3 and ">healthy</span>" in shown and "launching now" in shown


def test_a_model_that_cannot_load_raises_deployment_failed(alice: Any, project: str) -> None:
    broken = experiment_with(alice, project, zip_of({
        "MLmodel": "flavors:\n  python_function:\n    loader_module: mlops_nb_missing_flavor\n",
        "model.pkl": b"\x80\x04N."}), name="broken")
    deployment = mlops_nb.deploy(alice, broken)
    with pytest.raises(mlops_nb.DeploymentFailed) as failed:
        mlops_nb.wait_for_healthy(alice, deployment, interval=0.2)
    assert "missing dependency: No module named 'mlops_nb_missing_flavor'" in failed.value.reason
    assert any("ModuleNotFoundError" in line for line in failed.value.logs)
    assert "last log lines:" in str(failed.value)
    assert pickle.loads(pickle.dumps(failed.value)).reason == failed.value.reason


def test_wait_times_out_with_an_error_that_is_a_timeout_error(alice: Any, project: str,
                                                               trained: tuple[pd.DataFrame, Any]) -> None:
    X, model = trained
    experiment = mlops_nb.upload_model(alice, project, model, name="slow", input_example=X.head(2))
    deployment = mlops_nb.deploy(alice, experiment)
    with pytest.raises(TimeoutError) as late:
        mlops_nb.wait_for_healthy(alice, deployment, timeout=0.05, interval=0.01)
    assert isinstance(late.value, mlops_nb.DeploymentTimeout) and late.value.state in ("PREPARING", "LAUNCHING")
    assert "it carries on" in str(late.value)
    assert mlops_nb.wait_for_healthy(alice, deployment).state.value == "HEALTHY"  # and it did
    alice.deployer.deployment.delete_deployment(id=deployment.id)


def test_split_and_shadow(alice: Any, deployed: dict[str, Any], trained: tuple[pd.DataFrame, Any]) -> None:
    X, _ = trained
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    pipeline = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, X.index % 3)
    linear = mlops_nb.upload_model(alice, "Wine", pipeline, name="linear", input_example=X.head(3))
    second = mlops_nb.register_model(alice, linear.id, "wine-classifier")  # the model exists: a new version
    assert second.model.id == deployed["registered"].model.id and second.version.version == 2
    split = mlops_nb.deploy_split(alice, [deployed["experiment"], second], weights=[70, 30])
    assert [e.weight for e in split.split_deployment.split_elements] == [70, 30]
    assert split.display_name == "forest / linear"
    shadow = mlops_nb.deploy_shadow(alice, deployed["experiment"], linear)
    assert shadow.shadow_deployment.secondary_element.deployment_composition.experiment_id == linear.id
    for deployment in (split, shadow):
        assert mlops_nb.wait_for_healthy(alice, deployment).state.value == "HEALTHY"
    scored = mlops_nb.score(alice, split, X.head(40))
    assert len(scored) == 40 and np.isin(scored["prediction"].to_numpy(), [0, 1, 2]).all()
    with pytest.raises(ValueError, match="two or more models"):
        mlops_nb.deploy_split(alice, [linear])
    with pytest.raises(ValueError, match="one positive weight per model"):
        mlops_nb.deploy_split(alice, [linear, linear], weights=[1, 0])
    for deployment in (split, shadow):
        alice.deployer.deployment.delete_deployment(id=deployment.id)
