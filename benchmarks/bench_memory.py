"""Memory: 100,000 experiments with metadata listed into one frame, against the floor's frame.

A sandbox process serves a database made with ``--data scale:100000`` (its 100,000
experiments are in ``project 1``). Two child processes list them all, 1,000 a page, with
every metadata key (``response_metadata.pattern = ["%"]``):

* floor: ``requests`` + ``json``, every page's rows kept, then ``pandas.DataFrame(rows)``;
* mlops_nb: ``list_all(client.storage.experiment.list_experiments, ...)``.

Each measures its peak with ``tracemalloc`` (every allocation Python and numpy make, from
the first request until the frame exists) and, as a cross-check, with the process's peak
resident set size over what it had before the listing (``ru_maxrss``, which also counts
allocator overhead and memory tracemalloc does not see). Target: mlops_nb's peak at most
1.5x the floor's, by tracemalloc.

Run alone: ``python benchmarks/bench_memory.py [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
import tracemalloc
from pathlib import Path

from common import Row, SandboxProcess, ratio, run_python, scale_db

__all__ = ["rows"]

TARGET = 1.5
PAGE_SIZE = 1000


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _measure(way: str) -> None:
    """In a child process: list every experiment of project 1 the ``way`` way; print the peaks as JSON."""
    import pandas as pd
    import requests

    import mlops_nb as mlops
    from mlops_nb.api import API

    constants = {k: os.environ[k] for k in ("H2O_MLOPS_GATEWAY", "TOKEN_ENDPOINT", "REFRESH_TOKEN", "CLIENT_ID")}
    provider = mlops.TokenProvider(constants["REFRESH_TOKEN"], constants["CLIENT_ID"], constants["TOKEN_ENDPOINT"])
    client = mlops.Client(constants["H2O_MLOPS_GATEWAY"], provider, timeout=600)
    project = mlops.find_project(client, "project 1")
    token = provider()
    url = constants["H2O_MLOPS_GATEWAY"] + API.method("storage.experiment.list_experiments").full_path
    every_key = {"pattern": ["%"]}
    rss_before = _rss_bytes()
    tracemalloc.start()
    begin = time.perf_counter()
    if way == "floor":
        session = requests.Session()
        rows, page_token = [], ""
        while True:
            body = {"projectId": project.id, "responseMetadata": every_key,
                    "paging": {"pageSize": PAGE_SIZE, **({"pageToken": page_token} if page_token else {})}}
            payload = session.post(url, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=600).json()
            rows.extend(payload.get("experiment", []))
            page_token = (payload.get("paging") or {}).get("nextPageToken", "")
            if not page_token:
                break
        frame = pd.DataFrame(rows)
    else:
        frame = mlops.list_all(client.storage.experiment.list_experiments, project_id=project.id,
                               response_metadata=every_key, page_size=PAGE_SIZE, progress=False)
    seconds = time.perf_counter() - begin
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    print(json.dumps({"rows": len(frame), "traced_peak": peak, "rss_peak": rss_peak - rss_before,
                      "seconds": seconds}))


def _child(sandbox: SandboxProcess, way: str) -> dict[str, float]:
    return json.loads(run_python(sys.executable, [str(Path(__file__)), "--measure", way], sandbox.env())
                      .strip().splitlines()[-1])


def rows(quick: bool = False) -> list[Row]:
    count = 20_000 if quick else 100_000
    db, _ = scale_db(count)
    with SandboxProcess(db, "--data", "empty", "--token-ttl", "3600") as sandbox:
        floor = _child(sandbox, "floor")
        ours = _child(sandbox, "ours")
    for seen in (floor, ours):
        if seen["rows"] != count:
            raise RuntimeError(f"listed {seen['rows']} experiments, expected {count}")
    mib = 2 ** 20
    traced = ratio(ours["traced_peak"], floor["traced_peak"])
    rss = ratio(ours["rss_peak"], floor["rss_peak"])
    n = f"{count:,}"
    return [
        Row(f"peak memory, {n} experiments with metadata into one frame", ours["traced_peak"] / mib, "MiB",
            floor["traced_peak"] / mib, traced, f"<= {TARGET}", traced is not None and traced <= TARGET,
            "tracemalloc; floor: requests + json rows + pandas.DataFrame(rows)"),
        Row(f"peak RSS growth, {n} experiments with metadata", ours["rss_peak"] / mib, "MiB",
            floor["rss_peak"] / mib, rss, "cross-check", None,
            "ru_maxrss over the RSS before listing; counts allocator overhead too"),
    ]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="20,000 experiments")
    parser.add_argument("--measure", choices=("floor", "ours"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        _measure(args.measure)
    else:
        for row in rows(args.quick):
            print(f"{row.name}: {row.value:.1f} MiB against {row.baseline:.1f} MiB ({row.note})")
