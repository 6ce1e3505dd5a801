"""Every benchmark in one run, and one table: ``python benchmarks/run.py [--quick] [--only NAME,...]``.

Each module below exposes ``rows(quick: bool)`` (or ``figures()``, with its own sizes), a
list of ``common.Row`` or of tuples or dicts of its fields: figures with the baseline
measured in the same run, their ratio (``value / baseline``) and the target: text, or a
number the value must not exceed (``0`` for "none may happen").
To add a benchmark, write its module and add one line to ``BENCHMARKS``; a module that
is not there yet is skipped with a note. The table is Markdown, ready for BENCHMARKS.md.
Timings are figures here, never test assertions. ``--quick`` shrinks every workload for
a smoke run (its figures are not the ones the targets are about).
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import sqlite3
import sys
import time
import traceback
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TextIO

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import Row  # noqa: E402

# (module in benchmarks/, what it measures): the order of the table.
BENCHMARKS: list[tuple[str, str]] = [
    ("bench_startup", "import mlops_nb and %load_ext mlops_nb against pandas (issue 12)"),
    ("bench_list_frames", "listing projects from the sandbox into a frame against a hand-written floor"),
    ("bench_legacy", "listing from memory: against the floor and the legacy client h2o-mlops==1.0.1"),
    ("bench_fanout", "all_deployments over 200 projects with 50 ms per call, against one call at a time"),
    ("bench_scale", "the sandbox with 100,000 projects: deep pages, lookups, 8 clients, writes"),
    ("bench_memory", "100,000 experiments with metadata into one frame against the floor's frame"),
    ("bench_faults", "the fault workload through a sandbox failing 20% of calls, against the legacy client"),
    ("bench_durability", "store commits and CreateProject with synchronous=FULL against NORMAL"),
    ("bench_deploy", "CreateDeployment to HEALTHY and scoring throughput (sandbox deployments)"),
    ("bench_mojo", "H2O-3 MOJO deployments: to HEALTHY, scoring via the URL against genmodel in-process and the CLI"),
    ("bench_hardening", "monitoring storage against its bounds, a stuck model replaced, hostile artifacts, "
                        "scorers after SIGKILL (issue 19)"),
]


def _number(value: float | None) -> str:
    if value is None:
        return ""
    if value == 0 or abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"


def _met(met: bool | None) -> str:
    return "" if met is None else "yes" if met else "**no**"


def _row(given: Row | Mapping | Sequence) -> Row:
    """A module's row as a Row; a number as target is the most the value may be."""
    row = Row(**given) if isinstance(given, Mapping) else Row(*given)
    if row.target is None:
        return row._replace(target="")
    if isinstance(row.target, (int, float)):
        met = row.met if row.met is not None else row.value <= row.target
        return row._replace(target=f"<= {row.target}", met=met)
    return row


def table(found: Sequence[tuple[str, Row]]) -> str:
    lines = ["| benchmark | figure | value | baseline | ratio | target | met | note |",
             "|---|---|---|---|---|---|---|---|"]
    for module, row in found:
        lines.append(f"| {module} | {row.name} | {_number(row.value)} {row.unit} | "
                     f"{_number(row.baseline)}{' ' + row.unit if row.baseline is not None else ''} | "
                     f"{_number(row.ratio)} | {row.target} | {_met(row.met)} | {row.note} |")
    return "\n".join(lines)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), cpu)
    except OSError:
        pass
    import pandas

    load = " / ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return (f"{cpu}, {os.cpu_count()} cores; {platform.system()} {platform.release()}; "
            f"Python {platform.python_version()}, pandas {pandas.__version__}, SQLite {sqlite3.sqlite_version}; "
            f"load average {load}")


def run(benchmarks: Sequence[tuple[str, str]], quick: bool, out: TextIO) -> tuple[list[tuple[str, Row]], bool]:
    """Run each benchmark module in turn; (its rows, whether every module ran without an error)."""
    found: list[tuple[str, Row]] = []
    ok = True
    for module, about in benchmarks:
        if not (HERE / f"{module}.py").exists():
            print(f"skipping {module}: benchmarks/{module}.py is not there yet ({about})", file=out, flush=True)
            continue
        print(f"running {module}: {about} ...", file=out, flush=True)
        begin = time.perf_counter()
        try:
            loaded = importlib.import_module(module)
            rows = loaded.rows(quick=quick) if hasattr(loaded, "rows") else loaded.figures()
        except Exception:
            ok = False
            print(f"{module} failed:\n{traceback.format_exc()}", file=out, flush=True)
            continue
        found += [(module, _row(row)) for row in rows]
        print(f"  done in {time.perf_counter() - begin:.0f} s", file=out, flush=True)
    return found, ok


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small workloads, for a smoke run")
    parser.add_argument("--only", metavar="NAME,...", help="run only these modules (e.g. bench_fanout,bench_scale)")
    args = parser.parse_args(argv)
    chosen = BENCHMARKS
    if args.only:
        wanted = [name.strip() for name in args.only.split(",") if name.strip()]
        known = {name for name, _ in BENCHMARKS}
        unknown = [name for name in wanted if name not in known]
        if unknown:
            parser.error(f"no benchmark {', '.join(unknown)}; choose from {', '.join(sorted(known))}")
        chosen = [entry for entry in BENCHMARKS if entry[0] in wanted]
    started = datetime.now(timezone.utc)
    print(f"machine: {machine()}", flush=True)
    found, ok = run(chosen, args.quick, sys.stdout)
    print(f"\n{'Quick run (small workloads)' if args.quick else 'Results'} of {started:%Y-%m-%d %H:%M} UTC, "
          f"{(datetime.now(timezone.utc) - started).total_seconds() / 60:.0f} min; "
          f"machine at the end: {machine()}\n")
    print(table(found))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
