"""List calls as DataFrames, list_all, the username cache and the lookups, against a sandbox on loopback."""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import weakref
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

import pandas as pd
import pytest

import mlops_nb
from mlops_nb.api import API
from mlops_nb.notebook import client as client_module
from mlops_nb.notebook.client import (
    Client,
    RecentCache,
    known_deployment_name,
    known_deployment_status,
    known_experiment_name,
    known_username,
)
from mlops_nb.notebook.frames import (
    FRAME_ATTR,
    ListFrame,
    entity_field,
    frame_columns,
    frame_from_wire,
    list_all,
)
from mlops_nb.notebook.lookup import AmbiguousName, NameNotFound
from mlops_nb.notebook.settings import Settings
from mlops_nb.sandbox import Sandbox
from mlops_nb.sandbox.rpc import timestamp_text
from mlops_nb.wire.client import Client as WireClient
from tests.deploying import composition, deploy, experiment_with, iris_model, wait_for_state
from tests.test_sandbox_artifacts import new_experiment, new_project, uploaded_artifact

STRING = pd.StringDtype()
UTC_TIME = "datetime64[us, UTC]"


def _user_id(client: Any) -> str:
    return client.storage.user.who_am_i().user.id


def _contains(field: str, text: str) -> dict[str, Any]:
    return {"query": {"clause": [{"propertyConstraint": [
        {"property": {"field": field}, "operator": "CONTAINS", "value": {"stringValue": text}}]}]}}


def _insert_projects(sandbox: Sandbox, owner_id: str, prefix: str, count: int) -> set[str]:
    # Straight into the store: thousands of CreateProject calls would make this test slow
    # while testing nothing more than the few projects the other tests create through the API.
    start = datetime(2024, 1, 1, tzinfo=timezone.utc)
    ids = set()
    with sandbox.store.transaction():
        for i in range(count):
            created = timestamp_text(start + timedelta(seconds=i))
            project = {"id": f"{prefix}-{i:06d}", "displayName": f"{prefix} {i}", "ownerId": owner_id,
                       "createdTime": created, "lastModifiedTime": created}
            sandbox.store.put("project", project, owner_id=owner_id)
            ids.add(project["id"])
    return ids


@pytest.fixture(scope="module")
def project(alice: Any) -> Any:
    alice.storage.project.create_project(project={"display_name": "frames other"})
    return alice.storage.project.create_project(
        project={"display_name": "frames", "description": "a project for the frame tests"}).project


@pytest.fixture(scope="module")
def experiment(alice: Any, project: Any) -> Any:
    return alice.storage.experiment.create_experiment(
        project_id=project.id,
        experiment={"display_name": "churn model", "status": "FINISHED", "parameters": {"target_column": "churned"}},
    ).experiment


# -- the frame of one page ------------------------------------------------------------------


def test_notebook_client_is_the_package_client(alice: Any) -> None:
    assert mlops_nb.Client is Client and mlops_nb.client is Client
    assert isinstance(alice, Client) and isinstance(alice, WireClient)
    assert mlops_nb.list_all is list_all
    for name in ("find_project", "find_experiment", "find_registered_model", "find_deployment", "runtimes_for",
                 "artifact_types", "runtimes", "deployable_artifact", "artifact_compositions"):
        assert name in mlops_nb.__all__ and callable(getattr(mlops_nb, name))


def test_list_users_gives_a_typed_frame_and_the_seed_idiom(alice: Any) -> None:
    frame = alice.storage.user.list_users(mlops_nb.StorageListUsersRequest())
    assert isinstance(frame, pd.DataFrame) and isinstance(frame, ListFrame)
    assert list(frame.columns) == ["id", "username", "primary_email", "created_time", "idp_id"]
    assert frame["id"].dtype == STRING and frame["username"].dtype == STRING
    assert str(frame["created_time"].dtype) == UTC_TIME
    assert "alice" in set(frame["username"])
    users = frame.user
    assert all(type(u).__name__ == "StorageUser" for u in users)
    assert [u.id for u in users] == list(frame["id"])
    assert type(frame.response).__name__ == "StorageListUsersResponse"
    assert frame.user is frame.user  # built once
    row = frame[frame["username"] == "alice"].iloc[0]
    typed = next(u for u in users if u.username == "alice")
    assert row["created_time"] == pd.Timestamp(typed.created_time)
    assert row["primary_email"] == typed.primary_email == "alice@example.com"


def test_list_projects_frame_matches_the_typed_entities(alice: Any, project: Any) -> None:
    frame = alice.storage.project.list_projects(mlops_nb.StorageListProjectsRequest())
    assert list(frame.columns) == frame_columns("StorageProject")
    assert dict(frame.dtypes.astype(str)) == {
        "id": "string", "display_name": "string", "owner_id": "string", "created_time": UTC_TIME,
        "last_modified_time": UTC_TIME, "description": "string"}
    assert frame.user_project_count == len(frame) >= 2
    mine = frame.set_index("id").loc[project.id]
    assert mine["display_name"] == "frames" and mine["description"] == "a project for the frame tests"
    other = frame[frame["display_name"] == "frames other"].iloc[0]
    assert other["description"] == ""  # absent on the wire: the proto3 default, as the message says
    assert frame.project[list(frame["id"]).index(project.id)] == project
    assert frame.entities == frame.project


def test_an_empty_page_has_the_columns_and_dtypes(alice: Any, experiment: Any) -> None:
    empty = alice.storage.project.list_projects(filter=_contains("display_name", "no such project"))
    assert len(empty) == 0 and empty.project == []
    assert list(empty.columns) == frame_columns("StorageProject")
    full = alice.storage.project.list_projects()
    assert (empty.dtypes == full.dtypes).all()
    artifacts = alice.storage.artifact.list_entity_artifacts(entity_id=experiment.id)
    assert len(artifacts) == 0
    assert artifacts["size"].dtype == "Int64" and artifacts["md5_digest"].dtype == object
    assert list(artifacts["state"].cat.categories) == list(API.enums["ArtifactArtifactState"])


def test_int64_enum_and_bytes_columns(alice: Any, experiment: Any) -> None:
    created = alice.storage.artifact.create_artifact(
        artifact={"entity_id": experiment.id, "type": "dai/mojo_pipeline"}).artifact
    alice.storage.artifact.upload_artifact(created.id, io.BytesIO(b"x" * 5000))
    frame = alice.storage.artifact.list_entity_artifacts(entity_id=experiment.id)
    row = frame.set_index("id").loc[created.id]
    assert row["size"] == 5000 and frame["size"].dtype == "Int64"
    assert row["state"] == "AVAILABLE" and isinstance(frame["state"].dtype, pd.CategoricalDtype)
    assert row["md5_digest"] == hashlib.md5(b"x" * 5000).digest()
    assert row["md5_digest"] == next(a for a in frame.artifact if a.id == created.id).md5_digest
    assert str(frame["uploaded_time"].dtype) == UTC_TIME


def test_nested_messages_are_flattened(alice: Any, project: Any, experiment: Any) -> None:
    frame = alice.storage.experiment.list_experiments(project_id=project.id)
    row = frame.set_index("id").loc[experiment.id]
    assert row["parameters_target_column"] == "churned"
    assert row["status"] == "FINISHED"
    assert row["tag"] == [] and frame["tag"].dtype == object
    assert list(frame["status"].cat.categories) == list(API.enums["ExperimentExperimentStatus"])


def make_deployments(sandbox: Sandbox, alice: Any, project_name: str) -> tuple[str, str, str]:
    """A project with a single and a split deployment: (project id, single id, split id).

    The single one serves a real MLflow model (HEALTHY once its scorer is up); the split one
    is of a DAI and an H2O-3 MOJO, which the sandbox cannot run (FAILED).
    """
    project_id = new_project(alice, project_name)
    experiments = []
    for artifact_type in ("dai/mojo_pipeline", "h2o3/mojo"):
        experiment_id = new_experiment(alice, project_id, artifact_type)
        uploaded_artifact(alice, experiment_id, artifact_type)
        alice.storage.registered_model_version.create_model_version(
            registered_model_version={"experiment_id": experiment_id}, registered_model_display_name=artifact_type,
            project_id=project_id)
        experiments.append(experiment_id)
    single = deploy(alice, project_id, experiment_with(alice, project_id, iris_model()[0]), display_name="single").id
    split = alice.deployer.deployment.create_deployment(deployment={
        "project_id": project_id, "display_name": "split", "split_deployment": {"split_elements": [
            {**composition(experiments[0], "dai/mojo_pipeline"), "weight": 70},
            {**composition(experiments[1], "h2o3/mojo"), "weight": 30}]}}).deployment.id
    # Waited for with a client of its own: the tests check what alice's client has seen.
    with sandbox.client("alice") as watcher:
        assert wait_for_state(watcher, single, "HEALTHY", "FAILED").state.value == "HEALTHY"
        wait_for_state(watcher, split, "FAILED")
    return project_id, single, split


@pytest.fixture(scope="module")
def deployments(sandbox: Sandbox, alice: Any) -> tuple[str, str, str]:
    return make_deployments(sandbox, alice, "frames deployments")


def test_columns_of_an_absent_nested_message_are_missing(alice: Any, deployments: tuple[str, str, str]) -> None:
    project_id, single, split = deployments
    frame = alice.deployer.deployment.list_project_deployments(project_id=project_id).set_index("id")
    runtime = "single_deployment_deployment_composition_runtime_name"
    assert frame.loc[single, runtime] == "python-scorer_mlflow_39"
    assert pd.isna(frame.loc[split, runtime])
    assert frame[runtime].dtype == STRING
    elements = frame.loc[split, "split_deployment_split_elements"]
    assert [e["weight"] for e in elements] == [70, 30]
    assert frame.loc[single, "split_deployment_split_elements"] is None
    assert frame["single_deployment_kubernetes_resource_spec_replicas"].dtype == "Int32"
    statuses = alice.deployer.deployment_status.list_deployment_statuses(project_id=project_id)
    assert set(statuses["state"]) == {"HEALTHY", "FAILED"}
    assert list(statuses["state"].cat.categories) == list(API.enums["DeployDeploymentState"])
    assert statuses["scorer_score_url"].str.endswith("/model/score").all()


def test_every_list_method_has_a_frame_layout() -> None:
    for method in API.methods:
        if not method.is_list:
            continue
        entity = entity_field(method)
        columns = frame_columns(entity.type)
        assert len(columns) == len(set(columns)), method.qualified_name
        empty = frame_from_wire(method, {})
        assert list(empty.columns) == columns and len(empty) == 0


def test_wire_values_read_like_the_messages_read_them() -> None:
    method = API.method("storage.artifact.list_entity_artifacts")
    rows = [
        {"id": "a", "size": "9007199254740993", "state": "AVAILABLE", "md5Digest": "AQI=",
         "createdTime": "2024-05-01T10:00:00.123456789Z"},
        {"id": "b", "state": "SOMETHING_NEWER", "createdTime": "2024-05-01T12:00:00+02:00"},
        {"id": "c", "state": 2},
    ]
    frame = frame_from_wire(method, {"artifact": rows})
    assert frame["size"].tolist() == [9007199254740993, 0, 0]  # exact: no trip through float
    assert frame["state"].tolist() == ["AVAILABLE", "SOMETHING_NEWER", "DELETED"]
    assert list(frame["state"].cat.categories)[-1] == "SOMETHING_NEWER"
    assert frame["md5_digest"].tolist() == [b"\x01\x02", b"", b""]
    assert frame["created_time"].tolist()[:2] == [pd.Timestamp("2024-05-01T10:00:00.123456Z"),
                                                  pd.Timestamp("2024-05-01T10:00:00Z")]
    assert pd.isna(frame["created_time"][2])
    for typed, (_, row) in zip(frame.artifact, frame.iterrows(), strict=True):
        assert typed.size == row["size"] and typed.md5_digest == row["md5_digest"]

    extremes = frame_from_wire(API.method("storage.project.list_projects"), {"project": [
        {"createdTime": "0001-01-01T00:00:00Z"}, {"createdTime": "9999-12-31T23:59:59.999999Z"}]})
    assert [t.year for t in extremes["created_time"]] == [1, 9999]  # proto's whole range, on pandas 2 too

    metrics = frame_from_wire(API.method("storage.experiment.list_experiment_metrics"),
                              {"metric": [{"value": {"doubleValue": "NaN"}}, {"value": {"doubleValue": 0.5}},
                                          {"value": {}}, {}]})
    doubles = metrics["value_double_value"].tolist()
    assert pd.isna(doubles[0]) and doubles[1:3] == [0.5, 0.0] and pd.isna(doubles[3])


def test_metadata_comes_out_as_typed_columns_to_sort_by(alice: Any) -> None:
    project = alice.storage.project.create_project(project={"display_name": "frames metadata"}).project
    scored = {"gbm": 0.91, "glm": 0.78, "rf": 0.85}
    for name, auc in scored.items():
        alice.storage.experiment.create_experiment(project_id=project.id, experiment={
            "display_name": name, "metadata": {"values": {
                "auc": {"double_value": auc}, "source": {"string_value": f"{name} notebook"},
                "trained": {"timestamp_value": "2024-05-01T12:00:00Z"}, "rows": {"int64_value": "12000"},
                "tuned": {"bool_value": name == "gbm"}}}})
    alice.storage.experiment.create_experiment(project_id=project.id, experiment={"display_name": "unscored"})

    listed = alice.storage.experiment.list_experiments(project_id=project.id, response_metadata={"pattern": ["%"]})
    best_first = listed.sort_values("metadata.auc", ascending=False)
    assert best_first["display_name"].tolist() == ["gbm", "rf", "glm", "unscored"]  # missing sorts last
    assert best_first["metadata.auc"].tolist()[:3] == [0.91, 0.85, 0.78] and pd.isna(best_first["metadata.auc"].iloc[3])
    dtypes = listed.dtypes
    assert (dtypes["metadata.auc"], dtypes["metadata.source"], dtypes["metadata.trained"]) == ("float64", STRING, UTC_TIME)
    assert (dtypes["metadata.rows"], dtypes["metadata.tuned"]) == ("Int64", "boolean")
    by_name = listed.set_index("display_name")
    assert by_name.loc["gbm", "metadata.trained"] == pd.Timestamp("2024-05-01T12:00:00Z")
    assert by_name.loc["rf", "metadata.rows"] == 12000 and by_name.loc["rf", "metadata.source"] == "rf notebook"
    # The raw map stays, just before its columns, and the typed view is there too.
    columns = list(listed.columns)
    assert columns[columns.index("metadata_values") + 1:][:5] == [
        "metadata.auc", "metadata.rows", "metadata.source", "metadata.trained", "metadata.tuned"]
    assert by_name.loc["glm", "metadata_values"]["auc"] == {"double_value": 0.78}
    # The raw map is a read-only view of the received JSON, equal to the decoded dict, and
    # exports, pickles and shows as one.
    raw = by_name.loc["rf", "metadata_values"]
    decoded = next(e for e in listed.experiment if e.display_name == "rf").metadata.to_dict()["values"]
    assert isinstance(raw, Mapping) and raw == decoded and dict(raw) == decoded and repr(raw) == repr(decoded)
    assert raw["rows"] == {"int64_value": 12000}  # int64 decoded from its JSON string
    with pytest.raises(TypeError):
        raw["auc"] = {"double_value": 1.0}  # type: ignore[index]
    assert json.loads(listed[["display_name", "metadata_values"]].to_json(orient="records"))[
        list(listed["display_name"]).index("rf")]["metadata_values"]["rows"] == {"int64_value": 12000}
    assert pickle.loads(pickle.dumps(listed))["metadata_values"].tolist() == listed["metadata_values"].tolist()
    assert {e.display_name: e.metadata.values["auc"].double_value
            for e in listed.experiment if "auc" in e.metadata.values} == scored

    # Only the keys a request asks for come back, and so only their columns.
    some = alice.storage.experiment.list_experiments(project_id=project.id, response_metadata={"pattern": ["auc"]})
    assert [c for c in some.columns if c.startswith("metadata.")] == ["metadata.auc"]
    plain = alice.storage.experiment.list_experiments(project_id=project.id)
    assert not [c for c in plain.columns if c.startswith("metadata.")]
    every = list_all(alice.storage.experiment.list_experiments, project_id=project.id, page_size=1,
                     response_metadata={"pattern": ["%"]}, progress=False)
    assert every.sort_values("metadata.auc")["display_name"].tolist() == ["glm", "rf", "gbm", "unscored"]


def test_metadata_columns_of_mixed_and_other_kinds() -> None:
    method = API.method("storage.experiment.list_experiments")
    values = [{"n": {"int64Value": "3"}, "mixed": {"stringValue": "x"}, "took": {"durationValue": "1.5s"},
               "blob": {"protoValue": {"@type": "type.googleapis.com/x"}}, "empty": {}},
              {"n": {"doubleValue": 0.5}, "mixed": {"doubleValue": 1.0}, "id": {"idValue": "e-1"},
               "spec": {"jsonValue": '{"a": 1}'}}]
    frame = frame_from_wire(method, {"experiment": [{"id": f"e-{i}", "metadata": {"values": v}}
                                                    for i, v in enumerate(values)]})
    assert frame["metadata.n"].dtype == "float64" and frame["metadata.n"].tolist() == [3.0, 0.5]
    assert frame["metadata.mixed"].dtype == object and frame["metadata.mixed"].tolist() == ["x", 1.0]
    assert frame["metadata.took"].tolist()[0] == pd.Timedelta(seconds=1.5)
    assert frame["metadata.id"].dtype == STRING and frame["metadata.spec"].tolist()[1] == '{"a": 1}'
    assert frame["metadata.blob"].dtype == object and "metadata.empty" not in frame.columns


def test_frames_derived_by_pandas_are_plain_dataframes(alice: Any, project: Any) -> None:
    frame = alice.storage.project.list_projects()
    for derived in (frame.head(), frame[frame["display_name"] == "frames"], frame.copy(),
                    frame.sort_values("display_name"), frame[["id", "display_name"]]):
        assert type(derived) is pd.DataFrame
        assert derived.attrs[FRAME_ATTR] == "StorageProject"
    with pytest.raises(AttributeError):
        frame.head().project  # noqa: B018  (the typed view belongs to the call's own result)


def test_list_frames_pickle_with_their_response(alice: Any, project: Any) -> None:
    import pickle

    frame = alice.storage.project.list_projects()
    copy = pickle.loads(pickle.dumps(frame))
    assert isinstance(copy, ListFrame)
    pd.testing.assert_frame_equal(copy, frame)
    assert copy.project == frame.project


# -- every page -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bulk(sandbox: Sandbox, bob: Any) -> set[str]:
    return _insert_projects(sandbox, _user_id(bob), "bulk", 2500)


def test_list_all_fetches_every_page(bob: Any, bulk: set[str], capsys: pytest.CaptureFixture[str]) -> None:
    frame = list_all(bob.storage.project.list_projects, filter=_contains("display_name", "bulk "), page_size=400)
    assert isinstance(frame, ListFrame) and len(frame) == len(bulk) == 2500
    assert set(frame["id"]) == bulk and frame["id"].is_unique
    assert [p.id for p in frame.project] == list(frame["id"])
    assert str(frame["created_time"].dtype) == UTC_TIME
    assert frame.paging is None or not frame.paging.next_page_token
    err = capsys.readouterr().err
    assert "storage.project.list_projects: 2,500 rows, 7 pages" in err


def test_list_all_limit_request_forms_and_quiet(bob: Any, bulk: set[str], capsys: pytest.CaptureFixture[str]) -> None:
    request = mlops_nb.StorageListProjectsRequest(filter=_contains("display_name", "bulk "),
                                                  paging={"page_size": 3})
    limited = list_all(bob.storage.project.list_projects, request, limit=1234, page_size=500, progress=False)
    assert len(limited) == 1234 and set(limited["id"]) <= bulk
    assert request.paging.page_size == 3  # the caller's request is left alone
    as_dict = list_all(bob.storage.project.list_projects, {"filter": _contains("display_name", "bulk 24")},
                       progress=False)
    assert set(as_dict["display_name"]) == {f"bulk {n}" for n in range(2500) if "bulk 24" in f"bulk {n}"}
    assert capsys.readouterr().err == ""
    one_page = list_all(bob.storage.project.list_projects, limit=5)
    assert len(one_page) == 5 and capsys.readouterr().err == ""  # one page: no progress line


def test_list_all_with_flat_paging_and_without_paging(alice: Any) -> None:
    profiles = list_all(alice.deployer.environment.list_deployment_profiles, page_size=1, progress=False)
    assert len(profiles) == len(alice.deployer.environment.list_deployment_profiles()) >= 2
    assert profiles["name"].is_unique
    compositions = list_all(alice.deployer.composition.list_artifact_compositions)
    assert len(compositions) == len(alice.deployer.composition.list_artifact_compositions())


def test_list_all_pages_rest_methods_through_the_query_and_stops_on_a_repeated_token() -> None:
    # The sandbox has no model-monitoring service; a canned answer on loopback stands in,
    # and answering every page alike also shows list_all refusing to loop forever.
    from tests.capture import CaptureServer

    with CaptureServer() as server:
        server.respond("/model-monitoring/v1/deployment",
                       {"deployment": [{"id": "d-1"}], "totalDeployments": "2", "nextPageToken": "next"})
        client = Client(server.url, lambda: "token", generation="legacy")
        with pytest.raises(RuntimeError, match="same page token twice"):
            list_all(client.model_monitoring.monitoring_service.list_monitored_deployments, page_size=1,
                     order_by="name", progress=False)
        first, second = (dict(r.query) for r in server.requests)
        assert first == {"pageSize": "1", "orderBy": "name"}
        assert second == {"pageSize": "1", "orderBy": "name", "pageToken": "next"}


def test_list_all_works_with_the_wire_client(sandbox: Sandbox, bulk: set[str]) -> None:
    wire = WireClient(sandbox.gateway_url, sandbox.token_provider("bob"))
    frame = list_all(wire.storage.project.list_projects, filter=_contains("display_name", "bulk "),
                     page_size=1000, progress=False)
    assert set(frame["id"]) == bulk


def test_list_all_stops_cleanly_on_keyboard_interrupt(sandbox: Sandbox, bulk: set[str]) -> None:
    client = sandbox.client("bob")
    calls = 0
    real_call = client._call

    def interrupted_on_the_third_page(*args: Any) -> Any:
        # Stands in for Ctrl-C (a kernel interrupt) arriving during the third request.
        nonlocal calls
        calls += 1
        if calls == 3:
            raise KeyboardInterrupt
        return real_call(*args)

    client._call = interrupted_on_the_third_page
    with pytest.warns(RuntimeWarning, match="interrupted after 1,000 rows"):
        frame = list_all(client.storage.project.list_projects, filter=_contains("display_name", "bulk "),
                         page_size=500)
    assert len(frame) == 1000 and frame["id"].is_unique


def test_list_all_refuses_what_is_not_a_list_method(alice: Any) -> None:
    with pytest.raises(TypeError, match="bound list method"):
        list_all(alice.storage.project.get_project)
    with pytest.raises(TypeError, match="bound list method"):
        list_all(lambda: None)
    with pytest.raises(TypeError, match="not both"):
        list_all(alice.storage.project.list_projects, {}, filter={})


# -- usernames ---------------------------------------------------------------------------------


def test_clients_remember_the_usernames_and_statuses_they_see(
        sandbox: Sandbox, deployments: tuple[str, str, str]) -> None:
    client = sandbox.client("alice")
    me = client.storage.user.who_am_i().user
    assert client.usernames.get(me.id) == "alice" and known_username(me.id) == "alice"
    other = sandbox.client("bob")
    bob_id = other.storage.user.who_am_i().user.id
    fresh = sandbox.client("alice")
    assert bob_id not in fresh.usernames
    fresh.storage.user.list_users()
    assert fresh.usernames.get(bob_id) == "bob"
    fresh.storage.user.batch_get_users(i_ds=[bob_id])
    assert len(fresh.usernames) >= 2
    project_id, single, split = deployments
    assert single not in fresh.deployment_statuses
    fresh.deployer.deployment_status.list_deployment_statuses(project_id=project_id)
    assert fresh.deployment_statuses.get(split)["state"] == "FAILED"
    assert known_deployment_status(split).state == "FAILED"


def test_a_name_no_client_has_seen_is_asked_for_once(sandbox: Sandbox, deployments: tuple[str, str, str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    project_id, single, _ = deployments
    fresh = sandbox.client("alice")
    me = sandbox.client("alice").storage.user.who_am_i().user
    experiment_id = fresh.storage.deployment.get_deployment(deployment_id=single).deployment.experiment_id
    # Only the fresh client is live, and it has seen no names: each is asked for, once.
    monkeypatch.setattr(client_module, "_CLIENTS", weakref.WeakSet([fresh]))
    expected_name = fresh.storage.experiment.get_experiment(id=experiment_id).experiment.display_name
    fresh.experiment_names = RecentCache()
    assert known_username(me.id) == "alice"
    assert known_experiment_name(experiment_id) == expected_name
    assert known_deployment_name(single) == sandbox.client("alice").deployer.deployment.list_project_deployments(
        project_id=project_id).set_index("id").loc[single, "display_name"]
    assert known_experiment_name("no-such-experiment") is None
    # Remembered, the names and the miss: no more calls.
    calls: list[str] = []
    monkeypatch.setattr(fresh._transport, "request", _counting(fresh._transport.request, calls))
    assert known_username(me.id) == "alice" and known_experiment_name(experiment_id) == expected_name
    assert known_deployment_name(single) and known_experiment_name("no-such-experiment") is None
    assert calls == []


def _counting(request: Any, calls: list[str]) -> Any:
    def counted(verb: str, path: str, **kwargs: Any) -> Any:
        calls.append(path)
        return request(verb, path, **kwargs)

    return counted


def test_recent_cache_keeps_the_latest() -> None:
    cache: RecentCache[str] = RecentCache(capacity=2)
    for key in ("a", "b", "a", "c"):
        cache.record(key, key.upper())
    cache.record("", "ignored")
    cache.record("d-less", None)
    assert "b" not in cache and cache.get("a") == "A" and cache.get("c") == "C" and len(cache) == 2


# -- lookups -----------------------------------------------------------------------------------


def test_find_project_by_id_or_name(alice: Any, project: Any) -> None:
    assert mlops_nb.find_project(alice, project.id) == project
    assert mlops_nb.find_project(alice, "frames") == project
    alice.storage.project.create_project(project={"display_name": "twin"})
    alice.storage.project.create_project(project={"display_name": "twin"})
    with pytest.raises(AmbiguousName) as ambiguous:
        mlops_nb.find_project(alice, "twin")
    assert isinstance(ambiguous.value, LookupError) and len(ambiguous.value.candidates) == 2
    for candidate in ambiguous.value.candidates:
        assert candidate in str(ambiguous.value)
    with pytest.raises(NameNotFound, match="similar names:.*'frames'") as unknown:
        mlops_nb.find_project(alice, "frame")
    assert isinstance(unknown.value, LookupError)
    with pytest.raises(NameNotFound):
        mlops_nb.find_project(alice, "nothing like it")


def test_find_entities_inside_a_project(alice: Any, bob: Any, project: Any, experiment: Any) -> None:
    assert mlops_nb.find_experiment(alice, "frames", "churn model").id == experiment.id
    assert mlops_nb.find_experiment(alice, project, experiment.id).id == experiment.id
    model = alice.storage.registered_model.create_registered_model(
        registered_model={"display_name": "churn", "project_id": project.id}).registered_model
    assert mlops_nb.find_registered_model(alice, project.id, "churn").id == model.id
    with pytest.raises(NameNotFound, match="in project"):
        mlops_nb.find_registered_model(alice, project, "nope")
    with pytest.raises(NameNotFound):
        mlops_nb.find_project(bob, "frames")  # not bob's to see


def test_find_deployment(alice: Any, deployments: tuple[str, str, str]) -> None:
    project = mlops_nb.find_project(alice, deployments[0])
    single = mlops_nb.find_deployment(alice, project, "single")
    assert type(single).__name__ == "DeployDeployment" and single.display_name == "single"
    assert mlops_nb.find_deployment(alice, project.id, single.id).id == single.id


# -- settings ----------------------------------------------------------------------------------


def test_settings_refuse_nonsense() -> None:
    from traitlets import TraitError

    settings = Settings()
    assert settings.interactive_tables is True and settings.max_rows >= 1
    for name, value in (("max_rows", 0), ("page_size", -1), ("timeout", 0)):
        with pytest.raises(TraitError):
            setattr(settings, name, value)
    assert all(settings.trait_metadata(name, "config") for name in settings.trait_names())


def test_client_timeout_defaults_to_the_setting(sandbox: Sandbox) -> None:
    from mlops_nb.notebook.settings import settings

    before = settings.timeout
    settings.timeout = 12.5
    try:
        assert sandbox.client("alice")._transport.timeout == 12.5
        assert sandbox.client("alice", timeout=3)._transport.timeout == 3
    finally:
        settings.timeout = before
