"""``Client``: ``client.<server>.<entity>.<method>(...)`` for every method of the API it speaks.

A client speaks one generation of the API (:mod:`mlops_nb.wire.detect` finds which, on first
use, unless it is given). Each generation's server and entity classes are built once from its
description: one class per server (``StorageClient``, ...) and one per service
(``StorageProjectService``, ...), each method a thin function over :meth:`Client._call` with its
own signature and docstring. The legacy classes are built at import and are attributes of this
module; the workspaces ones are built with the first workspaces client, as attributes of
:mod:`mlops_nb.wire.workspaces`.

How a method is called follows its description:

* RPC style (the legacy generation, and workspaces storage): one request message, positionally,
  as ``body=``, or as its fields by keyword (``list_projects(page_size=10)``).
* REST style, legacy GETs: path parameters positionally or by keyword, query parameters by keyword.
* REST style, workspaces: path parameters (positionally, in the template's order, or by keyword),
  query parameters by keyword (a repeated one takes a list), and the body: for ``body_field ==
  "*"`` the request's fields by keyword (or ``body=`` a whole request), otherwise one keyword
  named after the body field (``deployment=``) taking the message or a dict. A template naming a
  field of the body (``{deployment.name}``) is filled from its keyword (``deployment_name=``) or,
  when that is not given, from that field of the body.
"""

from __future__ import annotations

import base64
import difflib
import inspect
import json
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, BinaryIO

from mlops_nb.api import API, GENERATIONS, ApiDescription, Method, Service, description
from mlops_nb.wire.messages import (
    GENERATION_MODULES,
    Message,
    field_annotation,
    format_timestamp,
    message_class,
)

if TYPE_CHECKING:
    from mlops_nb.wire.retry import RetryPolicy

__all__ = ["Client", "EntityClient", "ServerClient", "entity_class", "server_class"]

_MODULE = sys.modules[__name__]
DEFAULT_CHUNK_SIZE = 32 * 1024


class Client:
    """A connection to one MLOps gateway.

    ``token_provider`` is anything callable that returns an access token: an
    :class:`mlops_nb.TokenProvider`, or your own function. Calls follow the
    legacy client: ``client.storage.project.list_projects(request)``.

    ``generation`` is the generation of the API the server speaks: ``"legacy"`` (MLOps 0.66-0.70,
    projects) or ``"workspaces"`` (MLOps 1.0 and later). Left ``None``, the client finds it on
    first use (one or two read-only probes, see :mod:`mlops_nb.wire.detect`) and keeps it; a server
    that speaks both is spoken to as legacy. ``authz_gateway_url`` is the workspaces generation's
    second gateway (workspaces and users; ``client.authz``); :meth:`from_discovery` finds it.

    ``timeout`` is in seconds per HTTP attempt (or a ``(connect, read)`` pair).

    ``retry`` says when a call is sent again: a :class:`~mlops_nb.wire.retry.RetryPolicy`,
    ``True`` for the default one (read-only calls retried on 429/502/503/504 and lost
    connections, with backoff, jitter and ``Retry-After``, within 30 s per call) or
    ``False`` for none. Writes are sent again only when the connection could not be
    made; a write whose answer was lost raises ``WriteOutcomeUnknown``.

    ``verify=False`` turns TLS verification off (with a warning, once); ``ca_bundle``
    names a PEM file of certificate authorities to trust, for the gateway and, when it
    has none of its own, the token provider (``MLOPS_AUTH_CA_FILE_OVERRIDE`` and
    ``REQUESTS_CA_BUNDLE`` are read when it is not given). ``proxies`` (``{"https":
    "http://proxy:3128"}``) wins over the ``HTTP(S)_PROXY`` variables, which apply
    otherwise. ``max_connections``: connections kept open to the gateway, at least the
    number of threads calling at once (default: ``transport.DEFAULT_MAX_CONNECTIONS``, 32).
    """

    def __init__(
        self,
        gateway_url: str,
        token_provider: Callable[[], str],
        *,
        generation: str | None = None,
        authz_gateway_url: str | None = None,
        timeout: float | tuple[float, float] | None = 60.0,
        verify: bool = True,
        ca_bundle: str | None = None,
        proxies: dict[str, str] | None = None,
        retry: RetryPolicy | bool | None = True,
        max_connections: int | None = None,
    ) -> None:
        # requests loads with the first client, not with the package (mlops_nb's import stays quick).
        from mlops_nb.wire.transport import DEFAULT_MAX_CONNECTIONS, Transport

        self._transport = Transport(gateway_url, token_provider, timeout=timeout, verify=verify,
                                    ca_bundle=ca_bundle, proxies=proxies, retry=retry,
                                    max_connections=DEFAULT_MAX_CONNECTIONS if max_connections is None
                                    else max_connections, authz_gateway_url=authz_gateway_url)
        self._generation: str | None = None
        self._generation_lock = threading.Lock()
        self._settle(None, generation)

    @classmethod
    def from_discovery(
        cls,
        environment_url: str | None = None,
        *,
        token_provider: Callable[[], str] | None = None,
        refresh_token: str | None = None,
        generation: str | None = None,
        verify: bool = True,
        ca_bundle: str | None = None,
        proxies: dict[str, str] | None = None,
        **options: Any,
    ) -> Client:
        """Connect to the MLOps of an H2O AI Cloud environment (``https://cloud.example.com``) as
        ``h2o_mlops.Client(h2o_cloud_url=...)`` does: its discovery documents name the MLOps gateway
        (``mlops-api``), the authz gateway (``authz-gateway``), the ``platform`` OAuth client and the
        identity provider.

        ``token_provider`` is used as it is; without one, a :class:`~mlops_nb.TokenProvider` is made from
        ``refresh_token`` (or ``H2O_CLOUD_CLIENT_PLATFORM_TOKEN``, as the official client reads) for the
        ``platform`` client at the discovered issuer. The client speaks the workspaces generation when
        discovery lists the authz gateway; otherwise it finds its generation on first use, unless
        ``generation`` is given. ``environment_url`` left out: ``H2O_CLOUD_DISCOVERY`` or
        ``H2O_CLOUD_ENVIRONMENT``. Other keywords (``timeout``, ``retry``, ...) go to the client.
        """
        import os

        from mlops_nb.wire.discovery import discover_cloud
        from mlops_nb.wire.errors import DiscoveryError

        found = discover_cloud(environment_url, verify=verify, ca_bundle=ca_bundle, proxies=proxies)
        gateway_url = found.gateway_url
        if not gateway_url:
            raise DiscoveryError(f"{found.discovery_url}/v1/services lists no MLOps API (mlops-api) service; "
                                 f"it lists {', '.join(sorted(found.services)) or 'none'}. Is MLOps installed "
                                 "in this environment?")
        if token_provider is None:
            from mlops_nb.wire.auth import TokenProvider

            refresh_token = refresh_token or os.environ.get("H2O_CLOUD_CLIENT_PLATFORM_TOKEN")
            if not refresh_token:
                raise ValueError("from_discovery needs a token_provider, or refresh_token= (the platform token from "
                                 "your H2O AI Cloud CLI and API access page; H2O_CLOUD_CLIENT_PLATFORM_TOKEN is read "
                                 "when it is not given)")
            client_id = found.platform_client_id
            if not client_id:
                raise DiscoveryError(f"{found.discovery_url}/v1/clients lists no platform client, whose refresh "
                                     "token signs in; pass token_provider= instead")
            token_provider = TokenProvider.from_issuer(found.issuer_url, refresh_token, client_id, verify=verify,
                                                       ca_bundle=ca_bundle, proxies=proxies)
        client = cls(gateway_url, token_provider, verify=verify, ca_bundle=ca_bundle, proxies=proxies, **options)
        client._settle(found.authz_gateway_url, generation or ("workspaces" if found.authz_gateway_url else None))
        return client

    # -- who is calling ----------------------------------------------------------------------

    def user_id(self) -> str:
        """The caller's user id: storage's ``WhoAmI`` (legacy), or the ``X-User-Id`` header of the
        workspaces generation's ``GET /me`` (as ``h2o-mlops`` 1.6 asks it)."""
        if self.generation == "legacy":
            return self.storage.user.who_am_i().user.id
        identity = self.api.identity or {}
        verb, path, header = identity.get("verb", "GET"), identity.get("path", "/me"), identity.get("header", "X-User-Id")
        response = self._transport.request(verb, path, rpc=f"identity ({verb} {path})", read_only=True,
                                           generation=self.generation)
        response.close()
        user_id = response.headers.get(header)
        if not user_id:
            from mlops_nb.wire.errors import GatewayError

            raise GatewayError(f"{verb} {self.gateway_url}{path} answered without the {header} header that names "
                               "the caller", http_status=response.status_code, rpc=f"identity ({verb} {path})")
        return user_id

    def who_am_i(self) -> Message:
        """The caller, as the server knows them: storage's ``WhoAmI`` answer (legacy), or the authz
        gateway's user (``authz.user.get_user(name="users/<id>")``, workspaces). Both have ``.user``."""
        if self.generation == "legacy":
            return self.storage.user.who_am_i()
        then = (self.api.identity or {}).get("then", "authz.user.get_user")
        server, entity, method = then.split(".")
        return getattr(getattr(getattr(self, server), entity), method)(name=f"users/{self.user_id()}")

    # -- the generation ----------------------------------------------------------------------

    @property
    def generation(self) -> str:
        """``"legacy"`` or ``"workspaces"``: given, or found on first use (and then kept)."""
        if self._generation is None:
            with self._generation_lock:
                if self._generation is None:
                    from mlops_nb.wire.detect import detect_generation

                    self._use_generation(detect_generation(self._transport))
        return self._generation  # type: ignore[return-value]

    @property
    def api(self) -> ApiDescription:
        """The description of the API this client speaks (``mlops_nb.api.description(client.generation)``)."""
        return description(self.generation)

    def _use_generation(self, generation: str) -> None:
        if generation not in GENERATIONS:
            raise ValueError(f"generation must be one of {', '.join(map(repr, GENERATIONS))} or None (find it), "
                             f"got {generation!r}")
        for server in description(generation).servers:
            self.__dict__[server] = server_class(server, generation)(self)
        self._generation = generation

    def _settle(self, authz_gateway_url: str | None, generation: str | None) -> None:
        """Set the authz gateway and the generation when known. ``with_options`` and ``from_discovery``
        call it after construction, so that subclasses need not take these arguments."""
        if authz_gateway_url:
            from mlops_nb.wire.transport import validate_gateway_url

            self._transport.authz_gateway_url = validate_gateway_url(authz_gateway_url, "authz_gateway_url")
        if generation is not None:
            self._use_generation(generation)

    @property
    def gateway_url(self) -> str:
        return self._transport.gateway_url

    @property
    def authz_gateway_url(self) -> str | None:
        """The workspaces generation's authz gateway (workspaces, users), when known."""
        return self._transport.authz_gateway_url

    @property
    def token_provider(self) -> Callable[[], str]:
        return self._transport.token_provider

    @property
    def retry(self) -> RetryPolicy:
        """The retry policy of this client's calls."""
        return self._transport.retry

    def close(self) -> None:
        """Close the pooled HTTP connections."""
        self._transport.close()

    def with_options(self, *, timeout: float | tuple[float, float] | None,
                     retry: RetryPolicy | bool | None) -> Client:
        """A new client of this one's gateway, token provider, TLS trust and proxies with another
        ``timeout`` and ``retry``, for calls that must give up sooner (close it when done)."""
        verify = self._transport.verify
        other = type(self)(self.gateway_url, self.token_provider, timeout=timeout, retry=retry,
                           verify=verify is not False, ca_bundle=verify if isinstance(verify, str) else None,
                           proxies=self._transport.proxies or None, max_connections=2)
        other._settle(self._transport.authz_gateway_url, self._generation)
        return other

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        # What is known, without asking the gateway (a repr sends nothing).
        known = f", generation={self._generation!r}" if self._generation else ""
        authz = f", authz_gateway_url={self.authz_gateway_url!r}" if self.authz_gateway_url else ""
        return f"{type(self).__name__}(gateway_url={self.gateway_url!r}{known}{authz})"

    def __dir__(self) -> list[str]:
        # Before the generation is known, every generation's servers (dir() sends nothing).
        servers = description(self._generation).servers if self._generation else SERVER_NAMES
        return sorted(set(super().__dir__()) | set(servers))

    # -- the one place every call goes through -------------------------------------------------

    def _call(self, method: Method, request: Message | None, path_params: dict[str, Any],
              query: list[tuple[str, str]]) -> Any:
        """Send one call of ``method``: ``request`` is the body's message (``None``: ``{}`` for a verb
        that carries a body, nothing otherwise), ``path_params`` by wire name, ``query`` in order."""
        api = method.service.api
        rpc = method.qualified_name
        has_body = method.verb == "POST" or method.body_field is not None
        body = request.to_wire() if request is not None else ({} if has_body else None)
        send = dict(rpc=rpc, json_body=body, path_params=path_params, query=query, read_only=method.read_only,
                    gateway=api.gateways.get(method.service.server, "mlops"), generation=api.generation)
        if method.streaming:
            return self._stream_result(method, self._transport.stream_json(method.verb, method.full_path, **send))
        return self._result(method, self._transport.call_json(method.verb, method.full_path, **send))

    def _result(self, method: Method, payload: dict[str, Any]) -> Any:
        """Turn a response's JSON into what the caller gets (the notebook layer overrides this).

        ``method.service.api.generation`` tells which generation ``method`` is of. Empty responses
        (``google.protobuf.Empty``) come back as ``None``.
        """
        if method.response_message is None:
            return None
        return message_class(method.response_message, method.service.api.generation).from_wire(payload)

    def _stream_result(self, method: Method, stream: Iterator[dict[str, Any]]) -> Iterator[Message]:
        cls = message_class(method.response, method.service.api.generation)
        return (cls.from_wire(item) for item in stream)


# Every generation's server names (a test checks them against the descriptions): each is an attribute
# of every client, so that ``client.storage`` works before the generation is known (reading the
# workspaces description at import would slow ``import mlops_nb`` down).
SERVER_NAMES = ("storage", "deployer", "ingest", "model_monitoring", "bytestream",  # legacy
                "batch", "monitoring", "runtime", "authz")  # workspaces (with storage, deployer)


class _Server:
    """``client.<server>`` before the client's generation is known: finding it sets the generation's
    servers on the client, which then shadow this. A plain descriptor rather than ``__getattr__``, so
    that IPython's completion (whose default policy refuses objects with a ``__getattr__``) still
    evaluates ``client.storage``."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, client: Client | None, owner: type) -> Any:
        if client is None:
            return self
        generation = client.generation  # finds it, which sets its servers
        found = client.__dict__.get(self.name)
        if found is None:
            raise AttributeError(f"the {generation} generation of the API has no {self.name!r} server; it has "
                                 f"{', '.join(description(generation).servers)}", name=self.name, obj=client)
        return found


def _add_servers(cls: type[Client]) -> None:
    for name in SERVER_NAMES:
        setattr(cls, name, _Server(name))


_add_servers(Client)


class ServerClient:
    """One of the gateway's servers (``storage``, ``deployer``, ...): its entities are attributes."""

    server: str = ""
    _entities: dict[str, type[EntityClient]] = {}

    def __init__(self, client: Client) -> None:
        self._client = client
        for name, cls in self._entities.items():
            setattr(self, name, cls(client))

    def __repr__(self) -> str:
        return f"<{self.server} server of {self._client!r}: {', '.join(self._entities)}>"

    def __dir__(self) -> list[str]:
        return sorted(self._entities)

    def __getattr__(self, name: str) -> Any:  # only for names that are not there
        raise _no_such(self, f"the {self.server} server", "entity", name, self._entities,
                       lambda: _elsewhere(self._client.generation, lambda api: any(
                           s.server == self.server and s.entity == name for s in api.services)))


class EntityClient:
    """One gRPC service: its methods are this object's methods."""

    service: Service

    def __init__(self, client: Client) -> None:
        self._client = client

    def __repr__(self) -> str:
        names = ", ".join(m.python for m in self.service.methods)
        return f"<{self.service.server}.{self.service.entity} ({self.service.proto or self.service.name}): {names}>"

    def __dir__(self) -> list[str]:
        return sorted({m.python for m in self.service.methods} | set(type(self).__dict__) - {"service"}
                      - {n for n in type(self).__dict__ if n.startswith("_")})

    def __getattr__(self, name: str) -> Any:  # only for names that are not there
        qualified = f"{self.service.server}.{self.service.entity}.{name}"
        raise _no_such(self, f"{self.service.server}.{self.service.entity} ({type(self).__name__})", "method", name,
                       self.__dir__(), lambda: _elsewhere(self.service.api.generation,
                                                          lambda api: qualified in {m.qualified_name for m in api.methods}))


def _elsewhere(generation: str, has: Callable[[ApiDescription], bool]) -> str:
    """Which other generation has what this one lacks (for the error), or nothing."""
    others = [g for g in GENERATIONS if g != generation and has(description(g))]
    return (f" (the {others[0]} generation of the API has it; this client speaks the {generation} one)"
            if others else "")


def _no_such(holder: object, where: str, kind: str, name: str, choices: Iterable[str],
             elsewhere: Callable[[], str] = lambda: "") -> AttributeError:
    """The error for a name ``holder`` lacks, naming the nearest of its ``choices`` when one is near
    (and ``elsewhere``: where else it is)."""
    if name.startswith("_"):  # protocol probes (_repr_html_, __deepcopy__, ...): no advice wanted
        return AttributeError(f"{type(holder).__name__!r} object has no attribute {name!r}", name=name, obj=holder)
    choices = list(choices)
    near = difflib.get_close_matches(name, choices, n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(near)}?" if near else f"; it has {', '.join(choices)}"
    return AttributeError(f"{where} has no {kind} {name!r}{hint}{elsewhere()}", name=name, obj=holder)


# -- request coercion ------------------------------------------------------------------------


def _request_message(method: Method, request: Any, body: Any, fields: dict[str, Any]) -> Message | None:
    given = [x for x in (request, body) if x is not None]
    if len(given) > 1:
        raise TypeError(f"{method.qualified_name}: pass the request once, positionally or as body=, not both")
    value = given[0] if given else None
    if method.request_message is None:
        # An empty request (google.protobuf.Empty): ``{}`` is sent whatever the caller passed.
        if fields or (value is not None and value != {} and not (isinstance(value, Message) and not value.to_wire())):
            raise TypeError(f"{method.qualified_name} takes no request fields (its request is empty)")
        return None
    cls = message_class(method.request_message, method.service.api.generation)
    if value is None:
        return cls(**fields)
    if fields:
        raise TypeError(
            f"{method.qualified_name}: pass either a request ({cls.__name__} or dict) or keyword fields, not both"
        )
    if isinstance(value, cls):
        return value
    if isinstance(value, Message):
        raise TypeError(
            f"{method.qualified_name} takes a {cls.__name__}, got a {type(value).__name__}"
        )
    if isinstance(value, Mapping):
        return cls(**dict(value))
    raise TypeError(
        f"{method.qualified_name} takes a {cls.__name__}, a dict or keyword fields; got {type(value).__name__}"
    )


def _param_value(value: Any, type_name: str) -> str:
    from datetime import datetime

    if type_name == "timestamp" and isinstance(value, datetime):
        return format_timestamp(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# -- building the classes ----------------------------------------------------------------------


def _method_doc(method: Method) -> str:
    gateway = method.service.api.gateways.get(method.service.server, "mlops")
    head = f"{method.rpc}: {method.verb} {method.full_path}" + (f" (on the {gateway} gateway)" if gateway != "mlops" else "")
    if _is_rpc_style(method) and method.request_message is None:
        body = "Takes no request: it sends ``{}``."
    elif not _is_rpc_style(method) and method.service.api.generation != "legacy":
        body = _rest_doc(method)
    elif method.request_message:
        fields = message_class(method.request_message, method.service.api.generation).fields()
        names = ", ".join(f.name for f in fields) or "(none)"
        body = (
            f"Takes a ``{method.request}`` (or a dict, or its fields as keywords: {names}).\n"
            f"Called with nothing, it sends ``{{}}``."
        )
    else:
        params = [p.name for p in method.path_params] + [p.name for p in method.query_params]
        body = f"Takes keyword arguments: {', '.join(params)} (path parameters may be positional)."
    if method.response_message is None:
        returns = "Returns None (the response is empty)."
    else:
        returns = f"Returns {'an iterator of ' if method.streaming else 'a '}``{method.response}``."
    return f"{head}\n\n{body}\n{returns}"


def _is_rpc_style(method: Method) -> bool:
    """A POST of one request message and no URL parameters (legacy, and workspaces storage)."""
    return (method.verb == "POST" and not method.path_params and not method.query_params
            and method.body_field in (None, "*"))


def _make_post(method: Method) -> Callable[..., Any]:
    def call(self: EntityClient, request: Any = None, /, *, body: Any = None, **fields: Any) -> Any:
        message = _request_message(method, request, body, fields)
        return self._client._call(method, message, {}, [])

    params = [
        inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY),
        inspect.Parameter("request", inspect.Parameter.POSITIONAL_ONLY, default=None,
                          annotation=f"{method.request} | dict | None"),
        inspect.Parameter("body", inspect.Parameter.KEYWORD_ONLY, default=None),
    ]
    if method.request_message:
        params += [
            inspect.Parameter(f.name if not f.name.startswith("_") else f.json, inspect.Parameter.KEYWORD_ONLY,
                              default=None)
            for f in message_class(method.request_message, method.service.api.generation).fields()
            if f.name not in ("body", "request")
        ]
    call.__signature__ = inspect.Signature(params, return_annotation=method.response)  # type: ignore[attr-defined]
    return call


def _make_get(method: Method) -> Callable[..., Any]:
    positional = [p.name for p in method.path_params]
    known = {p.name: p for p in (*method.path_params, *method.query_params)}

    def call(self: EntityClient, *args: Any, **kwargs: Any) -> Any:
        if len(args) > len(positional):
            raise TypeError(f"{method.qualified_name} takes at most {len(positional)} positional arguments")
        values = dict(zip(positional, args, strict=False))
        for name, value in kwargs.items():
            if name not in known:
                raise TypeError(
                    f"{method.qualified_name} has no parameter {name!r}; valid: {', '.join(known)}"
                )
            if name in values:
                raise TypeError(f"{method.qualified_name} got {name!r} twice")
            values[name] = value
        missing = [p for p in positional if values.get(p) in (None, "")]
        if missing:
            raise TypeError(f"{method.qualified_name} needs {', '.join(missing)}")
        path_params = {p.wire: values[p.name] for p in method.path_params}
        query = [(p.wire, _param_value(values[p.name], p.type))
                 for p in method.query_params if values.get(p.name) is not None]
        return self._client._call(method, None, path_params, query)

    params = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    params += [inspect.Parameter(p.name, inspect.Parameter.POSITIONAL_OR_KEYWORD) for p in method.path_params]
    params += [inspect.Parameter(p.name, inspect.Parameter.KEYWORD_ONLY, default=None)
               for p in method.query_params]
    call.__signature__ = inspect.Signature(params, return_annotation=method.response)  # type: ignore[attr-defined]
    return call


class _RestCall:
    """How a workspaces REST method's arguments become its path, query and body."""

    def __init__(self, method: Method) -> None:
        self.method = method
        generation = method.service.api.generation
        self.name = method.qualified_name
        self.path_params = method.path_params
        self.query_params = {p.name: p for p in method.query_params}
        self.body_field = method.body_field
        self.body_class = (message_class(method.request_message, generation) if method.request_message
                           and method.body_field else None)
        # The keywords the body takes: the request's fields ("*"), or one named after the body field.
        if self.body_class is None:
            self.body_keywords: tuple[str, ...] = ()
        elif self.body_field == "*":
            taken = {p.name for p in self.path_params} | set(self.query_params) | {"body"}
            self.body_keywords = tuple(f.name for f in self.body_class.fields() if f.name not in taken)
        else:
            self.body_keywords = (self.body_field,)  # type: ignore[assignment]
        # Fields of the body a path template names (``name`` of ``{deployment.name}``, also spelt
        # ``{runtimeImage.name}`` for the body field runtime_image), by wire name: path name -> field.
        self.from_body = {p.name: p.wire.split(".", 1)[1] for p in self.path_params
                          if "." in p.wire and self.body_field
                          and _lower_camel(p.wire.split(".", 1)[0]) == _lower_camel(self.body_field)}
        self.template_fields = set(self.from_body.values())

    def annotation(self, keyword: str) -> str:
        """What a keyword takes, for signatures (Shift-Tab)."""
        if keyword in self.query_params:
            return f"{field_annotation(self.query_params[keyword])} | None"
        if self.body_class is None:
            return "Any"
        if keyword == "body" or self.body_field != "*":
            return f"{self.body_class.__name__} | dict | None"
        field = next(f for f in self.body_class.fields() if f.name == keyword)
        return f"{field_annotation(field)} | None"

    def keywords(self) -> list[str]:
        return [p.name for p in self.path_params] + list(self.query_params) + list(self.body_keywords) + (
            ["body"] if self.body_class is not None and self.body_field == "*" else [])

    def __call__(self, client: Client, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        positional = [p.name for p in self.path_params]
        if len(args) > len(positional):
            raise TypeError(f"{self.name} takes at most {len(positional)} positional arguments "
                            f"({', '.join(positional) or 'none'}); pass the others by keyword")
        values = dict(zip(positional, args, strict=False))
        known = set(self.keywords())
        for name, value in kwargs.items():
            if name not in known:
                near = difflib.get_close_matches(name, known, n=2, cutoff=0.6)
                hint = f"; did you mean {' or '.join(near)}?" if near else "."
                raise TypeError(f"{self.name} has no parameter {name!r}{hint} Valid: {', '.join(self.keywords())}")
            if name in values:
                raise TypeError(f"{self.name} got {name!r} twice")
            values[name] = value
        body, body_wire = self._body(values)
        path_params = {}
        for p in self.path_params:
            value = values.get(p.name)
            if value in (None, "") and p.name in self.from_body:
                value = body_wire.get(self.from_body[p.name])
            if value in (None, ""):
                also = f" (or set {self.from_body[p.name]!r} in {self.body_field}=)" if p.name in self.from_body else ""
                raise TypeError(f"{self.name} needs {p.name}{also}")
            path_params[p.wire] = value
        query: list[tuple[str, str]] = []
        for name, p in self.query_params.items():
            value = values.get(name)
            if value is None:
                continue
            if p.repeated and not isinstance(value, (str, bytes)) and isinstance(value, Iterable):
                query += [(p.wire, _param_value(v, p.type)) for v in value]
            else:
                query.append((p.wire, _param_value(value, p.type)))
        return client._call(self.method, body, path_params, query)

    def _body(self, values: dict[str, Any]) -> tuple[Message | None, dict[str, Any]]:
        """The body's message, and the wire JSON it was made from (where a template's field is read)."""
        if self.body_class is None:
            return None, {}
        cls = self.body_class
        if self.body_field == "*":
            fields = {k: values[k] for k in self.body_keywords if values.get(k) is not None}
            whole = values.get("body")
            if whole is not None and fields:
                raise TypeError(f"{self.name}: pass either body= or the request's fields by keyword, not both")
            if whole is None:
                message = cls(**fields)
                return message, message.to_wire()
            value = whole
        else:
            value = values.get(self.body_field)
            if value is None:
                return cls(), {}
        if isinstance(value, cls):
            return value, value.to_wire()
        if isinstance(value, Message):
            # Another message of the same entity (a V2Deployment as an update's body): by its JSON,
            # fields the body's message does not have kept as unknown ones.
            wire = value.to_wire()
            return cls.from_wire(wire), wire
        if isinstance(value, Mapping):
            wire = {_lower_camel(k): v for k, v in value.items()}
            known = {f.name for f in cls.fields()} | {f.json for f in cls.fields()}
            # A template's field the body's message lacks (``name`` of ``{deployment.name}``): read, not sent.
            # Any other unknown key is the message's to refuse.
            read_only = {k for k in value if k not in known and _lower_camel(k) in self.template_fields}
            return cls(**{k: v for k, v in value.items() if k not in read_only}), wire
        raise TypeError(f"{self.name}: {self.body_field if self.body_field != '*' else 'body'} takes a "
                        f"{cls.__name__} or a dict, got {type(value).__name__}")


def _lower_camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def _make_rest(method: Method) -> Callable[..., Any]:
    rest = _RestCall(method)

    def call(self: EntityClient, *args: Any, **kwargs: Any) -> Any:
        return rest(self._client, args, kwargs)

    params = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    # A template's field of the body (``{deployment.name}``) may come from the body instead: optional.
    params += [inspect.Parameter(p.name, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                 **({"default": None, "annotation": "str | None"} if p.name in rest.from_body
                                    else {"annotation": "str"}))
               for p in method.path_params]
    params += [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=rest.annotation(name))
               for name in rest.keywords()[len(method.path_params):]]
    call.__signature__ = inspect.Signature(params, return_annotation=method.response)  # type: ignore[attr-defined]
    return call


def _rest_doc(method: Method) -> str:
    rest = _RestCall(method)
    lines = []
    if method.path_params:
        lines.append("Path: " + ", ".join(p.name + (f" (``{{{p.wire}}}``)" if p.wire != p.name else "")
                                          for p in method.path_params) + " (positional or by keyword).")
    if method.query_params:
        lines.append("Query: " + ", ".join(p.name + (" (a list)" if p.repeated else "") for p in method.query_params)
                     + " (by keyword).")
    if rest.body_class is not None and method.body_field == "*":
        lines.append(f"Body: a ``{method.request}``: its fields by keyword ({', '.join(rest.body_keywords)}), "
                     "or the whole of it as body=.")
    elif rest.body_class is not None:
        lines.append(f"Body: {method.body_field}= a ``{method.request}`` or a dict.")
    elif method.body_field:
        lines.append("Body: none to give; it sends ``{}``.")
    return "\n".join(lines) or "Takes no arguments."


def _class_name(*parts: str) -> str:
    return "".join(p[:1].upper() + p[1:] for part in parts for p in part.split("_"))


# Streamed artifact upload and download, added to the storage artifact entity.


def upload_artifact(self: EntityClient, artifact_id: str, file: BinaryIO, *, chunk_size: int = DEFAULT_CHUNK_SIZE,
                    progress: Callable[[int], None] | None = None) -> Message:
    """Upload ``file`` (opened in binary mode) as the artifact's blob, streamed in chunks.

    ``progress`` is called with the number of bytes sent so far after each chunk.
    Returns the ByteStream ``BytestreamWriteResponse`` (``committed_size``).
    """
    if not artifact_id:
        raise ValueError("upload_artifact needs the artifact's id (create it with create_artifact first)")
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    method = API.method("bytestream.bytestream.write")

    def lines() -> Iterator[bytes]:
        # Same framing as the legacy client: data messages, then one closing message with
        # ``finishWrite`` and the final offset.
        offset = 0
        while chunk := file.read(chunk_size):
            if isinstance(chunk, str):
                raise TypeError("upload_artifact needs a file opened in binary mode ('rb')")
            yield _ndjson({"resourceName": artifact_id, "writeOffset": offset,
                           "data": base64.b64encode(chunk).decode("ascii")})
            offset += len(chunk)
            if progress:
                progress(offset)
        yield _ndjson({"resourceName": artifact_id, "writeOffset": offset, "finishWrite": True})

    payload = self._client._transport.call_json(method.verb, method.full_path, rpc="storage.artifact.upload_artifact",
                                                data=lines())
    return message_class(method.response).from_wire(payload)


def _ndjson(message: dict[str, Any]) -> bytes:
    return (json.dumps(message) + "\n").encode()


def download_artifact(self: EntityClient, artifact_id: str, file: BinaryIO, *,
                      progress: Callable[[int], None] | None = None) -> int:
    """Stream the artifact's blob into ``file`` (opened for binary writing); returns the byte count.

    ``progress`` is called with the number of bytes received so far after each chunk.
    """
    method = API.method("bytestream.bytestream.read")
    written = 0
    for message in self._client._transport.stream_json(method.verb, method.full_path,
                                                       rpc="storage.artifact.download_artifact",
                                                       read_only=method.read_only,
                                                       json_body={"resourceName": artifact_id}):
        data = base64.b64decode(message.get("data", ""))
        file.write(data)
        written += len(data)
        if progress:
            progress(written)
    return written



def upload_file(self: EntityClient, resource_name: str, file: BinaryIO, *, chunk_size: int = 32 * 1024) -> Message:
    """``storage.bytestream.upload_file``, as the legacy client names it: :func:`upload_artifact`."""
    return upload_artifact(self, resource_name, file, chunk_size=chunk_size)


def download_file(self: EntityClient, resource_name: str, file: BinaryIO) -> None:
    """``storage.bytestream.download_file``, as the legacy client names it: :func:`download_artifact`."""
    download_artifact(self, resource_name, file)


# Per generation: (server, entity) -> entity class, and server -> server class.
_ENTITY_CLASSES: dict[str, dict[tuple[str, str], type[EntityClient]]] = {}
_SERVER_CLASSES: dict[str, dict[str, type[ServerClient]]] = {}
_BUILD_LOCK = threading.Lock()


def _built(generation: str) -> None:
    if generation not in _SERVER_CLASSES:
        with _BUILD_LOCK:
            if generation not in _SERVER_CLASSES:
                _build(description(generation))


def entity_class(server: str, entity: str, generation: str = "legacy") -> type[EntityClient]:
    _built(generation)
    return _ENTITY_CLASSES[generation][(server, entity)]


def server_class(server: str, generation: str = "legacy") -> type[ServerClient]:
    _built(generation)
    return _SERVER_CLASSES[generation][server]


def _build(api: ApiDescription) -> None:
    """Build ``api``'s server and entity classes: the legacy ones as attributes of this module, the
    others as attributes of their generation's module (beside its message classes)."""
    generation = api.generation
    if generation == "legacy":
        module = _MODULE
    else:
        message_class(next(iter(api.messages)), generation)  # imports that module, building its messages
        module = sys.modules[GENERATION_MODULES[generation]]
    entity_classes: dict[tuple[str, str], type[EntityClient]] = {}
    for service in api.services:
        namespace: dict[str, Any] = {"service": service, "__module__": module.__name__}
        # "StorageProjectService", not "StorageProject": that is the entity's message class.
        name = _class_name(service.server, service.entity.removesuffix("_service"), "service")
        namespace["__qualname__"] = name
        namespace["__doc__"] = f"``{service.server}.{service.entity}``: the {service.proto or service.name} service."
        for method in service.methods:
            if _is_rpc_style(method):
                fn = _make_post(method)
            elif generation == "legacy":
                fn = _make_get(method)
            else:
                fn = _make_rest(method)
            fn.__name__ = method.python
            fn.__qualname__ = f"{name}.{method.python}"
            fn.__doc__ = _method_doc(method)
            fn.__module__ = module.__name__
            namespace[method.python] = fn
        if generation == "legacy" and (service.server, service.entity) == ("storage", "artifact"):
            namespace["upload_artifact"] = upload_artifact
            namespace["download_artifact"] = download_artifact
        if generation == "legacy" and (service.server, service.entity) == ("bytestream", "bytestream"):
            namespace["upload_file"] = upload_file
            namespace["download_file"] = download_file
        cls = type(name, (EntityClient,), namespace)
        entity_classes[(service.server, service.entity)] = cls
        setattr(module, name, cls)
    server_classes: dict[str, type[ServerClient]] = {}
    for server in api.servers:
        entities = {s.entity: entity_classes[(s.server, s.entity)] for s in api.services_of(server)}
        if generation == "legacy" and server == "storage":
            # The legacy client reaches ByteStream as ``storage.bytestream``.
            entities["bytestream"] = entity_classes[("bytestream", "bytestream")]
        name = _class_name(server, "client")
        cls = type(name, (ServerClient,), {"server": server, "_entities": entities, "__module__": module.__name__,
                                           "__qualname__": name,
                                           "__doc__": f"The ``{server}`` server: {', '.join(entities)}."})
        server_classes[server] = cls
        setattr(module, name, cls)
    _ENTITY_CLASSES[generation] = entity_classes
    _SERVER_CLASSES[generation] = server_classes


_build(API)
