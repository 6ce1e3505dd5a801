"""Deployments in the sandbox without scorer processes: the views agree, checks, catalogs, environments.

Every deployment here names a runtime the sandbox cannot run (the DAI MOJO scorers) or an H2O-3
MOJO whose artifact is not a zip, so each ends FAILED without starting a process;
test_sandbox_scoring.py and test_mojo.py run real ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
import requests

import mlops_nb
from mlops_nb.api import CATALOGS
from mlops_nb.sandbox import Sandbox
from mlops_nb.sandbox.services.access import ROLE_VIEWER
from mlops_nb.sandbox.services.deployments import MODEL_TYPE_OF_ARTIFACT
from mlops_nb.sandbox.services.environments import default_environment_id
from tests.deploying import composition, deploy, wait_for_state
from tests.test_sandbox_artifacts import new_experiment, new_project, share, uploaded_artifact


@dataclass
class World:
    project: str
    experiments: dict[str, str]  # artifact type -> experiment id
    deployments: dict[str, str]  # name -> deployment id
    bobs_project: str
    bobs_deployment: str


def _experiment(client: Any, project: str, artifact_type: str) -> str:
    experiment = new_experiment(client, project, artifact_type)
    uploaded_artifact(client, experiment, artifact_type)
    return experiment


@pytest.fixture(scope="module")
def world(sandbox: Sandbox, alice: Any, bob: Any) -> World:
    project = new_project(alice, "deployments")
    experiments = {t: _experiment(alice, project, t) for t in ("dai/mojo_pipeline", "h2o3/mojo")}
    dai, h2o = experiments.values()
    create = alice.deployer.deployment.create_deployment
    deployments = {
        "single": deploy(alice, project, dai, "dai/mojo_pipeline", display_name="single").id,
        "split": create(deployment={"project_id": project, "display_name": "split", "split_deployment": {
            "split_elements": [{**composition(dai, "dai/mojo_pipeline"), "weight": 70},
                               {**composition(h2o, "h2o3/mojo"), "weight": 30}]}}).deployment.id,
        "shadow": create(deployment={"project_id": project, "display_name": "shadow", "shadow_deployment": {
            "primary_element": composition(h2o, "h2o3/mojo"),
            "secondary_element": composition(dai, "dai/mojo_pipeline", "mojo_runtime_shapley_all")}}).deployment.id,
        "failed": deploy(alice, project, h2o, "h2o3/mojo", display_name="failed", description="no Java").id,
    }
    bobs_project = new_project(bob, "bob's deployments")
    bobs_deployment = deploy(bob, bobs_project, _experiment(bob, bobs_project, "h2o3/mojo"), "h2o3/mojo").id
    for client, deployment_id in [*((alice, d) for d in deployments.values()), (bob, bobs_deployment)]:
        wait_for_state(client, deployment_id, "FAILED", timeout=30)
    return World(project, experiments, deployments, bobs_project, bobs_deployment)


def _ids(items: list[Any], attribute: str = "id") -> set[str]:
    return {getattr(item, attribute) for item in items}


def test_storage_deployment_service(alice: Any, world: World) -> None:
    one = alice.storage.deployment.get_deployment(deployment_id=world.deployments["split"]).deployment
    assert (one.project_id, one.type.value, one.deployment_environment_id) == (
        world.project, "SPLIT_TRAFFIC", default_environment_id(world.project))
    environments = alice.storage.deployment_environment.list_deployment_environments(project_id=world.project)
    assert list(environments["display_name"]) == ["DEV", "PROD"]
    assert environments["id"].iloc[0] == one.deployment_environment_id
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
        for part in compositions:
            artifact = alice.storage.artifact.get_artifact(id=part.artifact_id).artifact
            assert (artifact.entity_id, artifact.state.value) == (part.experiment_id, "AVAILABLE")
            row = artifacts[artifact.type]
            assert part.deployable_artifact_type_name == row["deployable_artifact_type_name"]
            assert part.artifact_processor_name == row["artifact_processor_name"]
            assert runtimes[part.runtime_name] == MODEL_TYPE_OF_ARTIFACT[artifact.type]
        assert (view.project_id, view.created_time, view.deployment_environment_id) == (
            stored.project_id, stored.created_time, stored.deployment_environment_id)
        assert (view.user_info.owner_id, view.user_info.owner_name) == (stored.owner_id, "alice")
        assert statuses[deployment_id].scorer.score.url == f"{sandbox.gateway_url}/deployments/{deployment_id}/model/score"
    split = deployer[world.deployments["split"]].split_deployment.split_elements
    assert [e.weight for e in split] == [70, 30]
    assert [s.fraction for s in storage[world.deployments["split"]].secondary_scorer] == [0.3]
    assert [s.fraction for s in storage[world.deployments["shadow"]].secondary_scorer] == [1.0]
    shadow = deployer[world.deployments["shadow"]].shadow_deployment
    assert shadow.secondary_element.deployment_composition.runtime_name == "mojo_runtime_shapley_all"
    assert deployer[world.deployments["single"]].single_deployment.deployment_composition.runtime_name == \
        "dai_mojo_runtime"
    assert deployer[world.deployments["failed"]].description == "no Java"
    # Every deployment carries its security and monitoring, as the official client reads them.
    for view in deployer.values():
        assert view.security.passphrase.passphrase_hash_type.value == "PASSPHRASE_HASH_TYPE_UNSPECIFIED"
        assert view.security.passphrase.hash == "" and view.monitor.enable is True
        assert view.revision_id and view.revision_create_time == view.created_time


def test_deployment_statuses(sandbox: Sandbox, alice: Any, world: World) -> None:
    status = alice.deployer.deployment_status.get_deployment_status(
        deployment_id=world.deployments["split"]).deployment_status
    assert status.state.value == "FAILED"
    assert status.message.startswith("the sandbox cannot run H2O.ai MOJO scorer (dai_mojo_runtime): it needs "
                                     "Driverless AI's MOJO pipeline runtime and a Driverless AI license")
    root = f"{sandbox.gateway_url}/deployments/{world.deployments['split']}/model"
    assert (status.scorer.score.url, status.scorer.score.method.value) == (f"{root}/score", "POST")
    assert status.scorer.sample_request.url == f"{root}/sample_request"
    assert status.scorer.capabilities.url == f"{root}/capabilities"

    states = {s.deployment_id: s.state.value for s in alice.deployer.deployment_status.list_deployment_statuses(
        project_id=world.project).deployment_status}
    assert states == dict.fromkeys(world.deployments.values(), "FAILED")
    failed = alice.deployer.deployment_status.list_deployment_statuses(
        project_id=world.project, filter={"query": {"clause": [{"property_constraint": [
            {"property": {"field": "message"}, "operator": "CONTAINS", "value": {"string_value": "h2o3_mojo_extractor"}}]}]}})
    assert _ids(failed.deployment_status, "deployment_id") == {world.deployments["shadow"], world.deployments["failed"]}
    by_state = alice.deployer.deployment_status.list_deployment_statuses(
        project_id=world.project, paging={"page_size": 2},
        sort={"property": [{"property": {"field": "state"}, "order": "ASCENDING"}]})
    assert [s.state.value for s in by_state.deployment_status] == ["FAILED", "FAILED"]
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
        .value == "FAILED"
    with pytest.raises(mlops_nb.PermissionDenied, match="VIEWER"):
        bob.deployer.deployment.delete_deployment(id=deployment)
    assert _ids(bob.storage.deployment.list_all_deployments().deployment) == {world.bobs_deployment,
                                                                              *world.deployments.values()}
    assert bob.storage.deployment.count_deployments().count == 5


def test_compositions_are_the_seed_tables(alice: Any) -> None:
    compositions = alice.deployer.composition.list_artifact_compositions().artifact_composition
    artifact_rows = {(c.deployable_artifact_type.artifact_type, c.deployable_artifact_type.name,
                      c.artifact_processor.name) for c in compositions}
    # python/pickle has no runtime in the seed's table, so no composition: every row names a
    # runtime (the official client reads runtime.display_name of each).
    assert artifact_rows == {(r["artifact_type"], r["deployable_artifact_type_name"], r["artifact_processor_name"])
                             for r in CATALOGS.artifacts if r["artifact_type"] != "python/pickle"}
    runtime_rows = {(c.runtime.model_type_name, c.runtime.display_name, c.runtime.name) for c in compositions}
    assert runtime_rows == {(r["model_type"], r["runtime_display_name"], r["runtime_name"])
                            for r in CATALOGS.runtimes}
    for c in compositions:
        assert c.artifact_processor.deployable_artifact_type_name == c.deployable_artifact_type.name
        assert c.model_type.name == c.runtime.model_type_name == c.artifact_processor.model_type_name
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


def test_create_deployment_checks_before_anything_starts(alice: Any, bob: Any, world: World) -> None:
    dai, h2o = world.experiments.values()
    bare = new_experiment(alice, world.project, "bare")
    create = alice.deployer.deployment.create_deployment

    def single(experiment: str, artifact_type: str = "dai/mojo_pipeline", **change: Any) -> dict[str, Any]:
        element = composition(experiment, artifact_type)
        element["deployment_composition"].update(change)
        return {"project_id": world.project, "single_deployment": element}

    for deployment, message in [
        (single(dai, runtime_name="h2o3_mojo_runtime"),
         "runtime 'h2o3_mojo_runtime' cannot serve dai/mojo_pipeline artifacts .dai_mojo_pipeline.; runtimes that "
         "can: dai_mojo_runtime, mojo_runtime_shapley_original"),
        (single(dai, runtime_name=""), "runtime_name is required for dai/mojo_pipeline artifacts"),
        (single(dai, artifact_processor_name="unzip_processor"),
         "artifact_processor_name 'unzip_processor' does not process dai_mojo_pipeline"),
        (single(dai, deployable_artifact_type_name="zip"), "deployable_artifact_type_name 'zip' is not one of"),
        (single(bare), "has no uploaded dai/mojo_pipeline artifact to deploy as dai_mojo_pipeline .its artifacts: none"),
        (single(h2o), "has no uploaded dai/mojo_pipeline artifact"),
        (single("no-such-experiment"), "not found"),
        ({"project_id": world.project}, "exactly one of single_deployment, shadow_deployment and split_deployment"),
        ({**single(dai), "shadow_deployment": {"primary_element": composition(dai, "dai/mojo_pipeline")}},
         "exactly one of"),
        ({"project_id": world.project, "split_deployment": {"split_elements": [
            {**composition(dai, "dai/mojo_pipeline"), "weight": 50}]}}, "takes two or more elements"),
        ({"project_id": world.project, "split_deployment": {"split_elements": [
            {**composition(dai, "dai/mojo_pipeline"), "weight": 50}, composition(h2o, "h2o3/mojo")]}},
         "weight must be a positive share"),
        ({**single(dai), "deployment_environment_id": "elsewhere"}, "is not an environment of project"),
        ({**single(dai), "security": {"passphrase": {"hash": "plain", "passphrase_hash_type":
                                                     "PASSPHRASE_HASH_TYPE_BCRYPT"}}}, "must be a bcrypt hash"),
    ]:
        with pytest.raises(mlops_nb.ApiError, match=message) as refused:
            create(deployment=deployment)
        assert refused.value.code in (3, 5), refused.value
    # bob may not write in alice's project (not found, or only viewed once another test shares it).
    with pytest.raises((mlops_nb.NotFound, mlops_nb.PermissionDenied)):
        bob.deployer.deployment.create_deployment(deployment=single(dai))
    elsewhere = new_project(alice, "elsewhere")
    with pytest.raises(mlops_nb.InvalidArgument, match="is not in project"):
        create(deployment={**single(dai), "project_id": elsewhere})
    assert alice.storage.deployment.count_deployments(project_id=world.project).count == 4


def test_python_pickle_cannot_be_deployed(alice: Any, world: World) -> None:
    pickled = new_experiment(alice, world.project, "pickled")
    uploaded_artifact(alice, pickled, "python/pickle")
    with pytest.raises(mlops_nb.InvalidArgument, match="no runtime serves python/pickle artifacts"):
        alice.deployer.deployment.create_deployment(deployment={"project_id": world.project, "single_deployment": {
            "deployment_composition": {"experiment_id": pickled, "deployable_artifact_type_name": "python/pickle",
                                       "artifact_processor_name": "noop_processor", "runtime_name": "x"}}})


def test_profiling_suggests_what_can_serve_an_experiment(alice: Any, world: World) -> None:
    dai, h2o = world.experiments.values()
    suggested = alice.deployer.profiling.list_suggested_scoring_compositions(experiment_id=dai).deployment_compositions
    assert {c.runtime_name for c in suggested} == {r["runtime_name"] for r in CATALOGS.runtimes
                                                   if r["model_type"] == "dai_mojo"}
    assert {(c.deployable_artifact_type_name, c.artifact_processor_name) for c in suggested} == {
        ("dai_mojo_pipeline", "dai_mojo_pipeline_extractor")}
    page = alice.deployer.profiling.list_suggested_scoring_compositions(experiment_id=dai, page_size=2)
    assert len(page.deployment_compositions) == 2 and page.next_page_token
    spec = alice.deployer.profiling.get_suggested_scoring_resource_spec(
        deployment_composition={"experiment_id": h2o}, workers=2).kubernetes_resource_spec
    requirement = spec.kubernetes_resource_requirement
    # Unmeasured: a scorer's footprint (250 MiB) and ten times the artifact's 11 bytes, rounded up.
    assert requirement.requests == {"cpu": "500m", "memory": "251Mi"} and requirement.limits["cpu"] == "2"
    with pytest.raises(mlops_nb.FailedPrecondition, match="cannot run H2O.ai MOJO scorer"):
        alice.deployer.profiling.get_suggested_scoring_resource_spec(
            deployment_composition={"experiment_id": world.experiments["dai/mojo_pipeline"],
                                    "runtime_name": "dai_mojo_runtime"})
    shortcuts = alice.deployer.kubernetes_configuration.discover_kubernetes_configuration_shortcut()
    assert shortcuts.kubernetes_affinity_shortcuts == [] and shortcuts.kubernetes_toleration_shortcuts == []


def test_nested_empty_lists_and_maps_go_out_as_the_gateway_sends_them(sandbox: Sandbox, alice: Any,
                                                                      world: World) -> None:
    token = sandbox.token_provider("alice")()
    raw = requests.post(f"{sandbox.gateway_url}/storage/ai.h2o.storage.ExperimentService/ListExperiments",
                        json={"projectId": world.project}, headers={"Authorization": f"Bearer {token}"},
                        timeout=10).json()
    assert raw["experiment"] and all(e["tag"] == [] and e["metadata"] == {"values": {}} for e in raw["experiment"])
    raw = requests.post(f"{sandbox.gateway_url}/deployer/ai.h2o.deploy.DeploymentService/ListProjectDeployments",
                        json={"projectId": world.project}, headers={"Authorization": f"Bearer {token}"},
                        timeout=10).json()
    split = next(d for d in raw["deployment"] if d["displayName"] == "split")
    element = split["splitDeployment"]["splitElements"][0]
    assert "deploymentEnvironmentVariables" not in element  # an unset message stays out; only lists and maps
    assert split["security"]["passphrase"] == {"hash": "", "passphraseHashType": "PASSPHRASE_HASH_TYPE_UNSPECIFIED"}


def _environments(client: Any, project: str, **request: Any) -> list[Any]:
    return client.storage.deployment_environment.list_deployment_environments(
        project_id=project, **request).deployment_environment


def test_every_project_has_dev_and_prod_and_may_have_more(alice: Any, bob: Any, world: World) -> None:
    project = new_project(alice, "environments")
    experiment = _experiment(alice, project, "h2o3/mojo")
    dev, prod = _environments(alice, project)  # newest first: DEV is made after PROD
    assert (dev.display_name, prod.display_name) == ("DEV", "PROD")
    assert (dev.id, prod.id) == (default_environment_id(project), default_environment_id(project, "PROD"))
    assert {dev.deployment_target_name, prod.deployment_target_name} == {"sandbox"}

    in_prod = deploy(alice, project, experiment, "h2o3/mojo", deployment_environment_id=prod.id).id
    assert alice.storage.deployment.get_deployment(deployment_id=in_prod).deployment.deployment_environment_id == prod.id
    in_dev = deploy(alice, project, experiment, "h2o3/mojo").id  # no environment named: DEV
    assert alice.storage.deployment.get_deployment(deployment_id=in_dev).deployment.deployment_environment_id == dev.id
    with pytest.raises(mlops_nb.InvalidArgument, match="is not an environment of project .* its environments: DEV"):
        deploy(alice, project, experiment, "h2o3/mojo", deployment_environment_id=default_environment_id(
            world.bobs_project))

    manage = alice.storage.deployment_environment
    staging = manage.create_deployment_environment(
        deployment_environment={"project_id": project, "display_name": "STAGING"}).deployment_environment
    named = {"filter": {"query": {"clause": [{"property_constraint": [{
        "property": {"field": "display_name"}, "operator": "EQUAL_TO", "value": {"string_value": "STAGING"}}]}]}}}
    assert [e.id for e in _environments(alice, project, **named)] == [staging.id]
    with pytest.raises(mlops_nb.AlreadyExists, match="already has an environment named 'DEV'"):
        manage.create_deployment_environment(deployment_environment={"project_id": project, "display_name": "DEV"})
    renamed = manage.update_deployment_environment(deployment_environment={"id": staging.id, "display_name": "QA"},
                                                   update_mask="display_name").deployment_environment
    assert renamed.display_name == "QA" and renamed.created_time == staging.created_time
    with pytest.raises(mlops_nb.FailedPrecondition, match="'PROD' still has 1 deployment"):
        manage.delete_deployment_environment(deployment_environment_id=prod.id)
    with pytest.raises(mlops_nb.NotFound):
        bob.storage.deployment_environment.get_deployment_environment(deployment_environment_id=staging.id)
    with pytest.raises(mlops_nb.NotFound):
        bob.storage.deployment_environment.delete_deployment_environment(deployment_environment_id=staging.id)
    endpoint = alice.deployer.endpoint.create_endpoint(parent=f"projects/{project}/environments/{staging.id}",
                                                       endpoint={"path": "qa-endpoint"}).endpoint
    with pytest.raises(mlops_nb.FailedPrecondition, match="'QA' still has 1 endpoint"):
        manage.delete_deployment_environment(deployment_environment_id=staging.id)
    alice.deployer.endpoint.delete_endpoint(name=endpoint.name)
    manage.delete_deployment_environment(deployment_environment_id=staging.id)
    assert [e.display_name for e in _environments(alice, project)] == ["DEV", "PROD"]


def test_older_databases_get_dev_and_prod_by_migration(tmp_path: Any) -> None:
    import json

    from mlops_nb.sandbox import services
    from mlops_nb.sandbox.store import Store

    path = tmp_path / "older.sqlite3"
    older = Store(path, [m for m in services.migrations() if m[0] != "0610_deployment_environments"])
    older.put("project", {"id": "p-old", "displayName": "old", "createdTime": "2024-01-01T00:00:00.000000Z"},
              owner_id="u-old")
    older.close()
    store = Store(path, services.migrations())
    with store.reading() as db:
        rows = [json.loads(r["data"]) for r in db.execute(
            "SELECT data FROM entity WHERE kind = 'deployment_environment' AND project_id = 'p-old'")]
    store.close()
    # DEV keeps the id the old single environment had, which its deployments and endpoints carry.
    assert {e["displayName"]: e["id"] for e in rows} == {"DEV": default_environment_id("p-old"),
                                                         "PROD": default_environment_id("p-old", "PROD")}


def test_storage_deploy_shapes_and_refusals(alice: Any, bob: Any) -> None:
    project = new_project(alice, "storage deploy shapes")
    first, second = (_experiment(alice, project, "h2o3/mojo") for _ in range(2))
    dev = default_environment_id(project)
    storage_deploy = alice.storage.deployment_environment.deploy

    split = storage_deploy(deployment_environment_id=dev, experiment_id=first, type="SPLIT_TRAFFIC",
                           secondary_scorer=[{"experiment_id": second, "fraction": 0.25}]).deployment
    assert (split.type.value, [(s.experiment_id, s.fraction) for s in split.secondary_scorer]) == (
        "SPLIT_TRAFFIC", [(second, 0.25)])
    deployer = {d.id: d for d in alice.deployer.deployment.list_project_deployments(project_id=project).deployment}
    elements = deployer[split.id].split_deployment.split_elements
    assert [(e.weight, e.deployment_composition.experiment_id) for e in elements] == [(75, first), (25, second)]
    # profiling's first suggestion serves each experiment
    suggested = alice.deployer.profiling.list_suggested_scoring_compositions(experiment_id=first)
    assert elements[0].deployment_composition.runtime_name == suggested.deployment_compositions[0].runtime_name

    shadow = storage_deploy(deployment_environment_id=dev, experiment_id=first, type="SHADOW_TRAFFIC",
                            secondary_scorer=[{"experiment_id": second}]).deployment
    assert [(s.experiment_id, s.fraction) for s in shadow.secondary_scorer] == [(second, 1.0)]
    single = alice.storage.deployment.update_deployment(
        deployment={"id": shadow.id, "type": "SINGLE_MODEL"}, update_mask="type,secondary_scorer").deployment
    assert (single.type.value, single.secondary_scorer, single.experiment_id) == ("SINGLE_MODEL", [], first)
    assert alice.deployer.deployment_status.get_deployment_status(deployment_id=single.id).deployment_status

    with pytest.raises(mlops_nb.InvalidArgument, match="SINGLE_MODEL deployment takes no secondary_scorer"):
        storage_deploy(deployment_environment_id=dev, experiment_id=first,
                       secondary_scorer=[{"experiment_id": second, "fraction": 0.5}])
    with pytest.raises(mlops_nb.InvalidArgument, match="together below 1"):
        storage_deploy(deployment_environment_id=dev, experiment_id=first, type="SPLIT_TRAFFIC",
                       secondary_scorer=[{"experiment_id": second, "fraction": 1.0}])
    with pytest.raises(mlops_nb.InvalidArgument, match="experiment_id is required"):
        storage_deploy(deployment_environment_id=dev)
    with pytest.raises(mlops_nb.NotFound):
        bob.storage.deployment_environment.deploy(deployment_environment_id=dev, experiment_id=first)
    with pytest.raises(mlops_nb.InvalidArgument, match="cannot be updated here.*UpdateModelDeployment"):
        alice.storage.deployment.update_deployment(deployment={"id": split.id}, update_mask="owner_id")

    alice.storage.deployment.undeploy(deployment_id=split.id)
    assert wait_for_gone(alice, split.id)


def wait_for_gone(client: Any, deployment_id: str, timeout: float = 30.0) -> bool:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            client.storage.deployment.get_deployment(deployment_id=deployment_id)
        except mlops_nb.NotFound:
            return True
        time.sleep(0.1)
    return False
