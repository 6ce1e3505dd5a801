"""The sandbox at scale: 100,000 projects (and 100,000 experiments with metadata).

A sandbox process serves a database made with ``--data scale:100000`` (its making is a
figure too: against the same entities made through the API at the write rate measured
here). This process is only the client, sending requests by hand (``requests`` and
``json``, no frames), so the figures are the server's:

* deep pages: page 100 of 1,000 projects against page 1, newest first and sorted by
  display name. Target: at most 1.5x (keyset pages start where the last one ended).
* a lookup by display name (a filter the name index serves) and a page of 1,000
  experiments with metadata.
* 8 concurrent clients of mixed reads (a page of 100 projects, a page sorted by name, a
  project by id, a lookup by name, a page of 100 experiments with metadata): p50 and
  p99 latency and requests per second, against one client alone.
* writes: CreateProject from 8 concurrent clients, against one client alone.

Run alone: ``python benchmarks/bench_scale.py [--quick]``.
"""

from __future__ import annotations

import argparse
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import requests
from common import Row, SandboxProcess, median, ratio, scale_db

from mlops_nb.api import API

__all__ = ["rows"]

DEPTH_TARGET = 1.5
CLIENTS = 8
_PROJECTS = API.method("storage.project.list_projects").full_path
_PROJECT = API.method("storage.project.get_project").full_path
_EXPERIMENTS = API.method("storage.experiment.list_experiments").full_path
_CREATE = API.method("storage.project.create_project").full_path
_BY_NAME = {"property": [{"property": {"field": "display_name"}, "order": "ASCENDING"}]}


def _name_is(name: str) -> dict[str, Any]:
    return {"query": {"clause": [{"propertyConstraint": [
        {"property": {"field": "display_name"}, "operator": "EQUAL_TO", "value": {"stringValue": name}}]}]}}


class _Gateway:
    """Calls by hand, with one session (and so one connection) per client."""

    def __init__(self, sandbox: SandboxProcess, token: str) -> None:
        self.url = sandbox.gateway_url
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.session.post(self.url + path, json=body, timeout=120)
        response.raise_for_status()
        return response.json()


def _timed(call: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        begin = time.perf_counter()
        call()
        times.append(time.perf_counter() - begin)
    return median(times)


def _page_token(gateway: _Gateway, body: dict[str, Any], page: int) -> str:
    """The token of page ``page`` (1-based) of a list, found by walking to it."""
    token = ""
    for _ in range(page - 1):
        payload = gateway.post(_PROJECTS, {**body, "paging": {"pageSize": 1000, "pageToken": token}})
        token = payload["paging"]["nextPageToken"]
    return token


def _depth(gateway: _Gateway, body: dict[str, Any], page: int, repeat: int) -> tuple[float, float]:
    """Medians of (page ``page``, page 1), fetched in turns so that a busy moment hits both."""
    token = _page_token(gateway, body, page)
    first, deep = [], []
    for _ in range(repeat):
        first.append(_timed(lambda: gateway.post(_PROJECTS, {**body, "paging": {"pageSize": 1000}}), 1))
        deep.append(_timed(lambda: gateway.post(_PROJECTS, {**body, "paging": {"pageSize": 1000,
                                                                                "pageToken": token}}), 1))
    return median(deep), median(first)


def _load(gateways: list[_Gateway], work: Callable[[_Gateway, random.Random], None],
          seconds: float) -> tuple[list[float], float]:
    """Each gateway's client runs ``work`` over and over for ``seconds``; (latencies, calls per second)."""
    latencies: list[float] = []
    failures: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(len(gateways) + 1)

    def client(gateway: _Gateway, seed: int) -> None:
        chooser = random.Random(seed)
        mine = []
        start.wait()
        end = time.perf_counter() + seconds
        try:
            while time.perf_counter() < end:
                begin = time.perf_counter()
                work(gateway, chooser)
                mine.append(time.perf_counter() - begin)
        except Exception as e:  # reported below: a failed call must not pass for a fast one
            failures.append(e)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(g, i)) for i, g in enumerate(gateways)]
    for thread in threads:
        thread.start()
    start.wait()
    begin = time.perf_counter()
    for thread in threads:
        thread.join()
    if failures:
        raise RuntimeError(f"{len(failures)} of {len(gateways)} clients failed") from failures[0]
    return latencies, len(latencies) / (time.perf_counter() - begin)


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def rows(quick: bool = False) -> list[Row]:
    count, page, repeat, seconds = (20_000, 20, 3, 5.0) if quick else (100_000, 100, 15, 20.0)
    db, generated_in = scale_db(count)
    with SandboxProcess(db, "--data", "empty", "--token-ttl", "3600") as sandbox:
        with sandbox.client() as client:
            token = client.token_provider()
            project_1 = client.storage.project.list_projects(filter=_name_is("project 1")).project[0].id
            ids = [p.id for p in client.storage.project.list_projects(paging={"page_size": 1000}).project]
        gateway = _Gateway(sandbox, token)
        deep, first = _depth(gateway, {}, page, repeat)
        deep_sorted, first_sorted = _depth(gateway, {"sorting": _BY_NAME}, page, repeat)
        lookup = _timed(lambda: gateway.post(_PROJECTS, {"filter": _name_is(f"project {count // 2}")}), repeat)
        experiments = _timed(lambda: gateway.post(_EXPERIMENTS, {
            "projectId": project_1, "paging": {"pageSize": 1000}, "responseMetadata": {"pattern": ["%"]}}), repeat)

        def mixed_read(g: _Gateway, chooser: random.Random) -> None:
            kind = chooser.randrange(5)
            if kind == 0:
                g.post(_PROJECTS, {"paging": {"pageSize": 100}})
            elif kind == 1:
                g.post(_PROJECTS, {"paging": {"pageSize": 100}, "sorting": _BY_NAME})
            elif kind == 2:
                g.post(_PROJECT, {"projectId": chooser.choice(ids)})
            elif kind == 3:
                g.post(_PROJECTS, {"filter": _name_is(f"project {chooser.randrange(1, count + 1)}")})
            else:
                g.post(_EXPERIMENTS, {"projectId": project_1, "paging": {"pageSize": 100},
                                      "responseMetadata": {"pattern": ["%"]}})

        def write(g: _Gateway, chooser: random.Random) -> None:
            g.post(_CREATE, {"project": {"displayName": f"written {chooser.random()}"}})

        many = [_Gateway(sandbox, token) for _ in range(CLIENTS)]
        one_reads, one_rate = _load([gateway], mixed_read, seconds)
        reads, read_rate = _load(many, mixed_read, seconds)
        _, one_write_rate = _load([gateway], write, seconds)
        _, write_rate = _load(many, write, seconds)

    api_estimate = 2 * count / one_write_rate  # the projects and experiments, one CreateProject-like call each
    p50, one_p50 = _percentile(reads, 0.5) * 1000, _percentile(one_reads, 0.5) * 1000
    p99, one_p99 = _percentile(reads, 0.99) * 1000, _percentile(one_reads, 0.99) * 1000
    n = f"{count:,}"
    return [
        Row(f"generate scale:{count} ({n} projects + {n} experiments, bulk)", generated_in, "s", api_estimate,
            ratio(generated_in, api_estimate), "reference", None,
            "baseline: as many API writes at the one-client write rate below (estimate)"),
        Row(f"page {page} of 1,000 projects (of {n}), newest first", deep, "s", first, ratio(deep, first),
            f"<= {DEPTH_TARGET}", deep <= DEPTH_TARGET * first, f"baseline: page 1; median of {repeat}"),
        Row(f"page {page} of 1,000 projects, sorted by display name", deep_sorted, "s", first_sorted,
            ratio(deep_sorted, first_sorted), f"<= {DEPTH_TARGET}", deep_sorted <= DEPTH_TARGET * first_sorted,
            f"baseline: page 1 sorted by name; median of {repeat}"),
        Row(f"lookup by display name among {n} projects", lookup, "s", first, ratio(lookup, first), "reference",
            None, "filter display_name = X (the name index); baseline: page 1 of 1,000"),
        Row(f"page of 1,000 experiments with metadata (of {n})", experiments, "s", first,
            ratio(experiments, first), "reference", None, "baseline: page 1 of 1,000 projects"),
        Row(f"mixed reads, {CLIENTS} clients: p50 latency", p50, "ms", one_p50, ratio(p50, one_p50), "report",
            None, f"baseline: 1 client; {len(reads):,} calls in {seconds:.0f} s"),
        Row(f"mixed reads, {CLIENTS} clients: p99 latency", p99, "ms", one_p99, ratio(p99, one_p99), "report",
            None, "baseline: 1 client"),
        Row(f"mixed reads, {CLIENTS} clients: requests/s", read_rate, "1/s", one_rate, ratio(read_rate, one_rate),
            "report", None, "baseline: 1 client"),
        Row(f"CreateProject, {CLIENTS} clients: writes/s", write_rate, "1/s", one_write_rate,
            ratio(write_rate, one_write_rate), "report", None, "baseline: 1 client"),
    ]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="20,000 projects, page 20, 5 s of load")
    for row in rows(parser.parse_args().quick):
        print(f"{row.name}: {row.value:.4g} {row.unit} against {row.baseline:.4g} ({row.note})")
