"""``python benchmarks/run.py``: the registry runs its modules, skips missing ones aloud, prints one table.

No figure is checked here (timings are the benchmarks' business); a quick run of one
real benchmark shows the pieces fit: a sandbox process, the measurement, the table.
"""

from __future__ import annotations

import importlib.util
import io
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RUN = REPO / "benchmarks" / "run.py"


def _registry():
    spec = importlib.util.spec_from_file_location("benchmarks_run", RUN)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_module_not_written_yet_is_skipped_with_a_note() -> None:
    run = _registry()
    out = io.StringIO()
    found, ok = run.run([("bench_not_written_yet", "something for later")], quick=True, out=out)
    assert (found, ok) == ([], True)
    assert out.getvalue() == ("skipping bench_not_written_yet: benchmarks/bench_not_written_yet.py is not there yet "
                              "(something for later)\n")


def test_every_registered_module_that_exists_has_rows() -> None:
    run = _registry()
    for name, _ in run.BENCHMARKS:
        path = REPO / "benchmarks" / f"{name}.py"
        if path.exists():
            text = path.read_text()
            assert "def rows(quick: bool = False)" in text or "def figures(" in text, name


def test_rows_may_come_as_dicts_with_a_number_for_target() -> None:
    run = _registry()
    none = run._row({"name": "reads raised", "value": 0, "unit": "calls", "baseline": 302, "ratio": 0.0,
                     "target": 0})
    some = run._row({"name": "reads raised", "value": 3, "unit": "calls", "baseline": 302, "ratio": 0.01,
                     "target": 0})
    reported = run._row(("writes/s", 131.0, "1/s", None, None, None))
    assert (none.target, none.met, some.met) == ("<= 0", True, False)
    assert (reported.target, reported.met) == ("", None)


def test_the_table_shows_each_figure_against_its_baseline() -> None:
    run = _registry()
    rows = [run.Row("fan-out", 1.25, "s", 7.5, 1.25 / 7.5, "<= 0.20", True, "6x"),
            run.Row("throughput", 131.0, "1/s", None, None, "report")]
    assert run.table([("bench_a", rows[0]), ("bench_b", rows[1])]).splitlines() == [
        "| benchmark | figure | value | baseline | ratio | target | met | note |",
        "|---|---|---|---|---|---|---|---|",
        "| bench_a | fan-out | 1.25 s | 7.5 s | 0.167 | <= 0.20 | yes | 6x |",
        "| bench_b | throughput | 131 1/s |  |  | report |  |  |",
    ]


def test_a_quick_run_of_one_benchmark_prints_its_row(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(RUN), "--quick", "--only", "bench_fanout"], capture_output=True,
                          text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("machine: ") and "cores" in lines[0]
    row = next(line for line in lines if line.startswith("| bench_fanout |"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[1] == "all_deployments, 50 projects, 50 ms per call"
    assert cells[2].endswith(" s") and cells[3].endswith(" s") and cells[5] == "<= 0.20 (5x faster)"
    assert cells[6] in ("yes", "**no**")


def test_an_unknown_benchmark_is_a_usage_error() -> None:
    done = subprocess.run([sys.executable, str(RUN), "--only", "bench_nothing"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2
    assert "no benchmark bench_nothing; choose from bench_deploy, bench_durability, bench_fanout" in done.stderr
