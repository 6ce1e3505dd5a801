"""Deployments in the sandbox: time to HEALTHY, and scoring throughput against the model itself.

1. CreateDeployment -> HEALTHY for a scikit-learn model saved with MLflow, polling the status
   every 50 ms: with the supervisor's warm spare (the default) and without one (a scorer
   process started cold). Median of several deployments each. Target: under 3 s, warm.
2. Scoring 1,000-row requests through the deployment's scoring URL (client -> gateway ->
   scorer process and back, JSON as the scoring API wants it), against calling the model's
   ``predict`` in this process on the same rows as a DataFrame. The ratio is reported with
   where the time goes, from the ``Server-Timing`` header the scorer and gateway send.

Run: ``python benchmarks/bench_deploy.py`` (``--rounds N``, ``--requests N``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mlops_nb.sandbox import Sandbox  # noqa: E402
from tests.deploying import deploy, experiment_with, iris_model, status  # noqa: E402

TARGET_HEALTHY_SECONDS = 3.0


def _time_to_healthy(sandbox: Sandbox, project: str, experiment: str) -> float:
    client = sandbox.client("alice")
    started = time.perf_counter()
    deployment = deploy(client, project, experiment)
    while (state := status(client, deployment.id).state.value) != "HEALTHY":
        if state == "FAILED":
            raise RuntimeError(status(client, deployment.id).message)
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    client.deployer.deployment.delete_deployment(id=deployment.id)
    return elapsed


def _spares_ready(sandbox: Sandbox, timeout: float = 120.0) -> None:
    """Wait until the warm spares have imported MLflow (what the 'warm' figure assumes)."""
    assert sandbox.supervisor is not None
    deadline = time.monotonic() + timeout
    while not sandbox.supervisor.spares_warm():
        if time.monotonic() > deadline:
            raise RuntimeError("the warm spare did not get ready")
        time.sleep(0.1)


def healthy_times(rounds: int) -> dict[str, list[float]]:
    data, _, _ = iris_model()
    times: dict[str, list[float]] = {}
    for label, spares in (("warm", 1), ("cold", 0)):
        with tempfile.TemporaryDirectory() as scratch, \
                Sandbox(db=f"{scratch}/s.sqlite3", data="empty", warm_scorers=spares) as sandbox:
            client = sandbox.client("alice")
            project = client.storage.project.create_project(project={"display_name": "bench"}).project.id
            experiment = experiment_with(client, project, data)
            times[label] = []
            for _ in range(rounds):
                if spares:
                    _spares_ready(sandbox)
                times[label].append(_time_to_healthy(sandbox, project, experiment))
    return times


def _timing(header: str) -> dict[str, float]:
    parts = {}
    for item in header.split(","):
        name, _, rest = item.strip().partition(";dur=")
        if rest:
            parts[name] = float(rest)
    return parts


def throughput(request_count: int) -> dict[str, Any]:
    data, X, model = iris_model()
    frame = X.sample(n=1000, replace=True, random_state=1).reset_index(drop=True)
    fields, rows = list(frame.columns), frame.astype(str).to_numpy().tolist()
    with tempfile.TemporaryDirectory() as scratch, Sandbox(db=f"{scratch}/s.sqlite3", data="empty") as sandbox:
        client = sandbox.client("alice")
        project = client.storage.project.create_project(project={"display_name": "bench"}).project.id
        deployment = deploy(client, project, experiment_with(client, project, data))
        while status(client, deployment.id).state.value != "HEALTHY":
            time.sleep(0.1)
        url = status(client, deployment.id).scorer.score.url
        session = requests.Session()
        for _ in range(3):  # warm the connection and the scorer
            session.post(url, json={"fields": fields, "rows": rows}, timeout=60).raise_for_status()
        parts: dict[str, list[float]] = {}
        started = time.perf_counter()
        for _ in range(request_count):
            answer = session.post(url, json={"fields": fields, "rows": rows}, timeout=60)
            answer.raise_for_status()
            answer.json()
            for name, value in _timing(answer.headers["Server-Timing"]).items():
                parts.setdefault(name, []).append(value)
        served = (time.perf_counter() - started) / request_count
    started = time.perf_counter()
    for _ in range(request_count):
        model.predict(frame)
    local = (time.perf_counter() - started) / request_count
    return {"served": served, "local": local, "parts": {k: statistics.median(v) for k, v in parts.items()}}


def run(rounds: int = 3, request_count: int = 50) -> list[dict[str, Any]]:
    """The figures as rows: name, value, unit, baseline, ratio, target (for benchmarks/run.py)."""
    times = healthy_times(rounds)
    warm, cold = statistics.median(times["warm"]), statistics.median(times["cold"])
    scored = throughput(request_count)
    parts = scored["parts"]
    scorer_ms = parts.get("total", 0.0)
    rows = [
        {"name": "CreateDeployment -> HEALTHY, warm spare (s)", "value": warm, "unit": "s",
         "baseline": cold, "ratio": warm / cold, "target": f"< {TARGET_HEALTHY_SECONDS:.0f} s"},
        {"name": "CreateDeployment -> HEALTHY, cold process (s)", "value": cold, "unit": "s",
         "baseline": None, "ratio": None, "target": "(reported)"},
        {"name": "score 1,000 rows via the scoring URL (ms)", "value": scored["served"] * 1000, "unit": "ms",
         "baseline": scored["local"] * 1000, "ratio": scored["served"] / scored["local"],
         "target": "(reported: vs model.predict in-process)"},
    ]
    for name in ("parse", "predict", "encode"):
        if name in parts:
            rows.append({"name": f"  of which scorer {name} (ms)", "value": parts[name], "unit": "ms",
                         "baseline": None, "ratio": None, "target": ""})
    rows.append({"name": "  of which gateway, around the scorer (ms)",
                 "value": parts.get("gateway", 0.0) - scorer_ms, "unit": "ms", "baseline": None, "ratio": None,
                 "target": ""})
    rows.append({"name": "  of which client and HTTP (ms)", "value": scored["served"] * 1000 - parts.get("gateway", 0),
                 "unit": "ms", "baseline": None, "ratio": None, "target": ""})
    return rows


def rows(quick: bool = False) -> list[dict[str, Any]]:
    """For benchmarks/run.py: ``run()``'s rows, with whether the time to HEALTHY met its target."""
    found = run(rounds=1 if quick else 3, request_count=10 if quick else 50)
    found[0]["met"] = found[0]["value"] < TARGET_HEALTHY_SECONDS
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="deployments timed for each of warm and cold")
    parser.add_argument("--requests", type=int, default=50, help="1,000-row scoring requests")
    args = parser.parse_args()
    print_figures(run(args.rounds, args.requests))


def print_figures(figures: list[dict[str, Any]], width: int = 48) -> None:
    """``run()``'s rows as a plain table: name, value, baseline, ratio, target."""
    for row in figures:
        baseline = "" if row["baseline"] is None else f"{row['baseline']:10.3f}"
        ratio = "" if row["ratio"] is None else f"{row['ratio']:8.2f}x"
        print(f"{row['name']:<{width}} {row['value']:10.3f} {baseline:>10} {ratio:>9}  {row['target']}")


if __name__ == "__main__":
    main()
