"""The scoring URLs: what a deployment's status points at, in front of its scorer processes.

``{gateway}/deployments/{id}/model/...`` (``{gateway}/{id}/model/...`` too, the form the
workspaces face reports) and ``{gateway}/endpoints/{path}/model/...`` (an endpoint's target) serve the MLOps scoring API: ``score``, ``schema``, ``sample_request``,
``capabilities``, ``id``, ``contribution``, and ``/readyz`` beside ``model``. This is the
sandbox's ingress, as a real MLOps has one before its scorer pods:

* it checks the deployment's security: a passphrase as ``Authorization: Bearer <passphrase>``,
  or a sandbox access token of a user who may read the deployment's project (401 otherwise,
  403 for a user who may not); a deployment with neither is open;
* it picks the model: a split deployment by its weights, the others their primary; among a
  model's replicas, round robin. A shadow deployment answers from its primary and sends a
  copy of each score request to its shadow model, whose answer is only recorded;
* it forwards the request to the scorer process (on 127.0.0.1, with that scorer's secret) and
  relays its answer, adding its own share to the ``Server-Timing`` header. A scorer that does
  not answer within the supervisor's ``score_deadline`` gets the request a 504, and is reported
  to the supervisor, which kills and restarts it;
* it records every score request for model monitoring, on a thread of its own (the answer
  does not wait for the store).

A deployment that is not serving answers 503 with its state and why (a freshly created one
is PREPARING or LAUNCHING for a moment), an unknown one 404, all as JSON ``{"message": ...}``.
"""

from __future__ import annotations

import hmac
import json
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache, partial
from typing import Any

import urllib3
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mlops_nb.sandbox.identity import IdentityProvider, InvalidToken
from mlops_nb.sandbox.runtime import Route as ScorerRoute
from mlops_nb.sandbox.runtime import Supervisor
from mlops_nb.sandbox.runtime.supervisor import SECRET_HEADER
from mlops_nb.sandbox.services.access import user_role
from mlops_nb.sandbox.services.deployments import DEPLOYER_KIND, STATUS_KIND, security_of
from mlops_nb.sandbox.services.endpoints import endpoint_by_path
from mlops_nb.sandbox.services.monitoring import Scored, record_later, record_scoring, stop_recording
from mlops_nb.sandbox.store import Store

__all__ = ["ScoringGateway"]

MAX_BODY = 64 * 1024 * 1024
_SCORER_PATHS = {"model/score", "model/schema", "model/sample_request", "model/capabilities", "model/id",
                 "model/contribution", "readyz"}


def _error(status: int, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"message": message}, status_code=status, headers=headers or None)


@lru_cache(maxsize=256)
def _bcrypt_matches(passphrase: str, hashed: str) -> bool:
    # bcrypt is slow by design; a deployment's callers send the same passphrase on every request.
    import bcrypt

    try:
        return bcrypt.checkpw(passphrase.encode(), hashed.encode())
    except ValueError:
        return False


class ScoringGateway:
    """The scoring routes of one sandbox."""

    def __init__(self, store: Store, idp: IdentityProvider, supervisor: Supervisor) -> None:
        self.store = store
        self.idp = idp
        self.supervisor = supervisor
        self.http = urllib3.PoolManager(maxsize=32, retries=False)
        self.rng = random.Random()
        self._rng_lock = threading.Lock()
        self.shadows = ThreadPoolExecutor(max_workers=4, thread_name_prefix="sandbox-shadow")
        # A scorer's secret -> its model's input fields: a secret names one scorer process, where a
        # port may be another deployment's scorer after a restart.
        self._inputs: dict[str, list[str] | None] = {}

    def routes(self) -> list[Route]:
        return [
            Route("/deployments/{deployment_id}/{rest:path}", self._deployment, methods=["GET", "POST"]),
            Route("/endpoints/{endpoint_path}/{rest:path}", self._endpoint, methods=["GET", "POST"]),
        ]

    def root_routes(self) -> list[Route]:
        """``{gateway}/{id}/model/...`` and ``{gateway}/{id}/readyz``: the same scoring API, named as MLOps
        names it (the workspaces face's metadata: 1.6.5 takes the scoring API's base from the score URL's
        first path segment). Served after every other route, so they shadow none."""
        return [
            Route("/{deployment_id}/model/{operation}", self._deployment_root, methods=["GET", "POST"]),
            Route("/{deployment_id}/readyz", self._deployment_root, methods=["GET"]),
        ]

    def close(self) -> None:
        self.shadows.shutdown(wait=False, cancel_futures=True)
        stop_recording(self.store)  # what is queued is written while the store is still open
        self.http.clear()

    async def _deployment(self, request: Request) -> Response:
        return await self._serve(request, request.path_params["deployment_id"], request.path_params["rest"])

    async def _deployment_root(self, request: Request) -> Response:
        operation = request.path_params.get("operation")
        rest = f"model/{operation}" if operation else "readyz"
        return await self._serve(request, request.path_params["deployment_id"], rest)

    async def _endpoint(self, request: Request) -> Response:
        path = request.path_params["endpoint_path"]
        endpoint = await run_in_threadpool(endpoint_by_path, self.store, path)
        if endpoint is None:
            return _error(404, f"no endpoint has the path {path!r}")
        if not endpoint.get("target"):
            return _error(503, f"endpoint {path!r} has no target deployment; point it at one (UpdateEndpoint)")
        return await self._serve(request, endpoint["target"].rsplit("/", 1)[-1], request.path_params["rest"])

    async def _serve(self, request: Request, deployment_id: str, rest: str) -> Response:
        rest = rest.rstrip("/")
        if rest not in _SCORER_PATHS:
            return _error(404, f"no route {rest!r}; the scoring API serves model/score, model/schema, "
                               "model/sample_request, model/capabilities, model/id and readyz")
        body = await read_at_most(request, MAX_BODY) if request.method == "POST" else b""
        if body is None:
            return _error(413, f"the request is larger than {MAX_BODY} bytes; send fewer rows per request")
        return await run_in_threadpool(self._answer, request.method, request.headers.get("authorization", ""),
                                       deployment_id, rest, body)

    def _answer(self, method: str, authorization: str, deployment_id: str, rest: str, body: bytes) -> Response:
        started = time.perf_counter()
        deployer = self.store.get(DEPLOYER_KIND, deployment_id)
        if deployer is None:
            return _error(404, f"no deployment {deployment_id!r}")
        refused = self._refuse(deployer, authorization)
        if refused is not None:
            return refused
        route = self.supervisor.route(deployment_id)
        if route is None or not any(m.ports for m in route.models):
            status = self.store.get(STATUS_KIND, deployment_id) or {}
            return _error(503, f"deployment {deployment_id!r} is not serving: it is {status.get('state', 'UNKNOWN')} "
                               f"({status.get('message', '')}); wait until it is HEALTHY", **{"Retry-After": "1"})
        with self._rng_lock:
            model = self.supervisor.pick_model(route, self.rng)
        if not model.ports:
            return _error(503, f"the scorers of model {model.experiment_id!r} are restarting; try again shortly",
                          **{"Retry-After": "1"})
        if rest != "model/score":
            answer = self._forward(method, self.supervisor.pick_port(model), rest, body)
            return self._relay(answer, answer.data, started)
        # Bodies are relayed as bytes: only a request with options is parsed here, and the answer
        # only when its field names are to be dropped. Monitoring parses them later, off this path.
        options = _json(body) if any(o in body for o in _OPTIONS) else {}
        hide_fields = bool(options and options.get("noFieldNamesInOutput"))
        if hide_fields:
            # Monitoring needs the output names: the scorer is asked for them, the caller is not given them.
            body = json.dumps({k: v for k, v in options.items() if k != "noFieldNamesInOutput"}).encode()
        copied = _copied(options)
        port = self.supervisor.pick_port(model)
        answer = self._forward(method, port, rest, body)
        latency = (time.perf_counter() - started) * 1000
        record_later(self.store, partial(self._record, deployer, model.experiment_id, latency, answer.status,
                                         answer.data, port, body, copied))
        if route.mode == "shadow" and len(route.models) > 1 and route.models[1].ports:
            self.shadows.submit(self._shadow, deployer, route, body, copied)
        data = answer.data
        response = _json(data) if hide_fields and 200 <= answer.status < 300 else None
        if response is not None:
            data = json.dumps({k: v for k, v in response.items() if k != "fields"}).encode()
        return self._relay(answer, data, started)

    @staticmethod
    def _relay(answer: Any, data: bytes, started: float) -> Response:
        latency = (time.perf_counter() - started) * 1000
        timing = answer.headers.get("server-timing", "")
        headers = {"Server-Timing": ", ".join(t for t in (timing, f"gateway;dur={latency:.3f}") if t)}
        return Response(data, status_code=answer.status, headers=headers,
                        media_type=answer.headers.get("content-type", "application/json"))

    def _refuse(self, deployer: dict[str, Any], authorization: str) -> Response | None:
        """None when the request may score: a deployment with a passphrase and token authentication
        (the workspaces face allows both entries) takes either."""
        kind, hashed, token_auth = security_of(deployer)
        if not hashed and not token_auth:
            return None
        scheme, _, credential = authorization.partition(" ")
        credential = credential.strip() if scheme.lower() == "bearer" else ""
        challenge = {"WWW-Authenticate": "Bearer"}
        wanted = " or ".join(w for w, on in (("<passphrase>", hashed), ("<access token>", token_auth)) if on)
        if not credential:
            return _error(401, f"this deployment is protected: send 'Authorization: Bearer {wanted}'"
                               + (" (an access token from the sandbox's token endpoint)" if token_auth else ""),
                          **challenge)
        if hashed:
            matches = (_bcrypt_matches(credential, hashed) if kind == "PASSPHRASE_HASH_TYPE_BCRYPT"
                       else hmac.compare_digest(credential.encode(), hashed.encode()))
            if matches:
                return None
            if not token_auth:
                return _error(401, "wrong passphrase for this deployment", **challenge)
        try:
            claims = self.idp.verify_access_token(credential)
        except InvalidToken as e:
            said = "neither its passphrase nor a valid access token" if hashed else f"access token rejected ({e})"
            return _error(401, f"{said}; get a new access token from the token endpoint", **challenge)
        if not self._may_read_project(str(claims.get("sub", "")), deployer.get("projectId", "")):
            return _error(403, "this access token's user may not read the deployment's project; ask its "
                               "owner to share the project with you")
        return None

    def _may_read_project(self, subject: str, project_id: str) -> bool:
        with self.store.reading() as db:
            account = db.execute("SELECT user_id FROM user_account WHERE idp_id = ?", (subject,)).fetchone()
        project = self.store.get("project", project_id)
        return account is not None and project is not None and user_role(self.store, account["user_id"],
                                                                          project) is not None

    def _forward(self, method: str, port: int, rest: str, body: bytes) -> Any:
        secret = self.supervisor.secret_of(port)
        deadline = self.supervisor.score_deadline
        if not secret:  # the scorer stopped being ready since the route was read
            return _unavailable("the scorer is restarting; try again shortly")
        try:
            return self.http.request(method, f"http://127.0.0.1:{port}/{rest}", body=body or None,
                                     headers={"Content-Type": "application/json", SECRET_HEADER: secret},
                                     timeout=urllib3.Timeout(connect=2.0, read=deadline))
        except urllib3.exceptions.ReadTimeoutError:
            self.supervisor.unresponsive(port, secret, f"did not answer {rest} within {deadline:g} s")
            return urllib3.HTTPResponse(body=json.dumps({"message": f"the model did not answer within {deadline:g} s "
                                                                    "(the scoring deadline); its scorer is being "
                                                                    "replaced, try again shortly"}).encode(),
                                        status=504, headers={"content-type": "application/json"})
        except urllib3.exceptions.HTTPError as e:
            # The scorer died between the route and the request; the supervisor restarts it. Refused
            # before the request went out, it is 503 (try again); lost after, 502 (it may have been scored).
            status = 503 if isinstance(e, urllib3.exceptions.ConnectTimeoutError) else 502
            return _unavailable(f"the scorer did not answer ({e}); try again shortly", status)

    def _record(self, deployer: dict[str, Any], experiment_id: str, latency: float, status: int, data: bytes,
                port: int, body: bytes, copied: int) -> None:
        response = _json(data) if 200 <= status < 300 else None
        if response is not None:
            rows = len(response.get("score", []))
            scored = (Scored(body, data, rows, self._model_inputs(port), copied)
                      if deployer.get("monitor", {}).get("enable") else None)
            record_scoring(self.store, deployer["id"], experiment_id, latency_ms=latency, status=status,
                           rows=rows, scored=scored)
            return
        request = _json(body) or {}
        rows = request.get("rows")
        record_scoring(self.store, deployer["id"], experiment_id, latency_ms=latency, status=status,
                       rows=len(rows) if isinstance(rows, list) else 0,
                       error=(_json(data) or {}).get("message", ""))

    def _shadow(self, deployer: dict[str, Any], route: ScorerRoute, body: bytes, copied: int) -> None:
        shadow = route.models[1]
        started = time.perf_counter()
        port = self.supervisor.pick_port(shadow)
        answer = self._forward("POST", port, "model/score", body)
        self._record(deployer, shadow.experiment_id, (time.perf_counter() - started) * 1000, answer.status,
                     answer.data, port, body, copied)

    def _model_inputs(self, port: int) -> list[str] | None:
        """The input fields of the model a scorer serves (asked once per scorer process)."""
        scorer = self.supervisor.secret_of(port)
        if scorer not in self._inputs:
            schema = _json(self._forward("GET", port, "model/schema", b"").data) or {}
            fields = schema.get("schema", {}).get("inputFields")
            if len(self._inputs) >= 1024:  # scorers come and go; forget the oldest
                del self._inputs[next(iter(self._inputs))]
            self._inputs[scorer] = [f.get("name") for f in fields] if isinstance(fields, list) and fields else None
        return self._inputs[scorer]


_OPTIONS = (b"noFieldNamesInOutput", b"includeFieldsInOutput", b"idField")


def _copied(options: Any) -> int:
    """How many leading output columns the scorer copies from the input, by the request's options."""
    if not isinstance(options, dict):
        return 0
    include = options.get("includeFieldsInOutput")
    return (len(include) if isinstance(include, list) else 0) + (1 if options.get("idField") else 0)


def _unavailable(message: str, status: int = 503) -> Any:
    return urllib3.HTTPResponse(body=json.dumps({"message": message}).encode(), status=status,
                                headers={"content-type": "application/json"})


async def read_at_most(request: Request, limit: int) -> bytes | None:
    """The request's body, or None as soon as it is known to be larger than ``limit`` bytes: from its
    declared length before reading, else while reading (so an oversized body is never held whole)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _json(data: bytes) -> Any:
    try:
        value = json.loads(data or b"null")
    except (ValueError, RecursionError):  # a body nested too deeply is as unreadable as a malformed one
        return None
    return value if isinstance(value, dict) else None
