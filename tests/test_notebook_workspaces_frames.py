"""The workspaces generation in the notebook layer: list calls as typed frames, entities as cards.

The first part builds frames and cards from wire JSON shaped as h2o-mlops 1.6.5's models
(``h2o_mlops/_client/models/*.py``: ``V1Workspace``, ``V2Deployment``, ``V1Job``, ...): no server is
needed to check what a response becomes. The second part runs the notebook client, forced to
``generation="workspaces"``, against a real sandbox's workspaces face over 127.0.0.1.
"""

from __future__ import annotations

import pickle
from datetime import datetime, timezone
from typing import Any

import pandas as pd
import pytest

from mlops_nb.api import description
from mlops_nb.notebook import display
from mlops_nb.notebook.client import known_deployment_status, resource_id
from mlops_nb.notebook.display import card_html, card_text, frame_html, has_card
from mlops_nb.notebook.frames import (
    FRAME_ATTR,
    GENERATION_ATTR,
    HIDDEN,
    ListPage,
    entity_field,
    frame_columns,
    frame_from_wire,
    list_all,
)
from mlops_nb.notebook.query import QueryError, request_fields
from mlops_nb.wire.messages import generation_of, message_class

WS = description("workspaces")
TS = "datetime64[us, UTC]"
NOW = datetime(2026, 3, 10, 12, 0, tzinfo=timezone.utc)
PASSPHRASE = "open-sesame-4711"
API_KEY = "mlops-key-8d1f0c"
AWS_SECRET = "aws-secret-77ab"


def W(name: str) -> Any:  # noqa: N802  (a class factory, named as the classes are)
    return message_class(name, "workspaces")


# -- wire JSON as 1.6.5's models hold it --------------------------------------------------------

WORKSPACE = {
    "name": "workspaces/p1", "displayName": "Churn <team>", "description": "churn models",
    "annotations": {"team": "risk"}, "createTime": "2026-03-01T10:00:00.123456789+02:00",
    "updateTime": "2026-03-02T10:00:00Z", "creator": "users/u1", "tags": ["prod"], "labels": ["risk"],
}
COMPOSITION = {"experimentId": "e1", "deployableArtifactType": "python/mlflow", "artifactProcessor": "mlflow_processor",
               "runtime": "mlflow_runtime_py312", "runtimeImage": "mlflow-py312"}
DEPLOYMENT = {
    "name": "workspaces/p1/deployments/d1", "displayName": "churn-scorer", "description": "scores churn",
    "etag": "7", "createTime": "2026-03-03T08:00:00Z", "updateTime": "2026-03-04T08:00:00.5Z", "creator": "users/u1",
    "single": {"deploymentComposition": COMPOSITION,
               "kubernetesResourceSpec": {"kubernetesResourceRequirements": {"limits": {"cpu": "1"}}, "replicas": 2},
               "runningReplicas": 2},
    "security": {"passphrase": {"passphrase": PASSPHRASE, "hashAlgorithm": "PLAINTEXT"}},
    "securities": [{"apiKey": {"plaintext": API_KEY, "prefix": "mlops"}, "displayName": "key"}],
    "monitoringOptions": {"enabled": True, "baselineSource": {"path": "s3://b/base.csv",
                                                              "cred": {"aws": {"secretToken": AWS_SECRET,
                                                                               "region": "eu-west-1"}}}},
    "paused": False, "canPause": True,
}
SPLIT = {
    "name": "workspaces/p1/deployments/d2", "displayName": "ab-test", "createTime": "2026-03-05T08:00:00Z",
    "split": {"splitElements": [
        {"deploymentComposition": {**COMPOSITION, "experimentId": "e1"}, "weight": 3},
        {"deploymentComposition": {**COMPOSITION, "experimentId": "e2"}, "weight": 1},
    ]},
}
STATUS = {"name": "workspaces/p1/deployments/d1/status", "state": "HEALTHY", "message": "running",
          "updateTime": "2026-03-10T11:00:00Z", "updatesAllowed": True}
FAILED_STATUS = {"name": "workspaces/p1/deployments/d2/status", "state": "FAILED", "message": "image pull failed",
                 "updateTime": "2026-03-10T11:59:30Z",
                 "errorDetails": {"summary": {"primaryFailureType": "ImagePullBackOff", "affectedPods": 2,
                                              "totalPods": 2}}}
ENDPOINT = {"name": "workspaces/p1/endpoints/x1", "displayName": "churn", "path": "churn",
            "target": "workspaces/p1/deployments/d1", "effectiveTarget": "workspaces/p1/deployments/d1",
            "state": "ENDPOINT_STATE_READY", "createTime": "2026-03-06T08:00:00Z"}
RUNTIME = {"name": "workspaces/-/runtimes/mlflow_runtime_py312", "displayName": "MLflow Python 3.12",
           "modelType": "mlflow", "runtimeImage": "workspaces/-/runtimeImages/mlflow-py312",
           "scoringEndpoint": "/model/score", "state": "ACTIVE", "stateUpdateTime": "2026-01-01T00:00:00Z",
           "environmentVariables": {"A": "1"}, "selector": {}}
DAI_RUNTIME = {"name": "workspaces/-/runtimes/dai_mojo", "displayName": "DAI MOJO", "modelType": "dai/mojo_pipeline",
               "state": "DISABLED", "stateReason": "the sandbox runs no Driverless AI models"}
RUNTIME_IMAGE = {"name": "workspaces/-/runtimeImages/mlflow-py312", "displayName": "MLflow 3.12",
                 "dockerImage": "h2oai/mlflow:3.12", "currentVersion": "1", "state": "ACTIVE"}
JOB = {
    "name": "workspaces/p1/jobs/j1", "displayName": "nightly",
    "source": {"spec": "sourceSpecs/s3", "config": '{"bucket": "in"}', "location": "s3://in/data.csv",
               "mimeType": "text/csv"},
    "sink": {"spec": "sinkSpecs/s3", "config": '{"bucket": "out"}', "location": "s3://out/", "mimeType": "text/csv"},
    "instanceSpec": {"deploymentComposition": {"experimentId": "e1", "artifactType": "python/mlflow",
                                               "runtime": "mlflow_runtime_py312"},
                     "resourceSpec": {"replicas": 1}},
    "batchParameters": {"miniBatchSize": 100},
    "state": "FAILED", "creator": "users/u1", "createTime": "2026-03-09T00:00:00Z",
    "startTime": "2026-03-09T00:01:00Z", "endTime": "2026-03-09T00:05:00Z",
    "completionStats": {"processedRows": "9000", "errorRowsCount": "12", "error": "column <age> missing"},
    "monitoringState": "MONITORING_STATE_NONE",
}
AGGREGATE = {"id": "a1", "column": "age", "deploymentId": "d1", "startTime": "2026-03-10T10:00:00Z",
             "segmentDuration": "3600s",
             "numericalAggregate": {"binEdges": [0, 30, 60], "binCount": [4, 6], "mean": 33.5, "min": 1, "max": 59},
             "missingValues": {"rowCount": 1}, "logicalType": "NUMERICAL", "experimentIds": ["e1"]}
CATEGORICAL = {"id": "a2", "column": "plan", "deploymentId": "d1", "startTime": "2026-03-10T10:00:00Z",
               "categoricalAggregate": {"valueCounts": {"basic": 3, "pro": 7}}, "logicalType": "CATEGORICAL"}
BASELINE = {"id": "b1", "column": "age", "logicalType": "NUMERICAL",
            "numericalAggregate": {"binEdges": [0, 30, 60], "binCount": [5, 5]}, "deploymentId": "d1"}
USER = {"name": "users/u1", "displayName": "Alice Adams", "active": True, "emails": [{"address": "alice@example.com"}],
        "loginPrincipal": "alice"}

# method -> (its list response, the columns whose dtypes the description sets, as pandas spells them)
LISTS: dict[str, tuple[dict[str, Any], dict[str, str]]] = {
    "authz.workspace.list_workspaces": (
        {"workspaces": [WORKSPACE], "nextPageToken": "next"},
        {"name": "string", "display_name": "string", "create_time": TS, "update_time": TS, "delete_time": TS,
         "tags": "object", "annotations": "object"}),
    "deployer.deployment.list_deployments": (
        {"deployments": [DEPLOYMENT, SPLIT]},
        {"single_deployment_composition_runtime": "string", "single_kubernetes_resource_spec_replicas": "Int32",
         "single_running_replicas": "Int32", "paused": "boolean", "create_time": TS,
         "split_split_elements": "object", "security_passphrase_hash_algorithm": "category",
         "monitoring_options_enabled": "boolean"}),
    "deployer.status.batch_get_deployment_statuses": (
        {"deploymentStatuses": [STATUS, FAILED_STATUS]},
        {"state": "category", "update_time": TS, "updates_allowed": "boolean",
         "error_details_summary_affected_pods": "Int32", "last_update_outcome": "category"}),
    "deployer.endpoint.list_endpoints": (
        {"endpoints": [ENDPOINT]}, {"path": "string", "state": "category", "create_time": TS}),
    "runtime.runtime.list_runtimes": (
        {"runtimes": [RUNTIME, DAI_RUNTIME]},
        {"state": "category", "state_update_time": TS, "environment_variables": "object",
         "data_volume_read_only": "boolean", "security_context_privileged": "boolean"}),
    "runtime.runtime_image.list_runtime_images": (
        {"runtimeImages": [RUNTIME_IMAGE]}, {"docker_image": "string", "state": "category"}),
    "batch.job.list_jobs": (
        {"jobs": [JOB]},
        {"state": "category", "start_time": TS, "end_time": TS, "completion_stats_error_rows_count": "Int64",
         "completion_stats_processed_rows": "string", "batch_parameters_mini_batch_size": "Int32",
         "monitoring_state": "category", "instance_spec_deployment_composition_experiment_id": "string"}),
    "monitoring.aggregate.list_aggregates": (
        {"aggregates": [AGGREGATE, CATEGORICAL]},
        {"start_time": TS, "numerical_aggregate_bin_edges": "object", "numerical_aggregate_mean": "float64",
         "missing_values_row_count": "Int32", "logical_type": "category", "is_model_output": "boolean",
         "categorical_aggregate_value_counts": "object", "experiment_ids": "object"}),
    "monitoring.aggregate.list_baseline_aggregates": (
        {"baselineAggregates": [BASELINE]}, {"column": "string", "numerical_aggregate_bin_count": "object"}),
    "authz.user.list_users": (
        {"users": [USER]}, {"login_principal": "string", "active": "boolean", "emails": "object"}),
}


@pytest.mark.parametrize("qualified", LISTS)
def test_workspaces_list_responses_are_frames_typed_by_the_description(qualified: str) -> None:
    payload, dtypes = LISTS[qualified]
    method = WS.method(qualified)
    entity = entity_field(method)
    frame = frame_from_wire(method, payload)
    assert list(frame.columns) == frame_columns(entity.type, "workspaces")
    assert len(frame) == len(payload[entity.json])
    assert {c: str(frame[c].dtype) for c in dtypes} == dtypes
    assert frame.attrs[FRAME_ATTR] == entity.type and frame.attrs[GENERATION_ATTR] == "workspaces"
    # An empty page has the same columns and dtypes (they come from the description, not the data).
    empty = frame_from_wire(method, {})
    assert list(empty.columns) == list(frame.columns) and len(empty) == 0
    same = [c for c in frame.columns if not isinstance(frame[c].dtype, pd.CategoricalDtype)]
    assert (empty[same].dtypes == frame[same].dtypes).all()
    # The typed view: the workspaces generation's classes, built from the JSON as received.
    entities = frame.entities
    assert [type(e).__name__ for e in entities] == [entity.type] * len(frame)
    assert all(generation_of(e) == "workspaces" for e in entities)
    assert entities[0].to_wire() == W(entity.type).from_wire(payload[entity.json][0]).to_wire()


def test_every_workspaces_list_method_has_a_frame_layout() -> None:
    listed = [m for m in WS.methods if m.is_list]
    assert len(listed) > 40
    for method in listed:
        entity = entity_field(method)
        columns = frame_columns(entity.type, "workspaces")
        assert len(columns) == len(set(columns)), method.qualified_name
        empty = frame_from_wire(method, {})
        assert list(empty.columns) == columns and len(empty) == 0


def test_times_are_utc_enums_are_categories_of_the_description_and_ids_stay_text() -> None:
    workspaces = frame_from_wire(WS.method("authz.workspace.list_workspaces"), LISTS["authz.workspace.list_workspaces"][0])
    # 10:00:00.123456789+02:00 is 08:00:00.123456 UTC (microseconds: pandas' unit here)
    assert workspaces.loc[0, "create_time"] == pd.Timestamp("2026-03-01T08:00:00.123456", tz="UTC")
    assert workspaces.loc[0, "name"] == "workspaces/p1" and workspaces.next_page_token == "next"
    jobs = frame_from_wire(WS.method("batch.job.list_jobs"), {"jobs": [JOB, {**JOB, "state": "QUEUED_SOMEWHERE_NEW"}]})
    assert list(jobs["state"].cat.categories[: len(WS.enums["JobState"])]) == list(WS.enums["JobState"])
    # a value a newer server sends is kept, after the known ones
    assert list(jobs["state"]) == ["FAILED", "QUEUED_SOMEWHERE_NEW"]
    assert jobs.loc[0, "completion_stats_error_rows_count"] == 12
    statuses = frame_from_wire(WS.method("deployer.status.batch_get_deployment_statuses"),
                               {"deploymentStatuses": [STATUS, {"name": "workspaces/p1/deployments/d3/status"}]})
    # proto3: an absent enum is its first value; an absent nested message leaves its columns missing
    assert list(statuses["state"]) == ["HEALTHY", "DEPLOYMENT_STATE_UNSPECIFIED"]
    assert statuses["error_details_summary_affected_pods"].isna().all()


def test_maps_of_storage_values_in_workspaces_storage_lists_get_typed_columns() -> None:
    method = WS.method("storage.experiment.list_experiments")
    payload = {"experiment": [{"id": "e1", "displayName": "gbm", "metadata": {"values": {
        "auc": {"doubleValue": 0.91}, "rows": {"int64Value": "1000"}}}}], "paging": {}}
    frame = frame_from_wire(method, payload)
    assert frame["metadata.auc"].tolist() == [0.91] and str(frame["metadata.rows"].dtype) == "Int64"
    cell = frame.loc[0, "metadata_values"]
    assert cell["auc"] == {"double_value": 0.91}
    assert pickle.loads(pickle.dumps(cell)) == cell


def test_list_pages_remember_their_generation() -> None:
    page = ListPage("deployer.deployment.list_deployments", {"deployments": [DEPLOYMENT]}, "workspaces")
    assert page.method is WS.method("deployer.deployment.list_deployments")
    assert type(page.response).__name__ == "V2ListDeploymentsResponse" and generation_of(page.response) == "workspaces"
    # the legacy generation stays the default
    legacy = ListPage("storage.project.list_projects", {"project": [{"id": "p1"}]})
    assert generation_of(legacy.response) == "legacy"


def test_where_and_sort_become_the_rest_lists_filter_and_order_by() -> None:
    method = WS.method("deployer.deployment.list_deployments")
    fields = request_fields(method, "V2Deployment", ["display_name~churn", "paused=false", "creator!=users/u2"],
                            "-create_time")
    assert fields == {"filter": 'display_name : "churn" AND paused = false AND creator != "users/u2"',
                      "order_by": "create_time desc"}
    jobs = request_fields(WS.method("batch.job.list_jobs"), "V1Job", "state=FAILED", "display_name")
    assert jobs == {"filter": "state = FAILED", "order_by": "display_name"}
    with pytest.raises(QueryError, match="does not fit paused"):
        request_fields(method, "V2Deployment", "paused=maybe", None)
    with pytest.raises(QueryError, match="cannot filter"):
        request_fields(WS.method("deployer.composition.list_model_types"), "V2ModelType", "name=x", None)
    # workspaces storage lists keep storage's filter message
    storage = request_fields(WS.method("storage.experiment.list_experiments"), "StorageExperiment",
                             "display_name=gbm", None)
    assert storage["filter"]["query"]["clause"][0]["propertyConstraint"][0]["operator"] == "EQUAL_TO"


# -- secrets -----------------------------------------------------------------------------------


def test_passphrases_keys_and_credentials_never_show_in_frames_tables_or_cards() -> None:
    method = WS.method("deployer.deployment.list_deployments")
    frame = frame_from_wire(method, {"deployments": [DEPLOYMENT, SPLIT]})
    assert frame.loc[0, "security_passphrase_passphrase"] == HIDDEN
    assert pd.isna(frame.loc[1, "security_passphrase_passphrase"])  # no security at all: missing, not hidden
    assert frame.loc[0, "monitoring_options_baseline_source_cred_aws_secret_token"] == HIDDEN
    assert frame.loc[0, "monitoring_options_baseline_source_cred_aws_region"] == "eu-west-1"
    deployment = W("V2Deployment").from_wire(DEPLOYMENT)
    shown = [repr(frame), frame.to_string(), frame_html(frame, columns="all"), repr(deployment),
             card_html(deployment, now=NOW, names={}), card_text(deployment, now=NOW, names={}),
             repr(frame.entities[0])]
    for text in shown:
        for secret in (PASSPHRASE, API_KEY, AWS_SECRET):
            assert secret not in text
    # what they are stays readable to the program that asks for it
    assert frame.entities[0].security.passphrase.passphrase == PASSPHRASE


# -- cards -------------------------------------------------------------------------------------

OFFLINE: dict[str, Any] = {"now": NOW, "usernames": {"u1": "alice"}, "names": {"e1": "gbm-churn", "e2": "glm-churn",
                                                                                 "d1": "churn-scorer"}}


def test_workspace_card_is_the_project_card_with_its_workspace_fields() -> None:
    workspace = W("V1Workspace").from_wire(WORKSPACE)
    html = card_html(workspace, **OFFLINE)
    assert html is not None and "Workspace" in html and "Churn &lt;team&gt;" in html and "<team>" not in html
    text = card_text(workspace, **OFFLINE)
    assert text.splitlines()[0] == "Workspace: Churn <team> (workspaces/p1)"
    assert "owner: alice" in text and "tags: prod; risk" in text and "created: 1 week ago (2026-03-01 08:00:00 UTC)" in text
    # the get response shows the card of what it holds
    response = W("V1GetWorkspaceResponse").from_wire({"workspace": WORKSPACE})
    assert card_text(response, **OFFLINE) == text
    assert has_card("V1GetWorkspaceResponse", "workspaces") and not has_card("V1GetWorkspaceResponse")


def test_v2_deployment_card_shows_state_badge_models_runtime_and_scoring_url() -> None:
    deployment = W("V2Deployment").from_wire(DEPLOYMENT)
    status = W("V2DeploymentStatus").from_wire(STATUS)
    html = card_html(deployment, **OFFLINE, statuses={"d1": status}, scoring_urls={"d1": "https://x.test/d1/score"})
    assert html is not None and 'title="HEALTHY"' in html and ">healthy</span>" in html
    assert 'href="https://x.test/d1/score"' in html
    text = card_text(deployment, **OFFLINE, statuses={"d1": status}, scoring_urls={"d1": "https://x.test/d1/score"})
    lines = text.splitlines()
    assert lines[0] == "Deployment: churn-scorer [healthy] (workspaces/p1/deployments/d1)"
    for line in ("type: single model", "models: gbm-churn", "runtime: mlflow_runtime_py312",
                 "artifact: python/mlflow", "state: healthy for 1 hour", "scoring needs: passphrase or API key",
                 "owner: alice", "workspace: workspaces/p1"):
        assert f"  {line}" in lines, line
    split = card_text(W("V2Deployment").from_wire(SPLIT), **OFFLINE,
                      statuses={"d2": W("V2DeploymentStatus").from_wire(FAILED_STATUS)})
    assert "[failed]" in split.splitlines()[0] and "reason: image pull failed" in split
    assert "traffic: gbm-churn 75%; glm-churn 25%" in split and "type: split" in split


def test_deployment_status_card_names_its_deployment() -> None:
    status = W("V2DeploymentStatus").from_wire(FAILED_STATUS)
    text = card_text(status, now=NOW, names={"d2": "ab-test"})
    assert text.splitlines()[0] == "Deployment status: ab-test [failed] (workspaces/p1/deployments/d2)"
    assert "failure: ImagePullBackOff" in text and "updated: just now" in text


def test_runtime_runtime_image_and_endpoint_cards() -> None:
    runtime = card_text(W("V1Runtime").from_wire(RUNTIME), **OFFLINE)
    assert runtime.splitlines()[0] == "Runtime: MLflow Python 3.12 [active] (workspaces/-/runtimes/mlflow_runtime_py312)"
    assert "model type: mlflow" in runtime and "scoring endpoint: /model/score" in runtime
    disabled = card_html(W("V1Runtime").from_wire(DAI_RUNTIME), **OFFLINE)
    assert disabled is not None and 'title="DISABLED"' in disabled and "the sandbox runs no Driverless AI" in disabled
    image = card_text(W("V1RuntimeImage").from_wire(RUNTIME_IMAGE), **OFFLINE)
    assert "docker image: h2oai/mlflow:3.12" in image and "[active]" in image
    endpoint = card_text(W("V2Endpoint").from_wire(ENDPOINT), **OFFLINE)
    assert endpoint.splitlines()[0] == "Endpoint: churn [ready] (workspaces/p1/endpoints/x1)"
    assert "serves: churn-scorer" in endpoint and "path: churn" in endpoint and "serving now" not in endpoint


def test_batch_job_card_shows_model_source_sink_counts_and_error() -> None:
    job = W("V1Job").from_wire(JOB)
    text = card_text(job, **OFFLINE)
    assert text.splitlines()[0] == "Batch scoring job: nightly [failed] (workspaces/p1/jobs/j1)"
    for line in ("models: gbm-churn", "source: s3://in/data.csv (text/csv) sourceSpecs/s3", "rows processed: 9000",
                 "rows in error: 12", "error: column <age> missing", "creator: alice", "ended: 1 day ago (2026-03-09 00:05:00 UTC)"):
        assert line in text, line
    html = card_html(job, **OFFLINE)
    assert html is not None and "column &lt;age&gt; missing" in html and '"bucket"' not in html


def test_user_card_uses_the_login_principal() -> None:
    text = card_text(W("V1User").from_wire(USER), **OFFLINE)
    assert text.splitlines() == ["User: alice (users/u1)", "  name: Alice Adams", "  email: alice@example.com"]
    inactive = card_text(W("V1User").from_wire({**USER, "active": False}), **OFFLINE)
    assert "[inactive]" in inactive.splitlines()[0]


def test_workspaces_messages_show_their_cards_and_the_others_none() -> None:
    assert W("V1Workspace").from_wire(WORKSPACE)._repr_html_().startswith('<div class="mlops-nb-card"')
    assert W("V1Job").from_wire(JOB)._repr_html_().startswith('<div class="mlops-nb-card"')
    assert W("V2ScoringAggregation").from_wire(AGGREGATE)._repr_html_() is None
    # a legacy and a workspaces message of the same name both have the project card
    assert card_text(message_class("StorageProject")(id="p1", display_name="x"), now=NOW, names={}).startswith("Project")
    assert card_text(W("StorageProject")(id="p1", display_name="x"), now=NOW, names={}).startswith("Project")


def test_wide_workspaces_frames_lead_with_name_times_and_runtime() -> None:
    frame = frame_from_wire(WS.method("deployer.deployment.list_deployments"), {"deployments": [DEPLOYMENT]})
    leading = display._leading_columns(frame)
    assert leading[:2] == ["display_name", "single_deployment_composition_runtime"]
    assert {"create_time", "update_time", "name"} <= set(leading)


def test_resource_ids() -> None:
    assert resource_id("workspaces/p1/deployments/d1") == "d1"
    assert resource_id("workspaces/p1/deployments/d1/status", below="status") == "d1"
    assert resource_id("abc") == "abc" and resource_id(None) == ""


# -- against the sandbox's workspaces face -------------------------------------------------------


@pytest.fixture(scope="module")
def ws_alice(sandbox: Any) -> Any:
    client = sandbox.client("alice", generation="workspaces")
    yield client
    client.close()


def test_list_all_follows_next_page_token_on_a_real_sandbox(ws_alice: Any) -> None:
    made = [ws_alice.authz.workspace.create_workspace(workspace={"display_name": f"frames-{i}"}).workspace
            for i in range(5)]
    frame = list_all(ws_alice.authz.workspace.list_workspaces, page_size=2, progress=False)
    names = set(frame["name"])
    assert {w.name for w in made} <= names
    assert str(frame["create_time"].dtype) == TS and frame.attrs[GENERATION_ATTR] == "workspaces"
    assert [type(e).__name__ for e in frame.entities] == ["V1Workspace"] * len(frame)
    # one page of the same call, as the bound method gives it, is a frame too
    page = ws_alice.authz.workspace.list_workspaces(page_size=2)
    assert len(page) == 2 and page.next_page_token
    limited = list_all(ws_alice.authz.workspace.list_workspaces, page_size=2, limit=3, progress=False)
    assert len(limited) == 3
    found = list_all(ws_alice.authz.workspace.list_workspaces, where="display_name=frames-3", progress=False)
    assert list(found["display_name"]) == ["frames-3"]
    ordered = list_all(ws_alice.authz.workspace.list_workspaces, where="display_name~frames-",
                       sort="-display_name", progress=False)
    assert list(ordered["display_name"]) == [f"frames-{i}" for i in (4, 3, 2, 1, 0)]


def test_cards_and_names_from_a_real_sandbox(ws_alice: Any) -> None:
    me = ws_alice.who_am_i().user
    assert ws_alice.usernames.get(resource_id(me.name)) == me.login_principal
    workspace = ws_alice.authz.workspace.create_workspace(workspace={"display_name": "card"}).workspace
    got = ws_alice.authz.workspace.get_workspace(name=workspace.name)
    text = card_text(got)
    assert text.splitlines()[0] == f"Workspace: card ({workspace.name})"
    assert f"owner: {me.login_principal}" in text
    users = list_all(ws_alice.authz.user.list_users, progress=False)
    assert me.name in set(users["name"]) and str(users["active"].dtype) == "boolean"


def test_runtimes_of_a_real_sandbox_as_frames_and_cards(ws_alice: Any) -> None:
    runtimes = list_all(ws_alice.runtime.runtime.list_runtimes, parent="workspaces/-", progress=False)
    assert len(runtimes) > 0 and isinstance(runtimes["state"].dtype, pd.CategoricalDtype)
    assert "ACTIVE" in set(runtimes["state"])
    first = runtimes.entities[0]
    assert card_html(first) is not None and first.name in card_text(first)
    images = list_all(ws_alice.runtime.runtime_image.list_runtime_images, parent="workspaces/-", progress=False)
    assert len(images) > 0 and card_text(images.entities[0]).startswith("Runtime image: ")


def test_no_status_seen_means_no_badge(ws_alice: Any) -> None:
    assert known_deployment_status("never-seen") is None


@pytest.fixture(scope="module")
def deployments(sandbox: Any, alice: Any) -> tuple[str, str, str]:
    """A single (HEALTHY, a real MLflow model) and a split (FAILED) deployment, made through the legacy
    face: the workspaces face shows the same deployments."""
    from tests.test_notebook_frames import make_deployments

    return make_deployments(sandbox, alice, "workspaces frames")


def test_deployments_statuses_and_metadata_of_a_real_sandbox_as_frames_and_cards(
        ws_alice: Any, deployments: tuple[str, str, str]) -> None:
    project_id, single, split = deployments
    parent = f"workspaces/{project_id}"
    frame = list_all(ws_alice.deployer.deployment.list_deployments, parent=parent, page_size=1, progress=False)
    assert set(frame["name"]) == {f"{parent}/deployments/{single}", f"{parent}/deployments/{split}"}
    by_name = frame.set_index("display_name")
    assert by_name.loc["single", "single_deployment_composition_runtime"] == "python-scorer_mlflow_39"
    assert pd.isna(by_name.loc["split", "single_deployment_composition_runtime"])
    assert [e["weight"] for e in by_name.loc["split", "split_split_elements"]] == [70, 30]
    assert str(frame["create_time"].dtype) == TS and str(frame["single_kubernetes_resource_spec_replicas"].dtype) == "Int32"
    # what the client saw names the deployments by their ids
    assert ws_alice.deployment_names.get(single) == "single"
    statuses = ws_alice.deployer.status.batch_get_deployment_statuses(
        parent=parent, names=[f"{parent}/deployments/{d}/status" for d in (single, split)])
    assert set(statuses["state"]) == {"HEALTHY", "FAILED"} and isinstance(statuses["state"].dtype, pd.CategoricalDtype)
    assert generation_of(known_deployment_status(single)) == "workspaces"
    metadata = ws_alice.deployer.metadata.get_deployment_metadata(name=f"{parent}/deployments/{single}/metadata")
    url = metadata.deployment_metadata.scoring_interface.score.uri
    assert ws_alice.scoring_urls.get(single) == url and url.endswith("/model/score")
    got = ws_alice.deployer.deployment.get_deployment(name=f"{parent}/deployments/{single}")
    html = card_html(got)
    assert html is not None and 'title="HEALTHY"' in html and f'href="{url}"' in html
    text = card_text(got)
    assert text.splitlines()[0] == f"Deployment: single [healthy] ({parent}/deployments/{single})"
    assert f"workspace: {parent}" in text and "runtime: " in text
    failed = card_text(ws_alice.deployer.deployment.get_deployment(name=f"{parent}/deployments/{split}"))
    assert "[failed]" in failed.splitlines()[0] and "type: split" in failed and "reason: " in failed


def test_endpoints_and_aggregates_of_a_real_sandbox(ws_alice: Any, deployments: tuple[str, str, str]) -> None:
    project_id, single, _ = deployments
    parent = f"workspaces/{project_id}"
    ws_alice.deployer.endpoint.create_endpoint(parent=parent, endpoint={
        "display_name": "churn", "path": f"churn-{project_id[:8]}", "target": f"{parent}/deployments/{single}"})
    endpoints = list_all(ws_alice.deployer.endpoint.list_endpoints, parent=parent, progress=False)
    assert list(endpoints["display_name"]) == ["churn"] and isinstance(endpoints["state"].dtype, pd.CategoricalDtype)
    card = card_text(endpoints.entities[0])
    assert card.startswith("Endpoint: churn") and "serves: single" in card
    aggregates = list_all(ws_alice.monitoring.aggregate.list_aggregates,
                          parent=f"{parent}/deployments/{single}/experiments/-", progress=False)
    assert list(aggregates.columns) == frame_columns("V2ScoringAggregation", "workspaces")
    assert str(aggregates["start_time"].dtype) == TS and str(aggregates["missing_values_row_count"].dtype) == "Int32"


def test_a_batch_job_of_a_real_sandbox_as_frame_and_card(ws_alice: Any, deployments: tuple[str, str, str],
                                                         tmp_path: Any) -> None:
    import time

    from tests.deploying import iris_model

    project_id, single, _ = deployments
    parent = f"workspaces/{project_id}"
    composition = ws_alice.deployer.deployment.get_deployment(
        name=f"{parent}/deployments/{single}").deployment.single.deployment_composition
    features = iris_model()[1]
    source = tmp_path / "iris.csv"
    features.head(20).to_csv(source, index=False)
    created = ws_alice.batch.job.create_job(parent=parent, job={
        "display_name": "iris nightly",
        "source": {"spec": "sourceSpecs/local", "location": str(source), "mime_type": "text/csv; header=present"},
        "sink": {"spec": "sinkSpecs/local", "location": str(tmp_path), "mime_type": "text/csv; header=present"},
        "instance_spec": {"deployment_composition": {
            "experiment_id": composition.experiment_id, "artifact_type": composition.deployable_artifact_type,
            "artifact_processor": composition.artifact_processor, "runtime": composition.runtime}},
    }).job
    deadline = time.monotonic() + 180
    job = created
    while job.state.value not in ("FINISHED", "FAILED", "SUBMISSION_FAILED", "TIMEOUT"):
        assert time.monotonic() < deadline, job
        time.sleep(0.5)
        job = ws_alice.batch.job.get_job(name=created.name).job
    assert job.state.value == "FINISHED", card_text(job)
    jobs = list_all(ws_alice.batch.job.list_jobs, parent=parent, progress=False).set_index("name")
    assert jobs.loc[created.name, "state"] == "FINISHED" and str(jobs["start_time"].dtype) == TS
    assert jobs.loc[created.name, "completion_stats_processed_rows"] == "20"
    text = card_text(ws_alice.batch.job.get_job(name=created.name))
    assert text.splitlines()[0] == f"Batch scoring job: iris nightly [finished] ({created.name})"
    assert f"source: {source} (text/csv; header=present) sourceSpecs/local" in text and "rows processed: 20" in text


def test_a_passphrase_set_through_the_workspaces_face_never_shows(ws_alice: Any, deployments: tuple[str, str, str]) -> None:
    project_id, single, _ = deployments
    parent = f"workspaces/{project_id}"
    composition = ws_alice.deployer.deployment.get_deployment(
        name=f"{parent}/deployments/{single}").deployment.single.deployment_composition
    secret = "guarded-by-a-long-passphrase-31337"
    made = ws_alice.deployer.deployment.create_deployment(parent=parent, deployment={
        "display_name": "guarded", "single": {"deployment_composition": composition.to_dict()},
        "securities": [{"passphrase": {"passphrase": secret, "hash_algorithm": "PLAINTEXT"}}]}).deployment
    try:
        assert made.securities[0].passphrase.passphrase == secret  # read back, as the server keeps it in plain text
        frame = list_all(ws_alice.deployer.deployment.list_deployments, parent=parent, progress=False)
        row = frame.set_index("display_name").loc["guarded"]
        assert row["securities"][0]["passphrase"]["passphrase"] == HIDDEN
        got = ws_alice.deployer.deployment.get_deployment(name=made.name)
        for text in (repr(frame), frame_html(frame, columns="all"), repr(got), card_html(got), card_text(got)):
            assert secret not in text
        assert "scoring needs: passphrase" in card_text(got)
    finally:
        ws_alice.deployer.deployment.delete_deployment(name=made.name)


def test_a_workspaces_card_renders_on_first_display_without_ipython() -> None:
    import json
    import subprocess
    import sys

    code = ("import json, sys, mlops_nb\n"
            "before = 'mlops_nb.notebook.display' in sys.modules\n"
            "card = mlops_nb.workspaces.V1Workspace(name='workspaces/p1', display_name='Churn')._repr_html_()\n"
            "print(json.dumps([before, 'mlops_nb.notebook.display' in sys.modules, card]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    before, after, card = json.loads(done.stdout)
    assert (before, after) == (False, True)
    assert card.startswith('<div class="mlops-nb-card"') and "Churn" in card and "Workspace" in card


def test_inside_ipython_workspaces_cards_are_the_text_form_too() -> None:
    import json
    import subprocess
    import sys

    code = ("import json\n"
            "from IPython.core.interactiveshell import InteractiveShell\n"
            "shell = InteractiveShell.instance()\n"
            "import mlops_nb\n"
            "job = mlops_nb.workspaces.V1Job(name='workspaces/p1/jobs/j1', display_name='nightly', state='FINISHED')\n"
            "text = shell.display_formatter.format(job)[0]['text/plain']\n"
            "print(json.dumps(text))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(done.stdout) == "Batch scoring job: nightly [finished] (workspaces/p1/jobs/j1)"
