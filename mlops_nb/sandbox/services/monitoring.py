"""Model monitoring: what the deployments' scoring traffic shows, over a time range.

Every request to a deployment's (or endpoint's) ``/model/score`` is recorded by the gateway
(:func:`record_scoring`, on a thread of the store's own through :func:`record_later`, so that
a request does not wait for the store; every metric first waits for what is queued): time, model, latency, rows, outcome, and for a monitored deployment
(``monitor.enable``, the official client's default) its input and output rows. Retention is
bounded by rows and bytes per model, at every moment (each recording trims what it passes):
the latest 100,000 requests; the latest 20,000 scored rows within 16 MiB; the first 1,000
rows a model scored, within 2 MiB, as its drift baseline. What is kept of a request is the
model's own input fields and the outputs, each value cut to 256 characters, at most 1 MiB a
request (its first rows): never the raw bodies. A shadow model's answers are recorded under
its own model id, with the same bounds.

The REST routes answer from that record; a ``modelId`` is the experiment id of a deployed
model (as in its ``deploymentComposition``), the id of its registered model version, or the
deployment's own id, which names its primary model (its only one when single, the case H2O's
examples show: ``get_model_drift_metrics(deployment_id=D, model_id=D)``).
``startDateTime``/``endDateTime`` (RFC 3339) bound the range: by default from the deployment's
creation to now. Series are split into at most 30 equal time buckets; a point's ``xAxis`` is
its bucket's start (RFC 3339) and its ``value`` the figure, both strings as on the wire.

* ``operational``: ``uptime`` and ``availability`` (percent of the time the deployment was
  HEALTHY), ``avgScoringLatency`` and ``scoringLatency`` (milliseconds per request, as the
  gateway measured it), ``memoryUsage`` (MiB resident) and ``cpuUsage`` (percent of a CPU) of
  the model's scorers, ``successPrediction`` (rows scored) and ``failedPrediction`` (rows of
  failed requests) per bucket.
* ``health``: ``totalPredictions`` (rows scored), ``scoringLatency`` (milliseconds per request),
  ``predictions`` (a histogram of the first output's values: ten bins, or one per class) and
  ``predictionValues`` (a box per bucket: minimum, quartiles, maximum of a numeric output).
* ``drift``: for each input feature the population stability index (PSI) of the range's rows
  against the baseline: the experiment's training dataset when it links one with an uploaded
  CSV artifact, else the first rows the model scored (the first 1,000, or the first half of
  what it scored while that is less; the range's later rows are then compared with them; the
  description says which). PSI of at
  least 0.25 counts as high drift, 0.1 as medium, below as low; ``featureDrift`` has the PSI
  per bucket, ``featureFrequency`` the range's distribution. A feature's ``importance`` is the
  absolute correlation of its values with the first numeric output, over the range (the sandbox
  does not know the model's own importances) and ``impact`` is importance times drift.

``ListMonitoredDeployments`` lists the monitored deployments the caller may read;
``GetMonitoredModels`` gives each model's drift status (HEALTHY, AT_RISK with medium drift,
FAILING with high drift, UNKNOWN without rows) and its scoring requests per hour. Accuracy
needs ground truth the sandbox does not get: UNKNOWN. ``ExportMetric`` is not implemented.
"""

from __future__ import annotations

import io
import json
import logging
import queue
import sqlite3
import threading
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import pandas as pd

from mlops_nb.sandbox.rpc import (
    Call,
    failed_precondition,
    handles,
    invalid_argument,
    not_found,
    now,
    timestamp_text,
)
from mlops_nb.sandbox.runtime.scorer import MISSING as MISSING_VALUES
from mlops_nb.sandbox.services.access import readable_projects_sql
from mlops_nb.sandbox.services.artifacts import artifact_chunks
from mlops_nb.sandbox.services.deployments import deployment_view
from mlops_nb.sandbox.store import Store
from mlops_nb.wire.messages import parse_timestamp

__all__ = ["MIGRATIONS", "Scored", "record_later", "record_scoring", "settle", "stop_recording", "scored_rows",
           "training_baseline", "baseline_request_id", "bins_of", "numeric_values", "missing_values"]

log = logging.getLogger("mlops_nb.sandbox")

MIGRATIONS: list[tuple[str, str]] = [
    (
        "0900_scoring_record",
        """
        CREATE TABLE scoring_request (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            deployment_id TEXT NOT NULL,
            experiment_id TEXT NOT NULL,
            time TEXT NOT NULL,
            latency_ms REAL NOT NULL,
            row_count INTEGER NOT NULL,
            ok INTEGER NOT NULL,
            status INTEGER NOT NULL,
            error TEXT NOT NULL
        );
        CREATE INDEX scoring_request_by_model ON scoring_request (deployment_id, experiment_id, time);
        CREATE TABLE scoring_rows (
            request_id INTEGER PRIMARY KEY,
            deployment_id TEXT NOT NULL,
            experiment_id TEXT NOT NULL,
            time TEXT NOT NULL,
            baseline INTEGER NOT NULL,
            row_count INTEGER NOT NULL,
            inputs TEXT NOT NULL,
            copied INTEGER NOT NULL,
            request BLOB NOT NULL,
            response BLOB NOT NULL
        );
        CREATE INDEX scoring_rows_by_model ON scoring_rows (deployment_id, experiment_id, baseline, time);
        """,
    ),
    (
        # Bounded by bytes too, with running totals per model so that every recording can trim.
        # Rows that earlier sandboxes kept raw and larger than a request may now keep are dropped.
        "0901_scoring_bounded",
        f"""
        ALTER TABLE scoring_rows ADD COLUMN bytes INTEGER NOT NULL DEFAULT 0;
        DELETE FROM scoring_rows WHERE length(request) + length(response) > {2**20};
        UPDATE scoring_rows SET bytes = length(request) + length(response);
        CREATE TABLE scoring_totals (
            deployment_id TEXT NOT NULL,
            experiment_id TEXT NOT NULL,
            requests INTEGER NOT NULL,
            rows INTEGER NOT NULL,
            bytes INTEGER NOT NULL,
            baseline_rows INTEGER NOT NULL,
            baseline_bytes INTEGER NOT NULL,
            PRIMARY KEY (deployment_id, experiment_id)
        );
        INSERT INTO scoring_totals
            SELECT q.deployment_id, q.experiment_id, count(*),
                   coalesce((SELECT sum(row_count) FROM scoring_rows r WHERE r.deployment_id = q.deployment_id
                             AND r.experiment_id = q.experiment_id AND r.baseline = 0), 0),
                   coalesce((SELECT sum(bytes) FROM scoring_rows r WHERE r.deployment_id = q.deployment_id
                             AND r.experiment_id = q.experiment_id AND r.baseline = 0), 0),
                   coalesce((SELECT sum(row_count) FROM scoring_rows r WHERE r.deployment_id = q.deployment_id
                             AND r.experiment_id = q.experiment_id AND r.baseline = 1), 0),
                   coalesce((SELECT sum(bytes) FROM scoring_rows r WHERE r.deployment_id = q.deployment_id
                             AND r.experiment_id = q.experiment_id AND r.baseline = 1), 0)
            FROM scoring_request q GROUP BY q.deployment_id, q.experiment_id;
        """,
    ),
]

REQUESTS_KEPT = 100_000
ROWS_KEPT = 20_000
BYTES_KEPT = 16 * 2**20
BASELINE_ROWS = 1_000
BASELINE_BYTES = 2 * 2**20
REQUEST_BYTES_KEPT = 2**20  # the most one request's rows take in the record (as the migration says too)
VALUE_CHARS = 256
BUCKETS = 30
HIGH_DRIFT, MEDIUM_DRIFT = 0.25, 0.1


def forget_deployment(db: sqlite3.Connection, deployment_id: str) -> None:
    db.execute("DELETE FROM scoring_request WHERE deployment_id = ?", (deployment_id,))
    db.execute("DELETE FROM scoring_rows WHERE deployment_id = ?", (deployment_id,))
    db.execute("DELETE FROM scoring_totals WHERE deployment_id = ?", (deployment_id,))



# -- recording ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scored:
    """One answered score request as the gateway saw it (what of it is kept is chosen when recorded)."""

    request: bytes  # the request body as sent to the scorer
    response: bytes  # the scorer's answer, with its field names
    rows: int  # how many rows it scored
    inputs: Sequence[str] | None  # the model's input fields (others sent along are not kept)
    copied: int  # leading output columns the scorer copied from the input (includeFieldsInOutput, idField)


def record_scoring(store: Store, deployment_id: str, experiment_id: str, *, latency_ms: float, status: int,
                   rows: int, scored: Scored | None = None, error: str = "") -> None:
    """Record one scoring request (the gateway calls this after each ``/model/score``), then trim the
    model's record back within its bounds, in the same transaction.

    ``scored`` (given for monitored deployments) holds the bodies; only the model's input fields and
    the outputs of its first rows are kept, within the bounds the module's docstring gives.
    """
    ok = 200 <= status < 300
    when = now()
    kept = _kept(scored) if ok and rows and scored is not None else None
    with store.transaction() as db:
        cursor = db.execute("INSERT INTO scoring_request (deployment_id, experiment_id, time, latency_ms, row_count, "
                            "ok, status, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                            (deployment_id, experiment_id, when, latency_ms, rows, int(ok), status, error[:500]))
        db.execute("INSERT INTO scoring_totals VALUES (?, ?, 1, 0, 0, 0, 0) ON CONFLICT (deployment_id, experiment_id) "
                   "DO UPDATE SET requests = requests + 1", (deployment_id, experiment_id))
        totals = db.execute("SELECT * FROM scoring_totals WHERE deployment_id = ? AND experiment_id = ?",
                            (deployment_id, experiment_id)).fetchone()
        if kept is not None:
            fields, inputs, outputs, out_fields = kept
            baseline = False
            if totals["baseline_rows"] < BASELINE_ROWS:  # the baseline takes what it has room for, rows and bytes
                room = BASELINE_ROWS - totals["baseline_rows"]
                first, first_out = _within(inputs[:room], outputs[:room], BASELINE_BYTES - totals["baseline_bytes"])
                if first:
                    inputs, outputs, baseline = first, first_out, True
            if inputs:
                request = json.dumps({"fields": fields, "rows": inputs}, separators=(",", ":"))
                response = json.dumps({"fields": out_fields, "score": outputs}, separators=(",", ":"))
                size = len(request) + len(response)
                db.execute("INSERT INTO scoring_rows (request_id, deployment_id, experiment_id, time, baseline, "
                           "row_count, inputs, copied, request, response, bytes) VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?)",
                           (cursor.lastrowid, deployment_id, experiment_id, when, int(baseline), len(inputs),
                            json.dumps(fields), request, response, size))
                column = "baseline_" if baseline else ""
                db.execute(f"UPDATE scoring_totals SET {column}rows = {column}rows + ?, {column}bytes = {column}bytes "
                           "+ ? WHERE deployment_id = ? AND experiment_id = ?",
                           (len(inputs), size, deployment_id, experiment_id))
        _trim(db, deployment_id, experiment_id)


def _short(value: Any) -> Any:
    return value[:VALUE_CHARS] if isinstance(value, str) else value


def _kept(scored: Scored) -> tuple[list[str], list[list[Any]], list[list[Any]], list[str]] | None:
    """(input fields, their rows, output rows, output fields) of what a request's record keeps: the model's
    input fields (all when unknown) and the outputs, values cut short, rows within the request's bounds."""
    try:
        request, response = json.loads(scored.request), json.loads(scored.response)
        fields, rows, scores = request["fields"], request["rows"], response["score"]
    except (ValueError, RecursionError, KeyError, TypeError):
        return None
    wanted = [i for i, f in enumerate(fields) if scored.inputs is None or f in scored.inputs]
    copied = scored.copied
    inputs = [[_short(row[i]) for i in wanted] for row in rows[:ROWS_KEPT]]
    outputs = [[_short(v) for v in row[copied:]] for row in scores[:ROWS_KEPT]]
    inputs, outputs = _within(inputs, outputs, REQUEST_BYTES_KEPT)
    return [fields[i] for i in wanted], inputs, outputs, list(response.get("fields", []))[copied:]


def _within(inputs: list[list[Any]], outputs: list[list[Any]], budget: int) -> tuple[list[list[Any]], list[list[Any]]]:
    """The first rows of (inputs, outputs) whose JSON takes at most ``budget`` bytes (halving until they fit)."""
    count = min(len(inputs), len(outputs))
    while count and len(json.dumps(inputs[:count])) + len(json.dumps(outputs[:count])) > budget:
        count //= 2
    return inputs[:count], outputs[:count]


class _Recorder:
    """One thread that runs a store's recordings in the order they came."""

    def __init__(self) -> None:
        self.pending: queue.Queue[Callable[[], None] | None] = queue.Queue()
        threading.Thread(target=self._run, name="sandbox-monitoring", daemon=True).start()

    def _run(self) -> None:
        while True:
            record = self.pending.get()
            try:
                if record is None:
                    return
                record()
            except Exception:  # a recording lost must not stop the ones after it
                log.exception("recording a scoring request for monitoring failed")
            finally:
                self.pending.task_done()


_recorders: weakref.WeakKeyDictionary[Store, _Recorder] = weakref.WeakKeyDictionary()
_recorders_lock = threading.Lock()


def record_later(store: Store, record: Callable[[], None]) -> None:
    """Run ``record`` (a call of :func:`record_scoring` on ``store``) on the store's recording thread."""
    with _recorders_lock:
        recorder = _recorders.get(store)
        if recorder is None:
            recorder = _recorders[store] = _Recorder()
    recorder.pending.put(record)


def settle(store: Store) -> None:
    """Wait until every recording queued for ``store`` is written (metrics read after this)."""
    recorder = _recorders.get(store)
    if recorder is not None:
        recorder.pending.join()


def stop_recording(store: Store) -> None:
    """Write what is queued for ``store`` and end its recording thread (before the store closes)."""
    with _recorders_lock:
        recorder = _recorders.pop(store, None)
    if recorder is not None:
        recorder.pending.put(None)
        recorder.pending.join()


def _trim(db: sqlite3.Connection, deployment_id: str, experiment_id: str) -> None:
    """Delete a model's oldest requests and rows past their bounds (a few rows each time: the bounds hold
    after every recording)."""
    totals = db.execute("SELECT * FROM scoring_totals WHERE deployment_id = ? AND experiment_id = ?",
                        (deployment_id, experiment_id)).fetchone()
    extra = totals["requests"] - REQUESTS_KEPT
    if extra > 0:
        db.execute("DELETE FROM scoring_request WHERE id IN (SELECT id FROM scoring_request WHERE deployment_id = ? "
                   "AND experiment_id = ? ORDER BY time, id LIMIT ?)", (deployment_id, experiment_id, extra))
        db.execute("UPDATE scoring_totals SET requests = ? WHERE deployment_id = ? AND experiment_id = ?",
                   (REQUESTS_KEPT, deployment_id, experiment_id))
    rows, size = totals["rows"], totals["bytes"]
    while rows > ROWS_KEPT or size > BYTES_KEPT:
        oldest = db.execute("SELECT request_id, row_count, bytes FROM scoring_rows WHERE deployment_id = ? AND "
                            "experiment_id = ? AND baseline = 0 ORDER BY time, request_id LIMIT 64",
                            (deployment_id, experiment_id)).fetchall()
        if not oldest:
            break
        gone = []
        for row in oldest:
            if rows <= ROWS_KEPT and size <= BYTES_KEPT:
                break
            gone.append(row["request_id"])
            rows, size = rows - row["row_count"], size - row["bytes"]
        db.executemany("DELETE FROM scoring_rows WHERE request_id = ?", [(g,) for g in gone])
    if (rows, size) != (totals["rows"], totals["bytes"]):
        db.execute("UPDATE scoring_totals SET rows = ?, bytes = ? WHERE deployment_id = ? AND experiment_id = ?",
                   (max(rows, 0), max(size, 0), deployment_id, experiment_id))


# -- what a metric is computed over -------------------------------------------------------------


class _Range:
    """The requested time range and its buckets."""

    def __init__(self, start: datetime, end: datetime) -> None:
        if end <= start:
            raise invalid_argument(f"endDateTime ({timestamp_text(end)}) must come after startDateTime "
                                   f"({timestamp_text(start)})")
        self.start, self.end = start, end
        span = (end - start).total_seconds()
        self.width = max(1.0, float(np.ceil(span / BUCKETS)))
        self.count = int(np.ceil(span / self.width))

    @property
    def start_text(self) -> str:
        return timestamp_text(self.start)

    @property
    def end_text(self) -> str:
        return timestamp_text(self.end)

    def edges(self) -> list[datetime]:
        return [self.start + timedelta(seconds=i * self.width) for i in range(self.count)]

    def bucket(self, times: pd.Series) -> np.ndarray:
        seconds = (pd.to_datetime(times, utc=True, format="ISO8601") - pd.Timestamp(self.start)).dt.total_seconds()
        return np.clip((seconds // self.width).to_numpy(dtype=int), 0, self.count - 1)

    def graph(self, name: str, description: str, y_label: str, values: Sequence[float | None]) -> dict[str, Any]:
        points = [{"xAxis": timestamp_text(t), "value": _number(v)} for t, v in zip(self.edges(), values, strict=True)
                  if v is not None]
        return {"name": name, "description": description, "xLabel": "time", "yLabel": y_label, "point": points}


def _number(value: float) -> str:
    return f"{value:.6g}"


def _time_param(value: Any, what: str) -> datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc)
    try:
        return parse_timestamp(str(value))
    except ValueError:
        raise invalid_argument(f"{what} {value!r} is not an RFC 3339 time, e.g. 2024-05-01T12:00:00Z") from None


def _range(deployer: dict[str, Any], request: dict[str, Any]) -> _Range:
    start = _time_param(request.get("start_date_time"), "startDateTime") or parse_timestamp(deployer["createdTime"])
    end = _time_param(request.get("end_date_time"), "endDateTime") or datetime.now(timezone.utc)
    return _Range(start, end + timedelta(microseconds=1))


def _monitored(call: Call, deployment_id: str) -> dict[str, Any]:
    settle(call.store)
    deployer = deployment_view(call, deployment_id)
    if not deployer.get("monitor", {}).get("enable"):
        raise failed_precondition(f"monitoring is off for deployment {deployment_id!r}; turn it on with "
                                  "UpdateModelDeployment (monitor.enable = true)")
    return deployer


def _model_ids(deployer: dict[str, Any]) -> list[str]:
    return [e["deploymentComposition"]["experimentId"] for e in _elements_of(deployer)]


def _elements_of(deployer: dict[str, Any]) -> list[dict[str, Any]]:
    if deployer.get("singleDeployment"):
        return [deployer["singleDeployment"]]
    if deployer.get("shadowDeployment"):
        shadow = deployer["shadowDeployment"]
        return [e for e in (shadow.get("primaryElement"), shadow.get("secondaryElement")) if e]
    return list(deployer.get("splitDeployment", {}).get("splitElements", []))


def _model_of(call: Call, deployer: dict[str, Any], model_id: str) -> str:
    """The experiment id a ``modelId`` names: an experiment id, a registered model version id, or the
    deployment's own id for its primary model (H2O's monitoring examples pass the deployment id as
    the model id: a real MLOps monitors single-model deployments, whose model it names)."""
    experiments = _model_ids(deployer)
    if model_id == deployer["id"]:
        return experiments[0]
    if model_id in experiments:
        return model_id
    version = call.store.get("registered_model_version", model_id)
    if version is not None and version.get("experimentId") in experiments:
        return version["experimentId"]
    raise not_found(f"model of deployment {deployer['id']!r} (its models: experiments {', '.join(experiments)})",
                    model_id)


def _requests(call: Call, deployment_id: str, experiment_id: str, span: _Range) -> pd.DataFrame:
    with call.store.reading() as db:
        rows = db.execute("SELECT time, latency_ms, row_count, ok FROM scoring_request WHERE deployment_id = ? AND "
                          "experiment_id = ? AND time >= ? AND time < ? ORDER BY id",
                          (deployment_id, experiment_id, span.start_text, span.end_text)).fetchall()
    return pd.DataFrame([dict(r) for r in rows], columns=["time", "latency_ms", "row_count", "ok"])


def scored_rows(call: Call, deployment_id: str, experiment_id: str, span: _Range | None, *,
            after: int = 0, until: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(inputs, outputs) of the recorded rows in the range (all when ``span`` is None) whose request
    ids are past ``after`` (and at most ``until``), each with a ``_time`` column."""
    where, params = "deployment_id = ? AND experiment_id = ? AND request_id > ?", [deployment_id, experiment_id, after]
    if until is not None:
        where += " AND request_id <= ?"
        params.append(until)
    if span is not None:
        where += " AND time >= ? AND time < ?"
        params += [span.start_text, span.end_text]
    with call.store.reading() as db:
        rows = db.execute(f"SELECT time, inputs, copied, request, response FROM scoring_rows WHERE {where} "
                          "ORDER BY request_id", params).fetchall()
    inputs, outputs = [], []
    for r in rows:
        request, response = json.loads(r["request"]), json.loads(r["response"])
        frame = pd.DataFrame(request["rows"], columns=request["fields"], dtype=object)
        wanted = json.loads(r["inputs"])
        if wanted is not None:  # the model's fields only, not the ids sent along
            frame = frame[[f for f in frame.columns if f in wanted]]
        frame["_time"] = r["time"]
        inputs.append(frame)
        copied = r["copied"]
        out = pd.DataFrame([row[copied:] for row in response["score"]], dtype=object)
        out_fields = list(response.get("fields", []))[copied:]
        if out_fields and len(out.columns) == len(out_fields):
            out.columns = out_fields
        out["_time"] = r["time"]
        outputs.append(out)
    empty = pd.DataFrame({"_time": pd.Series(dtype=object)})
    return (pd.concat(inputs, ignore_index=True) if inputs else empty,
            pd.concat(outputs, ignore_index=True) if outputs else empty)


def missing_values(values: pd.Series) -> pd.Series:
    """Where the values are missing: None, or a token the scorer reads as missing ("", "NA", "null", ...)."""
    return values.isna() | values.astype(str).str.strip().str.lower().isin(MISSING_VALUES)


def _as_numbers(values: pd.Series) -> pd.Series:
    """The values as floats; missing values and anything not a number are NaN."""
    return pd.to_numeric(values.where(~missing_values(values)), errors="coerce")


def numeric_values(values: pd.Series) -> pd.Series | None:
    """The values as floats when they all are numbers (missing values aside), else None."""
    numbers = _as_numbers(values)
    return numbers if numbers.notna().sum() == (~missing_values(values)).sum() else None


# -- operational and health --------------------------------------------------------------------


def _states(call: Call, deployment_id: str) -> list[tuple[datetime, str]]:
    with call.store.reading() as db:
        rows = db.execute("SELECT time, state FROM deployment_state WHERE deployment_id = ? ORDER BY time",
                          (deployment_id,)).fetchall()
    return [(parse_timestamp(r["time"]), r["state"]) for r in rows]


def _healthy_share(states: list[tuple[datetime, str]], start: datetime, end: datetime) -> float | None:
    """Percent of [start, end) the deployment was HEALTHY; None before it had a state."""
    healthy, covered = 0.0, 0.0
    for i, (when, state) in enumerate(states):
        until = states[i + 1][0] if i + 1 < len(states) else end
        lo, hi = max(when, start), min(until, end)
        if hi > lo:
            seconds = (hi - lo).total_seconds()
            covered += seconds
            healthy += seconds if state == "HEALTHY" else 0.0
    return 100.0 * healthy / covered if covered else None


def _per_bucket(span: _Range, frame: pd.DataFrame, column: str, how: str) -> list[float | None]:
    values: list[float | None] = [None if how == "mean" else 0.0] * span.count
    if frame.empty:
        return values
    grouped = frame.assign(_bucket=span.bucket(frame["time"])).groupby("_bucket")[column]
    for bucket, value in (grouped.mean() if how == "mean" else grouped.sum()).items():
        values[int(bucket)] = float(value)
    return values


@handles("model_monitoring.monitoring_service.get_model_operational_summary_metrics")
def get_model_operational_summary_metrics(call: Call, request: dict[str, Any]) -> dict[str, Any]:
    deployer = _monitored(call, request.get("deployment_id", ""))
    experiment_id = _model_of(call, deployer, request.get("model_id", ""))
    span = _range(deployer, request)
    requests = _requests(call, deployer["id"], experiment_id, span)
    states = _states(call, deployer["id"])
    with call.store.reading() as db:
        samples = pd.DataFrame([dict(r) for r in db.execute(
            "SELECT time, rss_bytes, cpu_seconds FROM deployment_sample WHERE deployment_id = ? AND experiment_id = ? "
            "AND time >= ? AND time < ? ORDER BY time", (deployer["id"], experiment_id, span.start_text,
                                                         span.end_text))], columns=["time", "rss_bytes", "cpu_seconds"])
    samples["rss_mib"] = samples["rss_bytes"] / 2**20
    seconds = pd.to_datetime(samples["time"], utc=True, format="ISO8601").astype("int64") / 1e9
    # CPU time used between samples over the time between them (restarts reset the counter: dropped).
    cpu = (samples["cpu_seconds"].diff() / seconds.diff() * 100).where(lambda v: v >= 0)
    samples["cpu_percent"] = cpu
    ok = requests[requests["ok"] == 1] if not requests.empty else requests
    failed = requests[requests["ok"] == 0] if not requests.empty else requests
    availability = [_healthy_share(states, t, t + timedelta(seconds=span.width)) for t in span.edges()]
    return {
        "uptime": _healthy_share(states, span.start, span.end) or 0.0,
        "avgScoringLatency": float(requests["latency_ms"].mean()) if not requests.empty else 0.0,
        "scoringLatency": span.graph("Scoring latency", "mean milliseconds per scoring request", "ms",
                                     _per_bucket(span, requests, "latency_ms", "mean")),
        "memoryUsage": span.graph("Memory usage", "resident memory of the model's scorers", "MiB",
                                  _per_bucket(span, samples, "rss_mib", "mean")),
        "cpuUsage": span.graph("CPU usage", "CPU used by the model's scorers", "percent of a CPU",
                               _per_bucket(span, samples.dropna(subset=["cpu_percent"]), "cpu_percent", "mean")),
        "availability": span.graph("Availability", "time the deployment was HEALTHY", "percent", availability),
        "successPrediction": span.graph("Successful predictions", "rows scored", "rows",
                                        _per_bucket(span, ok, "row_count", "sum")),
        "failedPrediction": span.graph("Failed predictions", "rows of failed scoring requests", "rows",
                                       _per_bucket(span, failed, "row_count", "sum")),
    }


def _prediction_column(outputs: pd.DataFrame) -> pd.Series | None:
    """The first output: the prediction (an H2O-3 MOJO's label comes before its class probabilities)."""
    columns = [c for c in outputs.columns if c != "_time"]
    return outputs[columns[0]] if columns else None


def _histogram(values: pd.Series, name: str) -> dict[str, Any]:
    numbers = numeric_values(values)
    if numbers is not None and numbers.nunique() > 10:
        counts, edges = np.histogram(numbers.dropna(), bins=10)
        bins = [{"xMin": _number(lo), "xMax": _number(hi), "y": str(int(c))}
                for lo, hi, c in zip(edges[:-1], edges[1:], counts, strict=True)]
    else:
        bins = [{"xMin": str(k), "xMax": str(k), "y": str(int(c))}
                for k, c in values.astype(str).value_counts().sort_index().items()]
    return {"name": name, "description": f"distribution of {name}", "xLabel": name, "yLabel": "rows", "bin": bins}


@handles("model_monitoring.monitoring_service.get_model_health_metrics")
def get_model_health_metrics(call: Call, request: dict[str, Any]) -> dict[str, Any]:
    deployer = _monitored(call, request.get("deployment_id", ""))
    experiment_id = _model_of(call, deployer, request.get("model_id", ""))
    span = _range(deployer, request)
    requests = _requests(call, deployer["id"], experiment_id, span)
    _, outputs = scored_rows(call, deployer["id"], experiment_id, span)
    prediction = _prediction_column(outputs)
    ok = requests[requests["ok"] == 1] if not requests.empty else requests
    body: dict[str, Any] = {
        "totalPredictions": int(ok["row_count"].sum()) if not ok.empty else 0,
        "scoringLatency": float(requests["latency_ms"].mean()) if not requests.empty else 0.0,
    }
    if prediction is not None:
        name = str(prediction.name)
        body["predictions"] = _histogram(prediction, name)
        numbers = numeric_values(prediction)
        boxes = []
        if numbers is not None:
            frame = pd.DataFrame({"value": numbers, "_bucket": span.bucket(outputs["_time"])}).dropna()
            for bucket, group in frame.groupby("_bucket"):
                q = group["value"].quantile([0, 0.25, 0.5, 0.75, 1]).tolist()
                lo = span.edges()[int(bucket)]
                boxes.append({"x": timestamp_text(lo), "xMin": timestamp_text(lo),
                              "xMax": timestamp_text(lo + timedelta(seconds=span.width)),
                              **{f"y{i}": _number(v) for i, v in enumerate(q)}})
        body["predictionValues"] = {"name": name, "description": f"{name} per time bucket: minimum, quartiles, "
                                    "maximum", "xLabel": "time", "yLabel": name, "box": boxes}
    return body


# -- drift ---------------------------------------------------------------------------------------


def training_baseline(call: Call, experiment_id: str) -> tuple[pd.DataFrame, str] | None:
    """The experiment's training dataset as a frame, when it links one with an uploaded CSV."""
    experiment = call.store.get("experiment", experiment_id) or {}
    dataset_id = experiment.get("parameters", {}).get("trainingDatasetId", "")
    dataset = call.store.get("dataset", dataset_id) if dataset_id else None
    if dataset is None:
        return None
    with call.store.reading() as db:
        rows = db.execute("SELECT data FROM entity WHERE kind = 'artifact' AND parent_id = ?", (dataset_id,)).fetchall()
    for row in rows:
        artifact = json.loads(row["data"])
        csv_like = artifact.get("mimeType") == "text/csv" or str(artifact.get("type", "")).endswith(".csv")
        if artifact.get("state") == "AVAILABLE" and csv_like:
            data = b"".join(artifact_chunks(call.store, artifact["id"]))
            frame = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False, nrows=50_000)
            return frame, f"the training dataset {dataset.get('displayName', dataset_id)!r} ({len(frame)} rows)"
    return None


def bins_of(baseline: pd.Series) -> tuple[str, Any]:
    """How to bin a feature: ('numeric', quantile edges) or ('categorical', categories)."""
    numbers = numeric_values(baseline)
    if numbers is not None and numbers.nunique() > 10:
        edges = np.unique(np.quantile(numbers.dropna(), np.linspace(0, 1, 11)))
        return "numeric", edges
    return "categorical", sorted(baseline.astype(str).unique())


def _shares(values: pd.Series, kind: str, bins: Any) -> np.ndarray:
    if kind == "numeric":  # the baseline decided: here anything not a number counts as missing
        numbers = _as_numbers(values).dropna()
        inner = np.searchsorted(bins[1:-1], numbers.to_numpy(), side="right")
        counts = np.bincount(inner, minlength=len(bins) - 1).astype(float)
    else:
        text = values.astype(str)
        counts = np.array([float((text == c).sum()) for c in bins] + [float((~text.isin(bins)).sum())])
    total = counts.sum()
    return counts / total if total else counts


def _psi(expected: np.ndarray, actual: np.ndarray) -> float:
    if len(expected) != len(actual):  # categorical: the baseline has no share of unseen categories
        expected = np.append(expected, 0.0)
    e, a = np.clip(expected, 1e-4, None), np.clip(actual, 1e-4, None)
    return float(np.sum((a - e) * np.log(a / e)))


def baseline_request_id(call: Call, deployment_id: str, experiment_id: str) -> int:
    """The request id up to which the model's first scored rows make the baseline: the first
    BASELINE_ROWS rows, or the first half of what was scored while that is less (0: none yet)."""
    with call.store.reading() as db:
        rows = db.execute("SELECT request_id, row_count, baseline FROM scoring_rows WHERE deployment_id = ? AND "
                          "experiment_id = ? ORDER BY request_id", (deployment_id, experiment_id)).fetchall()
    wanted = min(BASELINE_ROWS, sum(r["row_count"] for r in rows) // 2)
    counted, last = 0, 0
    for row in rows:
        if counted >= wanted or not row["baseline"]:
            break
        counted, last = counted + row["row_count"], row["request_id"]
    return last


def _drift_report(call: Call, deployer: dict[str, Any], experiment_id: str, span: _Range) -> dict[str, Any]:
    training = training_baseline(call, experiment_id)
    if training is not None:
        baseline, source = training
        inputs, outputs = scored_rows(call, deployer["id"], experiment_id, span)
    else:
        # The model's first traffic is the baseline; the range's rows after it are compared with it.
        last = baseline_request_id(call, deployer["id"], experiment_id)
        baseline, _ = scored_rows(call, deployer["id"], experiment_id, None, until=last)
        inputs, outputs = scored_rows(call, deployer["id"], experiment_id, span, after=last)
        source = f"the first {len(baseline)} rows the model scored"
    # Importance needs numbers: the first numeric output (a classifier's first probability when its
    # prediction is a label).
    numeric_outputs = (numeric_values(outputs[c]) for c in outputs.columns if c != "_time")
    prediction = next((n for n in numeric_outputs if n is not None), None) if not outputs.empty else None
    features = []
    for name in [c for c in inputs.columns if c != "_time"]:
        if name not in baseline.columns or baseline[name].empty or inputs[name].empty:
            features.append({"name": name, "driftCalculated": False, "values": inputs[name]})
            continue
        kind, bins = bins_of(baseline[name])
        expected = _shares(baseline[name], kind, bins)
        drift = _psi(expected, _shares(inputs[name], kind, bins))
        per_bucket = []
        buckets = span.bucket(inputs["_time"])
        for bucket in sorted(set(buckets.tolist())):
            share = _shares(inputs[name][buckets == bucket], kind, bins)
            per_bucket.append({"xAxis": timestamp_text(span.edges()[bucket]), "value": _number(_psi(expected, share))})
        numbers = numeric_values(inputs[name])
        importance = 0.0
        if numbers is not None and prediction is not None and numbers.std() > 0 and prediction.std() > 0:
            importance = abs(float(np.corrcoef(numbers.fillna(numbers.mean()), prediction.fillna(prediction.mean()))[0, 1]))
        features.append({"name": name, "driftCalculated": True, "kind": kind, "bins": bins, "drift": drift,
                         "importance": importance, "points": per_bucket, "values": inputs[name]})
    return {"features": features, "source": source, "rows": len(inputs)}


def _feature(f: dict[str, Any]) -> dict[str, Any]:
    missing = int(missing_values(f["values"]).sum())
    if not f["driftCalculated"]:
        return {"name": f["name"], "dataType": "", "driftCalculated": False, "missingValues": missing}
    return {"name": f["name"], "dataType": "numeric" if f["kind"] == "numeric" else "categorical",
            "drift": f["drift"], "importance": f["importance"], "impact": f["importance"] * f["drift"],
            "missingValues": missing, "driftCalculated": True}


def _density(f: dict[str, Any]) -> dict[str, Any]:
    if f.get("kind") == "numeric":
        numbers = _as_numbers(f["values"]).dropna()
        # The baseline's bins, widened to the range's values: drifted rows land outside them.
        edges = np.unique(np.concatenate([[numbers.min()], f["bins"], [numbers.max()]])) if len(numbers) else f["bins"]
        counts, edges = np.histogram(numbers, bins=edges)
        bins = [{"xMin": _number(lo), "xMax": _number(hi), "y": str(int(c))}
                for lo, hi, c in zip(edges[:-1], edges[1:], counts, strict=True)]
        return {"featureName": f["name"], "continuous": {"name": f["name"], "xLabel": f["name"], "yLabel": "rows",
                                                         "bin": bins}}
    counts = f["values"].astype(str).value_counts()
    return {"featureName": f["name"], "categorical": {
        "name": f["name"], "xLabel": f["name"], "yLabel": "rows",
        "point": [{"xAxis": str(k), "value": str(int(v))} for k, v in counts.items()]}}


@handles("model_monitoring.monitoring_service.get_model_drift_metrics")
def get_model_drift_metrics(call: Call, request: dict[str, Any]) -> dict[str, Any]:
    deployer = _monitored(call, request.get("deployment_id", ""))
    experiment_id = _model_of(call, deployer, request.get("model_id", ""))
    span = _range(deployer, request)
    report = _drift_report(call, deployer, experiment_id, span)
    calculated = [f for f in report["features"] if f["driftCalculated"]]
    high = sum(f["drift"] >= HIGH_DRIFT for f in calculated)
    medium = sum(MEDIUM_DRIFT <= f["drift"] < HIGH_DRIFT for f in calculated)
    selected_importance = request.get("feature_importance_selected_feature") or ""
    selected_frequency = request.get("feature_frequency_selected_feature") or ""
    described = f"{report['rows']} rows scored in the range against {report['source']}"
    return {
        "countFeatureDrift": high + medium, "highFeatureDrift": high, "mediumFeatureDrift": medium,
        "lowFeatureDrift": len(calculated) - high - medium,
        "featureImportance": {
            "featureDrift": [{"drift": f["points"], "Feature": _feature(f)} for f in calculated
                             if not selected_importance or f["name"] == selected_importance],
            "driftThreshold": MEDIUM_DRIFT, "importanceThreshold": 0.0,
            "description": f"population stability index per feature and time bucket; {described}"},
        "featureSummary": {"feature": [_feature(f) for f in report["features"]], "description": described},
        "featureFrequency": {
            "featureDensity": [_density(f) for f in calculated
                               if not selected_frequency or f["name"] == selected_frequency],
            "description": "distribution of each feature over the range"},
    }


# -- monitored deployments ----------------------------------------------------------------------

_MODES = {"singleDeployment": ("Single Model", "SINGLE_MODEL"), "shadowDeployment": ("Champion/Challenger",
          "SHADOW_TRAFFIC"), "splitDeployment": ("A/B Test", "SPLIT_TRAFFIC")}


def _drift_status(call: Call, deployer: dict[str, Any], experiment_id: str) -> str:
    try:
        report = _drift_report(call, deployer, experiment_id, _range(deployer, {}))
    except Exception:  # a model whose rows cannot be compared has no status, not a failed list
        return "UNKNOWN"
    drifts = [f["drift"] for f in report["features"] if f["driftCalculated"]]
    if not drifts or not report["rows"]:
        return "UNKNOWN"
    top = max(drifts)
    return "FAILING" if top >= HIGH_DRIFT else "AT_RISK" if top >= MEDIUM_DRIFT else "HEALTHY"


def _models(call: Call, deployer: dict[str, Any], *, with_status: bool) -> list[dict[str, Any]]:
    settle(call.store)
    models = []
    hours = max((datetime.now(timezone.utc) - parse_timestamp(deployer["createdTime"])).total_seconds() / 3600,
                1 / 60)
    for experiment_id in _model_ids(deployer):
        with call.store.reading() as db:
            version = db.execute("SELECT v.data AS version, m.data AS model FROM entity v JOIN entity m ON "
                                 "m.kind = 'registered_model' AND m.id = v.parent_id WHERE v.kind = "
                                 "'registered_model_version' AND json_extract(v.data, '$.experimentId') = ?",
                                 (experiment_id,)).fetchone()
            requests = db.execute("SELECT count(*) FROM scoring_request WHERE deployment_id = ? AND experiment_id = ?",
                                  (deployer["id"], experiment_id)).fetchone()[0]
        name, number = "", ""
        if version is not None:
            name = json.loads(version["model"]).get("displayName", "")
            number = str(json.loads(version["version"]).get("version", ""))
        models.append({"registeredModelName": name, "registeredModelVersion": number,
                       "driftStatus": _drift_status(call, deployer, experiment_id) if with_status else "UNKNOWN",
                       "accuracy": "UNKNOWN", "averageScoringRequests": int(round(requests / hours))})
    return models


def _environment_name(call: Call, deployer: dict[str, Any]) -> str:
    """The display name (DEV, PROD, ...) of the storage environment the deployment is in."""
    return (call.store.get("deployment_environment", deployer.get("deploymentEnvironmentId", "")) or {}).get(
        "displayName", "")


def _api_deployment(call: Call, deployer: dict[str, Any], *, with_status: bool = False) -> dict[str, Any]:
    mode, kind = next(v for k, v in _MODES.items() if deployer.get(k))
    monitor = deployer.get("monitor", {})
    return {"id": deployer["id"], "name": deployer.get("displayName", ""), "description": deployer.get("description", ""),
            "mode": mode, "environment": _environment_name(call, deployer), "type": kind, "problemType": "",
            "models": _models(call, deployer, with_status=with_status), "deploymentDate": deployer["createdTime"],
            "projectId": deployer["projectId"], "monitoringEnabled": bool(monitor.get("enable")),
            "storeScoringData": bool(monitor.get("storeScoringTransactionEnable"))}


def _page(items: list[Any], request: dict[str, Any]) -> tuple[list[Any], str]:
    size = int(request.get("page_size") or 0)
    if size < 0:
        raise invalid_argument("pageSize must not be negative")
    try:
        start = int(request.get("page_token") or 0)
    except ValueError:
        raise invalid_argument("pageToken is not a token this server issued") from None
    end = start + (size or len(items))
    return items[start:end], (str(end) if end < len(items) else "")


@handles("model_monitoring.monitoring_service.list_monitored_deployments")
def list_monitored_deployments(call: Call, request: dict[str, Any]) -> dict[str, Any]:
    where, params = readable_projects_sql(call)
    with call.store.reading() as db:
        rows = db.execute(f"SELECT data FROM entity e WHERE e.kind = 'deployer_deployment' AND {where} "
                          "ORDER BY e.created_time DESC, e.id", params).fetchall()
    deployers = [d for d in (json.loads(r["data"]) for r in rows) if d.get("monitor", {}).get("enable")]
    order = request.get("order_by") or ""
    if order:
        key, _, direction = order.partition(" ")
        if key not in ("name", "deploymentDate"):
            raise invalid_argument(f"orderBy {order!r}: use 'name' or 'deploymentDate', then 'asc' or 'desc'")
        field = "displayName" if key == "name" else "createdTime"
        deployers.sort(key=lambda d: d.get(field, ""), reverse=direction.lower() == "desc")
    page, token = _page(deployers, request)
    span_start = _time_param(request.get("start_date_time"), "startDateTime")
    span_end = _time_param(request.get("end_date_time"), "endDateTime")
    settle(call.store)
    with call.store.reading() as db:
        total = db.execute("SELECT coalesce(sum(row_count), 0) FROM scoring_request WHERE ok = 1 AND time >= ? "
                           "AND time < ? AND deployment_id IN (SELECT value FROM json_each(?))",
                           (timestamp_text(span_start) if span_start else "", timestamp_text(span_end) if span_end
                            else "9999", json.dumps([d["id"] for d in deployers]))).fetchone()[0]
    return {"deployment": [_api_deployment(call, d) for d in page], "totalDeployments": str(len(deployers)),
            "totalPredictions": str(total), **({"nextPageToken": token} if token else {})}


@handles("model_monitoring.monitoring_service.get_monitored_deployment")
def get_monitored_deployment(call: Call, request: dict[str, Any]) -> dict[str, Any]:
    return {"deployment": _api_deployment(call, _monitored(call, request.get("deployment_id", "")))}


@handles("model_monitoring.monitoring_service.get_monitored_models")
def get_monitored_models(call: Call, request: dict[str, Any]) -> dict[str, Any]:
    deployer = _monitored(call, request.get("deployment_id", ""))
    page, token = _page(_models(call, deployer, with_status=True), request)
    return {"model": page, **({"nextPageToken": token} if token else {})}
