"""Scoring, side by side in one run: our scoring URL and ``mlops_nb.score`` against MLflow's own server.

A 16-feature GradientBoosting regressor saved with MLflow is deployed to a sandbox (in a
process of its own, its scorer in another) and served by ``mlflow models serve --env-manager
local`` (full ``mlflow`` in a virtual environment of its own, see ``mlflow_server.py``). For
1, 1,000 and 10,000 rows, each of these runs in turn, round after round, so that a busy
moment of the machine hits them all alike (medians of the rounds):

* ``url``: a POST of the scoring API's JSON (values as strings, encoded before the clock)
  to our scoring URL over a kept connection, the answer decoded;
* ``mlflow``: the same rows as ``dataframe_split`` to MLflow's ``/invocations`` (encoded
  before the clock), the answer decoded;
* ``score``: ``mlops_nb.score(client, deployment, frame)``, a DataFrame in and out;
* ``by_hand``: a hand-written ``requests.post`` of the same frame to our URL (a kept session,
  ``astype(str)``, the answer into a float frame);
* ``mlflow_frame``: MLflow's DataFrame route, its ``ScoringServerClient.invoke(frame)``
  and ``get_predictions()``;
* ``local``: the pyfunc model's ``predict`` in this process;
* ``floor``: what no server can avoid: the request's rows encoded to JSON and decoded, the
  answer encoded and decoded, and a bare HTTP round trip carrying those bytes on loopback
  (a server in a process of its own that reads the body and writes the answer).

Then 4 client threads of 1,000-row requests (ours, MLflow's, in-process), and ``score`` of a
100,000-row frame with its batches one after another and concurrently. ``Server-Timing``
says where our time goes. Run alone: ``python benchmarks/bench_scoring.py [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests
from common import REPO, Row, SandboxProcess, median, ratio, scratch_dir
from mlflow_server import MLflowServer

sys.path.insert(0, str(REPO))
from tests.deploying import deploy, experiment_with, wait_for_state, zip_folder  # noqa: E402

__all__ = ["rows"]

FEATURES = 16
SIZES = (1, 1_000, 10_000)
BULK_ROWS = 100_000
# The goals: most a figure may be, as value / baseline.
GOALS = {
    ("score/mlflow_frame", 1): 1.0,
    ("score/mlflow_frame", 1_000): 0.7,
    ("score/by_hand", 1_000): 1.1,
    ("url/floor", 1_000): 2.5,
    ("url/mlflow", 10_000): 0.6,
}
# The figures before this work, for "no regression elsewhere".
BEFORE = {
    ("url/mlflow", 1): 0.88, ("url/mlflow", 1_000): 0.71, ("url/mlflow", 10_000): 1.08,
    ("url/floor", 1): 6.8, ("url/floor", 1_000): 4.6, ("url/floor", 10_000): 5.9,
    ("score/mlflow_frame", 1): 2.2, ("score/mlflow_frame", 1_000): 1.31, ("score/mlflow_frame", 10_000): 1.52,
    ("score/url", 1): 2.4, ("score/url", 1_000): 2.0, ("score/url", 10_000): 1.5,
}

# 4 threads: 32.9 requests/s ours against 24.8 MLflow's, as time per request.
THREADS_BEFORE = 24.8 / 32.9

_BARE_SERVER = """
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
answers = {}
class Bare(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    wbufsize = -1
    disable_nagle_algorithm = True
    def log_message(self, *args):
        pass
    def do_PUT(self):  # the answer to send back for a size, once, before the clock
        answers[self.path] = self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        answer = answers[self.path]
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)
server = ThreadingHTTPServer(("127.0.0.1", 0), Bare)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


class BareServer:
    """A loopback HTTP server that reads each body and writes a stored answer: the floor's round trip."""

    def __enter__(self) -> BareServer:
        self._process = subprocess.Popen([sys.executable, "-c", _BARE_SERVER], stdout=subprocess.PIPE, text=True)
        assert self._process.stdout is not None
        self.url = f"http://127.0.0.1:{int(self._process.stdout.readline())}"
        return self

    def __exit__(self, *exc: object) -> None:
        self._process.kill()
        self._process.wait()
        assert self._process.stdout is not None
        self._process.stdout.close()


def _model(folder: Path) -> tuple[Any, Any]:
    """(the features, the pyfunc model): a GradientBoosting regressor saved with MLflow in ``folder``."""
    import mlflow.pyfunc
    import mlflow.sklearn
    import pandas as pd
    from mlflow.models import infer_signature
    from sklearn.datasets import make_regression
    from sklearn.ensemble import GradientBoostingRegressor

    features, target = make_regression(n_samples=4_000, n_features=FEATURES, noise=5.0, random_state=0)
    X = pd.DataFrame(features, columns=[f"f{i:02d}" for i in range(FEATURES)])
    model = GradientBoostingRegressor(random_state=0).fit(X, target)
    mlflow.sklearn.save_model(model, str(folder), signature=infer_signature(X, model.predict(X)),
                              input_example=X.head(3), skops_trusted_types=["sklearn.tree._tree.Tree"])
    return X, mlflow.pyfunc.load_model(str(folder))


def _frame(X: Any, size: int) -> Any:
    return X.sample(n=size, replace=True, random_state=size).reset_index(drop=True)


def _timing(header: str) -> dict[str, float]:
    parts = {}
    for item in header.split(","):
        name, _, rest = item.strip().partition(";dur=")
        if rest:
            parts[name] = float(rest)
    return parts


class Contenders:
    """The ways to score one frame, each a function of no arguments timed round after round."""

    def __init__(self, client: Any, deployment: str, url: str, mlflow: MLflowServer, bare: BareServer,
                 pyfunc: Any, frame: Any) -> None:
        from mlflow.pyfunc.scoring_server.client import ScoringServerClient

        import mlops_nb

        self.frame = frame
        self.session = requests.Session()
        fields = list(frame.columns)
        rows = frame.astype(str).to_numpy().tolist()
        self.ours_body = json.dumps({"fields": fields, "rows": rows}).encode()
        self.mlflow_body = json.dumps({"dataframe_split": frame.to_dict(orient="split")}).encode()
        self.request = {"fields": fields, "rows": rows}
        self.answer = self.session.post(url, data=self.ours_body, headers={"Content-Type": "application/json"},
                                        timeout=300).json()
        self.answer_bytes = json.dumps(self.answer).encode()
        self.bare_url = f"{bare.url}/{len(frame)}"
        self.session.put(self.bare_url, data=self.answer_bytes, timeout=60).raise_for_status()
        self.timings: dict[str, list[float]] = {}
        mlflow_client = ScoringServerClient("127.0.0.1", mlflow.port)
        self.ways: dict[str, Callable[[], Any]] = {
            "url": lambda: self._post(url, self.ours_body, timed=True),
            "mlflow": lambda: self._post(mlflow.url, self.mlflow_body),
            "score": lambda: mlops_nb.score(client, deployment, frame, progress=False),
            "by_hand": lambda: self._by_hand(url),
            "mlflow_frame": lambda: mlflow_client.invoke(frame).get_predictions(),
            "local": lambda: pyfunc.predict(frame),
            "floor": self._floor,
        }

    def _post(self, url: str, body: bytes, timed: bool = False) -> Any:
        answer = self.session.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=300)
        answer.raise_for_status()
        if timed:
            for name, value in _timing(answer.headers.get("Server-Timing", "")).items():
                self.timings.setdefault(name, []).append(value)
        return json.loads(answer.content)

    def _by_hand(self, url: str) -> Any:
        import pandas as pd

        body = {"fields": list(self.frame.columns), "rows": self.frame.astype(str).to_numpy().tolist()}
        answer = self.session.post(url, json=body, timeout=300)
        answer.raise_for_status()
        scored = answer.json()
        return pd.DataFrame(scored["score"], columns=scored["fields"]).astype(float)

    def _floor(self) -> Any:
        json.loads(json.dumps(self.request))
        json.loads(json.dumps(self.answer))
        return self.session.post(self.bare_url, data=self.ours_body, timeout=300).content


def _round_robin(contenders: Contenders, rounds: int) -> dict[str, float]:
    for way in contenders.ways.values():  # warm every path (connections, caches, imports)
        way()
    contenders.timings.clear()
    seconds: dict[str, list[float]] = {name: [] for name in contenders.ways}
    for _ in range(rounds):
        for name, way in contenders.ways.items():
            begin = time.perf_counter()
            way()
            seconds[name].append(time.perf_counter() - begin)
    return {name: median(values) for name, values in seconds.items()}


def _threads(call: Callable[[], Any], threads: int, per_thread: int) -> float:
    """Seconds per call, with ``threads`` threads making ``per_thread`` calls each."""
    start = threading.Barrier(threads + 1)

    def worker() -> None:
        start.wait()
        for _ in range(per_thread):
            call()

    with ThreadPoolExecutor(threads) as pool:
        futures = [pool.submit(worker) for _ in range(threads)]
        start.wait()
        begin = time.perf_counter()
        for future in futures:
            future.result()
    return (time.perf_counter() - begin) / (threads * per_thread)


def _deployed(sandbox: SandboxProcess, model_dir: Path) -> tuple[Any, str, str]:
    client = sandbox.client()
    project = client.storage.project.create_project(project={"display_name": "bench-scoring"}).project.id
    deployment = deploy(client, project, experiment_with(client, project, zip_folder(model_dir))).id
    url = wait_for_state(client, deployment, "HEALTHY").scorer.score.url
    return client, deployment, url


def _same_predictions(scored: Any, expected: Any) -> None:
    import numpy

    got = scored.iloc[:, 0].to_numpy(dtype="float64")
    if not numpy.array_equal(got, numpy.asarray(expected, dtype="float64")):
        raise RuntimeError("mlops_nb.score gave predictions that differ from the model's own")


def measure(sizes: tuple[int, ...], rounds: int, bulk_rows: int, thread_calls: int) -> dict[str, Any]:
    import mlops_nb

    folder = scratch_dir() / "gbm-model"
    X, pyfunc = _model(folder)
    found: dict[str, Any] = {"sizes": {}, "parts": {}}
    with SandboxProcess(scratch_dir() / "scoring.sqlite3", "--data", "empty") as sandbox, \
            MLflowServer(folder) as mlflow, BareServer() as bare:
        client, deployment, url = _deployed(sandbox, folder)
        for size in sizes:
            contenders = Contenders(client, deployment, url, mlflow, bare, pyfunc, _frame(X, size))
            _same_predictions(contenders.ways["score"](), pyfunc.predict(contenders.frame))
            found["sizes"][size] = _round_robin(contenders, rounds)
            found["parts"][size] = {k: statistics.median(v) for k, v in contenders.timings.items()}
        thousand = Contenders(client, deployment, url, mlflow, bare, pyfunc, _frame(X, 1_000))
        found["threads"] = {name: _threads(thousand.ways[name], 4, thread_calls) for name in ("url", "mlflow")}
        found["threads"]["local"] = _threads(thousand.ways["local"], 4, thread_calls)
        found["mlflow_version"] = mlflow.version()
        if not bulk_rows:
            return found
        bulk = _frame(X, bulk_rows)
        expected = pyfunc.predict(bulk)
        sequential, concurrent = [], []
        for _ in range(3):
            begin = time.perf_counter()
            one_by_one = mlops_nb.score(client, deployment, bulk, progress=False, concurrent_calls=1)
            sequential.append(time.perf_counter() - begin)
            begin = time.perf_counter()
            together = mlops_nb.score(client, deployment, bulk, progress=False)
            concurrent.append(time.perf_counter() - begin)
            _same_predictions(one_by_one, expected)
            _same_predictions(together, expected)
            if not together.index.equals(bulk.index):
                raise RuntimeError("concurrent scoring did not give the rows in the frame's order")
        found["bulk"] = {"rows": bulk_rows, "sequential": median(sequential), "concurrent": median(concurrent)}
    return found


def _ms(seconds: float) -> float:
    return seconds * 1000


def _goal_row(name: str, key: tuple[str, int], value: float, baseline: float) -> Row:
    share = ratio(value, baseline)
    before = BEFORE.get(key)
    note = f"was {before}" if before is not None else ""
    if key in GOALS:
        return Row(name, _ms(value), "ms", _ms(baseline), share, f"<= {GOALS[key]}", share is not None
                   and share <= GOALS[key], note)
    met = None if before is None or share is None else share <= before * 1.1
    return Row(name, _ms(value), "ms", _ms(baseline), share, "no regression" if before is not None else "", met,
               note)


def table_rows(found: dict[str, Any]) -> list[Row]:
    out: list[Row] = []
    for size, t in found["sizes"].items():
        rows_text = f"{size:,} row{'s' if size > 1 else ''}"
        out += [
            _goal_row(f"our scoring URL / MLflow server, {rows_text}", ("url/mlflow", size), t["url"], t["mlflow"]),
            _goal_row(f"our scoring URL / JSON floor, {rows_text}", ("url/floor", size), t["url"], t["floor"]),
            _goal_row(f"score / MLflow's DataFrame route, {rows_text}", ("score/mlflow_frame", size), t["score"],
                      t["mlflow_frame"]),
            _goal_row(f"score / hand-written requests.post, {rows_text}", ("score/by_hand", size), t["score"],
                      t["by_hand"]),
            _goal_row(f"score / our scoring URL, {rows_text}", ("score/url", size), t["score"], t["url"]),
            _goal_row(f"our scoring URL / in-process predict, {rows_text}", ("url/local", size), t["url"],
                      t["local"]),
        ]
        parts = found["parts"].get(size, {})
        if parts:
            scorer = parts.get("total", 0.0)
            named = sum(parts.get(k, 0.0) for k in ("parse", "predict", "encode"))
            shares = [(f"scorer {k}", parts.get(k, 0.0)) for k in ("parse", "predict", "encode")]
            shares += [("scorer, other", scorer - named), ("gateway around the scorer", parts.get("gateway", 0) - scorer),
                       ("client and HTTP", _ms(t["url"]) - parts.get("gateway", 0))]
            out += [Row(f"  where our URL's time goes, {rows_text}: {what}", value, "ms", None, None, "")
                    for what, value in shares]
    threads = found.get("threads")
    if threads:
        out.append(Row("4 threads of 1,000-row requests: ours / MLflow (time per request)", _ms(threads["url"]),
                       "ms", _ms(threads["mlflow"]), ratio(threads["url"], threads["mlflow"]), "no regression",
                       threads["url"] / threads["mlflow"] <= THREADS_BEFORE * 1.1,
                       f"ours {1 / threads['url']:.1f} req/s, MLflow {1 / threads['mlflow']:.1f}, in-process "
                       f"{1 / threads['local']:.0f}; was 32.9 / 24.8 / 317"))
    bulk = found.get("bulk")
    if bulk:
        out.append(Row(f"score {bulk['rows']:,} rows: concurrent / one batch at a time", bulk["concurrent"], "s",
                       bulk["sequential"], ratio(bulk["concurrent"], bulk["sequential"]), f"<= {1 / 1.5:.3g}",
                       bulk["concurrent"] <= bulk["sequential"] / 1.5,
                       f"{bulk['sequential'] / bulk['concurrent']:.2f}x faster; rows in order, same predictions"))
    if out:
        out[0] = out[0]._replace(note=f"{out[0].note}; MLflow {found['mlflow_version']}".lstrip("; "))
    return out


def rows(quick: bool = False) -> list[Row]:
    if quick:
        return table_rows(measure((1, 1_000), rounds=5, bulk_rows=5_000, thread_calls=5))
    return table_rows(measure(SIZES, rounds=30, bulk_rows=BULK_ROWS, thread_calls=25))


def main() -> None:
    from run import table

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small workloads, for a smoke run")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--bulk-rows", type=int, default=BULK_ROWS, help="0 leaves the bulk score out")
    args = parser.parse_args()
    found = (measure((1, 1_000), rounds=5, bulk_rows=5_000, thread_calls=5) if args.quick
             else measure(SIZES, rounds=args.rounds, bulk_rows=args.bulk_rows, thread_calls=25))
    print(table([("bench_scoring", row) for row in table_rows(found)]))


if __name__ == "__main__":
    main()
