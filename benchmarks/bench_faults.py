"""The fault workload, mlops_nb against the legacy client, side by side.

Run from the repository root: ``python benchmarks/bench_faults.py [--calls 2000] [--faults 0.2]``.
For each client it starts a sandbox failing that share of API calls (503, 429 with
``Retry-After``, a connection dropped before the call is handled, one dropped after it
was applied; the same seed for both), runs :mod:`fault_workload` in a child process
(the legacy client, ``h2o-mlops==1.0.1``, in a virtual environment of its own:
``MLOPS_NB_LEGACY_VENV`` names one to reuse, else one is made in
``~/.cache/mlops_nb/legacy-venv``), then compares what the caller was told with what the
sandbox stored. It prints a table; :func:`figures` returns the same numbers as dicts
(name, value, unit, baseline, ratio, target) for ``benchmarks/run.py``.

Targets: no read failure reaches the caller, no write is applied twice, and a write
that raised is either absent or reported as ``WriteOutcomeUnknown``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT), str(HERE)]

import fault_workload  # noqa: E402  (beside this file; the legacy venv imports it the same way)

from mlops_nb.sandbox import Sandbox  # noqa: E402
from tests.legacy.environment import legacy_python  # noqa: E402

SEED = 3
METRICS = [
    # name in the table, key, unit, target
    ("reads raised", "reads raised", "calls", 0),
    ("writes raised", "writes raised", "calls", None),
    ("writes reported unknown", "writes reported unknown", "calls", None),
    ("duplicated writes", "duplicated writes", "writes", 0),
    ("failed writes applied", "failed writes applied", "writes", 0),
    ("acknowledged writes lost", "acknowledged writes lost", "writes", 0),
    ("time taken", "seconds", "s", None),
]


def run_client(which: str, python: str, *, calls: int, faults: float) -> dict[str, Any]:
    """One client's run through a fresh faulty sandbox: what it saw, checked against the store."""
    with tempfile.TemporaryDirectory() as tmp, \
            Sandbox(db=str(Path(tmp) / "faults.sqlite3"), data="empty", faults=faults, fault_seed=SEED) as sb:
        env = {**os.environ, **sb.connection_constants("alice"), "FAULT_WORKLOAD_PREFIX": "fw",
               "FAULT_WORKLOAD_CALLS": str(calls), "PYTHONPATH": os.pathsep.join([str(ROOT), str(HERE)])}
        done = subprocess.run([python, str(HERE / "fault_workload.py"), which], env=env, capture_output=True,
                              text=True, timeout=1800)
        if done.returncode != 0:
            raise RuntimeError(f"the {which} workload failed:\n{done.stderr[-3000:]}")
        seen = json.loads(done.stdout.strip().splitlines()[-1])
        assert sb.store is not None
        with sb.store.reading() as db:
            names = [r[0] for r in db.execute(
                "SELECT json_extract(data, '$.displayName') FROM entity WHERE kind = 'project'")]
        injected = dict(sb.faults.injected) if sb.faults else {}
    checked = fault_workload.check_writes(seen["writes"], [n for n in names if str(n).startswith("fw-")])
    reads = seen["reads"]
    return {**checked, "reads": sum(reads.values()), "reads raised": sum(v for k, v in reads.items() if k != "ok"),
            "seconds": seen["seconds"], "injected": injected}


def measure(calls: int = 2000, faults: float = 0.2) -> dict[str, dict[str, Any]]:
    return {"mlops_nb": run_client("mlops_nb", sys.executable, calls=calls, faults=faults),
            "legacy": run_client("legacy", legacy_python(), calls=calls, faults=faults)}


def figures(calls: int = 2000, faults: float = 0.2) -> list[dict[str, Any]]:
    """The table as dicts: mlops_nb's value, the legacy client's as the baseline."""
    results = measure(calls, faults)
    return _figures(results)


def _figures(results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for name, key, unit, target in METRICS:
        ours, theirs = results["mlops_nb"][key], results["legacy"][key]
        rows.append({"name": f"fault workload: {name}", "value": ours, "unit": unit, "baseline": theirs,
                     "ratio": (ours / theirs) if theirs else None, "target": target})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--faults", type=float, default=0.2)
    args = parser.parse_args()
    results = measure(args.calls, args.faults)
    ours, legacy = results["mlops_nb"], results["legacy"]
    print(f"{args.calls:,} mixed calls ({ours['reads']:,} reads, {ours['writes']:,} writes; 8 threads) through a "
          f"sandbox failing {args.faults:.0%} of API calls (seed {SEED})")
    print(f"  injected, mlops_nb run: {ours['injected']}")
    print(f"  injected, legacy run:   {legacy['injected']}")
    print(f"  {'':<28} {'mlops_nb':>10} {'legacy 1.0.1':>13} {'target':>8}")
    for row in _figures(results):
        value, baseline = row["value"], row["baseline"]
        shown = [f"{v:.1f}" if isinstance(v, float) else f"{v:,}" for v in (value, baseline)]
        target = "" if row["target"] is None else str(row["target"])
        print(f"  {row['name'].removeprefix('fault workload: '):<28} {shown[0]:>10} {shown[1]:>13} {target:>8}")


if __name__ == "__main__":
    main()
