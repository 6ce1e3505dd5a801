"""A flaky network, rehearsed: the sandbox's fault injection, and the client riding it out."""

from __future__ import annotations

import logging
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

import mlops_nb as mlops
from benchmarks import fault_workload
from mlops_nb.sandbox import Sandbox
from mlops_nb.sandbox.faults import FAULT_KINDS, RETRY_AFTER_SECONDS

WHO_AM_I = "/storage/ai.h2o.storage.UserService/WhoAmI"


def stored_project_names(sb: Sandbox, prefix: str) -> list[str]:
    assert sb.store is not None
    with sb.store.reading() as db:
        rows = db.execute("SELECT json_extract(data, '$.displayName') AS name FROM entity WHERE kind = 'project'"
                          ).fetchall()
    return [row["name"] for row in rows if str(row["name"]).startswith(prefix)]


def test_the_2000_call_workload_through_20_percent_faults(tmp_path) -> None:
    with Sandbox(db=str(tmp_path / "faults.sqlite3"), data="empty", faults=0.2, fault_seed=3) as sb, \
            sb.client("alice") as client:
        result = fault_workload.run(mlops, client, calls=2000, threads=8, prefix="fw")
        checked = fault_workload.check_writes(result["writes"], stored_project_names(sb, "fw-"))
        injected = dict(sb.faults.injected)
    # The faults really happened, of every kind, at about the rate asked for.
    assert set(injected) == set(FAULT_KINDS)
    assert sum(injected.values()) > 2000 * 0.2 * 0.9
    # No read failed as far as the caller could see.
    assert set(result["reads"]) == {"ok"}
    assert result["reads"]["ok"] == sum(1 for step in fault_workload.plan(2000, 11) if step == "read")
    # No write was applied twice; a write that raised is absent unless reported as unknown.
    assert checked["duplicated writes"] == 0
    assert checked["failed writes applied"] == 0
    assert checked["acknowledged writes lost"] == 0
    assert checked["writes reported unknown"] > 0
    assert checked["writes"] == 2000 - result["reads"]["ok"]


def test_faults_are_off_by_default_and_spare_the_identity_provider(tmp_path) -> None:
    with Sandbox(db=str(tmp_path / "a.sqlite3"), data="empty") as plain:
        assert plain.faults is None
    with Sandbox(db=str(tmp_path / "b.sqlite3"), data="empty", faults=1.0, fault_seed=1) as sb:
        # Every API call fails; token grants still work.
        token = sb.token_provider("alice")()
        kinds = set()
        session = requests.Session()
        for _ in range(40):
            try:
                answer = session.post(sb.gateway_url + WHO_AM_I, json={}, timeout=10,
                                      headers={"Authorization": f"Bearer {token}"})
            except requests.ConnectionError:
                kinds.add("dropped")
                session = requests.Session()
                continue
            kinds.add(answer.status_code)
            assert set(answer.json()) == {"code", "message", "details"}
            if answer.status_code == 429:
                assert answer.headers["Retry-After"] == str(RETRY_AFTER_SECONDS)
                assert answer.json()["code"] == 8
            else:
                assert answer.status_code == 503 and answer.json()["code"] == 14
        assert kinds == {503, 429, "dropped"}
        assert requests.get(sb.gateway_url + "/", timeout=10).status_code == 200


def test_a_seed_repeats_the_same_faults(tmp_path) -> None:
    def sequence(seed: int) -> list[Any]:
        with Sandbox(db=str(tmp_path / f"seed{seed}-{time.monotonic_ns()}.sqlite3"), data="empty", faults=0.5,
                     fault_seed=seed) as sb:
            token = sb.token_provider("alice")()
            seen = []
            for _ in range(30):
                try:
                    seen.append(requests.post(sb.gateway_url + WHO_AM_I, json={}, timeout=10,
                                              headers={"Authorization": f"Bearer {token}"}).status_code)
                except requests.ConnectionError:
                    seen.append("dropped")
            return seen

    assert sequence(5) == sequence(5)
    assert sequence(5) != sequence(6)


def test_bad_fault_options() -> None:
    with pytest.raises(ValueError, match="from 0 to 1"):
        Sandbox(db=":memory:", faults=1.5).start()


def test_the_cli_takes_faults_and_a_seed() -> None:
    from mlops_nb.cli import main

    with pytest.raises(SystemExit) as exited:
        main(["sandbox", "--faults", "2"])
    assert exited.value.code == 2


# -- the retry policy, call by call --------------------------------------------------------


@pytest.fixture(scope="module")
def throttled(tmp_path_factory) -> Any:
    """Every API call answers 429 with Retry-After (or 503, or drops): nothing gets through. Its clients
    are given the API's generation (finding it would be a call, failing like the others, before each)."""
    with Sandbox(db=str(tmp_path_factory.mktemp("always") / "s.sqlite3"), data="empty", faults=1.0,
                 fault_seed=2) as sb:
        yield sb


def test_reads_give_up_at_the_deadline_with_the_last_answer(throttled: Sandbox) -> None:
    with throttled.client("alice", generation="legacy", retry=mlops.RetryPolicy(deadline=2.5)) as client:
        started = time.monotonic()
        with pytest.raises((mlops.Unavailable, mlops.ResourceExhausted, mlops.ConnectionFailed)) as e:
            client.storage.user.who_am_i()
        took = time.monotonic() - started
    assert not isinstance(e.value, mlops.WriteOutcomeUnknown)
    # No wait ran past the deadline (an attempt itself takes milliseconds here).
    assert took < 2.5 + 0.5
    assert sum(throttled.faults.injected.values()) >= 2


def test_retries_can_be_turned_off(throttled: Sandbox) -> None:
    before = sum(throttled.faults.injected.values())
    for retry in (False, mlops.RetryPolicy.off()):
        with throttled.client("alice", generation="legacy", retry=retry) as client, pytest.raises(mlops.MLOpsError):
            client.storage.user.who_am_i()
    assert sum(throttled.faults.injected.values()) - before == 2


def test_a_throttled_read_waits_as_retry_after_says(tmp_path) -> None:
    with Sandbox(db=str(tmp_path / "t.sqlite3"), data="empty", faults=0.5, fault_seed=0) as sb, \
            sb.client("alice") as client:
        started = time.monotonic()
        for _ in range(6):
            client.storage.user.who_am_i()
        took = time.monotonic() - started
        throttles = sb.faults.injected["throttled"]
    # Each 429 made the client wait its Retry-After before the next attempt.
    assert throttles >= 1
    assert took >= throttles * RETRY_AFTER_SECONDS


def test_writes_are_not_sent_again_once_they_may_have_arrived(throttled: Sandbox) -> None:
    before = sum(throttled.faults.injected.values())
    with throttled.client("alice", generation="legacy") as client:
        for _ in range(6):
            with pytest.raises(mlops.MLOpsError) as e:
                client.storage.project.create_project(project={"display_name": "once"})
            if isinstance(e.value, mlops.WriteOutcomeUnknown):
                assert "may or may not have been applied" in str(e.value)
                assert "client.storage.project.get_project(...)" in str(e.value)
                assert e.value.check_with == ("storage.project.get_project", "storage.project.list_projects")
                assert e.value.rpc == "storage.project.create_project"
            else:
                assert isinstance(e.value, (mlops.Unavailable, mlops.ResourceExhausted))
    # One attempt each: a write is never repeated after it may have reached the server.
    assert sum(throttled.faults.injected.values()) - before == 6


def test_a_write_that_could_not_connect_is_sent_when_the_gateway_comes_back(tmp_path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    db = str(tmp_path / "late.sqlite3")
    with Sandbox(db=db, data="empty", port=port) as sb:
        provider = sb.token_provider("alice")
        client = mlops.Client(f"http://127.0.0.1:{port}", provider, retry=mlops.RetryPolicy(deadline=20))
        client.storage.user.who_am_i()  # the gateway has answered this client: it is worth waiting for
    # Down for a second (a restart): the write waits for it, and is sent once.
    late = Sandbox(db=db, data="empty", port=port)
    starter = threading.Timer(1.0, late.start)
    starter.start()
    try:
        created = client.storage.project.create_project(project={"display_name": "sent once"})
        assert created.project.display_name == "sent once"
        names = stored_project_names(late, "sent once")
        assert names == ["sent once"]
    finally:
        starter.join()
        late.stop()
        client.close()


def test_a_gateway_that_never_answered_fails_at_once_with_advice() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # The default policy retries for 30 s; a URL that never answered is most likely wrong.
    client = mlops.Client(f"http://127.0.0.1:{port}", lambda: "token")
    # (Each call finds the API's generation first: that probe is what cannot connect, with the same advice.)
    for call in (lambda: client.storage.user.who_am_i(), lambda: client.storage.project.create_project(project={})):
        started = time.monotonic()
        with pytest.raises(mlops.ConnectionFailed, match="could not reach .*never answered this client, so the "
                                                          "call was not retried.*check the URL") as e:
            call()
        assert time.monotonic() - started < 2
        assert not isinstance(e.value, mlops.WriteOutcomeUnknown)


def test_sixteen_threads_share_the_pool_without_churn(tmp_path, caplog) -> None:
    with Sandbox(db=str(tmp_path / "pool.sqlite3"), data="empty") as sb, sb.client("alice") as client:
        client.storage.user.who_am_i()
        with caplog.at_level(logging.DEBUG, logger="urllib3.connectionpool"), ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda _: client.storage.user.who_am_i(), range(16 * 50)))
    opened = [r for r in caplog.records if "Starting new HTTP connection" in r.getMessage()]
    discarded = [r for r in caplog.records if "Connection pool is full" in r.getMessage()]
    # At most one connection per thread, each kept for the next call.
    assert len(opened) <= 16
    assert discarded == []
