"""Reliability of the deployment and scoring surface (issue 19), from one run.

1. Monitoring storage against its bounds: 8 clients send mixed traffic (mostly one-row requests,
   one in ten of 1,000 rows) to a single deployment and to a shadow deployment; a sampler reads
   the record every 0.2 s and keeps the most rows and bytes it ever held per model (recent rows,
   baseline rows), against the bounds (20,000 rows / 16 MiB; 1,000 rows / 2 MiB). Then requests
   carrying a large unused field: how much the database grew, and how long a drift read takes.
2. A model stuck in ``predict``: seconds from the request that hangs to the deployment HEALTHY
   again (a new scorer), against the scoring deadline itself.
3. Hostile artifacts at ingest: time and peak memory of CreateModelIngestion for an MLmodel of
   YAML aliases, a 40 MiB MLmodel, one with a 512 MiB comment, a damaged zip, against a normal
   MLflow model; and at deploy, a zip that unpacks far past the bound: time to FAILED.
4. Scorer processes alive 2 s after the sandbox is killed with SIGKILL (target 0), killed right
   after start (the spare importing MLflow) and with a deployment serving.

Run: ``python benchmarks/bench_hardening.py [--quick]``. The sandbox of 1 to 3 runs in this
process (its memory is this process's: peak resident memory is reset before each ingest);
that of 4 is a child process.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import shlex
import signal
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import Row, ratio, scratch_dir  # noqa: E402

import mlops_nb  # noqa: E402
from mlops_nb.sandbox import Sandbox  # noqa: E402
from mlops_nb.sandbox.services import monitoring  # noqa: E402
from tests.deploying import (  # noqa: E402
    composition,
    deploy,
    experiment_with,
    iris_model,
    python_model_zip,
    status,
    wait_for_state,
    zip_of,
)

DEADLINE = 2.0
MAX_UNPACKED = 256 * 2**20
STUCK = '''
import time


class Stuck:
    def predict(self, frame, params=None):
        if (frame["x"] == 99).any():
            time.sleep(3600)
        return frame[["x"]] * 2


def _load_pyfunc(path):
    return Stuck()
'''
MLMODEL = "flavors:\n  python_function:\n    loader_module: m\n"


# -- 1. monitoring storage ------------------------------------------------------------------------


def _kept(sandbox: Sandbox, deployment: str, experiment: str) -> tuple[int, int, int, int]:
    """(recent rows, recent bytes, baseline rows, baseline bytes) the record holds of a deployed model now."""
    assert sandbox.store is not None
    with sandbox.store.reading() as db:
        found = {r["baseline"]: (r["rows"], r["bytes"]) for r in db.execute(
            "SELECT baseline, coalesce(sum(row_count), 0) AS rows, coalesce(sum(length(request) + length(response)), 0)"
            " AS bytes FROM scoring_rows WHERE deployment_id = ? AND experiment_id = ? GROUP BY baseline",
            (deployment, experiment))}
    return (*found.get(0, (0, 0)), *found.get(1, (0, 0)))


def _traffic(url: str, X: Any, requests_per_client: int, clients: int = 8) -> int:
    """Mixed traffic from ``clients`` threads; the rows sent."""
    sent = [0] * clients
    fields = list(X.columns)
    big = [[str(v) for v in row] for row in X.sample(1000, replace=True, random_state=1).itertuples(index=False)]

    def client(n: int) -> None:
        rng = random.Random(n)
        with requests.Session() as session:
            for _ in range(requests_per_client):
                rows = big if rng.random() < 0.1 else [big[rng.randrange(1000)]]
                answer = session.post(url, json={"fields": fields, "rows": rows}, timeout=120)
                answer.raise_for_status()
                sent[n] += len(rows)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(sent)


def monitoring_rows(sandbox: Sandbox, quick: bool) -> list[Row]:
    client = sandbox.client("alice")
    project = client.storage.project.create_project(project={"display_name": "bench monitoring"}).project.id
    data, X, _ = iris_model()
    primary = experiment_with(client, project, data, name="logistic")
    shadow = experiment_with(client, project, iris_model("linear")[0], name="linear")
    single = deploy(client, project, primary, display_name="single").id
    shadowed = client.deployer.deployment.create_deployment(deployment={
        "project_id": project, "display_name": "shadowed", "shadow_deployment": {
            "primary_element": composition(primary), "secondary_element": composition(shadow)}}).deployment.id
    for deployment in (single, shadowed):
        assert wait_for_state(client, deployment, "HEALTHY", "FAILED").state.value == "HEALTHY"
    models = {"single": (single, primary), "shadow": (shadowed, shadow)}  # the primary also serves `shadowed`
    most: dict[str, list[int]] = {name: [0] * 4 for name in models}
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.2):
            for name, model in models.items():
                most[name] = [max(a, b) for a, b in zip(most[name], _kept(sandbox, *model), strict=True)]

    sampler = threading.Thread(target=sample)
    sampler.start()
    per_client = 40 if quick else 160
    started = time.perf_counter()
    sent = _traffic(status(client, single).scorer.score.url, X, per_client)
    sent_shadow = _traffic(status(client, shadowed).scorer.score.url, X, per_client)
    seconds = time.perf_counter() - started
    time.sleep(1.0)  # shadow copies are scored and recorded behind the primary's answers
    done.set()
    sampler.join()
    for name, model in models.items():
        most[name] = [max(a, b) for a, b in zip(most[name], _kept(sandbox, *model), strict=True)]
    rows = []
    for name, rows_sent in (("single", sent), ("shadow", sent_shadow)):
        recent_rows, recent_bytes, baseline_rows, baseline_bytes = most[name]
        note = f"{rows_sent:,} rows sent by 8 clients ({seconds:.0f} s for both)"
        rows += [
            Row(f"monitoring, {name}: most recent rows kept", recent_rows, "rows", monitoring.ROWS_KEPT,
                ratio(recent_rows, monitoring.ROWS_KEPT), f"<= {monitoring.ROWS_KEPT}",
                recent_rows <= monitoring.ROWS_KEPT, note),
            Row(f"monitoring, {name}: most recent bytes kept", recent_bytes / 2**20, "MiB",
                monitoring.BYTES_KEPT / 2**20, ratio(recent_bytes, monitoring.BYTES_KEPT), "<= 16",
                recent_bytes <= monitoring.BYTES_KEPT, "sampled every 0.2 s"),
            Row(f"monitoring, {name}: most baseline rows kept", baseline_rows, "rows", monitoring.BASELINE_ROWS,
                ratio(baseline_rows, monitoring.BASELINE_ROWS), f"<= {monitoring.BASELINE_ROWS}",
                baseline_rows <= monitoring.BASELINE_ROWS, f"{baseline_bytes / 1024:.0f} KiB"),
        ]
    rows.append(_unused_field(sandbox, client, status(client, single).scorer.score.url, X, single, primary, quick))
    for deployment in (single, shadowed):
        client.deployer.deployment.delete_deployment(id=deployment)
    return rows


def _unused_field(sandbox: Sandbox, client: Any, url: str, X: Any, deployment: str, experiment: str,
                  quick: bool) -> Row:
    count, size = (3, 5_000_000) if quick else (12, 50_000_000)
    before = Path(sandbox.db).stat().st_size + _wal(sandbox)
    fields = [*X.columns, "notes"]
    for _ in range(count):
        row = [*(str(v) for v in X.iloc[0].tolist()), "n" * size]
        requests.post(url, json={"fields": fields, "rows": [row]}, timeout=120).raise_for_status()
    grown = Path(sandbox.db).stat().st_size + _wal(sandbox) - before
    started = time.perf_counter()
    client.model_monitoring.monitoring_service.get_model_drift_metrics(deployment, experiment)
    drift = time.perf_counter() - started
    return Row(f"database growth for {count} one-row requests with an unused {size // 10**6} MB field",
               grown / 2**20, "MiB", count * size / 2**20, ratio(grown, count * size), "<= 1", grown <= 2**20,
               f"drift read after: {drift:.2f} s")


def _wal(sandbox: Sandbox) -> int:
    wal = Path(f"{sandbox.db}-wal")
    return wal.stat().st_size if wal.exists() else 0


# -- 2. a stuck model ------------------------------------------------------------------------------


def stuck_rows(sandbox: Sandbox) -> list[Row]:
    client = sandbox.client("alice")
    project = client.storage.project.create_project(project={"display_name": "bench stuck"}).project.id
    deployment = deploy(client, project, experiment_with(client, project, python_model_zip(STUCK))).id
    assert wait_for_state(client, deployment, "HEALTHY", "FAILED").state.value == "HEALTHY"
    _spares_warm(sandbox)
    url = status(client, deployment).scorer.score.url
    started = time.perf_counter()
    answer = requests.post(url, json={"fields": ["x"], "rows": [["99"]]}, timeout=120)
    answered = time.perf_counter() - started
    wait_for_state(client, deployment, "UNHEALTY", timeout=30)
    wait_for_state(client, deployment, "HEALTHY", timeout=120)
    healthy = time.perf_counter() - started
    ok = requests.post(url, json={"fields": ["x"], "rows": [["1"]]}, timeout=30).status_code == 200
    client.deployer.deployment.delete_deployment(id=deployment)
    return [Row("stuck predict: the hanging request answered", answered, "s", DEADLINE, ratio(answered, DEADLINE),
                "report", None, f"HTTP {answer.status_code}"),
            Row("stuck predict: to HEALTHY again (new scorer)", healthy, "s", DEADLINE, ratio(healthy, DEADLINE),
                "report", None, f"scored again: {'yes' if ok else 'no'}; restart backoff 1 s included")]


def _spares_warm(sandbox: Sandbox) -> None:
    assert sandbox.supervisor is not None
    deadline = time.monotonic() + 120
    while not sandbox.supervisor.spares_warm() and time.monotonic() < deadline:
        time.sleep(0.1)


# -- 3. hostile artifacts ----------------------------------------------------------------------------


def _aliases() -> bytes:
    lines = ["a: &a [" + ",".join(["x"] * 9) + "]"]
    lines += [f"{chr(c)}: &{chr(c)} [" + ",".join([f"*{chr(c - 1)}"] * 9) + "]" for c in range(ord("b"), ord("j"))]
    return zip_of({"MLmodel": "\n".join(lines) + "\n"})


def _streamed(name: str, head: str, filler: bytes, size: int, beside: dict[str, str] | None = None) -> bytes:
    """A zip whose member ``name`` is ``head`` then ``size`` bytes of ``filler``, written in pieces (and the
    small members ``beside``)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for other, text in (beside or {}).items():
            archive.writestr(other, text)
        with archive.open(name, "w") as member:
            member.write(head.encode())
            block = filler * (2**20 // len(filler))
            for _ in range(size // len(block)):
                member.write(block)
    return buffer.getvalue()


def _damaged() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("MLmodel", MLMODEL + "# " + "".join(f"{n:x}" for n in range(4000)) + "\n")
    data = bytearray(buffer.getvalue())
    start = data.index(b"MLmodel") + len("MLmodel")
    data[start + 20:start + 36] = b"\xff" * 16
    return bytes(data)


def _peak_rss_reset() -> int:
    """Reset this process's peak resident memory (Linux) and return the current resident bytes."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return _status_kib("VmRSS") * 1024


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def _ingest(client: Any, project: str, data: bytes) -> tuple[float, float, str]:
    """(seconds, peak extra MiB, outcome) of CreateModelIngestion of an artifact with these bytes."""
    artifact = client.storage.artifact.create_artifact(artifact={"entity_id": project,
                                                                 "mime_type": "application/zip"}).artifact.id
    client.storage.artifact.upload_artifact(artifact, io.BytesIO(data))
    before = _peak_rss_reset()
    started = time.perf_counter()
    try:
        client.ingest.model.create_model_ingestion(artifact_id=artifact)
        outcome = "ingested"
    except mlops_nb.MLOpsError as e:
        outcome = f"{type(e).__name__}: {str(e)[:70]}"
    seconds = time.perf_counter() - started
    return seconds, max(0, _status_kib("VmHWM") * 1024 - before) / 2**20, outcome


def artifact_rows(sandbox: Sandbox, quick: bool) -> list[Row]:
    client = sandbox.client("alice")
    project = client.storage.project.create_project(project={"display_name": "bench artifacts"}).project.id
    normal_seconds, normal_mib, _ = _ingest(client, project, iris_model()[0])
    comment = (64 if quick else 512) * 2**20
    hostile: list[tuple[str, Callable[[], bytes]]] = [
        ("an MLmodel of YAML aliases", _aliases),
        ("a 40 MiB MLmodel", lambda: _streamed("MLmodel", MLMODEL + "values:\n", b"  - 12345678\n", 40 * 2**20)),
        (f"an MLmodel with a {comment // 2**20} MiB comment", lambda: _streamed("MLmodel", MLMODEL + "# ", b"c",
                                                                                  comment)),
        ("a zip with broken deflate data", _damaged),
    ]
    rows = []
    for name, make in hostile:
        seconds, mib, outcome = _ingest(client, project, make())
        rows.append(Row(f"ingest of {name}: time", seconds, "s", normal_seconds, ratio(seconds, normal_seconds),
                        "report", None, outcome))
        rows.append(Row(f"ingest of {name}: peak memory added", mib, "MiB", normal_mib, ratio(mib, normal_mib or None),
                        "report", None, "the sandbox's process, against ingesting an MLflow model"))
    bomb = _streamed("weights.bin", "", b"\0", 4 * MAX_UNPACKED, beside={"MLmodel": MLMODEL})
    experiment = experiment_with(client, project, bomb)
    started = time.perf_counter()
    failed = wait_for_state(client, deploy(client, project, experiment).id, "FAILED", "HEALTHY", timeout=300)
    seconds = time.perf_counter() - started
    rows.append(Row(f"deploy of a {len(bomb) / 2**20:.1f} MiB zip unpacking to "
                    f"{4 * MAX_UNPACKED // 2**20} MiB: to FAILED", seconds, "s", None, None, "report", None,
                    f"bound {MAX_UNPACKED // 2**20} MiB; {failed.state.value}: {failed.message[-60:]}"))
    return rows


# -- 4. no scorer outlives its sandbox -----------------------------------------------------------------


def _killed_sandbox_survivors(after_deploy: bool) -> tuple[int, int]:
    """(scorer processes alive 2 s after SIGKILL of the sandbox, scorer processes it had)."""
    db = scratch_dir() / f"killed-{time.monotonic_ns()}.sqlite3"
    process = subprocess.Popen([sys.executable, "-m", "mlops_nb.sandbox", "sandbox", "--port", "0", "--db", str(db),
                                "--data", "empty"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               cwd=ROOT)
    try:
        lines = []
        for line in process.stdout:  # type: ignore[union-attr]
            lines.append(line)
            if "Press Ctrl-C to stop." in line:
                break
        if after_deploy:
            constants = dict(shlex.split(line)[1].split("=", 1) for line in lines if line.startswith("export "))
            with mlops_nb.Client(constants["H2O_MLOPS_GATEWAY"], mlops_nb.TokenProvider(
                    constants["REFRESH_TOKEN"], constants["CLIENT_ID"], constants["TOKEN_ENDPOINT"])) as client:
                project = client.storage.project.create_project(project={"display_name": "doomed"}).project.id
                deployment = deploy(client, project, experiment_with(client, project, iris_model()[0])).id
                wait_for_state(client, deployment, "HEALTHY", "FAILED")
        children = subprocess.run(["pgrep", "-P", str(process.pid)], capture_output=True, text=True).stdout.split()
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    time.sleep(2.0)
    alive = [pid for pid in children if Path(f"/proc/{pid}").exists()
             and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()]
    for pid in alive:  # do not leave them behind the benchmark either
        os.kill(int(pid), signal.SIGKILL)
    return len(alive), len(children)


def survivor_rows(quick: bool) -> list[Row]:
    rows = []
    for after_deploy, when in ((False, "right after start (spare importing)"), (True, "with a deployment serving")):
        runs = [_killed_sandbox_survivors(after_deploy) for _ in range(1 if quick else 3)]
        alive, had = sum(a for a, _ in runs), sum(h for _, h in runs)
        rows.append(Row(f"scorers alive 2 s after SIGKILL of the sandbox, {when}", alive, "processes", None, None,
                        "0", alive == 0, f"{had} scorer processes over {len(runs)} kills"))
    return rows


# -- the table ---------------------------------------------------------------------------------------


def rows(quick: bool = False) -> list[Row]:
    found: list[Row] = []
    db = scratch_dir() / "hardening.sqlite3"
    with Sandbox(db=str(db), data="empty", score_deadline=DEADLINE, max_unpacked_bytes=MAX_UNPACKED) as sandbox:
        found += monitoring_rows(sandbox, quick)
        found += stuck_rows(sandbox)
        found += artifact_rows(sandbox, quick)
    found += survivor_rows(quick)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller workloads, for a smoke run")
    args = parser.parse_args()
    for row in rows(args.quick):
        print(f"{row.name}: {row.value:,.3g} {row.unit}"
              + (f" (baseline {row.baseline:,.3g}, ratio {row.ratio:.3g})" if row.baseline else "")
              + (f" target {row.target}" if row.target else "") + (f"  [{row.note}]" if row.note else ""))


if __name__ == "__main__":
    main()
