"""Batch scoring jobs (``/batch/v1``): a file of rows scored by a model, in the background.

A job is ``workspaces/<project id>/jobs/<id>``. Its ``instanceSpec.deploymentComposition``
(experiment, ``artifactType`` (the deployable artifact type), ``artifactProcessor``, ``runtime``)
is checked as a deployment's is; then a thread of the sandbox runs it through a scorer of that
model: a running deployment's that serves the same artifact with the same runtime when there is one
(its scorer is shared; the job's requests are not the deployment's traffic), else one the supervisor
starts for the job (as for a deployment; the environment variables are passed, and stopped when
the job ends). The source's rows go to it in mini batches
(``batchParameters.miniBatchSize``, 1,000 by default) through the scoring API, and the answers
are written to the sink. ``CREATED`` -> ``SUBMITTED`` -> ``RUNNING`` -> ``FINISHED`` (or
``FAILED`` with ``completionStats.error``, ``CANCELLING`` -> ``CANCELLED``, ``TIMEOUT`` when the
scorer is not ready within ``jobTimeout``, 120 s by default); ``completionStats`` counts the rows.

Sources and sinks are files on the sandbox's machine (the sandbox runs where its user works):
``sourceSpecs/local`` reads ``location`` (an absolute path or ``file://`` URL) as CSV with a
header (``text/csv``, ``text/csv; header=present``) or JSON lines (``text/jsonl``, one object a
row); ``sinkSpecs/local`` writes ``location`` (a file, or a directory: ``<job id>.csv`` /
``.jsonl`` in it) in the sink's MIME type: the score fields, with the input's columns first when
``modelRequestParameters.includeInputFeatures`` is set, or its ``idField`` column. ``config`` is
``{}`` for both (the JSON-schema the specs publish has no properties).

With ``monitoringOptions.enabled`` each mini batch is recorded as a deployment's scoring requests
are, under the job: its aggregates are
``/monitoring/v2/workspaces/W/jobs/J/experiments/-/aggregates``. ``:output`` gives the job's last
log line (waiting up to a second while it runs, so that 1.6.5's log-following loop is paced);
``:cancel`` stops a running job; ``DELETE`` removes a finished one with its log and monitoring
record. A job the sandbox was stopped in the middle of reads ``FAILED``, saying so.
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import threading
import time
import weakref
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import urllib3

from mlops_nb.sandbox.rpc import Call, failed_precondition, handles, invalid_argument, new_id, not_found, now
from mlops_nb.sandbox.runtime import DeploymentSpec, ModelSpec
from mlops_nb.sandbox.runtime.supervisor import SECRET_HEADER
from mlops_nb.sandbox.services.access import readable_projects_sql, require_project
from mlops_nb.sandbox.services.deployments import DEPLOYER_KIND, check_composition, elements_of
from mlops_nb.sandbox.services.monitoring import Scored, forget_deployment, record_scoring
from mlops_nb.sandbox.services.rest import memory_count, memory_list, workspace_parent
from mlops_nb.sandbox.store import Store

__all__ = ["job_experiments", "job_key", "leave_deleted_project"]

KIND = "batch_job"
TERMINAL = {"FINISHED", "FAILED", "CANCELLED", "SUBMISSION_FAILED", "TIMEOUT"}
_MIME_CSV = ("text/csv", "text/csv; header=present")
_MIME_JSONL = ("text/jsonl", "application/jsonl", "application/x-ndjson")
_SPEC_SCHEMA = json.dumps({"type": "object", "properties": {}, "additionalProperties": False,
                           "description": "Nothing to configure: the location is a file on the sandbox's machine."})
_LOCATIONS = ["^/.+$", "^file:///.+$"]
SOURCE_SPECS = [{"name": "sourceSpecs/local", "displayName": "Local file (the sandbox's machine)", "schema": _SPEC_SCHEMA,
                 "supportedMimeTypes": [*_MIME_CSV, *_MIME_JSONL], "supportedLocationPaths": _LOCATIONS}]
SINK_SPECS = [{"name": "sinkSpecs/local", "displayName": "Local file (the sandbox's machine)", "schema": _SPEC_SCHEMA,
               "supportedMimeTypes": [*_MIME_CSV, *_MIME_JSONL], "supportedLocationPaths": _LOCATIONS}]
_FIELDS = {"display_name": "displayName", "creator": "creator", "create_time": "createTime", "state": "state",
           "runtime": "_runtime", "start_time": "startTime", "end_time": "endTime", "rerun_of": "rerunOf",
           "name": "name"}
DEFAULT_BATCH = 1000
DEFAULT_TIMEOUT = 120.0


def job_key(job_id: str) -> str:
    """What a job's log lines and monitoring record are kept under (apart from deployments' ids)."""
    return f"job/{job_id}"


# The jobs this process runs, per store: job id -> its cancel event (a job in a running state that is not
# here was cut off by a stop of the sandbox).
_RUNNING: weakref.WeakKeyDictionary[Store, dict[str, threading.Event]] = weakref.WeakKeyDictionary()
_RUNNING_LOCK = threading.Lock()


def _running(store: Store) -> dict[str, threading.Event]:
    with _RUNNING_LOCK:
        return _RUNNING.setdefault(store, {})


# -- locations -------------------------------------------------------------------------------------------


def _path(location: Any, what: str) -> Path:
    text = str(location or "")
    if text.startswith("file://"):
        text = urlparse(text).path
    if not text.startswith("/"):
        raise invalid_argument(f"{what}.location must be an absolute path on the sandbox's machine (or a file:// "
                               f"URL), got {location!r}")
    return Path(text)


def _mime(given: Any, path: Path, what: str) -> str:
    mime = str(given or "") or ("text/jsonl" if path.suffix in (".jsonl", ".ndjson") else "text/csv")
    if mime not in (*_MIME_CSV, *_MIME_JSONL):
        raise invalid_argument(f"{what}.mime_type {mime!r} is not one of {', '.join((*_MIME_CSV, *_MIME_JSONL))}")
    return mime


def _check_spec(given: dict[str, Any], specs: list[dict[str, Any]], what: str) -> None:
    names = [s["name"] for s in specs]
    spec = given.get("spec") or ""
    if spec not in names:
        raise invalid_argument(f"{what}.spec {spec!r} is not one of {', '.join(names)} (the sandbox reads and writes "
                               "files on its own machine)")
    try:
        config = json.loads(given.get("config") or "{}")
    except ValueError:
        raise invalid_argument(f"{what}.config is not JSON") from None
    if config not in ({}, None):
        raise invalid_argument(f"{what}.config must be {{}} for {spec} (it takes no settings), got {config!r}")


def _read_rows(path: Path, mime: str) -> tuple[list[str], list[list[Any]]]:
    text = path.read_text(encoding="utf-8")
    if mime in _MIME_JSONL:
        records = [json.loads(line) for line in text.splitlines() if line.strip()]
        fields = list(dict.fromkeys(k for r in records for k in r))
        return fields, [[r.get(f) for f in fields] for r in records]
    reader = csv.reader(io.StringIO(text))
    fields = next(reader, [])
    return fields, [row for row in reader if row]


def _sink_file(path: Path, mime: str, job_id: str) -> Path:
    if path.is_dir() or str(path).endswith("/"):
        return path / f"{job_id}.{'jsonl' if mime in _MIME_JSONL else 'csv'}"
    return path


# -- the views --------------------------------------------------------------------------------------------


def _job(call: Call, name: Any, *, write: bool = False) -> dict[str, Any]:
    parts = str(name or "").split("/")
    if len(parts) != 4 or parts[0] != "workspaces" or parts[2] != "jobs":
        raise invalid_argument(f"name must look like 'workspaces/<workspace>/jobs/<job>', got {name!r}")
    require_project(call, parts[1], write=write)
    job = call.store.get(KIND, parts[3])
    if job is None or job["name"] != name:
        raise not_found("batch scoring job", str(name))
    return _settled(call.store, job)


def _settled(store: Store, job: dict[str, Any]) -> dict[str, Any]:
    """The job, marked FAILED when it was left running by a sandbox that stopped."""
    if job["state"] not in TERMINAL and job["id"] not in _running(store):
        stats = {**job.get("completionStats", {}), "error": "the sandbox stopped while this job ran; run it again"}
        job = _save(store, job["id"], state="FAILED", endTime=now(), completionStats=stats)
    return job


def _save(store: Store, job_id: str, **changes: Any) -> dict[str, Any]:
    with store.transaction():
        job = store.get(KIND, job_id)
        if job is None:
            return {}
        job.update(changes)
        store.put(KIND, job, project_id=job["name"].split("/")[1], owner_id=job["creator"].split("/", 1)[1])
    return job


def _public(job: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in job.items() if k not in ("id", "createdTime", "_runtime")}


def job_experiments(call: Call, project_id: str, job_id: str) -> list[str]:
    """The experiment a job scores with (for its monitoring); NOT_FOUND for a job the caller may not see."""
    job = _job(call, f"workspaces/{project_id}/jobs/{job_id}")
    if not job.get("monitoringOptions", {}).get("enabled"):
        return []
    return [job["instanceSpec"]["deploymentComposition"]["experimentId"]]


# -- running a job -------------------------------------------------------------------------------------------


def _log(store: Store, job_id: str, text: str) -> None:
    with store.transaction() as db:
        db.execute("INSERT INTO deployment_log (deployment_id, time, source, text) VALUES (?, ?, 'batch', ?)",
                   (job_key(job_id), now(), text))


def _deployed_port(store: Store, supervisor: Any, model: ModelSpec) -> int:
    """A ready scorer of a deployment that serves exactly this model (experiment, artifact, runtime), or 0."""
    with store.reading() as db:
        rows = db.execute("SELECT m.deployment_id, d.data FROM deployment_model m JOIN entity d ON d.kind = ? "
                          "AND d.id = m.deployment_id WHERE m.experiment_id = ?",
                          (DEPLOYER_KIND, model.experiment_id)).fetchall()
    for row in rows:
        compositions = [e["deploymentComposition"] for e in elements_of(json.loads(row["data"]))]
        if not any(c.get("artifactId") == model.artifact_id and c.get("runtimeName") == model.runtime
                   for c in compositions):
            continue
        route = supervisor.route(row["deployment_id"])
        for routed in route.models if route is not None else ():
            if routed.experiment_id == model.experiment_id and routed.ports:
                return routed.ports[0]
    return 0


class _Scorer:
    """Where a job's rows go: a deployment's scorer of the same model while one serves, else one of its own."""

    def __init__(self, store: Store, supervisor: Any, job_id: str, model: ModelSpec) -> None:
        self.store, self.supervisor, self.job_id, self.model = store, supervisor, job_id, model
        # Its own scorer runs under an id of its own: when the supervisor removes it, what it forgets
        # (that id's log lines, monitoring record) is not the job's.
        self.own = f"batch-scorer/{job_id}"
        self.started = self.shared = False

    def port(self, cancel: threading.Event, timeout: float) -> int:
        """A ready scorer's port (0: cancelled); TimeoutError when none is ready in time."""
        deadline = time.monotonic() + timeout
        while not cancel.is_set():
            if not self.started and (port := _deployed_port(self.store, self.supervisor, self.model)):
                if not self.shared:
                    _log(self.store, self.job_id, "scoring through the scorer of a deployment of this model")
                    self.shared = True
                return port
            if not self.started:
                _log(self.store, self.job_id, "no deployment serves this model now; starting a scorer for the job")
                self.supervisor.apply(DeploymentSpec(self.own, new_id(), "single", (self.model,)))
                self.started = True
            route = self.supervisor.route(self.own)
            if route is not None and route.models and route.models[0].ports:
                return route.models[0].ports[0]
            if time.monotonic() > deadline:
                raise TimeoutError(f"the model's scorer was not ready within {timeout:g} s")
            time.sleep(0.2)
        return 0

    def stop(self) -> None:
        if self.started:
            self.supervisor.remove(self.own)


def _run(store: Store, supervisor: Any, job: dict[str, Any], model: ModelSpec, cancel: threading.Event) -> None:
    job_id = job["id"]
    key = job_key(job_id)
    scorer = _Scorer(store, supervisor, job_id, model)
    processed = errors = 0
    try:
        source, sink = job["source"], job["sink"]
        source_path, sink_path = _path(source.get("location"), "source"), _path(sink.get("location"), "sink")
        fields, rows = _read_rows(source_path, _mime(source.get("mimeType"), source_path, "source"))
        _log(store, job_id, f"read {len(rows)} rows of {len(fields)} columns from {source_path}")
        _save(store, job_id, state="RUNNING", startTime=now())
        timeout = _seconds(job.get("jobTimeout")) or DEFAULT_TIMEOUT
        parameters = job.get("modelRequestParameters") or {}
        size = int((job.get("batchParameters") or {}).get("miniBatchSize") or DEFAULT_BATCH)
        monitored = bool((job.get("monitoringOptions") or {}).get("enabled"))
        http = urllib3.PoolManager(retries=False)
        out_fields: list[str] = []
        out_rows: list[list[Any]] = []
        for start in range(0, len(rows), size):
            try:
                port = scorer.port(cancel, timeout)
            except TimeoutError as e:
                _log(store, job_id, str(e))
                _save(store, job_id, state="TIMEOUT", endTime=now(), completionStats=_stats(processed, errors, str(e)))
                return
            if not port:
                _log(store, job_id, f"cancelled after {processed} rows")
                _save(store, job_id, state="CANCELLED", endTime=now(), completionStats=_stats(processed, errors, ""))
                return
            chunk = [["" if v is None else str(v) for v in row] for row in rows[start:start + size]]
            body: dict[str, Any] = {"fields": fields, "rows": chunk}
            if parameters.get("includeInputFeatures"):
                body["includeFieldsInOutput"] = fields
            elif parameters.get("idField"):
                body["idField"] = parameters["idField"]
            raw = json.dumps(body).encode()
            began = time.perf_counter()
            try:
                answer = http.request("POST", f"http://127.0.0.1:{port}/model/score", body=raw, timeout=60.0,
                                      headers={"Content-Type": "application/json",
                                               SECRET_HEADER: supervisor.secret_of(port)})
                status, data = answer.status, answer.data
            except urllib3.exceptions.HTTPError as e:  # the scorer went away (its deployment was removed, say)
                status, data = 503, str(e).encode()
            latency = (time.perf_counter() - began) * 1000
            if monitored:
                copied = len(fields) if parameters.get("includeInputFeatures") else int(bool(parameters.get("idField")))
                record_scoring(store, key, model.experiment_id, latency_ms=latency, status=status,
                               rows=len(chunk), scored=Scored(raw, data, len(chunk), None, copied))
            if status != 200:
                errors += len(chunk)
                _log(store, job_id, f"rows {start}-{start + len(chunk) - 1}: the scorer answered {status}: "
                                    f"{data[:300].decode(errors='replace')}")
                continue
            scored = json.loads(data)
            out_fields = scored.get("fields", out_fields)
            out_rows += scored.get("score", [])
            processed += len(chunk)
        target = _sink_file(sink_path, _mime(sink.get("mimeType"), sink_path, "sink"), job_id)
        _write(target, _mime(sink.get("mimeType"), target, "sink"), out_fields, out_rows)
        _log(store, job_id, f"wrote {len(out_rows)} rows to {target}")
        failed = errors and not processed
        _save(store, job_id, state="FAILED" if failed else "FINISHED", endTime=now(),
              completionStats=_stats(processed, errors, "every mini batch failed; see the job's log" if failed else ""))
    except Exception as e:  # the job fails, saying why; the sandbox goes on
        _log(store, job_id, f"failed: {e}")
        _save(store, job_id, state="FAILED", endTime=now(), completionStats=_stats(processed, errors, str(e)[:4000]))
    finally:
        scorer.stop()
        _running(store).pop(job_id, None)


def _write(target: Path, mime: str, fields: list[str], rows: list[list[Any]]) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if mime in _MIME_JSONL:
        target.write_text("".join(json.dumps(dict(zip(fields, r, strict=False))) + "\n" for r in rows),
                          encoding="utf-8")
        return
    with target.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(fields)
        writer.writerows(rows)


def _stats(processed: int, errors: int, error: str) -> dict[str, Any]:
    return {"processedRows": str(processed), "errorRowsCount": str(errors), "finishedPipelineCount": 1,
            "failedPipelines": [], **({"error": error} if error else {})}


def _seconds(text: Any) -> float:
    value = str(text or "").strip()
    units = {"s": 1, "m": 60, "h": 3600}
    try:
        return float(value[:-1]) * units[value[-1]] if value and value[-1] in units else float(value or 0)
    except ValueError:
        raise invalid_argument(f"jobTimeout {text!r} is not a duration such as '90s', '10m' or '1h'") from None


# -- the handlers ----------------------------------------------------------------------------------------------


@handles("batch.job.create_job", generation="workspaces")
def create_job(call: Call, request: dict[str, Any]) -> dict[str, Any]:
    project_id = workspace_parent(call, request.get("parent"), write=True)
    given = request.get("job") or {}
    source, sink = given.get("source") or {}, given.get("sink") or {}
    _check_spec(source, SOURCE_SPECS, "source")
    _check_spec(sink, SINK_SPECS, "sink")
    source_path = _path(source.get("location"), "source")
    if not source_path.is_file():
        raise invalid_argument(f"source.location {str(source_path)!r} is not a file the sandbox can read")
    _mime(source.get("mimeType"), source_path, "source")
    sink_path = _path(sink.get("location"), "sink")
    if not (sink_path.is_dir() or sink_path.parent.is_dir()):
        raise invalid_argument(f"sink.location {str(sink_path)!r}: neither it nor its directory exists")
    _mime(sink.get("mimeType"), sink_path, "sink")
    _seconds(given.get("jobTimeout"))
    instance = given.get("instanceSpec") or {}
    given_composition = instance.get("deploymentComposition") or {}
    runtime = str(given_composition.get("runtime") or "").rsplit("/", 1)[-1]
    composition, name = check_composition(call, project_id, {
        "experimentId": given_composition.get("experimentId", ""),
        "deployableArtifactTypeName": given_composition.get("artifactType", ""),
        "artifactProcessorName": given_composition.get("artifactProcessor", ""), "runtimeName": runtime},
        "job.instance_spec.deployment_composition")
    if call.supervisor is None:
        raise failed_precondition("this sandbox runs no supervisor, so it cannot run batch jobs")
    job_id = new_id()
    job = {**{k: v for k, v in given.items() if k not in ("name", "state", "creator", "createTime", "startTime",
                                                            "endTime", "completionStats", "monitoringState")},
           "id": job_id, "name": f"workspaces/{project_id}/jobs/{job_id}",
           "displayName": given.get("displayName") or f"batch job {job_id[:8]}", "state": "SUBMITTED",
           "creator": f"users/{call.user_id}", "createTime": (created := now()), "createdTime": created, "namespace": "mlops-nb-sandbox",
           "monitoringState": ("MONITORING_STATE_RUNNING" if (given.get("monitoringOptions") or {}).get("enabled")
                               else "MONITORING_STATE_NONE"),
           "_runtime": runtime}
    model = ModelSpec(experiment_id=composition["experimentId"], artifact_id=composition["artifactId"],
                      processor=composition["artifactProcessorName"], runtime=runtime, name=name,
                      environment=dict(instance.get("environmentVariables") or {}), replicas=1)
    cancel = threading.Event()
    _running(call.store)[job_id] = cancel  # before it is stored: a job not running here reads as cut off
    call.store.put(KIND, job, project_id=project_id, owner_id=call.user_id)
    threading.Thread(target=_run, args=(call.store, call.supervisor, job, model, cancel),
                     name=f"batch-{job_id[:8]}", daemon=True).start()
    return {"job": _public(job)}


@handles("batch.job.get_job", generation="workspaces")
def get_job(call: Call, request: dict[str, Any]) -> dict[str, Any]:
    return {"job": _public(_job(call, request.get("name")))}


def _jobs(call: Call, parent: Any) -> list[dict[str, Any]]:
    """The jobs of a workspace (``workspaces/-``: of every workspace the caller may read)."""
    if str(parent) == "workspaces/-":
        where, params = readable_projects_sql(call)
    else:
        where, params = "e.project_id = ?", [workspace_parent(call, parent)]
    with call.store.reading() as db:
        rows = db.execute(f"SELECT e.data FROM entity e WHERE e.kind = ? AND {where} ORDER BY e.created_time, e.id",
                          (KIND, *params)).fetchall()
    return [_settled(call.store, json.loads(r["data"])) for r in rows]


@handles("batch.job.list_jobs", generation="workspaces")
def list_jobs(call: Call, request: dict[str, Any]) -> dict[str, Any]:
    page, token = memory_list(_jobs(call, request.get("parent")), request, _FIELDS)
    return {"jobs": [_public(j) for j in page], "nextPageToken": token}


@handles("batch.job.count_jobs", generation="workspaces")
def count_jobs(call: Call, request: dict[str, Any]) -> dict[str, Any]:
    return {"count": str(memory_count(_jobs(call, request.get("parent")), request, _FIELDS))}


@handles("batch.job.cancel_job", generation="workspaces")
def cancel_job(call: Call, request: dict[str, Any]) -> dict[str, Any]:
    job = _job(call, request.get("name"), write=True)
    cancel = _running(call.store).get(job["id"])
    if cancel is not None and job["state"] not in TERMINAL:
        _save(call.store, job["id"], state="CANCELLING")
        cancel.set()
    return {}


@handles("batch.job.delete_job", generation="workspaces")
def delete_job(call: Call, request: dict[str, Any]) -> dict[str, Any]:
    job = _job(call, request.get("name"), write=True)
    if job["state"] not in TERMINAL:
        raise failed_precondition(f"job {job['name']!r} is {job['state']}; cancel it (and let it stop) first")
    with call.store.transaction() as db:
        _forget(db, job["id"])
    return {}


def _forget(db: sqlite3.Connection, job_id: str) -> None:
    db.execute("DELETE FROM entity WHERE kind = ? AND id = ?", (KIND, job_id))
    db.execute("DELETE FROM deployment_log WHERE deployment_id = ?", (job_key(job_id),))
    forget_deployment(db, job_key(job_id))


def leave_deleted_project(call: Call, db: sqlite3.Connection, project_id: str) -> None:
    """A deleted project's jobs stop and go, with their logs and monitoring record."""
    for row in db.execute("SELECT id FROM entity WHERE kind = ? AND project_id = ?", (KIND, project_id)).fetchall():
        cancel = _running(call.store).get(row["id"])
        if cancel is not None:
            cancel.set()
        _forget(db, row["id"])


@handles("batch.job.get_job_output", generation="workspaces")
@handles("batch.job.get_job_output_without_preload_content", generation="workspaces")
def get_job_output(call: Call, request: dict[str, Any]) -> dict[str, Any]:
    job = _job(call, request.get("name"))
    waited = time.monotonic() + 1.0
    while job["state"] not in TERMINAL and time.monotonic() < waited:
        time.sleep(0.1)
        job = _job(call, request.get("name"))
    since = request.get("sinceTime") or ""
    with call.store.reading() as db:
        row = db.execute("SELECT time, text FROM deployment_log WHERE deployment_id = ? AND time > ? "
                         "ORDER BY seq DESC LIMIT 1", (job_key(job["id"]), since)).fetchone()
    if row is None:
        return {}
    return {"appType": "batch", "pod": f"batch-{job['id'][:8]}", "container": "scorer", "logTime": row["time"],
            "line": row["text"]}


@handles("batch.source_spec.list_source_specs", generation="workspaces")
def list_source_specs(call: Call, request: dict[str, Any]) -> dict[str, Any]:
    return {"sourceSpecs": SOURCE_SPECS}


@handles("batch.source_spec.get_source_spec", generation="workspaces")
def get_source_spec(call: Call, request: dict[str, Any]) -> dict[str, Any]:
    found = next((s for s in SOURCE_SPECS if s["name"] == request.get("name")), None)
    if found is None:
        raise not_found("source spec", str(request.get("name")))
    return {"sourceSpec": found}


@handles("batch.sink_spec.list_sink_specs", generation="workspaces")
def list_sink_specs(call: Call, request: dict[str, Any]) -> dict[str, Any]:
    return {"sinkSpecs": SINK_SPECS}


@handles("batch.sink_spec.get_sink_spec", generation="workspaces")
def get_sink_spec(call: Call, request: dict[str, Any]) -> dict[str, Any]:
    found = next((s for s in SINK_SPECS if s["name"] == request.get("name")), None)
    if found is None:
        raise not_found("sink spec", str(request.get("name")))
    return {"sinkSpec": found}
