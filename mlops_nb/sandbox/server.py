"""The sandbox's HTTP server: the gateway routes of both API descriptions and the identity provider.

Every method of the served faces (``faces``: the legacy API, the workspaces API of MLOps 1.0
and later, or both; see :mod:`mlops_nb.sandbox.faces`) is routed at its real path. Each call is
authenticated (bearer access token from the sandbox's own OpenID provider),
decoded (legacy: into its request message by the wire layer; workspaces: into one wire-JSON
dict of path parameters, query parameters and body, see :mod:`mlops_nb.sandbox.rpc`), handed to
the registered handler (``mlops_nb.sandbox.services``) and answered in the gateway's JSON; a
method without a handler answers 501 UNIMPLEMENTED. A face not served answers 404. Every error, an unknown path or a
wrong verb included, is an RpcStatus JSON body; bodies nested deeper than protobuf's
JSON parser allows (100 levels) or larger than gRPC's default message limit (4 MiB)
are INVALID_ARGUMENT.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route

from mlops_nb.api import API, Method, Param, description
from mlops_nb.sandbox import services
from mlops_nb.sandbox.discovery import discovery_routes
from mlops_nb.sandbox.faces import (
    AUTHZ_ROOT,
    EXTRA_QUERY,
    FACES,
    Match,
    TemplateRouter,
    check_faces,
    legacy_twin,
    served_path,
    shared_with_workspaces,
    workspaces_only,
)
from mlops_nb.sandbox.faults import FaultInjector
from mlops_nb.sandbox.identity import IdentityProvider, InvalidToken
from mlops_nb.sandbox.rpc import (
    HANDLERS,
    HANDLERS_BY_GENERATION,
    STREAM_HANDLERS,
    UNIMPLEMENTED_REASONS,
    WORKSPACES_HANDLERS,
    Call,
    RpcError,
    new_id,
    now,
    parse_json,
)
from mlops_nb.sandbox.runtime import Supervisor
from mlops_nb.sandbox.runtime.runtimes import MAX_UNPACKED_BYTES
from mlops_nb.sandbox.runtime.supervisor import LOAD_TIMEOUT, SCORE_DEADLINE
from mlops_nb.sandbox.scoring import ScoringGateway, read_at_most
from mlops_nb.sandbox.services import deployments, uploads
from mlops_nb.sandbox.store import Store, default_db_path
from mlops_nb.wire.errors import GRPC_TO_HTTP
from mlops_nb.wire.messages import Message, message_class, parse_timestamp

__all__ = ["Sandbox", "build_app", "parse_data", "rpc_status"]

log = logging.getLogger("mlops_nb.sandbox")


# gRPC's default limit on a received message.
MAX_BODY_BYTES = 4 * 1024 * 1024


def rpc_status(code: int, message: str, *, http_status: int | None = None,
               headers: dict[str, str] | None = None) -> JSONResponse:
    """An error answer as the gateway sends it: HTTP status from the gRPC code, RpcStatus body."""
    return JSONResponse({"code": code, "message": message, "details": []},
                        status_code=http_status or GRPC_TO_HTTP.get(code, 500), headers=headers)


async def _routing_error(request: Request, exc: Exception) -> Response:
    """Unknown paths and wrong verbs, as grpc-gateway answers them: RpcStatus bodies."""
    assert isinstance(exc, HTTPException)
    where = f"{request.method} {request.url.path}"
    if exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "another method")
        return rpc_status(12, f"{where}: this route takes {allowed}", http_status=405, headers=exc.headers)
    if exc.status_code == 404:
        return rpc_status(5, f"{where}: no such route; GET / lists the gateway's routes")
    return rpc_status(2, f"{where}: {exc.detail}", http_status=exc.status_code)


def parse_data(data: str) -> tuple[str, int]:
    """``demo``, ``empty`` or ``scale:N`` as (kind, N); N is 0 but for scale. Raises ValueError otherwise."""
    kind, _, count = data.partition(":") if isinstance(data, str) else ("", "", "")
    if kind in ("demo", "empty") and not count:
        return kind, 0
    if kind == "scale" and count.replace("_", "").isdigit() and int(count) > 0:
        return kind, int(count)
    raise ValueError(f"data must be 'demo', 'empty' or 'scale:N' (N projects and experiments of generated "
                     f"data, e.g. scale:100000), got {data!r}")


def implemented(method: Method) -> bool:
    """Whether the sandbox has a handler for ``method`` (of either generation; a workspaces
    method served by a legacy route is implemented when that legacy method is)."""
    twin = legacy_twin(method)
    if twin is not None:
        return twin.qualified_name in HANDLERS or twin.qualified_name in STREAM_HANDLERS
    return method.qualified_name in WORKSPACES_HANDLERS


def _rpc_label(method: Method) -> str:
    """How errors name a method: its gRPC name, or (REST) its verb and path."""
    if method.service.proto:
        return f"{method.service.proto}/{method.rpc}"
    return f"{method.verb} {served_path(method)}"


_VERBS = ["GET", "POST", "PATCH", "DELETE", "PUT"]


class Gateway:
    """Turns HTTP requests into handler calls."""

    def __init__(self, store: Store, idp: IdentityProvider, supervisor: Supervisor | None = None, *,
                 latency_ms: float = 0, faces: tuple[str, ...] = FACES) -> None:
        self.store = store
        self.idp = idp
        self.supervisor = supervisor
        self.base_url = ""
        # Added to every gateway call (not the identity provider's), as a remote gateway's round trip.
        self.latency_ms = latency_ms
        self.faces = check_faces(faces)
        self.serving = self.faces  # what is answered now (all_faces() opens both for a while)
        self.router = TemplateRouter(workspaces_only())
        # Legacy method -> the workspaces method served by its route.
        self._workspaces_twins = {twin.qualified_name: m for m in description("workspaces").methods
                                  if (twin := legacy_twin(m)) is not None}

    def routes(self) -> list[Route]:
        """Legacy routes at their paths, then one catch-all per root of the workspaces-only routes
        (matched by :attr:`router`), ``GET /me`` and the presigned URLs. A route of a face not
        served answers 404 (checked per request: :meth:`all_faces` opens every route for a while)."""
        shared = shared_with_workspaces()
        routes = [Route(m.full_path, self._gated(FACES if (m.verb, m.full_path) in shared else ("legacy",),
                                                 self._endpoint(m)), methods=[m.verb]) for m in API.methods]
        only = ("workspaces",)
        roots = sorted({_root(served_path(m)) for m in workspaces_only()})
        routes += [Route(root + "/{rest:path}", self._gated(only, self._workspaces), methods=_VERBS)
                   for root in roots]
        routes.append(Route("/me", self._gated(only, self._me), methods=["GET"]))
        routes.append(Route(uploads.PRESIGNED_PREFIX + "/{token}", self._gated(only, self._presigned),
                            methods=["GET", "PUT"]))
        return routes

    @contextmanager
    def all_faces(self) -> Iterator[None]:
        """Serve both faces inside the block (the sandbox seeds its data through the legacy API)."""
        self.serving = FACES
        try:
            yield
        finally:
            self.serving = self.faces

    def _gated(self, faces: tuple[str, ...], endpoint: Any) -> Any:
        """``endpoint`` while one of ``faces`` is served; otherwise NOT_FOUND saying which face it is."""

        async def gated(request: Request) -> Response:
            if any(f in self.serving for f in faces):
                return await endpoint(request)
            return rpc_status(5, f"{request.method} {request.url.path} belongs to the {faces[0]} API, which this "
                                 f"sandbox does not serve (it serves the {' and '.join(self.faces)} face); start "
                                 "it with faces=('legacy', 'workspaces') or `mlops-nb sandbox --faces "
                                 "legacy,workspaces`")

        gated.__name__ = getattr(endpoint, "__name__", "endpoint")
        return gated

    async def _presigned(self, request: Request) -> Response:
        """A presigned URL of the workspaces API's storage (its token is the credential; no bearer)."""
        if self.latency_ms:
            await asyncio.sleep(self.latency_ms / 1000)
        if request.method == "PUT":
            return await uploads.presigned_upload(self.store, request)
        return await uploads.presigned_download(self.store, request)

    def _endpoint(self, method: Method) -> Any:
        async def endpoint(request: Request) -> Response:
            return await self.dispatch(method, request)

        endpoint.__name__ = method.python
        return endpoint

    async def _workspaces(self, request: Request) -> Response:
        """A workspaces-only route: the template router finds the method, then :meth:`dispatch`."""
        try:
            found = self.router.match(request.method, request.url.path, WORKSPACES_HANDLERS)
        except ValueError as e:
            return rpc_status(5, f"{request.method} {request.url.path}: {e}")
        if isinstance(found, Match):
            return await self.dispatch(found.method, request, found.path_params)
        where = f"{request.method} {request.url.path}"
        if found:
            return rpc_status(12, f"{where}: this route takes {', '.join(found)}", http_status=405,
                              headers={"Allow": ", ".join(found)})
        return rpc_status(5, f"{where}: no such route; GET / lists the gateway's routes")

    async def _me(self, request: Request) -> Response:
        """Who the caller is, as MLOps 1.0 and later answer it: their user id in ``X-User-Id``."""

        async def answer(call: Call) -> Response:
            return JSONResponse({}, headers={"X-User-Id": call.user_id})

        return await self._answer(request, "GET /me", None, answer)

    async def dispatch(self, method: Method, request: Request, path_params: dict[str, str] | None = None) -> Response:
        """Authenticate, decode, run the handler of ``method`` (either generation) and answer.

        ``path_params``: a workspaces route's parameters by wire name (the template router's).
        """
        rpc = _rpc_label(method)
        generation = method.service.api.generation

        async def answer(call: Call) -> Response:
            stream_handler = STREAM_HANDLERS.get(method.qualified_name) if generation == "legacy" else None
            if stream_handler is not None:
                return await stream_handler(call, request)
            handler = HANDLERS_BY_GENERATION[generation].get(method.qualified_name)
            if handler is None:
                what = UNIMPLEMENTED_REASONS[generation].get(method.qualified_name)
                raise RpcError(12, f"the mlops_nb sandbox does not implement {what} ({rpc}, {method.qualified_name}); "
                                   "it works against a real MLOps gateway" if what else
                                   f"the mlops_nb sandbox does not implement {rpc} ({method.qualified_name}) yet; "
                                   "it works against a real MLOps gateway")
            if generation == "legacy":
                decoded = await self._decode(method, request)
            else:
                decoded = await _decode_workspaces(method, request, path_params or {})
            result = await run_in_threadpool(handler, call, decoded)
            return JSONResponse(_encode_response(method, result))

        return await self._answer(request, rpc, method, answer)

    async def _answer(self, request: Request, rpc: str, method: Method | None, answer: Any) -> Response:
        """What every gateway call shares: the latency, the caller's authentication and
        enrolment, and errors as RpcStatus bodies."""
        if self.latency_ms:
            await asyncio.sleep(self.latency_ms / 1000)
        try:
            claims = self._authenticate(request)
            user = await run_in_threadpool(self._enroll, claims)
            call = Call(store=self.store, user=user, claims=claims, method=method,  # type: ignore[arg-type]
                        base_url=self.base_url, supervisor=self.supervisor)
            return await answer(call)
        except RpcError as e:
            return rpc_status(e.code, e.message)
        except Exception:  # a bug in a handler must not take the server down or leak internals
            log.exception("sandbox handler for %s failed", rpc)
            return rpc_status(13, f"the sandbox failed while handling {rpc}; see the sandbox log")

    def _authenticate(self, request: Request) -> dict[str, Any]:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise RpcError(16, "missing bearer token: send 'Authorization: Bearer <access token>'")
        try:
            return self.idp.verify_access_token(token.strip())
        except InvalidToken as e:
            raise RpcError(16, f"access token rejected ({e}); get a new one from the token endpoint") from None

    def _enroll(self, claims: dict[str, Any]) -> dict[str, Any]:
        """The caller's StorageUser; the first call of a new identity creates it."""
        sub = str(claims.get("sub", ""))
        with self.store.transaction() as db:
            row = db.execute("SELECT user_id FROM user_account WHERE idp_id = ?", (sub,)).fetchone()
            if row is not None:
                user = self.store.get("user", row["user_id"])
                if user is not None:
                    return user
            username = str(claims.get("preferred_username") or sub)
            existing = db.execute(
                "SELECT data FROM entity WHERE kind = 'user' AND json_extract(data, '$.username') = ?", (username,)
            ).fetchone()
            if existing is not None:
                user = json.loads(existing["data"])
            else:
                user = {"id": new_id(), "username": username, "primaryEmail": str(claims.get("email", "")),
                        "createdTime": now(), "idpId": sub}
            user["idpId"] = sub
            self.store.put("user", user)
            db.execute("INSERT OR REPLACE INTO user_account (idp_id, user_id) VALUES (?, ?)", (sub, user["id"]))
            return user

    async def _decode(self, method: Method, request: Request) -> Any:
        if method.verb == "GET":
            values = dict(request.path_params)
            values.update(request.query_params)
            params = {p.wire: p for p in (*method.path_params, *method.query_params)}
            unknown = sorted(set(values) - set(params))
            if unknown:
                raise RpcError(3, f"{method.rpc} has no parameter {unknown[0]!r}; it takes {', '.join(params)}")
            return {params[k].name: _param(params[k], v) for k, v in values.items()}
        body = parse_json(await _bounded_body(request) or b"{}", "the request body")
        if not isinstance(body, dict):
            raise RpcError(3, f"the request body must be a JSON object, got {type(body).__name__}")
        if method.request_message is None:
            if body:
                raise RpcError(3, f"{method.rpc} takes an empty request, got fields {sorted(body)}")
            return None
        cls = message_class(method.request_message)
        try:
            decoded = cls.from_wire(body)
        except ValueError as e:
            raise RpcError(3, f"invalid request: {e}") from None
        # A storage route both faces share takes what the workspaces API's request adds too (the
        # handler finds those fields in ``unknown_fields``); anything else is refused.
        twin = self._workspaces_twins.get(method.qualified_name) if "workspaces" in self.serving else None
        _reject_unknown(decoded, cls.__name__, twin.request_message if twin is not None else None)
        return decoded


async def _decode_workspaces(method: Method, request: Request, path_params: dict[str, str]) -> dict[str, Any]:
    """A workspaces call's request as one wire-JSON dict: query parameters (typed; a repeated one
    as a list), the body (under the method's ``body_field``, or merged in for ``"*"``), then the
    path parameters (which win, as in grpc-gateway), all by wire name."""
    decoded: dict[str, Any] = {}
    raw = await _bounded_body(request) if method.verb in ("POST", "PATCH", "PUT") else b""
    if raw.strip():
        body = parse_json(raw, "the request body")
        if method.body_field is None:
            raise RpcError(3, f"{method.rpc} takes no request body")
        if method.body_field == "*":
            if not isinstance(body, dict):
                raise RpcError(3, f"the request body must be a JSON object, got {type(body).__name__}")
            decoded.update(body)
        else:
            decoded[method.body_field] = body
    params = {p.wire: p for p in (*method.query_params, *EXTRA_QUERY.get(method.qualified_name, ()))}
    for key, text in request.query_params.multi_items():
        param = params.get(key)
        if param is None:
            takes = ", ".join(params) or "no query parameters"
            raise RpcError(3, f"{method.rpc} has no query parameter {key!r}; it takes {takes}")
        value = _param(param, text)
        if param.repeated:
            decoded.setdefault(key, []).append(value)
        elif key in decoded:
            raise RpcError(3, f"query parameter {key!r} is given twice; {method.rpc} takes one value")
        else:
            decoded[key] = value
    decoded.update(path_params)
    return decoded


def _root(path: str) -> str:
    """The first two segments of a path (``/deployer/v2``): where a catch-all route starts."""
    return "/".join(path.split("/")[:3])


async def _bounded_body(request: Request) -> bytes:
    body = await read_at_most(request, MAX_BODY_BYTES)
    if body is None:
        raise RpcError(3, f"the request body is larger than {MAX_BODY_BYTES // (1024 * 1024)} MiB, "
                          "the most a gateway call takes; upload large data as an artifact")
    return body



def _param(param: Param, text: str) -> Any:
    """A path or query parameter as its declared type; INVALID_ARGUMENT when it is not one."""
    try:
        if param.type in ("int32", "int64"):
            return int(text)
        if param.type == "timestamp":
            return parse_timestamp(text)
        if param.type == "bool":
            return {"true": True, "false": False}[text.lower()]
    except (ValueError, KeyError):
        example = {"timestamp": "an RFC 3339 time, e.g. 2024-05-01T12:00:00Z", "bool": "true or false"}
        raise RpcError(3, f"parameter {param.wire} must be {example.get(param.type, 'an integer')}, "
                          f"got {text!r}") from None
    return text


def _reject_unknown(message: Message, path: str, newer: str | None = None) -> None:
    """grpc-gateway refuses fields the proto does not have; so does the sandbox, naming them.

    ``newer``: the workspaces API's message of the same place, whose extra fields are accepted.
    """
    newer_fields = {f.json: f for f in description("workspaces").messages.get(newer or "", ())}
    unknown = sorted(set(message.unknown_fields) - set(newer_fields))
    if unknown:
        raise RpcError(3, f"invalid request: {path} has no field {unknown[0]!r}")
    specs = {f.name: f for f in message.fields()}
    for name in message.to_dict():
        inner = getattr(message, name)
        newer_field = newer_fields.get(specs[name].json)
        for item in inner if isinstance(inner, list) else [inner]:
            if isinstance(item, Message):
                _reject_unknown(item, f"{path}.{name}", newer_field.type if newer_field is not None else None)


def _encode_response(method: Method, result: Any) -> dict[str, Any]:
    if result is None:
        return {}
    if method.response_message is None:
        return result.to_wire() if isinstance(result, Message) else dict(result)
    # Round-trip through the response class (of the method's generation): a handler cannot send
    # what the API does not define.
    cls = message_class(method.response_message, generation=method.service.api.generation)
    message = result if isinstance(result, Message) else cls.from_wire(result)
    # Lists and maps go out even when empty, at every level, as the gateway sends them: the
    # legacy client reads a missing list as None, and the official high-level client
    # iterates an experiment's ``tag`` or a metadata map's ``values`` without a check.
    return message.to_wire(empty_collections=True)


def _route_rows(faces: tuple[str, ...]) -> list[dict[str, Any]]:
    """One row per route: the legacy routes (with the faces that use each), then the workspaces-only ones."""
    shared = shared_with_workspaces()
    rows = []
    for m in API.methods:
        route_faces = ["legacy", "workspaces"] if (m.verb, m.full_path) in shared else ["legacy"]
        rows.append({"verb": m.verb, "path": m.full_path, "method": m.qualified_name, "faces": route_faces,
                     "served": any(f in faces for f in route_faces), "implemented": implemented(m)})
    for m in workspaces_only():
        rows.append({"verb": m.verb, "path": served_path(m), "method": m.qualified_name, "faces": ["workspaces"],
                     "served": "workspaces" in faces, "implemented": implemented(m)})
    return rows


def _index_page(faces: tuple[str, ...]) -> Any:
    rows = _route_rows(faces)

    def state(r: dict[str, Any]) -> str:
        return "no (404: face not served)" if not r["served"] else "yes" if r["implemented"] else "no (501)"

    body = "".join(
        f"<tr><td>{r['verb']}</td><td><code>{html.escape(r['path'])}</code></td>"
        f"<td>{html.escape(r['method'])}</td><td>{', '.join(r['faces'])}</td><td>{state(r)}</td></tr>"
        for r in rows
    )
    done = sum(r["implemented"] and r["served"] for r in rows)
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>mlops_nb sandbox gateway</title>"
        "<style>body{font-family:sans-serif;margin:2em}td,th{padding:2px 8px;text-align:left}"
        "tr:nth-child(even){background:#8881}</style></head><body>"
        f"<h1>mlops_nb sandbox gateway</h1><p>Faces served: {', '.join(faces)}. {len(rows)} routes, {done} "
        "served and implemented by the sandbox; the others answer 501 UNIMPLEMENTED (or 404 when their "
        "face is not served). The workspaces API's authz routes are below <code>/authz</code>.</p>"
        "<table><tr><th>verb</th><th>path</th><th>client method</th><th>faces</th><th>implemented</th></tr>"
        f"{body}</table></body></html>"
    )

    def index(request: Request) -> Response:
        if "application/json" in request.headers.get("accept", ""):
            return JSONResponse({"faces": list(faces), "routes": rows})
        return HTMLResponse(page)

    return index


def build_app(store: Store, idp: IdentityProvider, supervisor: Supervisor | None = None, *,
              latency_ms: float = 0, faces: tuple[str, ...] = FACES,
              ) -> tuple[Starlette, Gateway, ScoringGateway | None]:
    """The sandbox's web app: the route index, the identity provider, discovery, the gateway of
    the served faces and, with a supervisor, the deployments' scoring URLs."""
    gateway = Gateway(store, idp, supervisor, latency_ms=latency_ms, faces=faces)
    scoring = ScoringGateway(store, idp, supervisor) if supervisor is not None else None
    routes = [Route("/", _index_page(gateway.faces), methods=["GET"]), Mount(idp.mount_path, routes=idp.routes()),
              *discovery_routes(idp, gateway.faces), *gateway.routes(),
              *(scoring.routes() if scoring is not None else []),
              *(scoring.root_routes() if scoring is not None else [])]  # last: they match any first segment
    handlers = {404: _routing_error, 405: _routing_error}
    return Starlette(routes=routes, exception_handlers=handlers), gateway, scoring  # type: ignore[arg-type]


class DeploymentStates(dict[str, str]):
    """``{deployment id: state}``, shown as how many deployments are in each state."""

    def __repr__(self) -> str:
        counts = Counter(self.values())
        if not counts:
            return "no deployments"
        return "deployments: " + ", ".join(f"{count} {state}" for state, count in sorted(counts.items()))


class Sandbox:
    """A running sandbox: gateway, identity provider and store, served on one port.

    Use :func:`mlops_nb.sandbox.start` or ``with Sandbox(...) as sb:``; ``sb.client("alice")``
    gives a ready client for a demo user.

    ``faults`` (0 to 1) fails that share of API calls the ways a flaky network does, with
    ``fault_seed`` for a repeatable sequence (see :mod:`mlops_nb.sandbox.faults`;
    ``sb.faults.injected`` counts them). ``tls_cert`` and ``tls_key`` (PEM files) serve
    HTTPS; the sandbox's own clients trust ``tls_ca`` (default: the certificate file, which
    may carry its chain). ``faces`` says which APIs it answers: ``"legacy"`` (projects, the
    API of ``h2o-mlops`` 1.0), ``"workspaces"`` (MLOps 1.0 and later, ``h2o-mlops`` 1.4+, with its
    authz gateway at :attr:`authz_gateway_url`), or both (the default), over one store: a
    workspace is a project. ``score_deadline`` (seconds, default 60) is how long a scoring
    request may take before its scorer counts as stuck and is replaced; ``model_load_timeout``
    (seconds, default 300) how long a scorer may take to load its model before the deployment
    is FAILED; ``max_unpacked_bytes`` (default 2 GiB) the most an artifact may unpack to. ``durable=True`` makes each acknowledged write survive an OS crash
    or power loss too, not only the sandbox process dying (SQLite ``synchronous=FULL``).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        db: str | Path | None = None,
        data: str = "demo",
        token_ttl: int = 300,
        revoke_refresh_token_on_use: bool = False,
        device_poll_interval: int = 5,
        realm: str = "mlops",
        warm_scorers: int = 1,
        latency_ms: float = 0,
        faults: float = 0.0,
        fault_seed: int | None = None,
        tls_cert: str | Path | None = None,
        tls_key: str | Path | None = None,
        tls_ca: str | Path | None = None,
        durable: bool = False,
        score_deadline: float = SCORE_DEADLINE,
        model_load_timeout: float = LOAD_TIMEOUT,
        max_unpacked_bytes: int = MAX_UNPACKED_BYTES,
        faces: tuple[str, ...] | str = FACES,
    ) -> None:
        parse_data(data)  # a bad value fails here, before anything starts
        if latency_ms < 0:
            raise ValueError(f"latency_ms must be 0 or more milliseconds, got {latency_ms!r}")
        if (tls_cert is None) != (tls_key is None):
            raise ValueError("serving HTTPS needs both tls_cert and tls_key (PEM files)")
        for name, path in (("tls_cert", tls_cert), ("tls_key", tls_key), ("tls_ca", tls_ca)):
            if path is not None and not Path(path).is_file():
                raise ValueError(f"{name} names {str(path)!r}, which is not a file")
        self.faces = check_faces(faces)
        self.host = host
        self.port = port
        self.db = str(db) if db is not None else str(default_db_path())
        self.data = data
        self.token_ttl = token_ttl
        self.revoke_refresh_token_on_use = revoke_refresh_token_on_use
        self.device_poll_interval = device_poll_interval
        self.realm = realm
        self.warm_scorers = warm_scorers
        self.score_deadline = score_deadline
        self.model_load_timeout = model_load_timeout
        self.max_unpacked_bytes = max_unpacked_bytes
        self.latency_ms = latency_ms
        self.fault_rate = faults
        self.fault_seed = fault_seed
        self.faults: FaultInjector | None = None
        self.tls_cert = str(tls_cert) if tls_cert is not None else None
        self.tls_key = str(tls_key) if tls_key is not None else None
        self.tls_ca = str(tls_ca) if tls_ca is not None else self.tls_cert
        self.durable = durable
        self.store: Store | None = None
        self.idp: IdentityProvider | None = None
        self.supervisor: Supervisor | None = None
        self._scoring: ScoringGateway | None = None
        self._scratch: tempfile.TemporaryDirectory | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.gateway_url = ""

    # -- lifecycle -------------------------------------------------------------------------

    def start(self, timeout: float = 20.0) -> Sandbox:
        if self._server is not None:
            return self
        self.store = Store(self.db, services.migrations(), durable=self.durable)
        self.idp = IdentityProvider(
            self.db, realm=self.realm, access_token_ttl=self.token_ttl,
            revoke_refresh_token_on_use=self.revoke_refresh_token_on_use,
            device_poll_interval=self.device_poll_interval,
        )
        self.supervisor = Supervisor(self._deployments_dir(), deployments.StoreEvents(self.store),
                                     deployments.supervisor_artifacts(self.store), warm_spares=self.warm_scorers,
                                     score_deadline=self.score_deadline, load_timeout=self.model_load_timeout,
                                     max_unpacked_bytes=self.max_unpacked_bytes)
        app, gateway, self._scoring = build_app(self.store, self.idp, self.supervisor, latency_ms=self.latency_ms,
                                                faces=self.faces)
        if self.fault_rate:
            app = self.faults = FaultInjector(app, self.fault_rate, self.fault_seed)  # type: ignore[assignment]
        # A keep-alive longer than any poll interval: uvicorn's default (5 s) equals the device
        # grant's default interval, so a poll could race the server closing its connection.
        config = uvicorn.Config(app, host=self.host, port=self.port, log_level="warning", lifespan="off",
                                timeout_keep_alive=75,
                                access_log=False, ssl_certfile=self.tls_cert, ssl_keyfile=self.tls_key)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name=f"mlops-nb-sandbox-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self._server = None
                raise RuntimeError(f"the sandbox could not start on {self.host}:{self.port} "
                                   "(is the port in use? use port=0 for a free one)")
            time.sleep(0.01)
        bound_port = self._server.servers[0].sockets[0].getsockname()[1]
        self.port = bound_port
        scheme = "https" if self.tls_cert else "http"
        self.gateway_url = f"{scheme}://{_url_host(self.host)}:{bound_port}"
        gateway.base_url = self.gateway_url
        self.idp.set_base_url(self.gateway_url)
        self.supervisor.start()
        deployments.restore(self.store, self.supervisor)
        kind, count = parse_data(self.data)
        with gateway.all_faces():  # seeding speaks the legacy API, whatever faces are served
            if kind == "demo":
                from mlops_nb.sandbox.demo import seed_demo_data

                seed_demo_data(self)
            elif kind == "scale":
                from mlops_nb.sandbox.scale import seed_scale_data

                seed_scale_data(self, count)
        if self.faults is not None:
            self.faults.active = True
        return self

    def _deployments_dir(self) -> Path:
        """Where the deployments' unpacked models live: beside the database, or a scratch folder."""
        if self.db == ":memory:":
            self._scratch = tempfile.TemporaryDirectory(prefix="mlops-nb-deployments-")
            return Path(self._scratch.name)
        return Path(self.db + ".deployments")

    def stop(self) -> None:
        if self._server is None:
            return
        if self.supervisor is not None:
            self.supervisor.shutdown()
        if self._scoring is not None:
            self._scoring.close()
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = None
        if self.idp is not None:
            self.idp.close()
        if self.store is not None:
            self.store.close()
        if self._scratch is not None:
            self._scratch.cleanup()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._server is not None

    def __repr__(self) -> str:
        state = f"running at {self.gateway_url}" if self.running else "stopped"
        return f"<mlops_nb sandbox {state}, db={self.db!r}>"

    def wait_for_deployments(self, timeout: float = 180.0) -> DeploymentStates:
        """Wait until no deployment is still starting or stopping (PREPARING, LAUNCHING, TERMINATING).

        Returns ``{deployment id: state}`` (shown as a count per state). The demo's scorers take a
        few seconds to load after :meth:`start`; raises ``TimeoutError``, naming what still starts,
        after ``timeout`` seconds.
        """
        store = self._idp() and self.store
        assert store is not None
        deadline = time.monotonic() + timeout
        while True:
            with store.reading() as db:
                states = {r["id"]: json.loads(r["data"]).get("state", "") for r in db.execute(
                    "SELECT id, data FROM entity WHERE kind = 'deployment_status'")}
            starting = {i: s for i, s in states.items() if s in ("PREPARING", "LAUNCHING", "TERMINATING")}
            if not starting:
                return DeploymentStates(states)
            if time.monotonic() > deadline:
                raise TimeoutError(f"deployments still starting after {timeout:.0f} s: "
                                   + ", ".join(f"{i} ({s})" for i, s in starting.items()))
            time.sleep(0.1)

    # -- what a user needs to connect -----------------------------------------------------------

    def _idp(self) -> IdentityProvider:
        if self.idp is None or not self.running:
            raise RuntimeError("the sandbox is not running; call start() first")
        return self.idp

    @property
    def issuer(self) -> str:
        return self._idp().issuer

    @property
    def token_endpoint(self) -> str:
        return self._idp().token_endpoint

    @property
    def client_id(self) -> str:
        return self._idp().default_client_id

    def refresh_token(self, username: str = "alice") -> str:
        """A new refresh token for a sandbox account (demo users: alice, bob)."""
        return self._idp().issue_refresh_token(username)

    def token_provider(self, username: str = "alice", **kwargs: Any) -> Any:
        """A ``TokenProvider`` for ``username`` (keywords go to it; over HTTPS it trusts ``tls_ca``)."""
        from mlops_nb.wire.auth import TokenProvider

        kwargs.setdefault("ca_bundle", self.tls_ca)
        return TokenProvider(self.refresh_token(username), self.client_id, self.token_endpoint, **kwargs)

    @property
    def authz_gateway_url(self) -> str:
        """The workspaces API's authz gateway (workspaces, users): the gateway URL + ``/authz``."""
        self._idp()
        return self.gateway_url + AUTHZ_ROOT

    def client(self, username: str = "alice", generation: str | None = None, **kwargs: Any) -> Any:
        """A ready ``mlops_nb.Client`` logged in as ``username`` (keywords go to the client).

        ``generation`` (``"legacy"`` or ``"workspaces"``) forces the API the client speaks (with
        the workspaces one it also gets :attr:`authz_gateway_url`); by default the client finds it.
        """
        import mlops_nb

        kwargs.setdefault("ca_bundle", self.tls_ca)
        if generation is not None:
            kwargs["generation"] = generation
            if generation == "workspaces":
                kwargs.setdefault("authz_gateway_url", self.authz_gateway_url)
        return mlops_nb.Client(self.gateway_url, self.token_provider(username), **kwargs)

    def connection_constants(self, username: str = "alice") -> dict[str, str]:
        """The four constants of the seed's ``connection.py``."""
        return {
            "H2O_MLOPS_GATEWAY": self.gateway_url,
            "TOKEN_ENDPOINT": self.token_endpoint,
            "REFRESH_TOKEN": self.refresh_token(username),
            "CLIENT_ID": self.client_id,
        }


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host
