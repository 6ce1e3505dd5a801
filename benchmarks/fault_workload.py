"""The fault workload: mixed reads and writes through a sandbox that fails some calls.

It runs the same calls with either client, since mlops_nb takes the legacy client's
call shapes: ``python benchmarks/fault_workload.py mlops_nb|legacy`` with the four
constants of ``connection.py`` in the environment (``H2O_MLOPS_GATEWAY``,
``TOKEN_ENDPOINT``, ``REFRESH_TOKEN``, ``CLIENT_ID``) and ``FAULT_WORKLOAD_PREFIX``
(the display-name prefix of the projects it creates). It prints one JSON object.
The legacy client runs in its own virtual environment, so this file imports neither
client at the top and nothing else from this repository.

Of every ``calls`` calls (run by ``threads`` threads), about 70% are reads (who am I,
a page of projects, a project made earlier) and the rest create a project whose
display name is unique, so duplicates can be counted afterwards (:func:`check_writes`).
"""

from __future__ import annotations

import json
import os
import random
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

READ_SHARE = 0.7
# What mlops_nb raises when a write was sent but its answer was lost.
OUTCOME_UNKNOWN = "WriteOutcomeUnknown"


def plan(calls: int, seed: int) -> list[str]:
    draw = random.Random(seed)
    return ["read" if draw.random() < READ_SHARE else "write" for _ in range(calls)]


def run(mlops: Any, client: Any, *, calls: int = 2000, threads: int = 8, seed: int = 11,
        prefix: str = "fault-workload") -> dict[str, Any]:
    """Run the workload with ``client`` (of the module ``mlops``); return what the caller saw."""
    made: list[str] = []  # ids of projects created, for reads to get
    made_lock = threading.Lock()
    reads: Counter[str] = Counter()
    writes: dict[str, str] = {}  # display name -> "ok", "unknown" or the error's class name

    def read(i: int) -> None:
        kind = i % 3
        with made_lock:
            project_id = made[i % len(made)] if made else None
        try:
            if kind == 0 or project_id is None:
                client.storage.user.who_am_i(body={})
            elif kind == 1:
                client.storage.project.list_projects(mlops.StorageListProjectsRequest(
                    paging=mlops.StoragePagingRequest(page_size=10)))
            else:
                client.storage.project.get_project(mlops.StorageGetProjectRequest(project_id=project_id))
            reads["ok"] += 1
        except Exception as e:  # every failure a caller would see counts, whatever its class
            reads[type(e).__name__] += 1

    def write(i: int) -> None:
        name = f"{prefix}-{i}"
        try:
            created = client.storage.project.create_project(mlops.StorageCreateProjectRequest(
                project=mlops.StorageProject(display_name=name)))
            with made_lock:
                made.append(created.project.id)
            writes[name] = "ok"
        except Exception as e:
            writes[name] = "unknown" if type(e).__name__ == OUTCOME_UNKNOWN else type(e).__name__

    steps = plan(calls, seed)
    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda i: (read if steps[i] == "read" else write)(i), range(calls)))
    return {"seconds": time.perf_counter() - started, "reads": dict(reads), "writes": writes}


def check_writes(writes: dict[str, str], stored_names: list[str]) -> dict[str, int]:
    """Compare what the caller was told with what the server stored (display names)."""
    stored = Counter(stored_names)
    return {
        "writes": len(writes),
        "writes ok": sum(1 for outcome in writes.values() if outcome == "ok"),
        "writes raised": sum(1 for outcome in writes.values() if outcome != "ok"),
        "writes reported unknown": sum(1 for outcome in writes.values() if outcome == "unknown"),
        "duplicated writes": sum(1 for name in writes if stored[name] > 1),
        # Told "it failed" (not "unknown") yet applied: the caller would send it again.
        "failed writes applied": sum(1 for name, outcome in writes.items()
                                     if outcome not in ("ok", "unknown") and stored[name]),
        "acknowledged writes lost": sum(1 for name, outcome in writes.items() if outcome == "ok" and not stored[name]),
    }


def main() -> None:
    which = sys.argv[1] if len(sys.argv) > 1 else "mlops_nb"
    if which == "legacy":
        import h2o_mlops  # noqa: F401  (makes h2o_mlops_client importable)
        import h2o_mlops_client as mlops
    else:
        import mlops_nb as mlops
    provider = mlops.TokenProvider(refresh_token=os.environ["REFRESH_TOKEN"], client_id=os.environ["CLIENT_ID"],
                                   token_endpoint_url=os.environ["TOKEN_ENDPOINT"])
    client = mlops.Client(gateway_url=os.environ["H2O_MLOPS_GATEWAY"], token_provider=provider)
    result = run(mlops, client, calls=int(os.environ.get("FAULT_WORKLOAD_CALLS", "2000")),
                 prefix=os.environ["FAULT_WORKLOAD_PREFIX"])
    print(json.dumps(result))


if __name__ == "__main__":
    main()
