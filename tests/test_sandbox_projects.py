"""ProjectService in the sandbox, driven over loopback through the real client."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

import mlops_nb as mlops
from mlops_nb.sandbox import Sandbox
from mlops_nb.sandbox.rpc import new_id, timestamp_text
from mlops_nb.sandbox.services.access import ROLE_EDITOR, ROLE_OWNER, ROLE_VIEWER

MANY = 3000


def user_client(sandbox: Sandbox, username: str) -> Any:
    """A client for a new account of its own, so that counts and lists see only this test's projects."""
    sandbox.idp.add_account(username, f"{username}@example.com", username)
    return sandbox.client(username)


def me(client: Any) -> str:
    return client.storage.user.who_am_i().user.id


def new_project(client: Any, name: str, description: str = "") -> Any:
    return client.storage.project.create_project(project={"display_name": name, "description": description}).project


def constraint(field: str, operator: str, **value: Any) -> dict[str, Any]:
    return {"property": {"field": field}, "operator": operator, "value": value}


def where(*clauses: list[dict[str, Any]]) -> dict[str, Any]:
    """A filter: constraints within a clause are ANDed, clauses are ORed."""
    return {"query": {"clause": [{"property_constraint": c} for c in clauses]}}


def page_all(list_method: Callable[..., Any], field: str, page_size: int, **request: Any) -> list[Any]:
    items: list[Any] = []
    token = b""
    while True:
        response = list_method(paging={"page_size": page_size, "page_token": token}, **request)
        page = getattr(response, field)
        assert len(page) <= (page_size or 100)
        items += page
        if response.paging is None:
            return items
        token = response.paging.next_page_token
        assert token and page


# -- create, get, list ---------------------------------------------------------------------------


def test_create_and_get(alice: Any) -> None:
    before = datetime.now(timezone.utc)
    project = new_project(alice, "Fraud detection", "cards")
    assert project.id and project.display_name == "Fraud detection" and project.description == "cards"
    assert project.owner_id == me(alice)
    assert before - timedelta(seconds=1) <= project.created_time == project.last_modified_time
    assert alice.storage.project.get_project(project_id=project.id).project == project


def test_create_and_get_validate(alice: Any) -> None:
    with pytest.raises(mlops.InvalidArgument, match="display_name"):
        alice.storage.project.create_project(project={"description": "no name"})
    with pytest.raises(mlops.InvalidArgument, match="display_name"):
        alice.storage.project.create_project()
    with pytest.raises(mlops.InvalidArgument, match="project_id"):
        alice.storage.project.get_project()
    with pytest.raises(mlops.NotFound):
        alice.storage.project.get_project(project_id=new_id())


def test_lists_hold_own_and_shared_projects(sandbox: Sandbox) -> None:
    carol, dave = user_client(sandbox, "carol"), user_client(sandbox, "dave")
    own = {new_project(carol, f"carol {i}").id for i in range(3)}
    shared = new_project(dave, "dave shared")
    new_project(dave, "dave private")
    dave.storage.project.share_project(project_id=shared.id, user_id=me(carol), restriction_role_id=ROLE_VIEWER)

    listed = carol.storage.project.list_projects()
    assert {p.id for p in listed.project} == own | {shared.id}
    assert listed.user_project_count == 4 and listed.paging is None
    everything = carol.storage.project.list_all_projects()
    assert {p.id for p in everything.project} == own | {shared.id} and everything.total_project_count == 4
    # The count is of all the caller may see, whatever the filter.
    filtered = carol.storage.project.list_projects(filter=where([constraint("display_name", "CONTAINS",
                                                                            string_value="DAVE")]))
    assert [p.id for p in filtered.project] == [shared.id] and filtered.user_project_count == 4


# -- thousands of projects: paging, sorting, filters -------------------------------------------


@pytest.fixture(scope="module")
def many(sandbox: Sandbox) -> tuple[Any, list[dict[str, Any]]]:
    """A user with MANY projects, and those projects as stored (wire JSON)."""
    client = user_client(sandbox, "pager")
    owner = me(client)
    start = datetime(2024, 3, 1, tzinfo=timezone.utc)
    projects = []
    # Straight into the store, in one transaction: creating thousands through the API would
    # take most of the test budget, and creation is tested on its own above. Pairs of
    # projects share a creation time and names repeat, so that ties must be broken by id.
    with sandbox.store.transaction():
        for i in range(MANY):
            created = timestamp_text(start + timedelta(seconds=i // 2))
            data = {"id": new_id(), "displayName": f"proj-{(i * 7) % 500:03d}", "ownerId": owner,
                    "createdTime": created, "lastModifiedTime": created}
            if i % 7:
                data["description"] = ("alpha", "beta", "Gamma ray")[i % 3]
            sandbox.store.put("project", data, owner_id=owner)
            projects.append(data)
    return client, projects


def ordered(projects: list[dict[str, Any]], *keys: tuple[str, bool]) -> list[str]:
    """Ids in the order the sandbox promises: by the keys, then by id in the last key's direction."""
    result = sorted(projects, key=lambda p: p["id"], reverse=keys[-1][1])
    for name, descending in reversed(keys):
        result.sort(key=lambda p, n=name: p.get(n, ""), reverse=descending)
    return [p["id"] for p in result]


def sorting(*keys: tuple[str, bool]) -> dict[str, Any]:
    return {"property": [{"property": {"field": name}, "order": "DESCENDING" if desc else "ASCENDING"}
                         for name, desc in keys]}


def test_paging_through_thousands_newest_first(many: tuple[Any, list[dict[str, Any]]]) -> None:
    client, projects = many
    first = page_all(client.storage.project.list_projects, "project", 250)
    ids = [p.id for p in first]
    assert len(ids) == MANY == len(set(ids))
    assert ids == ordered(projects, ("createdTime", True))
    # The default page size is 100 and the order is stable from one listing to the next.
    again = page_all(client.storage.project.list_projects, "project", 0)
    assert [p.id for p in again] == ids
    assert client.storage.project.list_projects().user_project_count == MANY


@pytest.mark.parametrize("keys", [
    (("displayName", False),),
    (("display_name", True),),
    (("description", False), ("displayName", True)),
    (("created_time", False),),
])
def test_sorting_thousands(many: tuple[Any, list[dict[str, Any]]], keys: tuple[tuple[str, bool], ...]) -> None:
    client, projects = many
    listed = page_all(client.storage.project.list_all_projects, "project", 700, sorting=sorting(*keys))
    # Sort fields may be named in python or wire spelling.
    wire = {"display_name": "displayName", "created_time": "createdTime"}
    assert [p.id for p in listed] == ordered(projects, *((wire.get(k, k), d) for k, d in keys))


@pytest.mark.parametrize(("name", "request_filter", "keep"), [
    ("equal", where([constraint("display_name", "EQUAL_TO", string_value="proj-042")]),
     lambda p: p["displayName"] == "proj-042"),
    ("not equal counts a missing field as empty",
     where([constraint("description", "NOT_EQUAL_TO", string_value="alpha")]),
     lambda p: p.get("description", "") != "alpha"),
    ("less", where([constraint("displayName", "LESS_THAN", string_value="proj-010")]),
     lambda p: p["displayName"] < "proj-010"),
    ("less or equal", where([constraint("display_name", "LESS_OR_EQUAL_TO", string_value="proj-010")]),
     lambda p: p["displayName"] <= "proj-010"),
    ("greater", where([constraint("display_name", "GREATER_THAN", string_value="proj-490")]),
     lambda p: p["displayName"] > "proj-490"),
    ("greater or equal on time",
     where([constraint("created_time", "GREATER_OR_EQUAL_TO", timestamp_value="2024-03-01T00:24:00Z")]),
     lambda p: p["createdTime"] >= "2024-03-01T00:24:00"),
    ("contains ignores case", where([constraint("description", "CONTAINS", string_value="RAY")]),
     lambda p: "ray" in p.get("description", "").lower()),
    ("AND within a clause", where([constraint("display_name", "GREATER_OR_EQUAL_TO", string_value="proj-100"),
                                   constraint("display_name", "LESS_THAN", string_value="proj-120"),
                                   constraint("description", "EQUAL_TO", string_value="beta")]),
     lambda p: "proj-100" <= p["displayName"] < "proj-120" and p.get("description") == "beta"),
    ("OR between clauses", where([constraint("display_name", "EQUAL_TO", string_value="proj-001")],
                                 [constraint("display_name", "EQUAL_TO", string_value="proj-002"),
                                  constraint("description", "EQUAL_TO", string_value="alpha")]),
     lambda p: p["displayName"] == "proj-001" or (p["displayName"] == "proj-002"
                                                  and p.get("description") == "alpha")),
])
def test_filters_page_and_sort(many: tuple[Any, list[dict[str, Any]]], name: str, request_filter: dict[str, Any],
                               keep: Callable[[dict[str, Any]], bool]) -> None:
    client, projects = many
    expected = ordered([p for p in projects if keep(p)], ("displayName", False))
    assert expected, name
    listed = page_all(client.storage.project.list_projects, "project", 40, filter=request_filter,
                      sorting=sorting(("display_name", False)))
    assert [p.id for p in listed] == expected, name


def test_bad_list_requests_are_invalid_arguments(many: tuple[Any, list[dict[str, Any]]]) -> None:
    client, _ = many
    first = client.storage.project.list_projects(paging={"page_size": 5})
    token = first.paging.next_page_token
    with pytest.raises(mlops.InvalidArgument, match="page_token"):
        client.storage.project.list_projects(paging={"page_token": b"not a token"})
    with pytest.raises(mlops.InvalidArgument, match="page_token"):  # a token of another query
        client.storage.project.list_projects(paging={"page_token": token}, sorting=sorting(("display_name", True)))
    with pytest.raises(mlops.InvalidArgument, match="page_size"):
        client.storage.project.list_projects(paging={"page_size": -1})
    with pytest.raises(mlops.InvalidArgument, match="owner"):
        client.storage.project.list_projects(filter=where([constraint("owner", "EQUAL_TO", string_value="x")]))
    with pytest.raises(mlops.InvalidArgument, match="operator"):
        client.storage.project.list_projects(filter=where([constraint("display_name", "OPERATOR_UNSPECIFIED",
                                                                      string_value="x")]))
    forged = json.dumps({"after": [1], "query": "x"}).encode()
    with pytest.raises(mlops.InvalidArgument, match="page_token"):
        client.storage.project.list_projects(paging={"page_token": forged})


# -- update --------------------------------------------------------------------------------------


def test_update_with_and_without_mask(alice: Any) -> None:
    project = new_project(alice, "before", "old description")
    update = alice.storage.project.update_project
    renamed = update(project={"id": project.id, "display_name": "after", "description": "ignored"},
                     update_mask="display_name").project
    assert (renamed.display_name, renamed.description) == ("after", "old description")
    assert renamed.last_modified_time > project.last_modified_time
    # Wire spelling in the mask, and a masked field left unset is cleared.
    cleared = update(project={"id": project.id}, update_mask="description").project
    assert cleared.description == "" and cleared.display_name == "after"
    both = update(project={"id": project.id, "displayName": "x", "description": "y"},
                  update_mask="displayName, description").project
    assert (both.display_name, both.description) == ("x", "y")
    # Without a mask: the fields the request sets.
    only_description = update(project={"id": project.id, "description": "z"}).project
    assert (only_description.display_name, only_description.description) == ("x", "z")
    assert alice.storage.project.get_project(project_id=project.id).project == only_description


def test_update_validates(alice: Any, bob: Any) -> None:
    project = new_project(alice, "validated")
    update = alice.storage.project.update_project
    with pytest.raises(mlops.InvalidArgument, match="project.id"):
        update(project={"display_name": "x"})
    with pytest.raises(mlops.InvalidArgument, match="owner_id"):
        update(project={"id": project.id, "owner_id": me(bob)}, update_mask="owner_id")
    with pytest.raises(mlops.InvalidArgument, match="colour"):
        update(project={"id": project.id}, update_mask="colour")
    with pytest.raises(mlops.InvalidArgument, match="display_name"):
        update(project={"id": project.id}, update_mask="display_name")
    with pytest.raises(mlops.InvalidArgument, match="nothing to update"):
        update(project={"id": project.id})
    with pytest.raises(mlops.NotFound):
        bob.storage.project.update_project(project={"id": project.id, "display_name": "mine"})
    assert alice.storage.project.get_project(project_id=project.id).project.display_name == "validated"


# -- sharing, permissions, ownership ---------------------------------------------------------------


def test_sharing_grants_and_revokes_access(alice: Any, bob: Any) -> None:
    project = new_project(alice, "shared work")
    bob_id = me(bob)
    with pytest.raises(mlops.NotFound):
        bob.storage.project.get_project(project_id=project.id)
    assert project.id not in {p.id for p in bob.storage.project.list_projects().project}

    sharing = alice.storage.project.share_project(project_id=project.id, user_id=bob_id,
                                                  restriction_role_id=ROLE_VIEWER).sharing
    assert (sharing.entity_id, sharing.user_id, sharing.restriction_role_id) == (project.id, bob_id, ROLE_VIEWER)
    assert sharing.type == "USER_CREATED" and sharing.id and sharing.created_time
    assert bob.storage.project.get_project(project_id=project.id).project == project
    assert project.id in {p.id for p in bob.storage.project.list_projects().project}
    # A viewer reads, but may not write, share or delete.
    with pytest.raises(mlops.PermissionDenied, match="VIEWER"):
        bob.storage.project.update_project(project={"id": project.id, "display_name": "bob's"})
    with pytest.raises(mlops.PermissionDenied):
        bob.storage.project.share_project(project_id=project.id, user_id=bob_id)
    with pytest.raises(mlops.PermissionDenied):
        bob.storage.project.delete_project(project_id=project.id)
    assert [s.id for s in bob.storage.project.list_project_sharings(project_id=project.id).sharing] == [sharing.id]

    # Sharing again changes the role of the same sharing; no role means EDITOR.
    again = alice.storage.project.share_project(project_id=project.id, user_id=bob_id).sharing
    assert (again.id, again.restriction_role_id) == (sharing.id, ROLE_EDITOR)
    edited = bob.storage.project.update_project(project={"id": project.id, "description": "by bob"}).project
    assert edited.description == "by bob"
    with pytest.raises(mlops.PermissionDenied, match="owner"):
        bob.storage.project.unshare_project(project_id=project.id, sharing_id=sharing.id)

    alice.storage.project.unshare_project(project_id=project.id, sharing_id=sharing.id)
    with pytest.raises(mlops.NotFound):
        bob.storage.project.get_project(project_id=project.id)
    assert alice.storage.project.list_project_sharings(project_id=project.id).sharing == []


def test_share_and_unshare_validate(alice: Any, bob: Any) -> None:
    project = new_project(alice, "share rules")
    share = alice.storage.project.share_project
    with pytest.raises(mlops.InvalidArgument, match="user_id"):
        share(project_id=project.id)
    with pytest.raises(mlops.InvalidArgument, match="groups"):
        share(project_id=project.id, group_id="data-scientists")
    with pytest.raises(mlops.NotFound, match="user"):
        share(project_id=project.id, user_id=new_id())
    with pytest.raises(mlops.InvalidArgument, match="transfer_project_ownership"):
        share(project_id=project.id, user_id=me(bob), restriction_role_id=ROLE_OWNER)
    with pytest.raises(mlops.InvalidArgument, match="restriction_role_id"):
        share(project_id=project.id, user_id=me(bob), restriction_role_id=new_id())
    with pytest.raises(mlops.InvalidArgument, match="owner"):
        share(project_id=project.id, user_id=me(alice))
    with pytest.raises(mlops.InvalidArgument, match="project_id"):
        share(user_id=me(bob))
    with pytest.raises(mlops.InvalidArgument, match="sharing_id"):
        alice.storage.project.unshare_project(project_id=project.id)
    with pytest.raises(mlops.NotFound, match="sharing"):
        alice.storage.project.unshare_project(project_id=project.id, sharing_id=new_id())
    with pytest.raises(mlops.NotFound):
        bob.storage.project.list_project_sharings(project_id=project.id)
    assert alice.storage.project.list_project_sharings(project_id=project.id).sharing == []


def test_transfer_ownership(alice: Any, bob: Any) -> None:
    project = new_project(alice, "handed over")
    alice_id, bob_id = me(alice), me(bob)
    alice.storage.project.share_project(project_id=project.id, user_id=bob_id, restriction_role_id=ROLE_VIEWER)
    transfer = alice.storage.project.transfer_project_ownership
    with pytest.raises(mlops.InvalidArgument, match="new_owner_id"):
        transfer(project_id=project.id)
    with pytest.raises(mlops.NotFound, match="user"):
        transfer(project_id=project.id, new_owner_id=new_id())
    with pytest.raises(mlops.InvalidArgument, match="already owns"):
        transfer(project_id=project.id, new_owner_id=alice_id)
    with pytest.raises(mlops.PermissionDenied):
        bob.storage.project.transfer_project_ownership(project_id=project.id, new_owner_id=bob_id)

    done = transfer(project_id=project.id, new_owner_id=bob_id)
    assert (done.project_id, done.owner_id, done.status) == (project.id, bob_id, True)
    assert bob.storage.project.get_project(project_id=project.id).project.owner_id == bob_id
    # The previous owner keeps editing rights; the new owner's old sharing is gone.
    sharings = bob.storage.project.list_project_sharings(project_id=project.id).sharing
    assert [(s.user_id, s.restriction_role_id) for s in sharings] == [(alice_id, ROLE_EDITOR)]
    alice.storage.project.update_project(project={"id": project.id, "description": "still editing"})
    with pytest.raises(mlops.PermissionDenied):
        alice.storage.project.delete_project(project_id=project.id)
    bob.storage.project.delete_project(project_id=project.id)


# -- delete ----------------------------------------------------------------------------------------


def entity_rows(sandbox: Sandbox, sql: str, *params: Any) -> list[Any]:
    with sandbox.store.reading() as db:
        return db.execute(sql, params).fetchall()


def test_delete_takes_everything_inside(sandbox: Sandbox, alice: Any, bob: Any) -> None:
    doomed = new_project(alice, "doomed")
    elsewhere = new_project(alice, "elsewhere")
    exp = alice.storage.experiment
    only_here = exp.create_experiment(project_id=doomed.id, experiment={"display_name": "only here"}).experiment
    moving = exp.create_experiment(project_id=doomed.id, experiment={"display_name": "moving"}).experiment
    visiting = exp.create_experiment(project_id=elsewhere.id, experiment={"display_name": "visiting"}).experiment
    exp.link_experiment_into_project(project_id=elsewhere.id, experiment_id=moving.id)
    exp.link_experiment_into_project(project_id=doomed.id, experiment_id=visiting.id)
    tag = alice.storage.tag.create_tag(project_id=doomed.id, tag={"display_name": "red"}).tag
    for e in (only_here, moving, visiting):
        exp.tag_experiment(experiment_id=e.id, tag_id=tag.id)
    comment = exp.create_experiment_comment(experiment_id=moving.id, comment_message="keep me").comment
    exp.create_experiment_comment(experiment_id=only_here.id, comment_message="drop me")
    exp.create_experiment_metric(experiment_id=only_here.id, key="auc", value={"double_value": 0.9})
    artifact = alice.storage.artifact.create_artifact(artifact={"entity_id": only_here.id, "type": "zip"}).artifact
    alice.storage.artifact.upload_artifact(artifact.id, io.BytesIO(b"model bytes"))
    blob = sandbox.store.path + ".blobs/" + artifact.id
    assert os.path.exists(blob)
    exp.delete_experiment(id=only_here.id)  # soft-deleted experiments go too
    # Registered models belong to services/models.py (another module); rows as it stores them.
    model_id, version_id = new_id(), new_id()
    sandbox.store.put("registered_model", {"id": model_id, "displayName": "m", "projectId": doomed.id,
                                           "createdTime": timestamp_text(datetime.now(timezone.utc))},
                      project_id=doomed.id)
    sandbox.store.put("registered_model_version", {"id": version_id, "registeredModelId": model_id,
                                                   "experimentId": only_here.id, "version": 1,
                                                   "createdTime": timestamp_text(datetime.now(timezone.utc))},
                      project_id=doomed.id, parent_id=model_id)
    alice.storage.project.share_project(project_id=doomed.id, user_id=me(bob), restriction_role_id=ROLE_EDITOR)
    with pytest.raises(mlops.PermissionDenied, match="owner"):
        bob.storage.project.delete_project(project_id=doomed.id)

    alice.storage.project.delete_project(project_id=doomed.id)

    with pytest.raises(mlops.NotFound):
        alice.storage.project.get_project(project_id=doomed.id)
    with pytest.raises(mlops.NotFound):
        alice.storage.project.list_project_events(project_id=doomed.id)
    with pytest.raises(mlops.NotFound):
        exp.get_experiment(id=only_here.id)
    assert entity_rows(sandbox, "SELECT kind, id FROM entity WHERE project_id = ? OR id IN (?, ?, ?, ?)",
                       doomed.id, doomed.id, only_here.id, artifact.id, version_id) == []
    assert entity_rows(sandbox, "SELECT * FROM entity_tag WHERE tag_id = ? OR entity_id = ?",
                       tag.id, only_here.id) == []
    assert entity_rows(sandbox, "SELECT * FROM project_sharing WHERE project_id = ?", doomed.id) == []
    assert entity_rows(sandbox, "SELECT * FROM experiment_link WHERE project_id = ? OR experiment_id = ?",
                       doomed.id, moving.id) == []
    assert entity_rows(sandbox, "SELECT * FROM experiment_deleted WHERE experiment_id = ?", only_here.id) == []
    assert not os.path.exists(blob)
    # The experiment linked elsewhere moved home there, with its comments; the visitor stays home.
    listed = exp.list_experiments(project_id=elsewhere.id).experiment
    assert {e.id for e in listed} == {moving.id, visiting.id}
    assert all(e.tag == [] for e in listed)
    assert alice.storage.comment.get_comment(id=comment.id).comment.project_id == elsewhere.id
    containing = alice.storage.project.list_projects_containing_experiment(experiment_id=moving.id).project
    assert [p.id for p in containing] == [elsewhere.id]
    events = alice.storage.project.list_project_events(project_id=elsewhere.id).event
    assert any(e.experiment_id == moving.id and "moved here" in e.message for e in events)
    with pytest.raises(mlops.NotFound):
        alice.storage.project.delete_project(project_id=doomed.id)


def test_delete_a_project_holding_thousands_of_entities(sandbox: Sandbox, alice: Any) -> None:
    project = new_project(alice, "crowded")
    experiment = alice.storage.experiment.create_experiment(project_id=project.id,
                                                            experiment={"display_name": "busy"}).experiment
    # Straight into the store: thousands of metrics through the API would be slow, and what
    # matters is that the cascade copes with more rows than SQLite takes parameters at once.
    with sandbox.store.transaction():
        for i in range(2500):
            sandbox.store.put("experiment_metric", {"id": new_id(), "experimentId": experiment.id, "key": f"m{i}",
                                                    "value": {"doubleValue": i}, "createdTime": "2024-01-01T00:00:00Z"},
                              project_id=project.id, parent_id=experiment.id)
    alice.storage.project.delete_project(project_id=project.id)
    assert entity_rows(sandbox, "SELECT count(*) FROM entity WHERE project_id = ? OR parent_id = ?",
                       project.id, experiment.id)[0][0] == 0


def test_batch_delete_reports_each_project(alice: Any, bob: Any) -> None:
    mine = [new_project(alice, f"batch {i}") for i in range(2)]
    theirs = new_project(bob, "not alice's")
    missing = new_id()
    result = alice.storage.project.batch_delete_project(project_ids=[mine[0].id, theirs.id, missing, mine[1].id])
    outcome = {r.project_id: (r.status, r.message) for r in result.projects_deleted}
    assert outcome[mine[0].id] == (True, "") and outcome[mine[1].id] == (True, "")
    assert outcome[theirs.id][0] is False and "not found" in outcome[theirs.id][1]
    assert outcome[missing][0] is False
    assert bob.storage.project.get_project(project_id=theirs.id).project == theirs
    with pytest.raises(mlops.InvalidArgument, match="at most"):
        alice.storage.project.batch_delete_project(project_ids=[new_id() for _ in range(1001)])


# -- events ------------------------------------------------------------------------------------------


def test_project_events_newest_first(alice: Any, bob: Any) -> None:
    project = new_project(alice, "audited")
    bob_id = me(bob)
    alice.storage.project.update_project(project={"id": project.id, "description": "d"})
    sharing = alice.storage.project.share_project(project_id=project.id, user_id=bob_id).sharing
    alice.storage.project.unshare_project(project_id=project.id, sharing_id=sharing.id)
    experiment = alice.storage.experiment.create_experiment(project_id=project.id,
                                                            experiment={"display_name": "e"}).experiment
    alice.storage.experiment.update_experiment(experiment={"id": experiment.id, "description": "x"})
    alice.storage.experiment.delete_experiment(id=experiment.id)
    alice.storage.project.transfer_project_ownership(project_id=project.id, new_owner_id=bob_id)

    expected = ["TRANSFER_PROJECT_OWNERSHIP", "DELETE_EXPERIMENT", "UPDATE_EXPERIMENT", "CREATE_EXPERIMENT",
                "UNSHARE_PROJECT", "SHARE_PROJECT", "UPDATE_PROJECT", "CREATE_PROJECT"]
    events = page_all(bob.storage.project.list_project_events, "event", 3, project_id=project.id)
    assert [e.operation for e in events] == expected
    assert len({e.id for e in events}) == len(expected)
    assert all(e.project_id == project.id and e.actor_id == me(alice) and e.timestamp for e in events)
    assert events[0].user_id == bob_id and events[1].experiment_id == experiment.id
    assert events[5].restriction_role_id == ROLE_EDITOR
    response = bob.storage.project.list_project_events(project_id=project.id)
    assert response.event_count == len(expected)
    oldest_first = bob.storage.project.list_project_events(project_id=project.id,
                                                           sorting=sorting(("timestamp", False))).event
    assert [e.operation for e in oldest_first] == expected[::-1]
    shares = bob.storage.project.list_project_events(
        project_id=project.id, filter=where([constraint("operation", "CONTAINS", string_value="SHARE")]))
    assert [e.operation for e in shares.event] == ["UNSHARE_PROJECT", "SHARE_PROJECT"] and shares.event_count == 2
    stranger = new_project(bob, "bob's own")
    with pytest.raises(mlops.NotFound):
        alice.storage.project.list_project_events(project_id=stranger.id)


# -- persistence --------------------------------------------------------------------------------------


def test_restart_keeps_everything(tmp_path: Any) -> None:
    db = str(tmp_path / "s.sqlite3")
    with Sandbox(db=db, data="empty", port=0) as sb:
        alice, bob = sb.client("alice"), sb.client("bob")
        project = new_project(alice, "durable", "survives restarts")
        sharing = alice.storage.project.share_project(project_id=project.id, user_id=me(bob),
                                                      restriction_role_id=ROLE_VIEWER).sharing
        exp = alice.storage.experiment
        experiment = exp.create_experiment(project_id=project.id, experiment={"display_name": "kept"}).experiment
        gone = exp.create_experiment(project_id=project.id, experiment={"display_name": "gone"}).experiment
        exp.delete_experiment(id=gone.id)
        other = new_project(alice, "linked too")
        exp.link_experiment_into_project(project_id=other.id, experiment_id=experiment.id)
        tag = alice.storage.tag.create_tag(project_id=project.id, tag={"display_name": "kept tag"}).tag
        exp.tag_experiment(experiment_id=experiment.id, tag_id=tag.id)
        experiment = exp.get_experiment(id=experiment.id).experiment
        events = alice.storage.project.list_project_events(project_id=project.id).event
    with Sandbox(db=db, data="empty", port=0) as sb:
        alice, bob = sb.client("alice"), sb.client("bob")
        assert alice.storage.project.get_project(project_id=project.id).project == project
        assert bob.storage.project.list_project_sharings(project_id=project.id).sharing == [sharing]
        assert bob.storage.experiment.get_experiment(id=experiment.id).experiment == experiment
        assert [t.id for t in experiment.tag] == [tag.id]
        assert [e.id for e in alice.storage.experiment.list_experiments(project_id=other.id).experiment] == [
            experiment.id]
        assert [e.id for e in alice.storage.experiment.list_experiments(project_id=project.id).experiment] == [
            experiment.id]
        assert alice.storage.project.list_project_events(project_id=project.id).event == events
        assert alice.storage.experiment.recover_deleted_experiment(experiment_id=gone.id).status is True
        with pytest.raises(mlops.PermissionDenied):
            bob.storage.project.update_project(project={"id": project.id, "display_name": "no"})
