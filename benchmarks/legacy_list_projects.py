"""Run INSIDE the isolated venv that has h2o-mlops==1.0.1 (benchmarks/bench_legacy.py does).

Lists every project at the gateway ``argv[1]`` with the official legacy client, page by
page as its users do, and prints one JSON line: the seconds it took (timed here, without
the interpreter's start) and how many projects came back.
"""

import json
import sys
import time

import h2o_mlops  # noqa: F401  (makes h2o_mlops_client importable, as the seed says)
import h2o_mlops_client as mlops

PAGE_SIZE = 1000

client = mlops.Client(gateway_url=sys.argv[1], token_provider=lambda: "benchmark")
begin = time.perf_counter()
projects = []
token = None
while True:
    response = client.storage.project.list_projects(mlops.StorageListProjectsRequest(
        paging=mlops.StoragePagingRequest(page_size=PAGE_SIZE, page_token=token)))
    projects.extend(response.project)
    token = response.paging.next_page_token if response.paging else None
    if not token:
        break
print(json.dumps({"seconds": time.perf_counter() - begin, "rows": len(projects)}))
