"""The sandbox's model registry (registered models, versions) and DatasetService, over loopback."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

import mlops_nb
from mlops_nb.sandbox import Sandbox
from mlops_nb.sandbox.services.access import ROLE_EDITOR, ROLE_VIEWER
from tests.deploying import deploy
from tests.test_sandbox_artifacts import new_experiment, new_project, share, uploaded_artifact


def new_model(client: Any, project_id: str, name: str) -> str:
    return client.storage.registered_model.create_registered_model(
        registered_model={"display_name": name, "project_id": project_id}).registered_model.id


def new_version(client: Any, model_id: str, experiment_id: str) -> Any:
    return client.storage.registered_model_version.create_model_version(
        registered_model_version={"registered_model_id": model_id, "experiment_id": experiment_id},
    ).registered_model_version


def user_id(client: Any) -> str:
    return client.storage.user.who_am_i().user.id


# -- registered models -------------------------------------------------------------------------


def test_registered_models(alice: Any) -> None:
    project = new_project(alice, "registry")
    created = alice.storage.registered_model.create_registered_model(registered_model={
        "display_name": "churn", "description": "who leaves", "project_id": project}).registered_model
    assert (created.project_id, created.created_by) == (project, user_id(alice))
    assert created.updated_time == created.created_time
    with pytest.raises(mlops_nb.AlreadyExists):
        new_model(alice, project, "churn")
    with pytest.raises(mlops_nb.InvalidArgument, match="display_name"):
        new_model(alice, project, "")
    with pytest.raises(mlops_nb.InvalidArgument, match="project_id"):
        alice.storage.registered_model.create_registered_model(registered_model={"display_name": "x"})
    other = new_model(alice, project, "fraud")
    new_model(alice, new_project(alice, "elsewhere"), "churn")  # names are unique per project only

    assert alice.storage.registered_model.get_registered_model(model_id=created.id).registered_model == created
    by_name = alice.storage.registered_model.get_registered_model_by_name(model_name="churn", project_id=project)
    assert by_name.registered_model.id == created.id
    with pytest.raises(mlops_nb.NotFound):
        alice.storage.registered_model.get_registered_model_by_name(model_name="nope", project_id=project)
    with pytest.raises(mlops_nb.InvalidArgument):
        alice.storage.registered_model.get_registered_model_by_name(project_id=project)

    first = alice.storage.registered_model.list_registered_models(project_id=project, paging={"page_size": 1})
    second = alice.storage.registered_model.list_registered_models(
        project_id=project, paging={"page_size": 1, "page_token": first.paging.next_page_token})
    assert [m.id for m in first.registered_models + second.registered_models] == [other, created.id]
    assert not (second.paging and second.paging.next_page_token)
    by_name_order = alice.storage.registered_model.list_registered_models(
        project_id=project, sorting={"property": [{"property": {"field": "display_name"}, "order": "ASCENDING"}]})
    assert [m.display_name for m in by_name_order.registered_models] == ["churn", "fraud"]
    count = alice.storage.registered_model.count_registered_models(project_id=project)
    assert count.registered_model_count == 2

    updated = alice.storage.registered_model.update_registered_model(
        registered_model={"id": created.id, "display_name": "churn-v2", "description": "kept"},
        update_mask="display_name").registered_model
    assert (updated.display_name, updated.description) == ("churn-v2", "who leaves")
    assert updated.updated_time > created.updated_time
    with pytest.raises(mlops_nb.AlreadyExists):
        alice.storage.registered_model.update_registered_model(
            registered_model={"id": created.id, "display_name": "fraud"}, update_mask="displayName")
    with pytest.raises(mlops_nb.InvalidArgument, match="cannot be empty"):
        alice.storage.registered_model.update_registered_model(registered_model={"id": created.id},
                                                               update_mask="display_name")
    with pytest.raises(mlops_nb.InvalidArgument, match="updatable fields"):
        alice.storage.registered_model.update_registered_model(
            registered_model={"id": created.id, "project_id": "x"}, update_mask="project_id")

    alice.storage.registered_model.delete_registered_model(model_id=other)
    with pytest.raises(mlops_nb.NotFound):
        alice.storage.registered_model.get_registered_model(model_id=other)
    with pytest.raises(mlops_nb.NotFound):
        alice.storage.registered_model.delete_registered_model(model_id=other)
    assert alice.storage.registered_model.count_registered_models(project_id=project).registered_model_count == 1


def test_model_access_follows_the_project(alice: Any, bob: Any) -> None:
    project = new_project(alice, "models of alice")
    model = new_model(alice, project, "m")
    for call in (lambda: bob.storage.registered_model.get_registered_model(model_id=model),
                 lambda: bob.storage.registered_model.list_registered_models(project_id=project),
                 lambda: bob.storage.registered_model.count_registered_models(project_id=project),
                 lambda: bob.storage.registered_model.get_registered_model_by_name(model_name="m", project_id=project),
                 lambda: bob.storage.registered_model.delete_registered_model(model_id=model),
                 lambda: new_model(bob, project, "bob's")):
        with pytest.raises(mlops_nb.NotFound):
            call()
    share(alice, project, bob, ROLE_VIEWER)
    assert bob.storage.registered_model.get_registered_model(model_id=model).registered_model.display_name == "m"
    with pytest.raises(mlops_nb.PermissionDenied):
        new_model(bob, project, "bob's")
    with pytest.raises(mlops_nb.PermissionDenied):
        bob.storage.registered_model_version.create_model_version(registered_model_version={
            "registered_model_id": model, "experiment_id": new_experiment(alice, project)})
    share(alice, project, bob, ROLE_EDITOR)
    new_model(bob, project, "bob's")


# -- versions ------------------------------------------------------------------------------------


def test_versions_are_numbered_per_model(alice: Any) -> None:
    project = new_project(alice, "versions")
    model = new_model(alice, project, "m")
    experiments = [new_experiment(alice, project, f"e{i}") for i in range(4)]
    v1 = new_version(alice, model, experiments[0])
    v2 = new_version(alice, model, experiments[1])
    assert (v1.version, v2.version, v1.status.value, v1.experiment_id) == (1, 2, "ACTIVE", experiments[0])
    with pytest.raises(mlops_nb.AlreadyExists, match="registered in model 'm' already"):
        new_version(alice, model, experiments[0])
    # One experiment may back versions of several models.
    other = new_model(alice, project, "other")
    assert new_version(alice, other, experiments[0]).version == 1

    alice.storage.registered_model_version.delete_model_version(id=v2.id)
    v3 = new_version(alice, model, experiments[2])
    assert v3.version == 3  # numbers are never reused
    inactive = alice.storage.registered_model_version.create_model_version(registered_model_version={
        "registered_model_id": model, "experiment_id": experiments[3], "status": "INACTIVE"}).registered_model_version
    assert (inactive.version, inactive.status.value) == (4, "INACTIVE")

    got = alice.storage.registered_model_version.get_model_version(model_version_id=v3.id).registered_model_version
    assert got == v3
    listed = alice.storage.registered_model_version.list_model_versions_for_model(registered_model_id=model)
    assert [v.version for v in listed.model_versions] == [4, 3, 1]
    ascending = alice.storage.registered_model_version.list_model_versions_for_model(
        registered_model_id=model, paging={"page_size": 2},
        sorting={"property": [{"property": {"field": "version"}, "order": "ASCENDING"}]})
    assert [v.version for v in ascending.model_versions] == [1, 3] and ascending.paging.next_page_token
    active = alice.storage.registered_model_version.list_model_versions_for_model(
        registered_model_id=model, filter={"query": {"clause": [{"property_constraint": [
            {"property": {"field": "status"}, "operator": "EQUAL_TO", "value": {"string_value": "ACTIVE"}}]}]}})
    assert [v.version for v in active.model_versions] == [3, 1]
    assert alice.storage.registered_model_version.count_model_versions(registered_model_id=model).count == 3

    for_experiment = alice.storage.registered_model_version.get_model_version_for_experiment(
        experiment_id=experiments[0]).registered_model_version
    assert {(v.registered_model_id, v.version) for v in for_experiment} == {(model, 1), (other, 1)}
    assert alice.storage.experiment.is_experiment_registered(experiment_id=experiments[0]).is_registered


def test_a_version_can_name_its_model(alice: Any) -> None:
    project = new_project(alice, "by name")
    first = alice.storage.registered_model_version.create_model_version(
        registered_model_version={"experiment_id": new_experiment(alice, project)},
        registered_model_display_name="auto", project_id=project).registered_model_version
    second = alice.storage.registered_model_version.create_model_version(
        registered_model_version={"experiment_id": new_experiment(alice, project)},
        registered_model_display_name="auto", project_id=project).registered_model_version
    assert first.registered_model_id == second.registered_model_id
    assert (first.version, second.version) == (1, 2)
    model = alice.storage.registered_model.get_registered_model_by_name(model_name="auto", project_id=project)
    assert model.registered_model.id == first.registered_model_id
    with pytest.raises(mlops_nb.InvalidArgument, match="name the model"):
        alice.storage.registered_model_version.create_model_version(
            registered_model_version={"experiment_id": new_experiment(alice, project)})


def test_a_version_needs_a_live_readable_experiment(alice: Any, bob: Any) -> None:
    project = new_project(alice, "experiments")
    model = new_model(alice, project, "m")
    with pytest.raises(mlops_nb.InvalidArgument, match="experiment_id"):
        alice.storage.registered_model_version.create_model_version(
            registered_model_version={"registered_model_id": model})
    with pytest.raises(mlops_nb.NotFound):
        new_version(alice, model, "no-such-experiment")
    deleted = new_experiment(alice, project)
    alice.storage.experiment.delete_experiment(id=deleted)
    with pytest.raises(mlops_nb.NotFound):
        new_version(alice, model, deleted)
    bobs_project = new_project(bob, "bob's")
    bobs_model = new_model(bob, bobs_project, "b")
    with pytest.raises(mlops_nb.NotFound):
        new_version(bob, bobs_model, new_experiment(alice, project))
    with pytest.raises(mlops_nb.NotFound):
        alice.storage.registered_model_version.get_model_version(
            model_version_id=new_version(bob, bobs_model, new_experiment(bob, bobs_project)).id)


def test_deletes_cascade_and_spare_what_is_deployed(sandbox: Sandbox, alice: Any) -> None:
    project = new_project(alice, "deletes")
    model = new_model(alice, project, "m")
    experiments = [new_experiment(alice, project, f"e{i}") for i in range(3)]
    for experiment in experiments:
        uploaded_artifact(alice, experiment)
    versions = [new_version(alice, model, e).id for e in experiments]
    version_artifact = uploaded_artifact(alice, versions[2])
    deploy(alice, project, experiments[0], "dai/mojo_pipeline")

    with pytest.raises(mlops_nb.FailedPrecondition, match="served by deployment"):
        alice.storage.registered_model_version.delete_model_version(id=versions[0])
    with pytest.raises(mlops_nb.FailedPrecondition, match="served by deployment"):
        alice.storage.registered_model.delete_registered_model(model_id=model)
    results = alice.storage.registered_model_version.batch_delete_model_version(
        ids=[versions[0], versions[2], "no-such-version", versions[2]]).delete_model_version_response
    assert [(r.id, r.status) for r in results] == [(versions[0], False), (versions[2], True),
                                                   ("no-such-version", False)]
    assert "served by deployment" in results[0].message and "not found" in results[2].message
    with pytest.raises(mlops_nb.NotFound):
        alice.storage.artifact.get_artifact(id=version_artifact)
    assert not (Path(sandbox.db + ".blobs") / version_artifact).exists()
    assert alice.storage.registered_model_version.batch_delete_model_version(ids=[]).delete_model_version_response == []

    spare = new_model(alice, project, "spare")
    spare_version = new_version(alice, spare, experiments[1]).id
    spare_artifact = uploaded_artifact(alice, spare_version)
    results = alice.storage.registered_model.batch_delete_registered_model(
        model_ids=[model, spare]).delete_registered_model_response
    assert [(r.model_id, r.status) for r in results] == [(model, False), (spare, True)]
    for call in (lambda: alice.storage.registered_model_version.get_model_version(model_version_id=spare_version),
                 lambda: alice.storage.artifact.get_artifact(id=spare_artifact)):
        with pytest.raises(mlops_nb.NotFound):
            call()
    # The deployed model's version is still there; the model itself too.
    assert alice.storage.registered_model_version.count_model_versions(registered_model_id=model).count == 2


def test_deleting_a_project_leaves_no_registry_rows(sandbox: Sandbox, alice: Any) -> None:
    project = new_project(alice, "doomed")
    experiment = new_experiment(alice, project)
    uploaded_artifact(alice, experiment)
    model = new_model(alice, project, "m")
    new_version(alice, model, experiment)
    deploy(alice, project, experiment, "dai/mojo_pipeline")
    alice.storage.project.delete_project(project_id=project)
    with sandbox.store.reading() as db:
        assert db.execute("SELECT count(*) FROM registered_model_version_number WHERE registered_model_id = ?",
                          (model,)).fetchone()[0] == 0
        assert db.execute("SELECT count(*) FROM deployment_model WHERE experiment_id = ?",
                          (experiment,)).fetchone()[0] == 0
        assert db.execute("SELECT count(*) FROM entity WHERE project_id = ?", (project,)).fetchone()[0] == 0


# -- datasets ------------------------------------------------------------------------------------


def new_dataset(client: Any, project_id: str, name: str = "d", **fields: Any) -> Any:
    return client.storage.dataset.create_dataset(project_id=project_id, dataset={"display_name": name, **fields},
                                                 response_metadata={"pattern": ["%"]}).dataset


def test_datasets(alice: Any) -> None:
    project = new_project(alice, "datasets")
    metadata = {"values": {"source": {"string_value": "s3"}, "rows_a": {"int64_value": 3},
                           "rows_b": {"int64_value": 4}}}
    created = new_dataset(alice, project, "train.csv", row_count=24000, col_count=25, size=2_000_000,
                          metadata=metadata, tag=[{"id": "ignored"}])
    assert (created.row_count, created.owner_id, created.tag) == (24000, user_id(alice), [])
    assert set(created.metadata.values) == {"source", "rows_a", "rows_b"}
    with pytest.raises(mlops_nb.InvalidArgument, match="display_name"):
        new_dataset(alice, project, "")

    def keys(*patterns: str) -> set[str]:
        got = alice.storage.dataset.get_dataset(id=created.id, response_metadata={"pattern": list(patterns)})
        return set(got.dataset.metadata.values) if got.dataset.metadata else set()

    assert keys() == set()
    assert keys("rows__") == {"rows_a", "rows_b"}
    assert keys("s%", "rows_a") == {"source", "rows_a"}

    second = new_dataset(alice, project, "test.csv")
    listed = alice.storage.dataset.list_datasets(project_id=project, paging={"page_size": 1})
    assert [d.id for d in listed.dataset] == [second.id] and listed.paging.next_page_token
    assert listed.dataset[0].metadata.values == {}
    everything = alice.storage.dataset.list_datasets(response_metadata={"pattern": ["source"]}).dataset
    assert {created.id, second.id} <= {d.id for d in everything}
    assert next(d for d in everything if d.id == created.id).metadata.values["source"].string_value == "s3"

    updated = alice.storage.dataset.update_dataset(
        dataset={"id": created.id, "display_name": "train-2.csv", "row_count": 1}, update_mask="display_name,rowCount",
        response_metadata={"pattern": ["%"]}).dataset
    assert (updated.display_name, updated.row_count, updated.col_count) == ("train-2.csv", 1, 25)
    merged = alice.storage.dataset.update_dataset(
        dataset={"id": created.id, "metadata": {"values": {"source": {"string_value": "gcs"}}}},
        response_metadata={"pattern": ["%"]}).dataset.metadata.values
    assert (set(merged), merged["source"].string_value) == ({"source", "rows_a", "rows_b"}, "gcs")
    assert updated.last_modified_time > created.last_modified_time
    with pytest.raises(mlops_nb.InvalidArgument, match="updatable fields"):
        alice.storage.dataset.update_dataset(dataset={"id": created.id, "owner_id": "x"}, update_mask="owner_id")
    with pytest.raises(mlops_nb.InvalidArgument, match="cannot be empty"):
        alice.storage.dataset.update_dataset(dataset={"id": created.id}, update_mask="display_name")

    artifact = uploaded_artifact(alice, created.id)
    alice.storage.dataset.delete_dataset(id=created.id, project_id=project)
    for call in (lambda: alice.storage.dataset.get_dataset(id=created.id),
                 lambda: alice.storage.artifact.get_artifact(id=artifact),
                 lambda: alice.storage.dataset.delete_dataset(id=created.id)):
        with pytest.raises(mlops_nb.NotFound):
            call()
    with pytest.raises(mlops_nb.NotFound):
        alice.storage.dataset.delete_dataset(id=second.id, project_id=new_project(alice, "not its project"))

    third = new_dataset(alice, project, "third.csv")
    results = alice.storage.dataset.batch_delete_dataset(dataset_request=[
        {"id": second.id, "project_id": project}, {"id": "no-such-dataset"}, {"id": third.id}]).dataset_delete_response
    assert [(r.id, r.status) for r in results] == [(second.id, True), ("no-such-dataset", False), (third.id, True)]
    assert results[0].project_id == project and "not found" in results[1].message
    assert alice.storage.dataset.list_datasets(project_id=project).dataset == []
    assert alice.storage.dataset.batch_delete_dataset(dataset_request=[]).dataset_delete_response == []


def test_dataset_links_tags_and_access(alice: Any, bob: Any) -> None:
    home = new_project(alice, "dataset home")
    dataset = new_dataset(alice, home, "shared.csv").id
    bobs = new_project(bob, "bob's datasets")
    with pytest.raises(mlops_nb.NotFound):
        bob.storage.dataset.get_dataset(id=dataset)
    with pytest.raises(mlops_nb.NotFound):
        bob.storage.dataset.link_dataset_into_project(project_id=bobs, dataset_id=dataset)

    # alice links her dataset into a project of bob's, where she is an editor.
    share(bob, bobs, alice, ROLE_EDITOR)
    alice.storage.dataset.link_dataset_into_project(project_id=bobs, dataset_id=dataset)
    with pytest.raises(mlops_nb.AlreadyExists):
        alice.storage.dataset.link_dataset_into_project(project_id=bobs, dataset_id=dataset)
    with pytest.raises(mlops_nb.AlreadyExists, match="home"):
        alice.storage.dataset.link_dataset_into_project(project_id=home, dataset_id=dataset)
    assert [d.id for d in bob.storage.dataset.list_datasets(project_id=bobs).dataset] == [dataset]
    assert bob.storage.dataset.get_dataset(id=dataset).dataset.display_name == "shared.csv"
    with pytest.raises(mlops_nb.PermissionDenied, match="home project"):
        bob.storage.dataset.update_dataset(dataset={"id": dataset, "display_name": "mine"})
    with pytest.raises(mlops_nb.PermissionDenied):
        bob.storage.dataset.delete_dataset(id=dataset)

    # Tags: of a project the dataset is in, set by someone who may write that project.
    tag = bob.storage.tag.create_tag(project_id=bobs, tag={"display_name": "gold"}).tag
    home_tag = alice.storage.tag.create_tag(project_id=home, tag={"display_name": "raw"}).tag
    bob.storage.dataset.tag_dataset(dataset_id=dataset, tag_id=tag.id)
    bob.storage.dataset.tag_dataset(dataset_id=dataset, tag_id=tag.id)
    alice.storage.dataset.tag_dataset(dataset_id=dataset, tag_id=home_tag.id)
    assert [t.display_name for t in bob.storage.dataset.get_dataset(id=dataset).dataset.tag] == ["gold"]
    assert [t.display_name for t in alice.storage.dataset.get_dataset(id=dataset).dataset.tag] == ["gold", "raw"]
    tagged = {"query": {"clause": [{"tag_constraint": [{"tag_id": tag.id, "inclusion": "INCLUDE"}]}]}}
    assert [d.id for d in alice.storage.dataset.list_datasets(project_id=home, filter=tagged).dataset] == [dataset]
    lonely = new_dataset(alice, home, "lonely.csv").id
    with pytest.raises(mlops_nb.FailedPrecondition, match="link the dataset there first"):
        alice.storage.dataset.tag_dataset(dataset_id=lonely, tag_id=tag.id)
    with pytest.raises(mlops_nb.NotFound):
        bob.storage.dataset.tag_dataset(dataset_id=dataset, tag_id=home_tag.id)
    alice.storage.dataset.untag_dataset(dataset_id=dataset, tag_id=home_tag.id)
    alice.storage.dataset.untag_dataset(dataset_id=dataset, tag_id=home_tag.id)
    with pytest.raises(mlops_nb.InvalidArgument):
        alice.storage.dataset.untag_dataset(dataset_id=dataset)

    # Unlinking takes the project's tags along; the home project cannot be unlinked.
    with pytest.raises(mlops_nb.FailedPrecondition, match="home"):
        alice.storage.dataset.unlink_dataset_from_project(project_id=home, dataset_id=dataset)
    alice.storage.dataset.unlink_dataset_from_project(project_id=bobs, dataset_id=dataset)
    with pytest.raises(mlops_nb.NotFound):
        alice.storage.dataset.unlink_dataset_from_project(project_id=bobs, dataset_id=dataset)
    assert alice.storage.dataset.get_dataset(id=dataset).dataset.tag == []
    assert bob.storage.dataset.list_datasets(project_id=bobs).dataset == []
    with pytest.raises(mlops_nb.NotFound):
        bob.storage.dataset.get_dataset(id=dataset)


def test_a_dataset_artifact_is_streamed_like_any_other(alice: Any) -> None:
    dataset = new_dataset(alice, new_project(alice, "dataset bytes")).id
    artifact = uploaded_artifact(alice, dataset, "dataset/csv", b"a,b\n1,2\n")
    out = io.BytesIO()
    alice.storage.artifact.download_artifact(artifact, out)
    assert out.getvalue() == b"a,b\n1,2\n"
