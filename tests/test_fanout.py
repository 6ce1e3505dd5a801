"""``mlops_nb.all_deployments`` and the bounded pool under it, against a real sandbox with latency.

The deployments are real, made through the API; their models are DAI MOJO pipelines, which the
sandbox cannot run (they need Driverless AI's runtime and license), so they go FAILED at once and
stay so: the rows compared below do not change between two listings.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
from traitlets import TraitError

import mlops_nb
from mlops_nb.notebook.fanout import call_concurrently
from mlops_nb.notebook.settings import settings
from mlops_nb.sandbox import Sandbox
from tests.deploying import deploy, experiment_with, wait_for_state, zip_of

LATENCY_MS = 100  # every gateway call waits this long, so that concurrent calls overlap for sure


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with Sandbox(db=str(tmp_path_factory.mktemp("fanout") / "s.sqlite3"), data="empty",
                 latency_ms=LATENCY_MS) as running:
        yield running


@pytest.fixture(scope="module")
def deployments(alice: Any) -> dict[str, list[str]]:
    """Project name -> its deployments' names: four projects with 0 to 2 deployments each."""
    mojo = zip_of({"mojo-pipeline/pipeline.mojo": b"a stand-in"})
    made: dict[str, list[str]] = {}
    for name, count in (("empty", 0), ("one", 1), ("two", 2), ("another", 1)):
        project = alice.storage.project.create_project(project={"display_name": name}).project.id
        made[name] = []
        for k in range(count):
            experiment = experiment_with(alice, project, mojo, artifact_type="dai/mojo_pipeline", name=f"{name} {k}")
            deployment = deploy(alice, project, experiment, artifact_type="dai/mojo_pipeline",
                                display_name=f"{name} {k}")
            wait_for_state(alice, deployment.id, "FAILED", timeout=60)
            made[name].append(f"{name} {k}")
    return made


def test_every_deployment_with_its_state_and_project(alice: Any, deployments: dict[str, list[str]]) -> None:
    frame = mlops_nb.all_deployments(alice)
    assert list(frame.columns[:5]) == ["id", "display_name", "state", "state_message", "project"]
    # Projects newest first, as list_projects gives them; the one without deployments is left out.
    assert list(frame["project"]) == ["another", "two", "two", "one"]
    assert sorted(frame["display_name"]) == sorted(n for names in deployments.values() for n in names)
    assert set(frame["state"]) == {"FAILED"}
    assert frame["state_message"].str.contains("cannot run").all()
    assert frame.attrs["mlops_nb_entity"] == "DeployDeployment"


def test_concurrent_and_sequential_give_the_same_frame(alice: Any, deployments: dict[str, list[str]]) -> None:
    sequential = mlops_nb.all_deployments(alice, concurrent_calls=1)
    pd.testing.assert_frame_equal(mlops_nb.all_deployments(alice), sequential)
    pd.testing.assert_frame_equal(mlops_nb.all_deployments(alice, concurrent_calls=10), sequential)


def test_projects_by_name_id_or_message_in_the_order_given(alice: Any, deployments: dict[str, list[str]]) -> None:
    one = mlops_nb.find_project(alice, "one")
    frame = mlops_nb.all_deployments(alice, ["two", one.id, mlops_nb.find_project(alice, "empty")])
    assert list(frame["project"]) == ["two", "two", "one"]
    limited = mlops_nb.all_deployments(alice, ["two", "one"], limit_per_project=1)
    assert list(limited["project"]) == ["two", "one"]
    empty = mlops_nb.all_deployments(alice, ["empty"])
    assert len(empty) == 0 and list(empty.columns) == list(frame.columns)


class _InFlight:
    """Counts the client's HTTP requests under way at once (wraps its session's ``send``)."""

    def __init__(self, client: Any) -> None:
        self.session = client._transport.session  # the one pooled session every call goes through
        self.send = self.session.send
        self.now = self.most = 0
        self.lock = threading.Lock()

    def __enter__(self) -> _InFlight:
        def counted(*args: Any, **kwargs: Any) -> Any:
            with self.lock:
                self.now += 1
                self.most = max(self.most, self.now)
            try:
                return self.send(*args, **kwargs)
            finally:
                with self.lock:
                    self.now -= 1

        self.session.send = counted
        return self

    def __exit__(self, *exc: object) -> None:
        self.session.send = self.send


def test_calls_overlap_up_to_the_bound_over_the_clients_connections(sandbox: Sandbox,
                                                                    deployments: dict[str, list[str]]) -> None:
    with sandbox.client("alice") as client:
        client.storage.user.who_am_i()
        with _InFlight(client) as watched:
            mlops_nb.all_deployments(client, concurrent_calls=3)
        pool = client._transport.session.get_adapter(sandbox.gateway_url).poolmanager.connection_from_url(sandbox.gateway_url)
        # 2 + 2 * 3 calls, each held 100 ms by the sandbox: with three at a time, three are under way together.
        assert watched.most == 3
        assert pool.num_connections <= 3
        with _InFlight(client) as one_by_one:
            mlops_nb.all_deployments(client, concurrent_calls=1)
        assert one_by_one.most == 1


def test_the_default_comes_from_the_settings(alice: Any, deployments: dict[str, list[str]]) -> None:
    saved = settings.concurrent_calls
    try:
        settings.concurrent_calls = 2
        with _InFlight(alice) as watched:
            mlops_nb.all_deployments(alice)
        assert watched.most == 2
        with pytest.raises(TraitError, match="concurrent_calls must be 1 to 32"):
            settings.concurrent_calls = 33
    finally:
        settings.concurrent_calls = saved


def test_a_failing_call_raises_its_error(alice: Any, deployments: dict[str, list[str]]) -> None:
    missing = mlops_nb.StorageProject(id="00000000-0000-4000-8000-000000000000", display_name="gone")
    with pytest.raises(mlops_nb.NotFound, match="00000000-0000-4000-8000-000000000000"):
        mlops_nb.all_deployments(alice, ["one", missing, "two"])


def test_the_bound_is_what_a_client_keeps_open() -> None:
    from mlops_nb.notebook.settings import MAX_CONCURRENT_CALLS
    from mlops_nb.wire.transport import DEFAULT_MAX_CONNECTIONS

    assert MAX_CONCURRENT_CALLS == DEFAULT_MAX_CONNECTIONS


def test_results_keep_the_order_of_the_calls_whatever_order_they_end_in() -> None:
    last_done = threading.Event()

    def first() -> str:
        assert last_done.wait(10), "the calls did not run at the same time"
        return "first"

    def last() -> str:
        last_done.set()
        return "last"

    assert call_concurrently([first, lambda: "middle", last], concurrent_calls=3) == ["first", "middle", "last"]


def test_the_first_error_in_call_order_is_raised() -> None:
    def fails(message: str) -> Any:
        def call() -> None:
            raise ValueError(message)
        return call

    with pytest.raises(ValueError, match="second"):
        call_concurrently([lambda: 1, fails("second"), fails("third")], concurrent_calls=3)
    with pytest.raises(ValueError, match="concurrent_calls must be 1 to 32, got 0"):
        call_concurrently([lambda: 1], concurrent_calls=0)
