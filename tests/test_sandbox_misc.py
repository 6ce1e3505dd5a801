"""TagService, RoleService, the GetVersion methods and GatewayAggregatorServices in the sandbox."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

import mlops_nb as mlops
from mlops_nb.sandbox import Sandbox
from mlops_nb.sandbox.rpc import new_id, timestamp_text
from mlops_nb.sandbox.services.access import ROLE_EDITOR, ROLE_OWNER, ROLE_VIEWER


def me(client: Any) -> str:
    return client.storage.user.who_am_i().user.id


def new_project(client: Any, name: str) -> Any:
    return client.storage.project.create_project(project={"display_name": name}).project


# -- tags --------------------------------------------------------------------------------------------


def test_tag_lifecycle(alice: Any) -> None:
    project = new_project(alice, "tag lifecycle")
    tags = alice.storage.tag
    red = tags.create_tag(project_id=project.id, tag={"display_name": "red"}).tag
    assert red.id and red.project_id == project.id and red.display_name == "red" and red.created_time
    blue = tags.create_tag(tag={"display_name": "blue", "project_id": project.id}).tag
    assert tags.get_tag(id=red.id).tag == red
    assert tags.get_tag(id=red.id, project_id=project.id).tag == red
    listed = tags.list_tags(project_id=project.id).tag
    assert [t.id for t in listed] == [blue.id, red.id]
    by_name = {"property": [{"property": {"field": "display_name"}, "order": "ASCENDING"}]}
    assert [t.display_name for t in tags.list_tags(project_id=project.id, sorting=by_name).tag] == ["blue", "red"]
    page = tags.list_tags(project_id=project.id, paging={"page_size": 1})
    assert len(page.tag) == 1 and page.paging.next_page_token

    renamed = tags.update_tag(tag={"id": red.id, "display_name": "crimson"}, update_mask="displayName").tag
    assert (renamed.id, renamed.display_name, renamed.project_id) == (red.id, "crimson", project.id)
    assert tags.get_tag(id=red.id).tag == renamed
    tags.delete_tag(id=blue.id, project_id=project.id)
    with pytest.raises(mlops.NotFound):
        tags.get_tag(id=blue.id)
    assert [t.id for t in tags.list_tags(project_id=project.id).tag] == [red.id]
    events = alice.storage.project.list_project_events(project_id=project.id).event
    assert [e.operation for e in events][:4] == ["DELETE_TAG", "UPDATE_TAG", "CREATE_TAG", "CREATE_TAG"]


def test_tags_validate(alice: Any) -> None:
    project, other = new_project(alice, "tag rules"), new_project(alice, "tag rules 2")
    tags = alice.storage.tag
    gold = tags.create_tag(project_id=project.id, tag={"display_name": "gold"}).tag
    with pytest.raises(mlops.AlreadyExists, match="gold"):
        tags.create_tag(project_id=project.id, tag={"display_name": "gold"})
    assert tags.create_tag(project_id=other.id, tag={"display_name": "gold"}).tag.project_id == other.id
    with pytest.raises(mlops.InvalidArgument, match="display_name"):
        tags.create_tag(project_id=project.id, tag={"display_name": " "})
    with pytest.raises(mlops.InvalidArgument, match="tag"):
        tags.create_tag(project_id=project.id)
    with pytest.raises(mlops.InvalidArgument, match="project_id"):
        tags.create_tag(tag={"display_name": "orphan"})
    with pytest.raises(mlops.InvalidArgument, match="differ"):
        tags.create_tag(project_id=project.id, tag={"display_name": "x", "project_id": other.id})
    with pytest.raises(mlops.NotFound):
        tags.get_tag(id=gold.id, project_id=other.id)
    with pytest.raises(mlops.InvalidArgument, match="id"):
        tags.get_tag()
    silver = tags.create_tag(project_id=project.id, tag={"display_name": "silver"}).tag
    with pytest.raises(mlops.AlreadyExists):
        tags.update_tag(tag={"id": silver.id, "display_name": "gold"})
    with pytest.raises(mlops.InvalidArgument, match="project_id"):
        tags.update_tag(tag={"id": silver.id, "project_id": other.id}, update_mask="project_id")
    with pytest.raises(mlops.InvalidArgument, match="tag.id"):
        tags.update_tag(tag={"display_name": "x"})
    with pytest.raises(mlops.InvalidArgument, match="project_id"):
        tags.list_tags()
    with pytest.raises(mlops.NotFound):
        tags.delete_tag(id=new_id())


def test_tag_permissions(alice: Any, bob: Any) -> None:
    project = new_project(alice, "tag access")
    tag = alice.storage.tag.create_tag(project_id=project.id, tag={"display_name": "t"}).tag
    with pytest.raises(mlops.NotFound):
        bob.storage.tag.get_tag(id=tag.id)
    with pytest.raises(mlops.NotFound):
        bob.storage.tag.list_tags(project_id=project.id)
    alice.storage.project.share_project(project_id=project.id, user_id=me(bob), restriction_role_id=ROLE_VIEWER)
    assert bob.storage.tag.get_tag(id=tag.id).tag == tag
    assert [t.id for t in bob.storage.tag.list_tags(project_id=project.id).tag] == [tag.id]
    with pytest.raises(mlops.PermissionDenied):
        bob.storage.tag.create_tag(project_id=project.id, tag={"display_name": "bob's"})
    with pytest.raises(mlops.PermissionDenied):
        bob.storage.tag.update_tag(tag={"id": tag.id, "display_name": "bob's"})
    with pytest.raises(mlops.PermissionDenied):
        bob.storage.tag.delete_tag(id=tag.id)
    alice.storage.project.share_project(project_id=project.id, user_id=me(bob), restriction_role_id=ROLE_EDITOR)
    assert bob.storage.tag.update_tag(tag={"id": tag.id, "display_name": "bob's"}).tag.display_name == "bob's"


# -- roles and versions ---------------------------------------------------------------------------------


def test_list_roles(alice: Any) -> None:
    roles = alice.storage.role.list_roles().role
    assert [(r.id, r.display_name) for r in roles] == [(ROLE_OWNER, "OWNER"), (ROLE_EDITOR, "EDITOR"),
                                                       (ROLE_VIEWER, "VIEWER")]
    assert all(r.created_time for r in roles)


def test_versions_name_the_sandbox(alice: Any) -> None:
    for server in (alice.storage, alice.deployer, alice.ingest):
        build = server.version.get_version().version.build_version
        assert build == f"{mlops.__version__} (mlops_nb sandbox)"


# -- aggregated views ----------------------------------------------------------------------------------


def _register(sandbox: Sandbox, project_id: str, experiment_id: str, owner: str) -> tuple[str, str]:
    """A registered model with one version of the experiment.

    The registry belongs to services/models.py (another module); rows as it stores them stand in.
    """
    now = timestamp_text(datetime.now(timezone.utc))
    model_id, version_id = new_id(), new_id()
    sandbox.store.put("registered_model", {"id": model_id, "displayName": "churn model", "description": "v",
                                           "projectId": project_id, "createdTime": now, "createdBy": owner},
                      project_id=project_id)
    sandbox.store.put("registered_model_version", {"id": version_id, "registeredModelId": model_id,
                                                   "experimentId": experiment_id, "version": 3,
                                                   "createdTime": now, "createdBy": owner},
                      project_id=project_id, parent_id=model_id)
    return model_id, version_id


def test_project_with_aggregated_info(sandbox: Sandbox, alice: Any, bob: Any) -> None:
    project = new_project(alice, "aggregated")
    exp = alice.storage.experiment
    experiments = [exp.create_experiment(project_id=project.id, experiment={"display_name": f"e{i}"}).experiment
                   for i in range(3)]
    exp.delete_experiment(id=experiments[2].id)
    outsider = exp.create_experiment(project_id=new_project(alice, "source").id,
                                     experiment={"display_name": "linked in"}).experiment
    exp.link_experiment_into_project(project_id=project.id, experiment_id=outsider.id)
    alice.storage.project.share_project(project_id=project.id, user_id=me(bob), restriction_role_id=ROLE_VIEWER)
    _register(sandbox, project.id, experiments[0].id, me(alice))

    info = bob.storage.gateway_aggregator.get_project_with_aggregated_info(project_id=project.id).project_info
    assert info.project == alice.storage.project.get_project(project_id=project.id).project
    assert (info.experiment_count, info.registered_model_count, info.registered_model_version_count) == (3, 1, 1)
    assert info.share_count == 1 and [u.username for u in info.shared_user] == ["bob"]
    with pytest.raises(mlops.NotFound):
        bob.storage.gateway_aggregator.get_project_with_aggregated_info(project_id=outsider.id)
    with pytest.raises(mlops.InvalidArgument, match="project_id"):
        bob.storage.gateway_aggregator.get_project_with_aggregated_info()


def test_list_projects_with_aggregated_info(sandbox: Sandbox) -> None:
    sandbox.idp.add_account("erin", "erin@example.com", "erin")
    erin = sandbox.client("erin")
    made = [new_project(erin, f"agg {i}") for i in range(5)]
    erin.storage.experiment.create_experiment(project_id=made[1].id, experiment={"display_name": "one"})
    listing = erin.storage.gateway_aggregator.list_projects_with_aggregated_info
    first = listing(paging={"page_size": 3})
    assert first.user_project_count == 5 and len(first.project_info) == 3
    rest = listing(paging={"page_size": 3, "page_token": first.paging.next_page_token})
    assert rest.paging is None
    infos = [*first.project_info, *rest.project_info]
    assert [i.project.id for i in infos] == [p.id for p in made[::-1]]
    assert [i.experiment_count for i in infos] == [0, 0, 0, 1, 0]
    named = listing(filter={"query": {"clause": [{"property_constraint": [
        {"property": {"field": "display_name"}, "operator": "EQUAL_TO", "value": {"string_value": "agg 2"}}]}]}})
    assert [i.project.id for i in named.project_info] == [made[2].id] and named.user_project_count == 5


def test_list_experiments_with_model_info(sandbox: Sandbox, alice: Any, bob: Any) -> None:
    project = new_project(alice, "model info")
    exp = alice.storage.experiment
    plain = exp.create_experiment(project_id=project.id, experiment={"display_name": "plain"}).experiment
    registered = exp.create_experiment(project_id=project.id, experiment={
        "display_name": "registered", "metadata": {"values": {"k": {"string_value": "v"}}}}).experiment
    model_id, version_id = _register(sandbox, project.id, registered.id, me(alice))
    listing = alice.storage.gateway_aggregator.list_experiments_with_model_info
    response = listing(project_id=project.id, response_metadata={"pattern": ["k"]})
    assert response.experiment_count == 2 and response.paging is None
    newest, oldest = response.experiment_info
    assert (newest.experiment.id, oldest.experiment.id) == (registered.id, plain.id)
    assert oldest.model_info is None and newest.experiment.metadata.values["k"].string_value == "v"
    info = newest.model_info
    assert (info.model_id, info.model_name, info.model_description, info.project_id) == (
        model_id, "churn model", "v", project.id)
    assert (info.model_version_id, info.model_version_number) == (version_id, "3")
    assert info.model_owner == info.model_version_owner == me(alice)
    filtered = listing(project_id=project.id, paging={"page_size": 1}, filter={"query": {"clause": [
        {"property_constraint": [{"property": {"field": "display_name"}, "operator": "CONTAINS",
                                  "value": {"string_value": "PLA"}}]}]}})
    assert filtered.experiment_count == 1 and [i.experiment.id for i in filtered.experiment_info] == [plain.id]
    with pytest.raises(mlops.NotFound):
        bob.storage.gateway_aggregator.list_experiments_with_model_info(project_id=project.id)
