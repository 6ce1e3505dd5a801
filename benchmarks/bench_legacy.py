"""Listing every project, client side: mlops_nb against a hand-written floor and the legacy client.

A server in this process answers ``ListProjects`` from pages encoded in memory beforehand
(``page_server.py``), so the figures are the clients' own work. Each client runs as a
child process and times its own listing of every project, 1,000 a page:

* floor: ``requests`` + ``json`` + ``pandas.DataFrame(rows)`` by hand;
* mlops_nb: ``list_all`` into a typed DataFrame;
* legacy: the official ``h2o_mlops_client`` (h2o-mlops==1.0.1) page by page into its typed
  objects, in its isolated virtual environment (made once, as tests/test_legacy_client.py
  makes it, at ``$MLOPS_NB_LEGACY_VENV`` or ``~/.cache/mlops_nb/legacy-venv``).

Targets: mlops_nb within 1.3x of the floor; against the legacy client a reference (the
issue measured 33x faster). Run alone: ``python benchmarks/bench_legacy.py [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from common import REPO, Row, median, ratio, run_python
from page_server import PageServer

sys.path.insert(0, str(REPO))
from tests.legacy.environment import legacy_python  # noqa: E402

__all__ = ["rows"]

TARGET = 1.3

_FLOOR = """
import json, sys, time
import pandas as pd, requests
from mlops_nb.api import API
url = sys.argv[1] + API.method("storage.project.list_projects").full_path
session = requests.Session()
begin = time.perf_counter()
rows, token = [], ""
while True:
    body = {"paging": {"pageSize": 1000, **({"pageToken": token} if token else {})}}
    payload = session.post(url, json=body, headers={"Authorization": "Bearer benchmark"}, timeout=60).json()
    rows.extend(payload.get("project", []))
    token = (payload.get("paging") or {}).get("nextPageToken", "")
    if not token:
        break
frame = pd.DataFrame(rows)
print(json.dumps({"seconds": time.perf_counter() - begin, "rows": len(frame)}))
"""

_OURS = """
import json, sys, time
import mlops_nb as mlops
client = mlops.Client(sys.argv[1], lambda: "benchmark")
begin = time.perf_counter()
frame = mlops.list_all(client.storage.project.list_projects, page_size=1000, progress=False)
print(json.dumps({"seconds": time.perf_counter() - begin, "rows": len(frame)}))
"""


def _listing(python: str, args: list[str], expected: int) -> float:
    seen = json.loads(run_python(python, args, dict(os.environ)).strip().splitlines()[-1])
    if seen["rows"] != expected:
        raise RuntimeError(f"{python} {args[0]} listed {seen['rows']} projects, expected {expected}")
    return seen["seconds"]


def rows(quick: bool = False) -> list[Row]:
    projects, repeat = (5_000, 1) if quick else (20_000, 5)
    legacy = legacy_python()
    script = str(REPO / "benchmarks" / "legacy_list_projects.py")
    floor, ours, theirs = [], [], []
    with PageServer(projects) as server:
        for _ in range(repeat):  # in turns, so that a busy moment of the machine hits all three
            floor.append(_listing(sys.executable, ["-c", _FLOOR, server.url], projects))
            ours.append(_listing(sys.executable, ["-c", _OURS, server.url], projects))
            theirs.append(_listing(legacy, [script, server.url], projects))
    value, base, old = median(ours), median(floor), median(theirs)
    against_floor = value / base
    return [
        Row(f"list {projects:,} projects from memory into a DataFrame", value, "s", base, against_floor,
            f"<= {TARGET:.2f}", against_floor <= TARGET,
            f"floor: requests + json + pandas.DataFrame; median of {repeat}"),
        Row(f"list {projects:,} projects from memory, against the legacy client", value, "s", old,
            ratio(value, old), "reference (33x faster when filed)", None,
            f"{old / value:.0f}x faster; legacy: h2o-mlops==1.0.1 typed objects; median of {repeat}"),
    ]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="5,000 projects, one run")
    for row in rows(parser.parse_args().quick):
        print(f"{row.name}: {row.value:.2f} s against {row.baseline:.2f} s ({row.note})")
