"""ExperimentService (and CommentService.GetComment) in the sandbox, through the real client."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

import mlops_nb as mlops
from mlops_nb.sandbox import Sandbox
from mlops_nb.sandbox.rpc import new_id, timestamp_text
from mlops_nb.sandbox.services.access import ROLE_EDITOR, ROLE_VIEWER


def me(client: Any) -> str:
    return client.storage.user.who_am_i().user.id


def new_project(client: Any, name: str) -> Any:
    return client.storage.project.create_project(project={"display_name": name}).project


def new_experiment(client: Any, project_id: str, name: str, **fields: Any) -> Any:
    return client.storage.experiment.create_experiment(
        project_id=project_id, experiment={"display_name": name, **fields}).experiment


def names(experiments: list[Any]) -> list[str]:
    return [e.display_name for e in experiments]


def clause(*constraints: dict[str, Any], tags: tuple[tuple[str, str], ...] = ()) -> dict[str, Any]:
    return {"property_constraint": list(constraints),
            "tag_constraint": [{"tag_id": t, "inclusion": inclusion} for t, inclusion in tags]}


def constraint(field: str, operator: str, **value: Any) -> dict[str, Any]:
    return {"property": {"field": field}, "operator": operator, "value": value}


def where(*clauses: dict[str, Any]) -> dict[str, Any]:
    return {"query": {"clause": list(clauses)}}


METADATA = {"values": {"source": {"string_value": "dai"}, "score": {"double_value": 0.91},
                       "dai/score": {"double_value": 0.9}, "rows": {"int64_value": 12}}}


# -- create, get, list, count -----------------------------------------------------------------------


def test_create_get_list_count(alice: Any) -> None:
    project = new_project(alice, "experiments basics")
    created = new_experiment(alice, project.id, "GBM", description="first", status="FINISHED",
                             parameters={"target_column": "y", "training_dataset_id": "d1"},
                             statistics={"training_duration": "30s"}, metadata=METADATA)
    assert created.id and created.owner_id == me(alice) and created.status == "FINISHED"
    assert created.parameters.target_column == "y" and created.statistics.training_duration == "30s"
    assert created.created_time == created.last_modified_time and created.tag == []
    # Metadata comes back only for the keys asked for.
    assert created.metadata.values == {}
    fetched = alice.storage.experiment.get_experiment(id=created.id).experiment
    assert fetched == created
    every = alice.storage.experiment.get_experiment(id=created.id, response_metadata={"pattern": ["%"]})
    assert set(every.experiment.metadata.values) == {"source", "score", "dai/score", "rows"}
    assert every.experiment.metadata.values["rows"].int64_value == 12
    some = alice.storage.experiment.get_experiment(id=created.id, response_metadata={"pattern": ["s_ore", "dai/%"]})
    assert set(some.experiment.metadata.values) == {"score", "dai/score"}

    second = new_experiment(alice, project.id, "GLM")
    listed = alice.storage.experiment.list_experiments(project_id=project.id,
                                                       response_metadata={"pattern": ["source"]})
    assert [e.id for e in listed.experiment] == [second.id, created.id] and listed.paging is None
    assert set(listed.experiment[1].metadata.values) == {"source"}
    assert alice.storage.experiment.count_experiments(project_id=project.id).count == 2
    assert alice.storage.experiment.count_experiments(
        project_id=project.id, filter=where(clause(constraint("status", "EQUAL_TO", string_value="FINISHED")))
    ).count == 1


def test_create_and_get_validate(alice: Any, bob: Any) -> None:
    project = new_project(alice, "experiment validation")
    create = alice.storage.experiment.create_experiment
    with pytest.raises(mlops.InvalidArgument, match="display_name"):
        create(project_id=project.id, experiment={"description": "nameless"})
    with pytest.raises(mlops.InvalidArgument, match="project_id"):
        create(experiment={"display_name": "homeless"})
    with pytest.raises(mlops.NotFound):
        bob.storage.experiment.create_experiment(project_id=project.id, experiment={"display_name": "x"})
    with pytest.raises(mlops.InvalidArgument, match="id"):
        alice.storage.experiment.get_experiment()
    with pytest.raises(mlops.NotFound):
        alice.storage.experiment.get_experiment(id=new_id())
    with pytest.raises(mlops.InvalidArgument, match="project_id"):
        alice.storage.experiment.list_experiments()
    with pytest.raises(mlops.InvalidArgument, match="project_id"):
        alice.storage.experiment.count_experiments()
    experiment = new_experiment(alice, project.id, "private")
    with pytest.raises(mlops.NotFound):
        bob.storage.experiment.get_experiment(id=experiment.id)
    with pytest.raises(mlops.NotFound):
        bob.storage.experiment.list_experiments(project_id=project.id)


def test_list_sorts_filters_and_pages(alice: Any) -> None:
    project = new_project(alice, "many experiments")
    statuses = ["TRAINING", "FINISHED", "FAILED"]
    made = [new_experiment(alice, project.id, f"exp-{i:02d}", status=statuses[i % 3], description=f"d{i % 4}")
            for i in range(24)]
    ids = [e.id for e in made]
    listing = alice.storage.experiment.list_experiments

    def all_pages(**request: Any) -> list[Any]:
        items, token = [], b""
        while True:
            response = listing(project_id=project.id, paging={"page_size": 5, "page_token": token}, **request)
            items += response.experiment
            if response.paging is None:
                return items
            token = response.paging.next_page_token

    assert [e.id for e in all_pages()] == ids[::-1]
    by_name = {"property": [{"property": {"field": "display_name"}, "order": "ASCENDING"}]}
    assert [e.id for e in all_pages(sorting=by_name)] == ids
    by_status = {"property": [{"property": {"field": "status"}, "order": "DESCENDING"},
                              {"property": {"field": "displayName"}, "order": "ASCENDING"}]}
    expected = sorted(made, key=lambda e: e.display_name)
    expected.sort(key=lambda e: e.status.value, reverse=True)
    assert [e.id for e in all_pages(sorting=by_status)] == [e.id for e in expected]
    failed_or_d0 = where(clause(constraint("status", "EQUAL_TO", string_value="FAILED")),
                         clause(constraint("description", "EQUAL_TO", string_value="d0"),
                                constraint("display_name", "LESS_THAN", string_value="exp-10")))
    assert names(all_pages(filter=failed_or_d0, sorting=by_name)) == [
        e.display_name for e in made
        if e.status == "FAILED" or (e.description == "d0" and e.display_name < "exp-10")]


# -- update ------------------------------------------------------------------------------------------


def test_update(alice: Any, bob: Any) -> None:
    project = new_project(alice, "updates")
    experiment = new_experiment(alice, project.id, "v1", description="old", metadata=METADATA)
    update = alice.storage.experiment.update_experiment
    renamed = update(experiment={"id": experiment.id, "display_name": "v2", "description": "ignored"},
                     update_mask="displayName").experiment
    assert (renamed.display_name, renamed.description) == ("v2", "old")
    assert renamed.last_modified_time > experiment.last_modified_time
    changed = update(experiment={"id": experiment.id, "status": "FAILED", "parameters": {"target_column": "t"},
                                 "metadata": {"values": {"score": {"double_value": 0.5},
                                                         "new": {"bool_value": True}}}},
                     response_metadata={"pattern": ["%"]}).experiment
    assert changed.status == "FAILED" and changed.parameters.target_column == "t"
    # Metadata keys are added or replaced, never dropped.
    values = changed.metadata.values
    assert set(values) == {"source", "score", "dai/score", "rows", "new"}
    assert values["score"].double_value == 0.5 and values["new"].bool_value is True
    with pytest.raises(mlops.InvalidArgument, match="experiment.id"):
        update(experiment={"display_name": "x"})
    with pytest.raises(mlops.InvalidArgument, match="owner_id"):
        update(experiment={"id": experiment.id}, update_mask="owner_id")
    with pytest.raises(mlops.InvalidArgument, match="display_name"):
        update(experiment={"id": experiment.id}, update_mask="display_name")
    alice.storage.project.share_project(project_id=project.id, user_id=me(bob), restriction_role_id=ROLE_VIEWER)
    assert bob.storage.experiment.get_experiment(id=experiment.id).experiment.display_name == "v2"
    with pytest.raises(mlops.PermissionDenied):
        bob.storage.experiment.update_experiment(experiment={"id": experiment.id, "display_name": "bob"})
    alice.storage.project.share_project(project_id=project.id, user_id=me(bob), restriction_role_id=ROLE_EDITOR)
    by_bob = bob.storage.experiment.update_experiment(experiment={"id": experiment.id, "display_name": "bob"})
    assert by_bob.experiment.display_name == "bob"


# -- soft delete and recovery --------------------------------------------------------------------------


def test_delete_hides_and_recover_restores(alice: Any, bob: Any) -> None:
    project = new_project(alice, "soft delete")
    keep, drop = new_experiment(alice, project.id, "keep"), new_experiment(alice, project.id, "drop")
    exp = alice.storage.experiment
    with pytest.raises(mlops.NotFound):  # the project named must hold the experiment
        exp.delete_experiment(id=drop.id, project_id=new_project(alice, "other").id)
    with pytest.raises(mlops.InvalidArgument, match="id"):
        exp.delete_experiment(project_id=project.id)
    with pytest.raises(mlops.NotFound):
        bob.storage.experiment.delete_experiment(id=drop.id)

    exp.delete_experiment(id=drop.id, project_id=project.id)
    assert [e.id for e in exp.list_experiments(project_id=project.id).experiment] == [keep.id]
    assert exp.count_experiments(project_id=project.id).count == 1
    with pytest.raises(mlops.NotFound):
        exp.get_experiment(id=drop.id)
    with pytest.raises(mlops.NotFound):
        exp.delete_experiment(id=drop.id)
    with pytest.raises(mlops.FailedPrecondition, match="not deleted"):
        exp.recover_deleted_experiment(experiment_id=keep.id)

    recovered = exp.recover_deleted_experiment(experiment_id=drop.id, project_id=project.id)
    assert (recovered.experiment_id, recovered.project_id, recovered.status) == (drop.id, project.id, True)
    assert exp.get_experiment(id=drop.id).experiment == drop


def test_batch_delete_and_recover(alice: Any, bob: Any) -> None:
    project = new_project(alice, "batches")
    made = [new_experiment(alice, project.id, f"b{i}") for i in range(3)]
    foreign = new_experiment(bob, new_project(bob, "bob's batch").id, "bob's")
    deleted = alice.storage.experiment.batch_delete_experiment(experiment_request=[
        {"id": made[0].id, "project_id": project.id}, {"id": made[1].id}, {"id": foreign.id}, {"project_id": "x"},
    ]).experiment_delete_response
    assert [(r.id, r.status) for r in deleted] == [(made[0].id, True), (made[1].id, True), (foreign.id, False),
                                                   ("", False)]
    assert deleted[0].project_id == project.id and "required" in deleted[3].message
    assert [e.id for e in alice.storage.experiment.list_experiments(project_id=project.id).experiment] == [made[2].id]
    recovered = alice.storage.experiment.batch_recover_deleted_experiment(recover_experiment_requests=[
        {"experiment_id": made[0].id}, {"experiment_id": made[2].id}, {"experiment_id": made[1].id},
    ]).recover_experiment_responses
    assert [(r.experiment_id, r.status) for r in recovered] == [(made[0].id, True), (made[2].id, False),
                                                                (made[1].id, True)]
    assert "not deleted" in recovered[1].message
    assert alice.storage.experiment.count_experiments(project_id=project.id).count == 3
    assert bob.storage.experiment.get_experiment(id=foreign.id).experiment == foreign


# -- tags ------------------------------------------------------------------------------------------------


def test_tags_on_experiments_and_tag_filters(alice: Any) -> None:
    project = new_project(alice, "tagged")
    gold = alice.storage.tag.create_tag(project_id=project.id, tag={"display_name": "gold"}).tag
    prod = alice.storage.tag.create_tag(project_id=project.id, tag={"display_name": "prod"}).tag
    a, b, c = (new_experiment(alice, project.id, name) for name in ("a", "b", "c"))
    exp = alice.storage.experiment
    exp.tag_experiment(experiment_id=a.id, tag_id=gold.id)
    exp.tag_experiment(experiment_id=a.id, tag_id=gold.id)  # twice: no change
    exp.tag_experiment(experiment_id=a.id, tag_id=prod.id)
    exp.tag_experiment(experiment_id=b.id, tag_id=prod.id)
    assert [t.display_name for t in exp.get_experiment(id=a.id).experiment.tag] == ["gold", "prod"]
    assert exp.get_experiment(id=a.id).experiment.tag[0] == gold

    def listed(*clauses: dict[str, Any]) -> list[str]:
        by_name = {"property": [{"property": {"field": "display_name"}, "order": "ASCENDING"}]}
        return names(exp.list_experiments(project_id=project.id, filter=where(*clauses), sorting=by_name).experiment)

    assert listed(clause(tags=((gold.id, "INCLUDE"),))) == ["a"]
    assert listed(clause(tags=((prod.id, "INCLUDE"),))) == ["a", "b"]
    assert listed(clause(tags=((prod.id, "INCLUDE"), (gold.id, "EXCLUDE")))) == ["b"]
    assert listed(clause(tags=((prod.id, "EXCLUDE"),))) == ["c"]
    assert listed(clause(tags=((gold.id, "INCLUDE"),)), clause(constraint("display_name", "EQUAL_TO",
                                                                          string_value="c"))) == ["a", "c"]
    assert listed(clause(constraint("display_name", "NOT_EQUAL_TO", string_value="a"),
                         tags=((prod.id, "INCLUDE"),))) == ["b"]
    assert exp.count_experiments(project_id=project.id, filter=where(clause(tags=((prod.id, "INCLUDE"),)))).count == 2

    exp.untag_experiment(experiment_id=a.id, tag_id=gold.id)
    exp.untag_experiment(experiment_id=a.id, tag_id=gold.id)  # not there: no change
    assert [t.id for t in exp.get_experiment(id=a.id).experiment.tag] == [prod.id]
    alice.storage.tag.delete_tag(id=prod.id, project_id=project.id)
    assert exp.get_experiment(id=a.id).experiment.tag == []
    with pytest.raises(mlops.InvalidArgument, match="tag_id"):
        exp.tag_experiment(experiment_id=a.id)
    with pytest.raises(mlops.NotFound, match="tag"):
        exp.tag_experiment(experiment_id=a.id, tag_id=prod.id)
    elsewhere = alice.storage.tag.create_tag(project_id=new_project(alice, "tags elsewhere").id,
                                             tag={"display_name": "far"}).tag
    with pytest.raises(mlops.FailedPrecondition, match="link"):
        exp.tag_experiment(experiment_id=a.id, tag_id=elsewhere.id)


# -- links ---------------------------------------------------------------------------------------------


def test_links_between_projects(alice: Any, bob: Any) -> None:
    home = new_project(alice, "home")
    experiment = new_experiment(alice, home.id, "traveller")
    alice.storage.project.share_project(project_id=home.id, user_id=me(bob), restriction_role_id=ROLE_VIEWER)
    bobs = new_project(bob, "bob's view")
    exp = bob.storage.experiment
    with pytest.raises(mlops.NotFound):  # bob may not write in alice's other project
        exp.link_experiment_into_project(project_id=new_project(alice, "closed").id, experiment_id=experiment.id)
    exp.link_experiment_into_project(project_id=bobs.id, experiment_id=experiment.id)
    with pytest.raises(mlops.AlreadyExists):
        exp.link_experiment_into_project(project_id=bobs.id, experiment_id=experiment.id)
    with pytest.raises(mlops.AlreadyExists):
        alice.storage.experiment.link_experiment_into_project(project_id=home.id, experiment_id=experiment.id)
    assert [e.id for e in exp.list_experiments(project_id=bobs.id).experiment] == [experiment.id]
    assert exp.count_experiments(project_id=bobs.id).count == 1
    containing = bob.storage.project.list_projects_containing_experiment(experiment_id=experiment.id).project
    assert {p.id for p in containing} == {home.id, bobs.id}
    # Alice does not see bob's project among those holding her experiment.
    assert [p.id for p in alice.storage.project.list_projects_containing_experiment(
        experiment_id=experiment.id).project] == [home.id]

    # Bob may tag it in his project, but not change it: it lives in alice's, where he views.
    tag = bob.storage.tag.create_tag(project_id=bobs.id, tag={"display_name": "bob's pick"}).tag
    exp.tag_experiment(experiment_id=experiment.id, tag_id=tag.id)
    assert [t.id for t in alice.storage.experiment.get_experiment(id=experiment.id).experiment.tag] == []
    assert [t.id for t in exp.get_experiment(id=experiment.id).experiment.tag] == [tag.id]
    with pytest.raises(mlops.PermissionDenied, match="lives in project"):
        exp.update_experiment(experiment={"id": experiment.id, "display_name": "mine"})
    # Through the link, bob keeps seeing it once alice stops sharing.
    sharing = alice.storage.project.list_project_sharings(project_id=home.id).sharing[0]
    alice.storage.project.unshare_project(project_id=home.id, sharing_id=sharing.id)
    assert exp.get_experiment(id=experiment.id).experiment.id == experiment.id
    with pytest.raises(mlops.PermissionDenied):
        exp.delete_experiment(id=experiment.id)

    with pytest.raises(mlops.FailedPrecondition, match="home"):
        alice.storage.experiment.unlink_experiment_from_project(project_id=home.id, experiment_id=experiment.id)
    exp.unlink_experiment_from_project(project_id=bobs.id, experiment_id=experiment.id)
    with pytest.raises(mlops.NotFound):
        exp.get_experiment(id=experiment.id)
    alice.storage.experiment.link_experiment_into_project(project_id=new_project(alice, "third").id,
                                                          experiment_id=experiment.id)
    with pytest.raises(mlops.NotFound):
        alice.storage.experiment.unlink_experiment_from_project(project_id=new_project(alice, "fourth").id,
                                                                experiment_id=experiment.id)
    with pytest.raises(mlops.InvalidArgument, match="experiment_id"):
        alice.storage.experiment.link_experiment_into_project(project_id=home.id)
    with pytest.raises(mlops.InvalidArgument, match="experiment_id"):
        alice.storage.project.list_projects_containing_experiment()


def test_unlink_removes_that_projects_tags(alice: Any) -> None:
    home, other = new_project(alice, "unlink home"), new_project(alice, "unlink other")
    experiment = new_experiment(alice, home.id, "linked")
    alice.storage.experiment.link_experiment_into_project(project_id=other.id, experiment_id=experiment.id)
    home_tag = alice.storage.tag.create_tag(project_id=home.id, tag={"display_name": "h"}).tag
    other_tag = alice.storage.tag.create_tag(project_id=other.id, tag={"display_name": "o"}).tag
    for tag in (home_tag, other_tag):
        alice.storage.experiment.tag_experiment(experiment_id=experiment.id, tag_id=tag.id)
    alice.storage.experiment.unlink_experiment_from_project(project_id=other.id, experiment_id=experiment.id)
    assert [t.id for t in alice.storage.experiment.get_experiment(id=experiment.id).experiment.tag] == [home_tag.id]
    assert alice.storage.experiment.list_experiments(project_id=other.id).experiment == []


# -- comments and metrics ----------------------------------------------------------------------------------


def test_comments(alice: Any, bob: Any) -> None:
    project = new_project(alice, "discussed")
    experiment = new_experiment(alice, project.id, "talked about")
    exp = alice.storage.experiment
    first = exp.create_experiment_comment(experiment_id=experiment.id, comment_message="looks good").comment
    assert (first.author_id, first.project_id, first.experiment_id, first.message) == (
        me(alice), project.id, experiment.id, "looks good")
    second = exp.create_experiment_comment(experiment_id=experiment.id, comment_message="ship it").comment
    assert [c.id for c in exp.list_experiment_comments(experiment_id=experiment.id).comment] == [second.id, first.id]
    oldest_first = exp.list_experiment_comments(
        experiment_id=experiment.id, paging={"page_size": 1},
        sorting={"property": [{"property": {"field": "created_time"}, "order": "ASCENDING"}]})
    assert [c.id for c in oldest_first.comment] == [first.id] and oldest_first.paging.next_page_token
    assert alice.storage.comment.get_comment(id=first.id).comment == first
    with pytest.raises(mlops.InvalidArgument, match="comment_message"):
        exp.create_experiment_comment(experiment_id=experiment.id, comment_message="  ")
    with pytest.raises(mlops.NotFound, match="comment"):
        bob.storage.comment.get_comment(id=first.id)
    with pytest.raises(mlops.NotFound):
        bob.storage.experiment.list_experiment_comments(experiment_id=experiment.id)
    with pytest.raises(mlops.InvalidArgument, match="id"):
        alice.storage.comment.get_comment()
    alice.storage.project.share_project(project_id=project.id, user_id=me(bob), restriction_role_id=ROLE_VIEWER)
    assert bob.storage.comment.get_comment(id=first.id).comment == first
    with pytest.raises(mlops.PermissionDenied):
        bob.storage.experiment.create_experiment_comment(experiment_id=experiment.id, comment_message="me too")
    exp.delete_experiment(id=experiment.id)
    with pytest.raises(mlops.NotFound, match="comment"):
        alice.storage.comment.get_comment(id=first.id)


def test_metrics(alice: Any) -> None:
    project = new_project(alice, "measured")
    experiment = new_experiment(alice, project.id, "scored")
    exp = alice.storage.experiment
    metric = exp.create_experiment_metric(experiment_id=experiment.id, dataset_id="test", key="auc",
                                          value={"double_value": 0.8}).metric
    assert (metric.experiment_id, metric.dataset_id, metric.key, metric.value.double_value) == (
        experiment.id, "test", "auc", 0.8)
    exp.create_experiment_metric(experiment_id=experiment.id, dataset_id="train", key="auc",
                                 value={"double_value": 0.95})
    exp.create_experiment_metric(experiment_id=experiment.id, key="rows", value={"int64_value": 100})
    # The same experiment, dataset and key: the value is replaced.
    exp.create_experiment_metric(experiment_id=experiment.id, dataset_id="test", key="auc",
                                 value={"double_value": 0.85})
    by_key = {"property": [{"property": {"field": "key"}, "order": "DESCENDING"},
                           {"property": {"field": "dataset_id"}, "order": "ASCENDING"}]}
    listed = exp.list_experiment_metrics(experiment_id=experiment.id, sorting=by_key).metric
    assert [(m.key, m.dataset_id) for m in listed] == [("rows", ""), ("auc", "test"), ("auc", "train")]
    assert listed[1].value.double_value == 0.85 and listed[0].value.int64_value == 100
    assert listed[1].unknown_fields == {}
    on_test = exp.list_experiment_metrics(experiment_id=experiment.id, filter=where(clause(
        constraint("datasetId", "EQUAL_TO", string_value="test")))).metric
    assert [m.key for m in on_test] == ["auc"]
    with pytest.raises(mlops.InvalidArgument, match="key"):
        exp.create_experiment_metric(experiment_id=experiment.id, value={"double_value": 1.0})
    with pytest.raises(mlops.InvalidArgument, match="value"):
        exp.create_experiment_metric(experiment_id=experiment.id, key="empty")
    with pytest.raises(mlops.InvalidArgument, match="experiment_id"):
        exp.create_experiment_metric(key="k", value={"double_value": 1.0})


# -- registration ----------------------------------------------------------------------------------------


def test_is_experiment_registered(sandbox: Sandbox, alice: Any) -> None:
    project = new_project(alice, "registry")
    experiment = new_experiment(alice, project.id, "candidate")
    check = alice.storage.experiment.is_experiment_registered
    assert check(experiment_id=experiment.id, project_id=project.id).is_registered is False
    # Model versions are written by services/models.py; a row as it stores one stands in for it.
    sandbox.store.put("registered_model_version", {
        "id": new_id(), "registeredModelId": new_id(), "experimentId": experiment.id, "version": 1,
        "createdTime": timestamp_text(datetime.now(timezone.utc))}, project_id=project.id)
    assert check(experiment_id=experiment.id).is_registered is True
    with pytest.raises(mlops.NotFound):
        check(experiment_id=experiment.id, project_id=new_project(alice, "unrelated").id)
    with pytest.raises(mlops.InvalidArgument, match="experiment_id"):
        check(project_id=project.id)
