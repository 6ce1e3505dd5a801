"""What it costs to make every acknowledged sandbox write survive an OS crash or power loss.

Run from the repository root: ``python benchmarks/bench_durability.py [--writes 300] [--repeat 3]``.
The sandbox's store is SQLite in WAL mode. By default (``synchronous=NORMAL``) a committed
write survives the sandbox process being killed but not necessarily an OS crash or power
loss; ``Sandbox(durable=True)`` (``synchronous=FULL``) syncs the WAL at every commit. This
times, with a database file in the same temporary directory for both:

* store commits: ``Store.put`` of one project per transaction, nothing else;
* CreateProject calls: the real client against a running sandbox, one after another.

It prints the median per write and the FULL / NORMAL ratio; :func:`figures` returns them
as dicts (name, value, unit, baseline, ratio, target) for ``benchmarks/run.py``. Figures
depend on the disk: a laptop SSD, a network volume and tmpfs differ by orders of magnitude.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mlops_nb.sandbox import Sandbox  # noqa: E402
from mlops_nb.sandbox.services import migrations  # noqa: E402
from mlops_nb.sandbox.store import Store  # noqa: E402


def time_store_commits(directory: Path, durable: bool, writes: int) -> float:
    """Seconds per committed write, straight into the store."""
    store = Store(directory / f"store-{durable}-{time.monotonic_ns()}.sqlite3", migrations(), durable=durable)
    try:
        started = time.perf_counter()
        for i in range(writes):
            store.put("project", {"id": f"p{i}", "displayName": f"project {i}", "createdTime": "2024-01-01T00:00:00Z"})
        return (time.perf_counter() - started) / writes
    finally:
        store.close()


def time_create_calls(directory: Path, durable: bool, writes: int) -> float:
    """Seconds per CreateProject call answered, through the client and the gateway."""
    db = directory / f"calls-{durable}-{time.monotonic_ns()}.sqlite3"
    with Sandbox(db=str(db), data="empty", durable=durable) as sb, sb.client("alice") as client:
        client.storage.user.who_am_i()
        started = time.perf_counter()
        for i in range(writes):
            client.storage.project.create_project(project={"display_name": f"project {i}"})
        return (time.perf_counter() - started) / writes


def measure(writes: int = 300, repeat: int = 3) -> dict[str, dict[bool, float]]:
    results: dict[str, dict[bool, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, timer in (("store commit", time_store_commits), ("CreateProject call", time_create_calls)):
            results[name] = {durable: statistics.median(timer(Path(tmp), durable, writes) for _ in range(repeat))
                             for durable in (False, True)}
    return results


def figures(writes: int = 300, repeat: int = 3) -> list[dict[str, Any]]:
    return _figures(measure(writes, repeat))


def _figures(results: dict[str, dict[bool, float]]) -> list[dict[str, Any]]:
    return [{"name": f"durable (synchronous=FULL) {name}", "value": per_write[True] * 1000, "unit": "ms",
             "baseline": per_write[False] * 1000, "ratio": per_write[True] / per_write[False], "target": None}
            for name, per_write in results.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--writes", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    where = tempfile.gettempdir()
    print(f"{args.writes} writes, median of {args.repeat} runs, database in {where}")
    print(f"  {'':<22} {'NORMAL':>10} {'FULL':>10} {'FULL/NORMAL':>12}")
    for row in _figures(measure(args.writes, args.repeat)):
        name = row["name"].removeprefix("durable (synchronous=FULL) ")
        print(f"  {name:<22} {row['baseline']:8.2f}ms {row['value']:8.2f}ms {row['ratio']:11.2f}x")


if __name__ == "__main__":
    main()
