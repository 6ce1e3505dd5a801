"""Fan-out: ``mlops_nb.all_deployments`` over many projects of a gateway with latency.

A sandbox process with ``--data scale:200`` (200 projects) and ``--latency 50`` (50 ms
added to every gateway call) serves both runs; this process is only the client.
``all_deployments(client, projects)`` makes two calls per project (deployments, their
statuses): one after another with ``concurrent_calls=1`` (the baseline: what ``%mlops
deployments`` did), and over the default pool of ``settings.concurrent_calls``. The two
frames must be equal, row for row. Target: the pool at least 5x faster (ratio <= 0.20).

The generated projects hold no deployments (each would run real scorer processes), so
the lists come back empty; the calls, their latency and their number are those of a
gateway whose projects have some.

Run alone: ``python benchmarks/bench_fanout.py [--quick]``.
"""

from __future__ import annotations

import argparse
import time

import pandas as pd
from common import Row, SandboxProcess, median, ratio, scratch_dir

import mlops_nb
from mlops_nb.notebook.settings import settings

__all__ = ["rows"]

LATENCY_MS = 50
TARGET = 0.2  # at least 5x faster than one call after another


def _timed(client: object, projects: list, concurrent_calls: int) -> tuple[float, pd.DataFrame]:
    begin = time.perf_counter()
    frame = mlops_nb.all_deployments(client, projects, concurrent_calls=concurrent_calls)
    return time.perf_counter() - begin, frame


def rows(quick: bool = False) -> list[Row]:
    count, repeat = (50, 1) if quick else (200, 3)
    workers = settings.concurrent_calls
    db = scratch_dir() / f"fanout-{count}.sqlite3"
    with SandboxProcess(db, "--data", f"scale:{count}", "--latency", str(LATENCY_MS),
                        "--token-ttl", "3600") as sandbox, sandbox.client() as client:
        projects = mlops_nb.list_all(client.storage.project.list_projects, progress=False).entities
        if len(projects) != count:
            raise RuntimeError(f"the sandbox has {len(projects)} projects, expected {count}")
        sequential, expected = _timed(client, projects, 1)
        pooled = []
        for _ in range(repeat):
            seconds, frame = _timed(client, projects, workers)
            pd.testing.assert_frame_equal(frame, expected)  # same rows, same order
            pooled.append(seconds)
    value = median(pooled)
    share = ratio(value, sequential)
    return [Row(f"all_deployments, {count} projects, {LATENCY_MS} ms per call", value, "s", sequential, share,
                f"<= {TARGET:.2f} (5x faster)", share is not None and share <= TARGET,
                f"{sequential / value:.1f}x faster with {workers} concurrent calls; baseline: one call after "
                f"another ({2 * count} calls); median of {repeat}")]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="50 projects, one run")
    for row in rows(parser.parse_args().quick):
        print(f"{row.name}: {row.value:.2f} s against {row.baseline:.2f} s ({row.note})")
