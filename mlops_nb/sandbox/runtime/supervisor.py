"""The supervisor: one scorer process per deployed model replica, kept alive like pods.

The deployment services hand it what should run (:class:`DeploymentSpec`, after their
transaction commits) and it reports what happens through :class:`Events`; it knows nothing
of the store or the API. A deployment's lifecycle, as its status shows it:

* ``PREPARING`` while each model's artifact is unpacked by its processor;
* ``LAUNCHING`` while the scorer processes start and load their models;
* ``HEALTHY`` once every replica answers its readiness check (``GET /readyz``);
* ``FAILED`` when a model cannot be served: the runtime is one the sandbox cannot run, the
  artifact is not what the processor takes, or the process fails to load the model (the
  reason comes from the process, e.g. a missing dependency);
* ``UNHEALTY`` (sic, the API's spelling) when a healthy scorer dies or stops answering its
  liveness probe: it is restarted with exponential backoff (1 s, 2 s, ... at most 30 s) and
  the deployment is ``HEALTHY`` again once it is ready;
* ``PENDING`` when it is scaled to zero replicas;
* ``TERMINATING`` while a removed deployment's processes stop, after which it is gone.

An update that changes what runs (models, runtimes, environment variables, replicas) starts
a new revision beside the serving one and switches traffic when the new one is healthy; if
it fails, the previous revision keeps serving. Other updates need no process.

A scorer watches its stdin, whose other end only the sandbox holds: when the sandbox exits,
however it exits, the scorers exit too. Each scorer gets a secret of its own with its model
(in the order on stdin) and answers only requests that carry it (``X-Scorer-Secret``): the
sandbox's gateway and probes know it, other local processes do not. A scoring request has a
deadline (``score_deadline`` seconds): a scorer that misses it, or whose readiness check says a
prediction overran it, is killed and restarted like one that died, and the deployment's
status and logs say so. One or more warm spares (processes that have
imported MLflow and wait for a model) make a new deployment wait only for its model to load;
once an H2O-3 MOJO has been deployed, a MOJO scorer with its JVM started waits too.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import random
import re
import secrets
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Protocol

from mlops_nb.sandbox.runtime.runtimes import (
    MAX_UNPACKED_BYTES,
    MLFLOW_SCORER,
    UnpackError,
    cannot_run,
    runtime_display_name,
    scorer_program,
    unpack,
)

__all__ = ["Supervisor", "DeploymentSpec", "ModelSpec", "Events", "Route", "RoutedModel"]

log = logging.getLogger("mlops_nb.sandbox.runtime")

LOAD_TIMEOUT = 300.0  # a spare's imports, then loading the model: each gets this long
READY_TIMEOUT = 15.0
PROBE_INTERVAL = 5.0
PROBE_FAILURES = 3  # consecutive failed liveness probes before a scorer is restarted
BACKOFF = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)
STABLE_AFTER = 60.0  # a scorer up this long has its backoff reset
STOP_GRACE = 5.0
SCORE_DEADLINE = 60.0
SECRET_HEADER = "X-Scorer-Secret"
ARTIFACTS = "artifacts"  # the folder under the working directory where artifacts are unpacked


@dataclass(frozen=True)
class ModelSpec:
    """One model of a deployment: what to unpack and which runtime serves it."""

    experiment_id: str
    artifact_id: str
    processor: str  # artifact processor name, e.g. unzip_processor
    runtime: str  # runtime name, e.g. python-scorer_mlflow_39
    name: str = ""  # for logs and the schema (the experiment's display name)
    environment: Mapping[str, str] = field(default_factory=dict)
    replicas: int = 1
    weight: int = 0  # a split deployment's share


@dataclass(frozen=True)
class DeploymentSpec:
    deployment_id: str
    revision_id: str
    mode: str  # single, split or shadow
    models: tuple[ModelSpec, ...]

    def processes(self) -> tuple:
        """What a revision's processes depend on: a change here needs a new revision."""
        return tuple((m.experiment_id, m.artifact_id, m.processor, m.runtime, tuple(sorted(m.environment.items())),
                      m.replicas) for m in self.models)


class Events(Protocol):
    """What the supervisor reports (from its own threads)."""

    def status(self, deployment_id: str, state: str, message: str) -> None: ...

    def log(self, deployment_id: str, source: str, text: str) -> None: ...

    def removed(self, deployment_id: str) -> None: ...

    def sample(self, deployment_id: str, experiment_id: str, rss_bytes: int, cpu_seconds: float) -> None: ...


@dataclass(frozen=True)
class RoutedModel:
    experiment_id: str
    weight: int
    ports: tuple[int, ...]  # ready replicas


@dataclass(frozen=True)
class Route:
    """Where a deployment's scoring requests go now."""

    mode: str
    models: tuple[RoutedModel, ...]


ArtifactBytes = Callable[[str], Iterator[bytes]]


class _LoadFailed(Exception):
    pass


class _Process:
    """One scorer process, from spawn to exit; spares are processes not yet given a model."""

    def __init__(self, python: str, on_stop: Callable[[_Process], None], program: Path = MLFLOW_SCORER) -> None:
        self._on_stop = on_stop
        self.program = program
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
        self.popen = subprocess.Popen(
            [python, str(program), str(os.getpid())], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True, env=env, start_new_session=True,  # a terminal's Ctrl-C is for the sandbox, not its scorers
        )
        self.pid = self.popen.pid
        self.secret = secrets.token_urlsafe(32)  # given with the model; nothing else knows it
        self._events: list[dict] = []
        self._cond = threading.Condition()
        self._log_lock = threading.Lock()
        self._log_sink: Callable[[str], None] | None = None
        self._early_log: list[str] = []  # what a spare printed before it had a deployment
        threading.Thread(target=self._read_events, name=f"scorer-{self.pid}-events", daemon=True).start()
        threading.Thread(target=self._read_log, name=f"scorer-{self.pid}-log", daemon=True).start()

    def _read_events(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                with self._cond:
                    self._events.append(event)
                    self._cond.notify_all()
        with self._cond:
            self._events.append({"event": "exited"})
            self._cond.notify_all()

    def _read_log(self) -> None:
        assert self.popen.stderr is not None
        for line in self.popen.stderr:
            with self._log_lock:
                sink = self._log_sink
                if sink is None:
                    self._early_log.append(line.rstrip("\n"))
                    continue
            sink(line.rstrip("\n"))

    def log_to(self, sink: Callable[[str], None]) -> None:
        """Send the process's output to ``sink`` from now on, starting with what it printed so far."""
        with self._log_lock:
            early, self._early_log = self._early_log, []
            self._log_sink = sink
        for line in early:
            sink(line)

    def wait_event(self, names: set[str], timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for event in self._events:
                    if event.get("event") in names or event.get("event") in ("failed", "exited"):
                        return event
                left = deadline - time.monotonic()
                if left <= 0:
                    return {"event": "timeout"}
                self._cond.wait(left)

    def warm(self) -> bool:
        """Whether it has imported MLflow and waits for a model."""
        with self._cond:
            return any(e.get("event") == "warm" for e in self._events)

    def load(self, order: dict) -> None:
        assert self.popen.stdin is not None
        self.popen.stdin.write(json.dumps(order) + "\n")
        self.popen.stdin.flush()

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.terminate()
            try:
                self.popen.wait(STOP_GRACE)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        for stream in (self.popen.stdin, self.popen.stdout, self.popen.stderr):
            with contextlib.suppress(OSError, ValueError):
                _close(stream)
        self._on_stop(self)


def _close(stream: IO | None) -> None:
    if stream is not None:
        stream.close()


class _Replica:
    """One serving slot of a model: a process, restarted when it dies."""

    def __init__(self, revision: _Revision, position: int, index: int, model_dir: Path) -> None:
        self.revision = revision
        self.position = position  # which model of the revision's spec
        self.index = index  # which replica of that model
        self.model_dir = model_dir
        self.process: _Process | None = None
        self.port = 0
        self.ready = False
        self.restarts = 0
        self.ready_since = 0.0
        self.probe_failures = 0
        self.stopped = False
        self.killed_because = ""  # why the supervisor killed the process, for the restart's status

    @property
    def model(self) -> ModelSpec:
        return self.revision.spec.models[self.position]

    @property
    def source(self) -> str:
        return f"scorer {self.model.name or self.model.experiment_id}#{self.index}"

    def start(self, supervisor: Supervisor) -> None:
        """Start a process and load the model; raises _LoadFailed with the reason."""
        process = supervisor.take_process(scorer_program(self.model.runtime))
        self.process = process
        deployment_id = self.revision.spec.deployment_id
        process.log_to(lambda line: supervisor.events.log(deployment_id, self.source, line))
        warm = process.wait_event({"warm"}, supervisor.load_timeout)
        if warm["event"] != "warm":
            raise _LoadFailed(_reason(warm, process, supervisor.load_timeout))
        process.load({"model_dir": str(self.model_dir), "experiment_id": self.model.experiment_id,
                      "name": self.model.name, "env": dict(self.model.environment),
                      "secret": process.secret, "deadline_seconds": supervisor.score_deadline})
        listening = process.wait_event({"listening"}, supervisor.load_timeout)
        if listening["event"] != "listening":
            raise _LoadFailed(_reason(listening, process, supervisor.load_timeout))
        self.port = int(listening["port"])
        deadline = time.monotonic() + READY_TIMEOUT
        while not _probe(self.port, process.secret):
            if not process.alive() or time.monotonic() > deadline:
                raise _LoadFailed(f"the scorer did not answer its readiness check (GET /readyz on port {self.port})")
            time.sleep(0.05)
        self.ready = True
        self.ready_since = time.monotonic()
        self.probe_failures = 0

    def stop(self) -> None:
        self.stopped = True
        self.ready = False
        if self.process is not None:
            self.process.stop()


def _reason(event: dict, process: _Process, timeout: float) -> str:
    if event["event"] == "failed":
        return str(event.get("reason") or "the scorer failed")
    if event["event"] == "timeout":
        process.stop()
        return f"the scorer did not load the model within {timeout:g} s (the model load timeout)"
    code = process.popen.wait()
    return f"the scorer process exited with code {code} before serving (see the deployment's logs)"


def _probe(port: int, secret: str, timeout: float = 2.0) -> bool:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/readyz", headers={SECRET_HEADER: secret})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status == 200
    except OSError:
        return False


class _Unpacked:
    """One artifact unpacked for one processor, shared by every revision that runs it."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.lock = threading.Lock()  # held while unpacking: a second revision waits, then shares
        self.model_dir: Path | None = None
        self.users = 0


class _Revision:
    def __init__(self, spec: DeploymentSpec, directory: Path, release: Callable[[list[str]], None]) -> None:
        self.spec = spec
        self.directory = directory
        self.replicas: list[_Replica] = []
        self.cancelled = False
        self.artifacts: list[str] = []  # keys of the unpacked artifacts it uses
        self._release = release

    def stop(self) -> None:
        self.cancelled = True
        for replica in self.replicas:
            replica.stop()
        shutil.rmtree(self.directory, ignore_errors=True)
        used, self.artifacts = self.artifacts, []
        self._release(used)

    def route(self) -> Route:
        models = []
        for position, model in enumerate(self.spec.models):
            ports = tuple(r.port for r in self.replicas if r.position == position and r.ready)
            models.append(RoutedModel(model.experiment_id, model.weight, ports))
        return Route(self.spec.mode, tuple(models))

    def all_ready(self) -> bool:
        return bool(self.replicas) and all(r.ready for r in self.replicas)


class _Deployment:
    def __init__(self, deployment_id: str) -> None:
        self.id = deployment_id
        self.serving: _Revision | None = None
        self.rolling: _Revision | None = None
        self.spec: DeploymentSpec | None = None
        self.removing = False


class Supervisor:
    """Runs and watches the scorer processes of one sandbox's deployments."""

    def __init__(self, workdir: Path, events: Events, artifact_bytes: ArtifactBytes, *, warm_spares: int = 1,
                 python: str = sys.executable, score_deadline: float = SCORE_DEADLINE,
                 load_timeout: float = LOAD_TIMEOUT, max_unpacked_bytes: int = MAX_UNPACKED_BYTES) -> None:
        for name, seconds in (("score_deadline", score_deadline), ("load_timeout", load_timeout)):
            if seconds <= 0:
                raise ValueError(f"{name} must be a positive number of seconds, got {seconds!r}")
        self.workdir = workdir
        self.score_deadline = score_deadline
        self.load_timeout = load_timeout
        self.max_unpacked_bytes = max_unpacked_bytes
        self._artifacts: dict[str, _Unpacked] = {}  # artifact id and processor -> where it is unpacked
        self.events = events
        self.artifact_bytes = artifact_bytes
        self.warm_spares = warm_spares
        self.python = python
        self._lock = threading.RLock()
        self._deployments: dict[str, _Deployment] = {}
        self._spares: list[_Process] = []
        # One warm spare of each other program (the MOJO scorer, its JVM started), kept from the
        # first time that program is asked for: most sandboxes never run one.
        self._program_spares: dict[Path, _Process] = {}
        self._processes: set[_Process] = set()  # every process started and not yet stopped
        self._closed = threading.Event()
        self._spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="supervisor-spawner")
        self._rr = itertools.count()

    # -- lifecycle of the supervisor --------------------------------------------------------

    def start(self) -> None:
        # What an earlier run left unpacked may be half done (it may have been killed): unpack again.
        shutil.rmtree(self.workdir / ARTIFACTS, ignore_errors=True)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._refill_spares()
        self._spawn(self._watch, "supervisor-watch")

    def shutdown(self) -> None:
        """Stop every scorer process (deployments stay in the store; a restart brings them back)."""
        self._closed.set()
        with self._lock:
            for deployment in self._deployments.values():
                for revision in (deployment.serving, deployment.rolling):
                    if revision is not None:
                        revision.cancelled = True
            self._deployments.clear()
            self._spares = []
            self._program_spares = {}
            processes = list(self._processes)
        stoppers = [threading.Thread(target=p.stop) for p in processes]
        for thread in stoppers:
            thread.start()
        for thread in stoppers:
            thread.join()
        self._spawner.shutdown(wait=False)

    def _new_process(self, program: Path = MLFLOW_SCORER) -> _Process:
        with self._lock:
            if self._closed.is_set():
                raise _LoadFailed("the sandbox is stopping")
            # Started from one long-lived thread: a scorer asks Linux to kill it when the thread that
            # started it ends (PR_SET_PDEATHSIG), which must then be the sandbox ending.
            process = self._spawner.submit(_Process, self.python, self._forget, program).result()
            self._processes.add(process)
            return process

    def _forget(self, process: _Process) -> None:
        with self._lock:
            self._processes.discard(process)

    def _spawn(self, target: Callable[..., None], name: str, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        thread.start()

    # -- spares ---------------------------------------------------------------------------------

    def take_process(self, program: Path = MLFLOW_SCORER) -> _Process:
        """A warm spare if there is one (the pool is refilled behind it), else a new process.

        ``warm_spares`` run the MLflow scorer; another program (the MOJO scorer) has one spare once
        it has been asked for, and when ``warm_spares`` is not 0.
        """
        if program != MLFLOW_SCORER:
            with self._lock:
                spare = self._program_spares.pop(program, None)
            if self.warm_spares and not self._closed.is_set():
                self._spawn(self._refill_program_spare, "supervisor-spares", program)
            return spare if spare is not None and spare.alive() else self._new_process(program)
        with self._lock:
            while self._spares:
                process = self._spares.pop(0)
                if process.alive():
                    break
            else:
                process = None
        if not self._closed.is_set():
            self._spawn(self._refill_spares, "supervisor-spares")
        return process if process is not None else self._new_process()

    def spares_warm(self) -> bool:
        """Whether the pool holds its warm spares, each ready for a model."""
        with self._lock:
            spares = list(self._spares)
        return len(spares) >= self.warm_spares and all(p.warm() and p.alive() for p in spares)

    def _refill_program_spare(self, program: Path) -> None:
        with self._lock:
            spare = self._program_spares.get(program)
            if self._closed.is_set() or (spare is not None and spare.alive()):
                return
            self._program_spares[program] = self._new_process(program)

    def _refill_spares(self) -> None:
        with self._lock:
            if self._closed.is_set():
                return
            self._spares = [p for p in self._spares if p.alive()]
            for _ in range(max(0, self.warm_spares - len(self._spares))):
                self._spares.append(self._new_process())

    # -- what the services ask --------------------------------------------------------------------

    def apply(self, spec: DeploymentSpec) -> None:
        """Run ``spec``: a new deployment, or a change to a running one."""
        with self._lock:
            deployment = self._deployments.setdefault(spec.deployment_id, _Deployment(spec.deployment_id))
            previous = deployment.spec
            deployment.spec = spec
            if deployment.removing:
                return
            serving = deployment.serving
            if previous is not None and serving is not None and previous.processes() == spec.processes() \
                    and deployment.rolling is None:
                serving.spec = spec  # names or weights changed; the processes stay
                return
            rolling = deployment.rolling
            if rolling is not None and rolling.spec.processes() == spec.processes():
                # An update that leaves what runs alone (security, say) while a rollout of the same
                # processes is under way: let it finish. Starting it again would remove the revision's
                # directory under the scorers just started from it.
                rolling.spec = spec
                return
            if deployment.rolling is not None:
                deployment.rolling.cancelled = True
                stale, deployment.rolling = deployment.rolling, None
                self._spawn(stale.stop, "supervisor-cancel")
            revision = _Revision(spec, self.workdir / spec.deployment_id / spec.revision_id, self._release)
            deployment.rolling = revision
        self._spawn(self._roll_out, f"rollout-{spec.deployment_id[:8]}", deployment, revision)

    def remove(self, deployment_id: str) -> None:
        """Stop a deployment's processes; ``Events.removed`` follows once they are gone."""
        with self._lock:
            deployment = self._deployments.setdefault(deployment_id, _Deployment(deployment_id))
            deployment.removing = True
        self.events.status(deployment_id, "TERMINATING", "stopping the scorer processes")
        self._spawn(self._tear_down, f"remove-{deployment_id[:8]}", deployment)

    def route(self, deployment_id: str) -> Route | None:
        with self._lock:
            deployment = self._deployments.get(deployment_id)
            if deployment is None or deployment.removing or deployment.serving is None:
                return None
            return deployment.serving.route()

    def pick_port(self, model: RoutedModel) -> int:
        """A ready replica's port, round robin."""
        return model.ports[next(self._rr) % len(model.ports)]

    @staticmethod
    def pick_model(route: Route, rng: random.Random) -> RoutedModel:
        """Which model answers: a split picks by weight, the others use their primary."""
        live = [m for m in route.models if m.ports]
        if route.mode != "split":
            return route.models[0]
        if not live:
            return route.models[0]
        return rng.choices(live, weights=[max(m.weight, 0) or 1 for m in live])[0]

    def secret_of(self, port: int) -> str:
        """The secret of the ready scorer listening on ``port`` ("" when none is)."""
        replica = self._ready_replica(port)
        return replica.process.secret if replica is not None and replica.process is not None else ""

    def _ready_replica(self, port: int) -> _Replica | None:
        with self._lock:
            for deployment in self._deployments.values():
                if deployment.serving is not None:
                    for replica in deployment.serving.replicas:
                        if replica.ready and replica.port == port:
                            return replica
        return None

    def unresponsive(self, port: int, secret: str, what: str) -> None:
        """The gateway's report that the scorer on ``port`` (known by its secret) missed the deadline:
        it is killed, and the watcher restarts it as one that died."""
        replica = self._ready_replica(port)
        process = replica.process if replica is not None else None
        if replica is None or process is None or process.secret != secret or replica.killed_because:
            return  # already replaced, or already being killed
        replica.killed_because = f"{replica.source} (pid {process.pid}) {what}"
        self._note(replica.revision.spec.deployment_id, f"{replica.killed_because}; killing it")
        with contextlib.suppress(ProcessLookupError):
            process.popen.kill()

    def pids(self, deployment_id: str) -> list[int]:
        """The process ids of a deployment's serving scorers (for tests and the curious)."""
        with self._lock:
            deployment = self._deployments.get(deployment_id)
            if deployment is None or deployment.serving is None:
                return []
            return [r.process.pid for r in deployment.serving.replicas if r.process is not None and r.ready]

    # -- rollout ------------------------------------------------------------------------------------

    def _note(self, deployment_id: str, text: str) -> None:
        self.events.log(deployment_id, "lifecycle", text)

    def _status(self, deployment: _Deployment, revision: _Revision, state: str, message: str) -> None:
        with self._lock:
            current = deployment.rolling is revision or (deployment.rolling is None and deployment.serving is revision)
            if not current or deployment.removing or self._closed.is_set():
                return
        self.events.status(deployment.id, state, message)
        self._note(deployment.id, f"{state}: {message}")

    def _roll_out(self, deployment: _Deployment, revision: _Revision) -> None:
        spec = revision.spec
        previous = deployment.serving
        replicas = sum(max(m.replicas, 0) for m in spec.models)
        try:
            self._status(deployment, revision, "PREPARING", f"unpacking the artifacts of revision {spec.revision_id}")
            directories = []
            for model in spec.models:
                reason = cannot_run(model.runtime)
                if reason:
                    raise _LoadFailed(reason)
                try:
                    directories.append(self._unpacked(deployment, revision, model))
                except UnpackError as e:
                    raise _LoadFailed(f"{model.name or model.experiment_id}: {e}") from None
                if revision.cancelled:
                    return
            if replicas == 0:
                with self._lock:
                    self._switch(deployment, revision)
                self._status(deployment, revision, "PENDING",
                             "scaled to zero replicas; set replicas to 1 or more to serve")
                return
            runtimes = ", ".join(sorted({runtime_display_name(m.runtime) for m in spec.models}))
            self._status(deployment, revision, "LAUNCHING",
                         f"starting {replicas} scorer process{'es' if replicas > 1 else ''} ({runtimes})")
            revision.replicas = [_Replica(revision, position, n, directory)
                                 for position, (model, directory) in enumerate(zip(spec.models, directories,
                                                                                   strict=True))
                                 for n in range(max(model.replicas, 0))]
            errors: list[str] = []
            starters = [threading.Thread(target=self._start_replica, args=(r, errors)) for r in revision.replicas]
            for t in starters:
                t.start()
            for t in starters:
                t.join()
            if revision.cancelled:
                return
            if errors:
                raise _LoadFailed(errors[0])
            with self._lock:
                if revision.cancelled or deployment.removing:
                    return
                self._switch(deployment, revision)
            self._status(deployment, revision, "HEALTHY",
                         f"{replicas} scorer{'s' if replicas > 1 else ''} ready (revision {spec.revision_id})")
        except _LoadFailed as e:
            if not revision.cancelled:
                still = (f"; revision {previous.spec.revision_id} still serves requests"
                         if previous is not None and previous is deployment.serving else "")
                self._fail(deployment, revision, f"{e}{still}")
        except Exception as e:  # a bug here must show, not leave the deployment PREPARING forever
            log.exception("rollout of deployment %s failed", deployment.id)
            self._fail(deployment, revision, f"the sandbox failed to start the deployment: {e}")

    def _fail(self, deployment: _Deployment, revision: _Revision, reason: str) -> None:
        self._status(deployment, revision, "FAILED", self._without_paths(reason))
        with self._lock:
            if deployment.rolling is revision:
                deployment.rolling = None
        revision.stop()

    def _unpacked(self, deployment: _Deployment, revision: _Revision, model: ModelSpec) -> Path:
        """Where ``model``'s artifact is unpacked for its processor: once for all revisions that use it."""
        key = f"{model.artifact_id}-{model.processor}"
        with self._lock:
            entry = self._artifacts.setdefault(key, _Unpacked(self.workdir / ARTIFACTS / key))
            entry.users += 1
            revision.artifacts.append(key)
        with entry.lock:
            if entry.model_dir is None:
                self._note(deployment.id, f"{model.processor}: unpacking artifact {model.artifact_id} "
                                          f"of {model.name or model.experiment_id}")
                entry.model_dir = unpack(model.processor, self.artifact_bytes(model.artifact_id), entry.directory,
                                         self.max_unpacked_bytes)
            else:
                self._note(deployment.id, f"{model.processor}: artifact {model.artifact_id} is unpacked already")
            return entry.model_dir

    def _release(self, keys: list[str]) -> None:
        """A revision no longer uses these unpacked artifacts; the last user's going removes them."""
        for key in keys:
            with self._lock:
                entry = self._artifacts.get(key)
                if entry is None:
                    continue
                entry.users -= 1
                if entry.users > 0:
                    continue
                del self._artifacts[key]
            with entry.lock:
                shutil.rmtree(entry.directory, ignore_errors=True)

    def _without_paths(self, reason: str) -> str:
        """``reason`` without the server's paths: those inside a revision's folder relative to the model,
        others by their file name (a status is read by every project member, not the sandbox's admin)."""
        inside = re.escape(str(self.workdir / ARTIFACTS)) + r"/[^/\s'\"]+/(?:model/)?"
        return re.sub(r"(?<![\w.])/(?:[^/\s'\"]+/)+([^/\s'\"]+)", r"\1", re.sub(inside, "", reason))

    def _switch(self, deployment: _Deployment, revision: _Revision) -> None:
        old, deployment.serving, deployment.rolling = deployment.serving, revision, None
        if old is not None and old is not revision:
            self._spawn(old.stop, "supervisor-retire")

    def _start_replica(self, replica: _Replica, errors: list[str]) -> None:
        try:
            replica.start(self)
        except _LoadFailed as e:
            errors.append(f"{replica.model.name or replica.model.experiment_id}: {e}")
        else:
            self._note(replica.revision.spec.deployment_id,
                       f"{replica.source} (pid {replica.process.pid if replica.process else '?'}) "
                       f"ready on port {replica.port}")

    # -- keeping them alive -------------------------------------------------------------------------

    def _watch(self) -> None:
        """Restart dead or unresponsive scorers of serving revisions; sample their resources."""
        last_probe = 0.0
        while not self._closed.wait(0.25):
            probe = time.monotonic() - last_probe >= PROBE_INTERVAL
            if probe:
                last_probe = time.monotonic()
            with self._lock:
                serving = [(d, d.serving) for d in self._deployments.values()
                           if d.serving is not None and not d.removing]
            for deployment, revision in serving:
                for replica in list(revision.replicas):
                    self._check(deployment, revision, replica, probe)

    def _check(self, deployment: _Deployment, revision: _Revision, replica: _Replica, probe: bool) -> None:
        process = replica.process
        if replica.stopped or process is None or not replica.ready:
            return
        if process.alive() and probe:
            if _probe(replica.port, process.secret):
                replica.probe_failures = 0
                self._sample(deployment, replica)
            else:
                replica.probe_failures += 1
                if replica.probe_failures >= PROBE_FAILURES:
                    replica.killed_because = (f"{replica.source} (pid {process.pid}) failed {PROBE_FAILURES} "
                                              "liveness probes")
                    self._note(deployment.id, f"{replica.killed_because}; killing it")
                    process.popen.kill()
        if process.alive():
            return
        replica.ready = False  # the watcher leaves it to the restart from now on
        code = process.popen.wait()
        why, replica.killed_because = (replica.killed_because or
                                       f"{replica.source} (pid {process.pid}) exited with code {code}"), ""
        if time.monotonic() - replica.ready_since >= STABLE_AFTER:
            replica.restarts = 0
        self._spawn(self._restart, f"restart-{process.pid}", deployment, revision, replica, why)

    def _restart(self, deployment: _Deployment, revision: _Revision, replica: _Replica, why: str) -> None:
        """Start the replica again, backing off between tries, until it serves or is retired."""
        while not (replica.stopped or revision.cancelled):
            delay = BACKOFF[min(replica.restarts, len(BACKOFF) - 1)]
            replica.restarts += 1
            self._status(deployment, revision, "UNHEALTY",
                         f"{why}; restarting in {delay:.0f} s (restart {replica.restarts})")
            if self._closed.wait(delay) or replica.stopped or revision.cancelled:
                return
            if replica.process is not None:
                replica.process.stop()
            try:
                replica.start(self)
            except _LoadFailed as e:
                why = f"{replica.source} did not come back: {e}"
                continue
            if revision.all_ready():
                self._status(deployment, revision, "HEALTHY",
                             f"{replica.source} restarted (restart {replica.restarts}); all scorers ready")
            return

    def _sample(self, deployment: _Deployment, replica: _Replica) -> None:
        usage = _usage(replica.process.pid) if replica.process is not None else None
        if usage is not None:
            self.events.sample(deployment.id, replica.model.experiment_id, *usage)

    def _tear_down(self, deployment: _Deployment) -> None:
        with self._lock:
            revisions = [r for r in (deployment.serving, deployment.rolling) if r is not None]
            deployment.serving = deployment.rolling = None
        for revision in revisions:
            revision.stop()
        shutil.rmtree(self.workdir / deployment.id, ignore_errors=True)
        with self._lock:
            if self._deployments.get(deployment.id) is deployment:
                del self._deployments[deployment.id]
        if not self._closed.is_set():
            self.events.removed(deployment.id)


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _usage(pid: int) -> tuple[int, float] | None:
    """(resident bytes, CPU seconds used so far) of a process, from /proc (Linux); None elsewhere."""
    try:
        with open(f"/proc/{pid}/statm") as f:
            resident = int(f.read().split()[1]) * _PAGE_SIZE
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return resident, (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
    except (OSError, IndexError, ValueError):
        return None
