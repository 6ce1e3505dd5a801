"""The sandbox at scale: generated data (``data="scale:N"``), the query plans of its lists, bulk loading.

The plans are SQLite's own (``EXPLAIN QUERY PLAN``) for the SQL the sandbox runs while
serving real calls; the test prints them (``pytest -s`` shows them) and checks that each
list walks an index in its order, starting where the page starts, instead of scanning
or sorting every entity of its kind. How fast that is, is benchmarks/bench_scale.py's.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import mlops_nb
from mlops_nb.sandbox import Sandbox
from mlops_nb.sandbox.services.environments import default_environment_id
from mlops_nb.sandbox.store import Store

COUNT = 3000  # enough for SQLite's statistics to tell the indexes apart; seeded in about a second


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with Sandbox(db=str(tmp_path_factory.mktemp("scale") / "s.sqlite3"), data=f"scale:{COUNT}") as running:
        yield running


@pytest.fixture(scope="module")
def project_1(alice: Any) -> Any:
    return mlops_nb.find_project(alice, "project 1")


# -- the generated data ------------------------------------------------------------------------------


def test_the_data_option_is_checked_before_anything_starts() -> None:
    for bad in ("scale", "scale:0", "scale:-5", "scale:ten", "demo:3", "lots"):
        with pytest.raises(ValueError, match="data must be 'demo', 'empty' or 'scale:N'"):
            Sandbox(data=bad)
    with pytest.raises(ValueError, match="latency_ms must be 0 or more"):
        Sandbox(latency_ms=-1)


def test_projects_experiments_and_shares_as_described(sandbox: Sandbox, alice: Any, project_1: Any) -> None:
    first = alice.storage.project.list_projects(paging={"page_size": 5})
    assert first.user_project_count == COUNT
    assert list(first["display_name"]) == [f"project {COUNT - i}" for i in range(5)]  # newest first
    assert first["created_time"].is_monotonic_decreasing
    experiments = alice.storage.experiment.count_experiments(project_id=project_1.id).count
    assert experiments == COUNT
    with sandbox.client("bob") as bob:
        shared = mlops_nb.list_all(bob.storage.project.list_projects, progress=False)
        assert len(shared) == COUNT // 10 and set(shared["display_name"]) == {f"project {i}" for i in
                                                                             range(10, COUNT + 1, 10)}
        with pytest.raises(mlops_nb.PermissionDenied, match="VIEWER"):
            bob.storage.experiment.create_experiment(project_id=shared["id"][0], experiment={"display_name": "x"})


def test_experiments_carry_their_metadata(alice: Any, project_1: Any) -> None:
    frame = alice.storage.experiment.list_experiments(project_id=project_1.id, paging={"page_size": 3},
                                                      response_metadata={"pattern": ["%"]})
    values = frame.experiment[0].metadata.values
    assert set(values) == {"source", "auc", "logloss", "trees", "tuned"}
    assert values["source"].string_value in ("Driverless AI", "H2O-3", "MLflow")
    assert 0.6 <= values["auc"].double_value <= 0.95 and values["trees"].int64_value >= 50
    assert set(frame["status"]) <= {"FINISHED", "FAILED"}


def _stored(sandbox: Sandbox, kind: str, entity_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The entity's table columns (without the varying values) and its stored JSON."""
    row = sandbox.store.row(kind, entity_id)
    assert row is not None
    # (a sqlite3.Row iterates over its values: keys() is the way to its column names)
    columns = {k: row[k] is not None for k in row.keys() if k != "data"}  # noqa: SIM118
    return columns, json.loads(row["data"])


def _shape(data: dict[str, Any]) -> dict[str, Any]:
    """Keys all the way down, and the JSON type of each leaf."""
    return {k: _shape(v) if isinstance(v, dict) else type(v).__name__ for k, v in data.items()}


def test_generated_rows_are_what_the_api_stores(sandbox: Sandbox, alice: Any, project_1: Any) -> None:
    made = alice.storage.project.create_project(project={"display_name": "made", "description": "by the API"})
    generated = mlops_nb.find_project(alice, "project 3")  # every third has a description
    made_columns, made_data = _stored(sandbox, "project", made.project.id)
    columns, data = _stored(sandbox, "project", generated.id)
    assert columns == made_columns and _shape(data) == _shape(made_data)
    for name in ("DEV", "PROD"):
        environment_id = default_environment_id(generated.id, name)
        made_columns, made_data = _stored(sandbox, "deployment_environment", default_environment_id(made.project.id,
                                                                                                    name))
        columns, data = _stored(sandbox, "deployment_environment", environment_id)
        assert columns == made_columns and _shape(data) == _shape(made_data) and data["displayName"] == name

    metadata = {k: {"string_value": "x"} if k == "source" else {"bool_value": True} if k == "tuned"
                else {"int64_value": 7} if k == "trees" else {"double_value": 0.5}
                for k in ("source", "auc", "logloss", "trees", "tuned")}
    experiment = alice.storage.experiment.create_experiment(project_id=project_1.id, experiment={
        "display_name": "made", "status": "FINISHED", "metadata": {"values": metadata},
        "parameters": {"target_column": "default_payment"}, "statistics": {"training_duration": "1s"}})
    made_columns, made_data = _stored(sandbox, "experiment", experiment.experiment.id)
    listed = alice.storage.experiment.list_experiments(project_id=project_1.id, paging={"page_size": 2},
                                                       sorting={"property": [{"property": {"field": "created_time"},
                                                                              "order": "ASCENDING"}]})
    columns, data = _stored(sandbox, "experiment", listed["id"][0])
    assert columns == made_columns and _shape(data) == _shape(made_data)
    alice.storage.experiment.delete_experiment(id=experiment.experiment.id)
    alice.storage.project.delete_project(project_id=made.project.id)


def test_a_second_start_keeps_the_data(tmp_path) -> None:
    db = tmp_path / "again.sqlite3"
    for _ in range(2):
        with Sandbox(db=str(db), data="scale:20") as sandbox, sandbox.client("alice") as alice:
            assert alice.storage.project.list_projects().user_project_count == 20


# -- paging in order over the indexes ----------------------------------------------------------------


def _every_page(alice: Any, **request: Any) -> list[str]:
    names: list[str] = []
    token = b""
    while True:
        page = alice.storage.project.list_projects(paging={"page_size": 700, "page_token": token or None}, **request)
        names += list(page["display_name"])
        token = page.paging.next_page_token if page.paging else b""
        if not token:
            return names


@pytest.mark.parametrize("order", ["ASCENDING", "DESCENDING"])
def test_pages_sorted_by_name_hold_every_project_once_in_order(alice: Any, order: str) -> None:
    names = _every_page(alice, sorting={"property": [{"property": {"field": "display_name"}, "order": order}]})
    assert len(names) == len(set(names)) >= COUNT
    assert names == sorted(names, reverse=order == "DESCENDING")


def test_pages_sorted_two_ways_at_once_still_page_right(alice: Any) -> None:
    # Mixed directions take the other keyset form (no single row-value range).
    sorting = {"property": [{"property": {"field": "description"}, "order": "DESCENDING"},
                            {"property": {"field": "display_name"}, "order": "ASCENDING"}]}
    names = _every_page(alice, sorting=sorting)
    every = mlops_nb.list_all(alice.storage.project.list_projects, progress=False)
    by_name = every.sort_values("display_name", kind="stable")
    expected = by_name.sort_values("description", ascending=False, kind="stable")["display_name"]
    assert names == list(expected)


# -- the query plans -----------------------------------------------------------------------------------


def _plans(sandbox: Sandbox, call: Callable[[], Any]) -> list[tuple[str, list[str]]]:
    """(SQL, its plan) of every page query of rpc.list_page and count of rpc.count_matching ran for ``call``."""
    statements: list[str] = []
    connection: sqlite3.Connection = sandbox.store._conn  # the store's one connection: what the handlers query
    connection.set_trace_callback(statements.append)
    try:
        call()
    finally:
        connection.set_trace_callback(None)
    found = []
    for sql in statements:
        if sql.startswith(("SELECT e.data, ", "SELECT count(*) FROM entity e ")):
            with sandbox.store.reading() as db:
                found.append((sql, [row[3] for row in db.execute("EXPLAIN QUERY PLAN " + sql)]))
    return found


def _second_page(alice: Any, list_method: Callable[..., Any], **request: Any) -> Callable[[], Any]:
    token = list_method(paging={"page_size": 1000}, **request).paging.next_page_token
    return lambda: list_method(paging={"page_size": 1000, "page_token": token}, **request)


BY_NAME = {"property": [{"property": {"field": "display_name"}, "order": "ASCENDING"}]}


def _name_is(name: str) -> dict[str, Any]:
    return {"query": {"clause": [{"propertyConstraint": [
        {"property": {"field": "display_name"}, "operator": "EQUAL_TO", "value": {"stringValue": name}}]}]}}


CASES: dict[str, tuple[Callable[[Any, Any], Callable[[], Any]], str]] = {
    # name: (the call, given alice and project 1), what the list query's plan must search. Lookups
    # by name find a few rows by the index and sort those few; every other list reads in its order.
    "projects, page 2, newest first": (
        lambda alice, p: _second_page(alice, alice.storage.project.list_projects),
        "SEARCH e USING INDEX entity_by_time (kind=? AND created_time<?)"),
    "projects, page 2, by name": (
        lambda alice, p: _second_page(alice, alice.storage.project.list_projects, sorting=BY_NAME),
        "SEARCH e USING INDEX entity_by_name (kind=? AND <expr>>?)"),
    "projects named 'project 777'": (
        lambda alice, p: lambda: alice.storage.project.list_projects(filter=_name_is("project 777")),
        "SEARCH e USING INDEX entity_by_name (kind=? AND <expr>=?)"),
    "find_project by id or name": (
        lambda alice, p: lambda: mlops_nb.find_project(alice, "project 777"),
        "MULTI-INDEX OR"),
    "experiments of project 1, page 2, newest first": (
        lambda alice, p: _second_page(alice, alice.storage.experiment.list_experiments, project_id=p.id),
        "SEARCH e USING INDEX entity_by_project (kind=? AND project_id=? AND created_time<?)"),
    "experiments of project 1, page 2, by name": (
        lambda alice, p: _second_page(alice, alice.storage.experiment.list_experiments, project_id=p.id,
                                      sorting=BY_NAME),
        "SEARCH e USING INDEX entity_by_project_name (kind=? AND project_id=? AND <expr>>?)"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_lists_walk_an_index_in_their_order(sandbox: Sandbox, alice: Any, project_1: Any, case: str) -> None:
    make_call, expected = CASES[case]
    plans = _plans(sandbox, make_call(alice, project_1))
    print(f"\n{case}:")
    for sql, plan in plans:
        print(f"  {sql[:160]}...\n" + "".join(f"    {step}\n" for step in plan))
    listing = [plan for sql, plan in plans if sql.startswith("SELECT e.data, ")]
    assert listing, "no list query ran"
    for plan in listing:
        assert expected in plan, plan
        assert not any(step.startswith("SCAN e") for step in plan), plan  # no reading of every row
        if "<expr>=?" not in expected and "MULTI-INDEX OR" not in expected:
            assert not any("TEMP B-TREE" in step for step in plan), plan  # no sorting of every row
    for sql, plan in plans:
        if "count(*)" in sql:  # user_project_count: the owner's projects, counted in an index
            assert any("COVERING INDEX entity_by_owner" in step for step in plan), plan


# -- bulk loading --------------------------------------------------------------------------------------


def _indexes(store: Store) -> list[tuple[str, str]]:
    with store.reading() as db:
        return db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'entity' "
                          "ORDER BY name").fetchall()


def test_bulk_load_rebuilds_the_indexes_it_drops(tmp_path) -> None:
    store = Store(tmp_path / "bulk.sqlite3")
    before = [tuple(r) for r in _indexes(store)]
    rows = [({"id": f"p{i}", "displayName": f"p {i}", "createdTime": f"2024-01-01T00:00:{i:02d}.000000Z"},
             None, None, "o") for i in range(50)]
    with store.bulk_load():
        assert store.put_many("project", rows) == 50
        assert _indexes(store) == [r for r in _indexes(store) if r[1] is None]  # only the automatic ones
    assert [tuple(r) for r in _indexes(store)] == before
    assert store.get("project", "p7") == rows[7][0]
    with pytest.raises(RuntimeError, match="stop"), store.bulk_load():
        store.put_many("project", [({"id": "late", "createdTime": ""}, None, None, None)])
        raise RuntimeError("stop")
    assert [tuple(r) for r in _indexes(store)] == before and store.get("project", "late") is None
    store.close()
