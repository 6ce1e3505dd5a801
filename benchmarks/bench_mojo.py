"""H2O-3 MOJOs in the sandbox: time to HEALTHY, and scoring against genmodel itself.

A binomial GBM with a categorical input is trained in a local h2o cluster (tests/h2o3.py; the
cluster is shut down before anything is timed), then:

1. CreateDeployment -> HEALTHY on ``h2o3_mojo_runtime``: the first deployment of a new sandbox
   (cold: its scorer starts a JVM) and the median of later ones (warm: the supervisor's MOJO
   spare, started while the previous deployment launched, has its JVM up), against an MLflow
   model's scorer started cold in the same run. Where the time goes: starting the JVM with
   genmodel (the scorer's warm-up, what the spare saves) and loading the MOJO, timed in a fresh
   process.
2. Scoring 1,000-row requests through the scoring URL (client -> gateway -> MOJO scorer and back),
   against genmodel called in-process on the same rows (this process starts a JVM through JPype
   and runs the scorer's own ``predict_rows``: EasyPredictModelWrapper, row by row), and against
   ``h2o.mojo_predict_pandas`` (the command-line route: a CSV written, ``java`` started with
   genmodel's PredictCsv, its CSV read back, per call). Where the time goes comes from the
   ``Server-Timing`` header the scorer and gateway send.

Run: ``python benchmarks/bench_mojo.py`` (``--rounds N``, ``--requests N``). Needs the h2o extra
and Java.
"""

from __future__ import annotations

import argparse
import io
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_deploy import _timing, healthy_times, print_figures  # noqa: E402

from mlops_nb.sandbox import Sandbox  # noqa: E402
from tests.deploying import deploy, experiment_with, status  # noqa: E402
from tests.h2o3 import FEATURES, as_request_values, h2o_cluster, train  # noqa: E402

MOJO = "h2o3/mojo"


def trained_mojo() -> tuple[bytes, Any]:
    """(MOJO bytes, the 1,000 rows to score) of a binomial GBM, trained in a cluster shut down after."""
    with h2o_cluster() as h2o:
        model = train(h2o, "binomial")
    return model.mojo, model.rows


def _healthy(client: Any, deployment_id: str) -> float:
    started = time.perf_counter()
    while (state := status(client, deployment_id).state.value) != "HEALTHY":
        if state == "FAILED":
            raise RuntimeError(status(client, deployment_id).message)
        time.sleep(0.05)
    return time.perf_counter() - started


def mojo_healthy_times(mojo: bytes, rounds: int) -> list[float]:
    """Seconds from CreateDeployment to HEALTHY: the first of a new sandbox, then ``rounds`` more."""
    times = []
    with tempfile.TemporaryDirectory() as scratch, Sandbox(db=f"{scratch}/s.sqlite3", data="empty") as sandbox:
        client = sandbox.client("alice")
        project = client.storage.project.create_project(project={"display_name": "bench"}).project.id
        experiment = experiment_with(client, project, mojo, MOJO)
        for _ in range(rounds + 1):
            started = time.perf_counter()
            deployment = deploy(client, project, experiment, MOJO)
            _healthy(client, deployment.id)
            times.append(time.perf_counter() - started)
            client.deployer.deployment.delete_deployment(id=deployment.id)
    return times


# As the supervisor starts it: by path, so that only the scorer's own files are imported.
_LOAD_STEPS = """
import json, sys, time
started = time.perf_counter()
sys.path.insert(0, sys.argv[2])
import mojo_scorer
imported = time.perf_counter()
mojo_scorer._warm_up()
warm = time.perf_counter()
mojo_scorer.MojoModel(sys.argv[1], "e", "n")
print(json.dumps({"import": imported - started, "jvm": warm - imported, "load": time.perf_counter() - warm}))
"""


def load_steps(model_dir: Path) -> dict[str, float]:
    """Seconds a fresh scorer process spends importing, starting the JVM with genmodel, loading the MOJO."""
    runtime = ROOT / "mlops_nb" / "sandbox" / "runtime"
    done = subprocess.run([sys.executable, "-c", _LOAD_STEPS, str(model_dir), str(runtime)], capture_output=True,
                          text=True, timeout=300, cwd=model_dir, check=True)
    import json

    return json.loads(done.stdout.strip().splitlines()[-1])


def throughput(mojo: bytes, rows: Any, request_count: int) -> dict[str, Any]:
    fields, values = FEATURES, as_request_values(rows)
    with tempfile.TemporaryDirectory() as scratch, Sandbox(db=f"{scratch}/s.sqlite3", data="empty") as sandbox:
        client = sandbox.client("alice")
        project = client.storage.project.create_project(project={"display_name": "bench"}).project.id
        deployment = deploy(client, project, experiment_with(client, project, mojo, MOJO), MOJO)
        _healthy(client, deployment.id)
        url = status(client, deployment.id).scorer.score.url
        session = requests.Session()
        for _ in range(3):  # warm the connection and the JVM's compiler
            session.post(url, json={"fields": fields, "rows": values}, timeout=60).raise_for_status()
        parts: dict[str, list[float]] = {}
        served = []
        for _ in range(request_count):
            started = time.perf_counter()
            answer = session.post(url, json={"fields": fields, "rows": values}, timeout=60)
            answer.raise_for_status()
            answer.json()
            served.append(time.perf_counter() - started)
            for name, value in _timing(answer.headers["Server-Timing"]).items():
                parts.setdefault(name, []).append(value)
    return {"served": statistics.median(served), "parts": {k: statistics.median(v) for k, v in parts.items()}}


def in_process(model_dir: Path, rows: Any, request_count: int) -> float:
    """Median seconds for genmodel, in this process (JPype), to score the rows as the scorer does."""
    from mlops_nb.sandbox.runtime import mojo_scorer

    mojo_scorer._warm_up()
    model = mojo_scorer.MojoModel(str(model_dir), "e", "n")
    fields, values = FEATURES, as_request_values(rows)
    for _ in range(3):
        model.predict_rows(fields, values)
    times = []
    for _ in range(request_count):
        started = time.perf_counter()
        model.predict_rows(fields, values)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def command_line(mojo_zip: Path, rows: Any, calls: int) -> float:
    """Median seconds of ``h2o.mojo_predict_pandas`` on the rows (a JVM per call)."""
    import h2o

    from mlops_nb.sandbox.runtime.mojo_scorer import genmodel_jar

    jar = str(genmodel_jar())
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        h2o.mojo_predict_pandas(rows, str(mojo_zip), genmodel_jar_path=jar)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def run(rounds: int = 3, request_count: int = 30) -> list[dict[str, Any]]:
    mojo, rows = trained_mojo()
    with tempfile.TemporaryDirectory() as scratch:
        mojo_zip = Path(scratch) / "gbm.zip"
        mojo_zip.write_bytes(mojo)
        model_dir = Path(scratch) / "model"
        zipfile.ZipFile(io.BytesIO(mojo)).extractall(model_dir)
        times = mojo_healthy_times(mojo, rounds)
        mlflow_cold = statistics.median(healthy_times(1)["cold"])
        steps = load_steps(model_dir)
        scored = throughput(mojo, rows, request_count)
        local = in_process(model_dir, rows, request_count)
        cli = command_line(mojo_zip, rows, max(1, min(3, request_count)))
    cold, warm = times[0], statistics.median(times[1:])
    parts = scored["parts"]
    served = scored["served"]
    figures = [
        {"name": "MOJO CreateDeployment -> HEALTHY, warm (s)", "value": warm, "unit": "s", "baseline": mlflow_cold,
         "ratio": warm / mlflow_cold, "target": "(reported: vs an MLflow scorer started cold)"},
        {"name": "MOJO CreateDeployment -> HEALTHY, first in a new sandbox (s)", "value": cold, "unit": "s",
         "baseline": mlflow_cold, "ratio": cold / mlflow_cold, "target": "(reported)"},
        {"name": "  of which import the scorer (s)", "value": steps["import"], "unit": "s", "baseline": None,
         "ratio": None, "target": ""},
        {"name": "  of which start the JVM with genmodel (s)", "value": steps["jvm"], "unit": "s", "baseline": None,
         "ratio": None, "target": ""},
        {"name": "  of which load the MOJO, one trial row (s)", "value": steps["load"], "unit": "s", "baseline": None,
         "ratio": None, "target": ""},
        {"name": "score 1,000 rows via the scoring URL (ms)", "value": served * 1000, "unit": "ms",
         "baseline": local * 1000, "ratio": served / local, "target": "(reported: vs genmodel in-process)"},
        {"name": "score 1,000 rows, h2o.mojo_predict_pandas (ms)", "value": cli * 1000, "unit": "ms",
         "baseline": served * 1000, "ratio": cli / served, "target": "(reported: vs the scoring URL)"},
    ]
    for name in ("parse", "predict", "encode"):
        if name in parts:
            figures.append({"name": f"  URL: of which scorer {name} (ms)", "value": parts[name], "unit": "ms",
                            "baseline": None, "ratio": None, "target": ""})
    scorer_ms = parts.get("total", 0.0)
    figures.append({"name": "  URL: of which gateway, around the scorer (ms)", "value": parts.get("gateway", 0.0)
                    - scorer_ms, "unit": "ms", "baseline": None, "ratio": None, "target": ""})
    figures.append({"name": "  URL: of which client and HTTP (ms)", "value": served * 1000 - parts.get("gateway", 0.0),
                    "unit": "ms", "baseline": None, "ratio": None, "target": ""})
    return figures


def rows(quick: bool = False) -> list[dict[str, Any]]:
    """For benchmarks/run.py."""
    return run(rounds=1 if quick else 3, request_count=5 if quick else 30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="warm deployments timed after the first")
    parser.add_argument("--requests", type=int, default=30, help="1,000-row scoring requests")
    args = parser.parse_args()
    print_figures(run(args.rounds, args.requests), width=60)


if __name__ == "__main__":
    main()
