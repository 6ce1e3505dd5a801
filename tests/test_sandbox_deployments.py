"""The read side of deployments in the sandbox: storage, deployer and status views, catalogs, environments."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

import mlops_nb
from mlops_nb.api import CATALOGS
from mlops_nb.sandbox import Sandbox
from mlops_nb.sandbox.services.access import ROLE_VIEWER
from mlops_nb.sandbox.services.deployments import (
    MODEL_TYPE_OF_ARTIFACT,
    add_deployment,
    environment_id,
)
from tests.test_sandbox_artifacts import new_experiment, new_project, share, uploaded_artifact


@dataclass
class World:
    project: str
    versions: dict[str, str]  # artifact type -> model version id
    deployments: dict[str, str]  # name -> deployment id
    bobs_project: str
    bobs_deployment: str


def _version(client: Any, project: str, artifact_type: str) -> str:
    experiment = new_experiment(client, project, artifact_type)
    uploaded_artifact(client, experiment, artifact_type)
    return client.storage.registered_model_version.create_model_version(
        registered_model_version={"experiment_id": experiment}, registered_model_display_name=artifact_type,
        project_id=project).registered_model_version.id


@pytest.fixture(scope="module")
def world(sandbox: Sandbox, alice: Any, bob: Any) -> World:
    project = new_project(alice, "deployments")
    alice_id = alice.storage.user.who_am_i().user.id
    versions = {t: _version(alice, project, t) for t in ("dai/mojo_pipeline", "h2o3/mojo", "python/mlflow")}
    dai, h2o, mlflow = versions.values()
    store = sandbox.store
    deployments = {
        "single": add_deployment(store, project_id=project, owner_id=alice_id, model_version_ids=[dai],
                                 display_name="single", state="HEALTHY"),
        "split": add_deployment(store, project_id=project, owner_id=alice_id, model_version_ids=[dai, h2o],
                                traffic="split", weights=[70, 30], display_name="split", state="UNHEALTY",
                                message="one scorer fails"),
        "shadow": add_deployment(store, project_id=project, owner_id=alice_id, model_version_ids=[h2o, mlflow],
                                 traffic="shadow", runtime_names=["h2o3_mojo_runtime", "python-scorer_mlflow_39"],
                                 display_name="shadow", state="LAUNCHING"),
        "failed": add_deployment(store, project_id=project, owner_id=alice_id, model_version_ids=[mlflow],
                                 display_name="failed", state="FAILED", description="out of memory"),
    }
    bobs_project = new_project(bob, "bob's deployments")
    bobs_deployment = add_deployment(store, project_id=bobs_project, owner_id=bob.storage.user.who_am_i().user.id,
                                     model_version_ids=[_version(bob, bobs_project, "h2o3/mojo")])
    return World(project, versions, deployments, bobs_project, bobs_deployment)


def _ids(items: list[Any], attribute: str = "id") -> set[str]:
    return {getattr(item, attribute) for item in items}


def test_storage_deployment_service(alice: Any, world: World) -> None:
    one = alice.storage.deployment.get_deployment(deployment_id=world.deployments["split"]).deployment
    assert (one.project_id, one.type.value, one.deployment_environment_id) == (
        world.project, "SPLIT_TRAFFIC", environment_id(world.project))
    environments = alice.storage.deployment_environment.list_deployment_environments(project_id=world.project)
    assert list(environments["id"]) == [one.deployment_environment_id]
    environment = alice.storage.deployment_environment.get_deployment_environment(
        deployment_environment_id=one.deployment_environment_id).deployment_environment
    assert (environment.project_id, environment.deployment_target_name) == (world.project, "sandbox")
    first = alice.storage.deployment.list_deployments(project_id=world.project, paging={"page_size": 3})
    rest = alice.storage.deployment.list_deployments(
        project_id=world.project, paging={"page_size": 3, "page_token": first.paging.next_page_token})
    assert _ids(first.deployment + rest.deployment) == set(world.deployments.values())
    assert [d.id for d in first.deployment + rest.deployment] == list(reversed(world.deployments.values()))
    everything = alice.storage.deployment.list_all_deployments().deployment
    assert set(world.deployments.values()) <= _ids(everything) and world.bobs_deployment not in _ids(everything)

    split_only = {"query": {"clause": [{"property_constraint": [
        {"property": {"field": "type"}, "operator": "EQUAL_TO", "value": {"string_value": "SPLIT_TRAFFIC"}}]}]}}
    assert _ids(alice.storage.deployment.list_deployments(project_id=world.project, filter=split_only).deployment) \
        == {world.deployments["split"]}
    assert alice.storage.deployment.count_deployments(project_id=world.project).count == 4
    assert alice.storage.deployment.count_deployments(project_id=world.project, filter=split_only).count == 1
    assert alice.storage.deployment.count_deployments().count == len(everything)
    with pytest.raises(mlops_nb.InvalidArgument, match="project_id"):
        alice.storage.deployment.list_deployments()
    with pytest.raises(mlops_nb.InvalidArgument, match="deployment_id"):
        alice.storage.deployment.get_deployment()
    with pytest.raises(mlops_nb.NotFound):
        alice.storage.deployment.get_deployment(deployment_id="no-such-deployment")


def test_the_views_of_a_deployment_agree(sandbox: Sandbox, alice: Any, world: World) -> None:
    storage = {d.id: d for d in alice.storage.deployment.list_deployments(project_id=world.project).deployment}
    deployer = {d.id: d for d in alice.deployer.deployment.list_project_deployments(project_id=world.project).deployment}
    statuses = {s.deployment_id: s for s in
                alice.deployer.deployment_status.list_deployment_statuses(project_id=world.project).deployment_status}
    assert set(storage) == set(deployer) == set(statuses) == set(world.deployments.values())
    runtimes = {r["runtime_name"]: r["model_type"] for r in CATALOGS.runtimes}
    artifacts = {r["artifact_type"]: r for r in CATALOGS.artifacts}
    for deployment_id, stored in storage.items():
        view = deployer[deployment_id]
        shape = {"SINGLE_MODEL": "single", "SHADOW_TRAFFIC": "shadow", "SPLIT_TRAFFIC": "split"}[stored.type.value]
        if shape == "single":
            elements = [view.single_deployment]
        elif shape == "shadow":
            elements = [view.shadow_deployment.primary_element, view.shadow_deployment.secondary_element]
        else:
            elements = view.split_deployment.split_elements
        assert [view.single_deployment is not None, view.shadow_deployment is not None,
                view.split_deployment is not None] == [shape == s for s in ("single", "shadow", "split")]
        compositions = [e.deployment_composition for e in elements]
        assert stored.experiment_id == compositions[0].experiment_id
        assert [s.experiment_id for s in stored.secondary_scorer] == [c.experiment_id for c in compositions[1:]]
        for composition in compositions:
            artifact = alice.storage.artifact.get_artifact(id=composition.artifact_id).artifact
            assert (artifact.entity_id, artifact.state.value) == (composition.experiment_id, "AVAILABLE")
            row = artifacts[artifact.type]
            assert composition.deployable_artifact_type_name == row["deployable_artifact_type_name"]
            assert composition.artifact_processor_name == row["artifact_processor_name"]
            assert runtimes[composition.runtime_name] == MODEL_TYPE_OF_ARTIFACT[artifact.type]
        assert (view.project_id, view.created_time, view.deployment_environment_id) == (
            stored.project_id, stored.created_time, stored.deployment_environment_id)
        assert (view.user_info.owner_id, view.user_info.owner_name) == (stored.owner_id, "alice")
        assert statuses[deployment_id].scorer.score.url == f"{sandbox.gateway_url}/deployments/{deployment_id}/model/score"
    split = deployer[world.deployments["split"]].split_deployment.split_elements
    assert [e.weight for e in split] == [70, 30]
    assert [s.fraction for s in storage[world.deployments["split"]].secondary_scorer] == [0.3]
    assert [s.fraction for s in storage[world.deployments["shadow"]].secondary_scorer] == [1.0]
    shadow = deployer[world.deployments["shadow"]].shadow_deployment
    assert shadow.secondary_element.deployment_composition.runtime_name == "python-scorer_mlflow_39"
    assert deployer[world.deployments["single"]].single_deployment.deployment_composition.runtime_name == \
        "dai_mojo_runtime"
    assert deployer[world.deployments["failed"]].description == "out of memory"


def test_deployment_statuses(sandbox: Sandbox, alice: Any, world: World) -> None:
    status = alice.deployer.deployment_status.get_deployment_status(
        deployment_id=world.deployments["split"]).deployment_status
    assert (status.state.value, status.message) == ("UNHEALTY", "one scorer fails")
    root = f"{sandbox.gateway_url}/deployments/{world.deployments['split']}/model"
    assert (status.scorer.score.url, status.scorer.score.method.value) == (f"{root}/score", "POST")
    assert status.scorer.sample_request.url == f"{root}/sample_request"
    assert status.scorer.capabilities.url == f"{root}/capabilities"

    states = {s.deployment_id: s.state.value for s in alice.deployer.deployment_status.list_deployment_statuses(
        project_id=world.project).deployment_status}
    assert states == {world.deployments["single"]: "HEALTHY", world.deployments["split"]: "UNHEALTY",
                      world.deployments["shadow"]: "LAUNCHING", world.deployments["failed"]: "FAILED"}
    healthy = alice.deployer.deployment_status.list_deployment_statuses(
        project_id=world.project, filter={"query": {"clause": [{"property_constraint": [
            {"property": {"field": "state"}, "operator": "EQUAL_TO", "value": {"string_value": "HEALTHY"}}]}]}})
    assert _ids(healthy.deployment_status, "deployment_id") == {world.deployments["single"]}
    by_state = alice.deployer.deployment_status.list_deployment_statuses(
        project_id=world.project, paging={"page_size": 2},
        sort={"property": [{"property": {"field": "state"}, "order": "ASCENDING"}]})
    assert [s.state.value for s in by_state.deployment_status] == ["FAILED", "HEALTHY"]
    assert by_state.paging.next_page_token
    page = alice.deployer.deployment.list_project_deployments(
        project_id=world.project, paging={"page_size": 1},
        sorting={"property": [{"property": {"field": "display_name"}, "order": "ASCENDING"}]})
    assert [d.display_name for d in page.deployment] == ["failed"] and page.paging.next_page_token
    with pytest.raises(mlops_nb.NotFound):
        alice.deployer.deployment_status.get_deployment_status(deployment_id="no-such-deployment")


def test_deployments_follow_their_project(alice: Any, bob: Any, world: World) -> None:
    deployment = world.deployments["single"]
    for call in (lambda: bob.storage.deployment.get_deployment(deployment_id=deployment),
                 lambda: bob.storage.deployment.list_deployments(project_id=world.project),
                 lambda: bob.storage.deployment.count_deployments(project_id=world.project),
                 lambda: bob.deployer.deployment.list_project_deployments(project_id=world.project),
                 lambda: bob.deployer.deployment_status.get_deployment_status(deployment_id=deployment),
                 lambda: bob.deployer.deployment_status.list_deployment_statuses(project_id=world.project)):
        with pytest.raises(mlops_nb.NotFound):
            call()
    assert _ids(bob.storage.deployment.list_all_deployments().deployment) == {world.bobs_deployment}
    share(alice, world.project, bob, ROLE_VIEWER)
    assert bob.deployer.deployment_status.get_deployment_status(deployment_id=deployment).deployment_status.state \
        .value == "HEALTHY"
    assert _ids(bob.storage.deployment.list_all_deployments().deployment) == {world.bobs_deployment,
                                                                              *world.deployments.values()}
    assert bob.storage.deployment.count_deployments().count == 5


def test_compositions_are_the_seed_tables(alice: Any) -> None:
    compositions = alice.deployer.composition.list_artifact_compositions().artifact_composition
    artifact_rows = {(c.deployable_artifact_type.artifact_type, c.deployable_artifact_type.name,
                      c.artifact_processor.name) for c in compositions}
    assert artifact_rows == {(r["artifact_type"], r["deployable_artifact_type_name"], r["artifact_processor_name"])
                             for r in CATALOGS.artifacts}
    runtime_rows = {(c.runtime.model_type_name, c.runtime.display_name, c.runtime.name)
                    for c in compositions if c.runtime is not None}
    assert runtime_rows == {(r["model_type"], r["runtime_display_name"], r["runtime_name"])
                            for r in CATALOGS.runtimes}
    for c in compositions:
        assert c.artifact_processor.deployable_artifact_type_name == c.deployable_artifact_type.name
        if c.runtime is not None:
            assert c.model_type.name == c.runtime.model_type_name == c.artifact_processor.model_type_name
    pickle = [c for c in compositions if c.deployable_artifact_type.artifact_type == "python/pickle"]
    assert len(pickle) == 1 and pickle[0].runtime is None
    mojo = {c.runtime.name for c in compositions if c.deployable_artifact_type.artifact_type == "dai/mojo_pipeline"}
    assert mojo == {r["runtime_name"] for r in CATALOGS.runtimes if r["model_type"] == "dai_mojo"}


def test_environments_and_profiles(alice: Any) -> None:
    environments = alice.deployer.environment.list_environments()
    assert [(e.name, e.type.value) for e in environments.environment] == [("sandbox", "KUBERNETES")]
    assert not environments.next_page_token
    first = alice.deployer.environment.list_deployment_profiles(parent="sandbox", page_size=1)
    second = alice.deployer.environment.list_deployment_profiles(parent="sandbox", page_size=1,
                                                                 page_token=first.next_page_token)
    profiles = first.deployment_profiles + second.deployment_profiles
    assert [(p.name, p.is_default) for p in profiles] == [("default", True), ("large", False)]
    assert not second.next_page_token
    assert profiles[0].kubernetes_option.kubernetes_resource_spec.kubernetes_resource_requirement.requests == {
        "cpu": "250m", "memory": "512Mi"}
    assert len(alice.deployer.environment.list_deployment_profiles().deployment_profiles) == 2
    with pytest.raises(mlops_nb.NotFound):
        alice.deployer.environment.list_deployment_profiles(parent="production")
    with pytest.raises(mlops_nb.InvalidArgument, match="page_token"):
        alice.deployer.environment.list_environments(page_token="seven")
    with pytest.raises(mlops_nb.InvalidArgument, match="page_size"):
        alice.deployer.environment.list_environments(page_size=-1)


def test_add_deployment_refuses_misuse(sandbox: Sandbox, alice: Any, world: World) -> None:
    alice_id = alice.storage.user.who_am_i().user.id
    dai, h2o, _ = world.versions.values()
    bare = alice.storage.registered_model_version.create_model_version(
        registered_model_version={"experiment_id": new_experiment(alice, world.project)},
        registered_model_display_name="bare", project_id=world.project).registered_model_version.id
    for options, message in [
        ({"model_version_ids": [dai, h2o]}, "single deployment takes 1 model versions"),
        ({"model_version_ids": [dai], "traffic": "split"}, "takes 2 or more"),
        ({"model_version_ids": [dai], "traffic": "canary"}, "traffic must be one of"),
        ({"model_version_ids": [dai], "state": "HEALTHY!"}, "UNHEALTY"),
        ({"model_version_ids": [dai, h2o], "traffic": "split", "weights": [1]}, "one positive weight"),
        ({"model_version_ids": [dai], "weights": [100]}, "weights are for split deployments"),
        ({"model_version_ids": [dai], "runtime_names": ["h2o3_mojo_runtime"]}, "does not serve dai/mojo_pipeline"),
        ({"model_version_ids": [bare]}, "no uploaded artifact of a deployable type"),
        ({"model_version_ids": ["no-such-version"]}, "no registered model version"),
        ({"model_version_ids": [dai], "project_id": world.bobs_project}, "is in project"),
        ({"model_version_ids": [dai], "owner_id": "nobody"}, "no user"),
    ]:
        with pytest.raises(ValueError, match=message):
            add_deployment(sandbox.store, **{"project_id": world.project, "owner_id": alice_id, **options})
    assert alice.storage.deployment.count_deployments(project_id=world.project).count == 4


@pytest.mark.parametrize("call", [
    lambda c: c.deployer.deployment.create_deployment(deployment={"project_id": "p"}),
    lambda c: c.deployer.deployment.delete_deployment(id="d"),
    lambda c: c.storage.deployment.undeploy(deployment_id="d"),
    lambda c: c.deployer.endpoint.list_endpoints(),
    lambda c: c.deployer.log.list_log_entries(),
    lambda c: c.ingest.model.create_model_ingestion(),
    lambda c: c.model_monitoring.monitoring_service.list_monitored_deployments(),
])
def test_what_changes_deployments_stays_unimplemented(alice: Any, call: Any) -> None:
    with pytest.raises(mlops_nb.Unimplemented):
        call(alice)
