"""Start-up: ``import mlops_nb`` and ``%load_ext mlops_nb``, each in fresh processes.

* ``import pandas, mlops_nb`` in a fresh python against ``import pandas, requests`` in
  another: the median of several of each, run alternately so that a busy moment of the
  machine hits both. Target: at most 100 ms more. (pandas is imported first, as a notebook
  does: inside mlops_nb's import garbage collection pauses, which would speed pandas' own
  import up and credit mlops_nb with it.)
* ``import pandas`` then ``%load_ext mlops_nb`` as the first cell of a fresh IPython
  kernel against ``import pandas`` alone as the first cell of another. Target: at most
  100 ms more.

Each child times its own import (``time.perf_counter`` around it), so the interpreter's
own start is not in the figures. Children run with bytecode cached, as after ``pip
install`` (see ``common.timing_env``); one warm-up run of each writes the cache.

Run alone: ``python benchmarks/bench_startup.py [--quick]``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Callable

from common import Row, median, ratio, run_python, timing_env

__all__ = ["rows"]

BUDGET_MS = 100.0

# Wall-clock and CPU milliseconds of the import, printed by the child.
_TIMED_IMPORT = ("import time; t, c = time.perf_counter(), time.process_time(); import {modules}; "
                 "print((time.perf_counter() - t) * 1000, (time.process_time() - c) * 1000)")
# The same for a kernel's first cell, timed inside the kernel.
_TIMED_CELL = ("import time as _t\n_s, _c = _t.perf_counter(), _t.process_time()\n{code}\n"
               "print((_t.perf_counter() - _s) * 1000, (_t.process_time() - _c) * 1000)")

Timing = tuple[float, float]  # wall-clock ms, CPU ms


def _timing(printed: str) -> Timing:
    wall, cpu = printed.strip().splitlines()[-1].split()
    return float(wall), float(cpu)


def _import_ms(modules: str) -> Timing:
    return _timing(run_python(sys.executable, ["-c", _TIMED_IMPORT.format(modules=modules)], timing_env()))


def _first_cell_ms(code: str) -> Timing:
    from jupyter_client.manager import start_new_kernel

    # The kernel's own warnings (it listens on loopback TCP) would clutter the table's output.
    kernel, client = start_new_kernel(kernel_name="python3", env=timing_env(), stderr=subprocess.DEVNULL)
    try:
        printed: list[str] = []

        def collect(message: dict) -> None:
            if message["header"]["msg_type"] == "stream":
                printed.append(message["content"]["text"])
            elif message["header"]["msg_type"] == "error":
                printed.append("\n".join(message["content"]["traceback"]))

        client.execute_interactive(_TIMED_CELL.format(code=code), output_hook=collect, timeout=300)
        try:
            return _timing("".join(printed))
        except (ValueError, IndexError):
            raise RuntimeError(f"the kernel cell failed: {''.join(printed)}") from None
    finally:
        client.stop_channels()
        kernel.shutdown_kernel(now=True)


def _alternately(runs: int, baseline: Callable[[], Timing], candidate: Callable[[], Timing]) -> list[tuple[Timing, Timing]]:
    """``runs`` pairs of (baseline, candidate) timings, one after the other, after a warm-up of each."""
    baseline(), candidate()
    return [(baseline(), candidate()) for _ in range(runs)]


def _row(name: str, pairs: list[tuple[Timing, Timing]], baseline_label: str) -> Row:
    base = median(b[0] for b, _ in pairs)
    ours = median(o[0] for _, o in pairs)
    # On a busy machine the pairs (run back to back) and the CPU time disturb least; shown beside.
    paired = median(o[0] - b[0] for b, o in pairs)
    cpu = median(o[1] - b[1] for b, o in pairs)
    return Row(name, ours, "ms", base, ratio(ours, base), f"<= baseline + {BUDGET_MS:.0f} ms",
               ours - base <= BUDGET_MS, f"{ours - base:+.0f} ms over {baseline_label}; per pair {paired:+.0f} ms, "
               f"CPU {cpu:+.0f} ms; medians of {len(pairs)} pairs")


def rows(quick: bool = False) -> list[Row]:
    processes = 5 if quick else 15
    kernels = 2 if quick else 7
    imports = _alternately(processes, lambda: _import_ms("pandas, requests"),
                           lambda: _import_ms("pandas, mlops_nb"))
    cells = _alternately(kernels, lambda: _first_cell_ms("import pandas"),
                         lambda: _first_cell_ms("import pandas\n%load_ext mlops_nb"))
    return [
        _row("import pandas, mlops_nb (fresh process)", imports, "import pandas, requests"),
        _row("%load_ext mlops_nb (fresh kernel)", cells, "import pandas in a fresh kernel"),
    ]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer processes and kernels")
    for row in rows(parser.parse_args().quick):
        print(f"{row.name}: {row.value:.0f} ms against {row.baseline:.0f} ms ({row.note})")
