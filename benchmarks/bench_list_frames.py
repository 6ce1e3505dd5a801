"""How fast listing projects into a DataFrame is, against a hand-written floor.

Run from the repository root (with the package installed, or ``PYTHONPATH=.``):
``python benchmarks/bench_list_frames.py [--projects 20000] [--repeat 5]``.
It starts a sandbox in this process, gives one user ``--projects`` projects and
times, on the same sandbox and with the same page size:

* floor: ``requests`` + ``json`` + ``pandas`` by hand: POST each page, ``response.json()``,
  ``pd.DataFrame(rows)`` of every row at the end (no dtype work at all);
* list_all: ``mlops_nb.list_all(client.storage.project.list_projects)``, typed columns included;
* typed messages (reference): the wire client's typed responses, page by page, as the
  legacy client gives them;
* lazy typed view (reference): ``frame.project`` on the list_all result.

The sandbox's answers dominate those figures, so it also times the client-side work
alone, on the 20,000 rows already received: ``pd.DataFrame(rows)``, the list frame
(``frame_from_wire``) and typed messages (``StorageProject.from_wire`` per row).

It prints the median of each and its ratio to the floor; the target is list_all
within 1.3x of the floor. Nothing here asserts: timings belong in figures, not tests.
``rows()`` gives the same figures to ``benchmarks/run.py``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any

import pandas as pd
import requests
from common import Row

import mlops_nb as mlops
from mlops_nb import sandbox
from mlops_nb.api import API
from mlops_nb.notebook.frames import frame_from_wire
from mlops_nb.sandbox.rpc import timestamp_text
from mlops_nb.sandbox.store import EntityRow
from mlops_nb.wire.client import Client as WireClient

PAGE_SIZE = 1000
TARGET = 1.3  # list_all within this many times the floor


def seed_projects(sb: Any, owner_id: str, count: int) -> None:
    # Straight into the store: 20,000 CreateProject calls would time the server's writes,
    # not listing, and take minutes. The rows are what CreateProject stores.
    start = pd.Timestamp("2024-01-01", tz="UTC")

    def projects() -> Iterator[EntityRow]:
        for i in range(count):
            created = timestamp_text((start + pd.Timedelta(seconds=i)).to_pydatetime())
            project = {"id": f"00000000-0000-4000-8000-{i:012d}", "displayName": f"project {i}",
                       "ownerId": owner_id, "createdTime": created, "lastModifiedTime": created}
            if i % 3 == 0:
                project["description"] = f"benchmark project number {i}"
            yield project, None, None, owner_id

    sb.store.put_many("project", projects())


def fetch_rows(url: str, token: str) -> list[dict[str, Any]]:
    """Every project's JSON, the way one would by hand."""
    session = requests.Session()
    headers = {"Authorization": f"Bearer {token}"}
    rows: list[dict[str, Any]] = []
    page_token = ""
    while True:
        body: dict[str, Any] = {"paging": {"pageSize": PAGE_SIZE}}
        if page_token:
            body["paging"]["pageToken"] = page_token
        payload = session.post(url, json=body, headers=headers, timeout=60).json()
        rows.extend(payload.get("project", []))
        page_token = (payload.get("paging") or {}).get("nextPageToken", "")
        if not page_token:
            return rows


def typed_messages(client: WireClient) -> list[Any]:
    projects: list[Any] = []
    token = b""
    while True:
        response = client.storage.project.list_projects(
            paging=mlops.StoragePagingRequest(page_size=PAGE_SIZE, page_token=token or None))
        projects.extend(response.project)
        token = response.paging.next_page_token if response.paging else b""
        if not token:
            return projects


def report(medians: dict[str, float], base: str, labels: dict[str, str]) -> None:
    for name, label in labels.items():
        print(f"  {label:<46} {medians[name] * 1000:8.1f} ms  {medians[name] / medians[base]:5.2f}x {base}")


def measure(projects: int, repeat: int) -> dict[str, float]:
    """The median seconds of each way of listing, over ``repeat`` runs against one sandbox."""
    with sandbox.Sandbox(db=":memory:", data="empty", token_ttl=3600) as sb:
        client = sb.client("alice")
        wire_client = WireClient(sb.gateway_url, sb.token_provider("alice"))
        seed_projects(sb, client.storage.user.who_am_i().user.id, projects)
        url = sb.gateway_url + API.method("storage.project.list_projects").full_path
        token = client.token_provider()

        def ours() -> pd.DataFrame:
            return mlops.list_all(client.storage.project.list_projects, page_size=PAGE_SIZE, progress=False)

        method = API.method("storage.project.list_projects")
        runs: dict[str, list[float]] = {}

        def record(name: str, fn: Callable[..., Any], *args: Any) -> Any:
            begin = time.perf_counter()
            result = fn(*args)
            runs.setdefault(name, []).append(time.perf_counter() - begin)
            return result

        def frame_of(rows: list[dict[str, Any]]) -> pd.DataFrame:
            return frame_from_wire(method, {"project": rows})

        def typed_rows(rows: list[dict[str, Any]]) -> list[Any]:
            return [mlops.StorageProject.from_wire(r) for r in rows]

        for _ in range(repeat):
            plain = record("floor", lambda: pd.DataFrame(fetch_rows(url, token)))
            frame = record("list_all", ours)
            typed = record("typed", typed_messages, wire_client)
            record("lazy_typed", getattr, ours(), "project")
            if not len(plain) == len(frame) == len(typed) == projects:
                raise RuntimeError(f"expected {projects} rows, got {len(plain)}, {len(frame)}, {len(typed)}")
            rows = fetch_rows(url, token)
            record("rows_pandas", pd.DataFrame, rows)
            record("rows_frame", frame_of, rows)
            record("rows_typed", typed_rows, rows)
        wire_client.close()
    return {name: statistics.median(times) for name, times in runs.items()}


def rows(quick: bool = False) -> list[Row]:
    """The table's rows (see benchmarks/run.py): list_all and the client-side frame against the floor."""
    projects, repeat = (5_000, 3) if quick else (20_000, 5)
    medians = measure(projects, repeat)
    listed = medians["list_all"] / medians["floor"]
    return [
        Row(f"list {projects:,} projects into a DataFrame (list_all)", medians["list_all"], "s", medians["floor"],
            listed, f"<= {TARGET:.2f}", listed <= TARGET,
            f"floor: requests + json + pandas.DataFrame; median of {repeat}, sandbox in this process"),
        Row(f"frame of {projects:,} received projects (frame_from_wire)", medians["rows_frame"], "s",
            medians["rows_pandas"], medians["rows_frame"] / medians["rows_pandas"], "reference", None,
            "client-side work only; baseline: pandas.DataFrame(rows)"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--projects", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    medians = measure(args.projects, args.repeat)
    print(f"listing {args.projects:,} projects, page size {PAGE_SIZE}, median of {args.repeat} runs "
          f"(pandas {pd.__version__})")
    report(medians, "floor", {
        "floor": "floor: requests + json + pandas",
        "list_all": "mlops_nb.list_all -> typed DataFrame",
        "typed": "reference: typed messages, page by page",
        "lazy_typed": "reference: frame.project (typed view, lazy)",
    })
    print("client-side work only, on the rows already received:")
    report(medians, "rows_pandas", {
        "rows_pandas": "pd.DataFrame(rows)",
        "rows_frame": "frame_from_wire (typed columns)",
        "rows_typed": "StorageProject.from_wire per row",
    })
    print(f"list_all / floor = {medians['list_all'] / medians['floor']:.2f} (target <= {TARGET:.2f})")


if __name__ == "__main__":
    main()
