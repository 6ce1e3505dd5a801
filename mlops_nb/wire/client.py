"""``Client``: ``client.<server>.<entity>.<method>(request)`` for every method of the API.

The server and entity classes are built once, at import, from the API
description: one class per server (``StorageClient``, ...) and one per gRPC
service (``StorageProjectService``, ...), each method a thin function over
:meth:`Client._call` with its own signature and docstring.
"""

from __future__ import annotations

import base64
import difflib
import inspect
import json
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, BinaryIO

from mlops_nb.api import API, Method, Service
from mlops_nb.wire.messages import Message, format_timestamp, message_class

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
                                    else max_connections)
        for server in API.servers:
            setattr(self, server, server_class(server)(self))

    @property
    def gateway_url(self) -> str:
        return self._transport.gateway_url

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
        return type(self)(self.gateway_url, self.token_provider, timeout=timeout, retry=retry,
                          verify=verify is not False, ca_bundle=verify if isinstance(verify, str) else None,
                          proxies=self._transport.proxies or None, max_connections=2)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(gateway_url={self.gateway_url!r})"

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(API.servers))

    # -- the one place every call goes through -------------------------------------------------

    def _call(self, method: Method, request: Message | None, path_params: dict[str, Any],
              query: list[tuple[str, str]]) -> Any:
        rpc = method.qualified_name
        body = request.to_wire() if request is not None else ({} if method.verb == "POST" else None)
        if method.streaming:
            stream = self._transport.stream_json(method.verb, method.full_path, rpc=rpc, json_body=body,
                                                 path_params=path_params, query=query,
                                                 read_only=method.read_only)
            return self._stream_result(method, stream)
        payload = self._transport.call_json(method.verb, method.full_path, rpc=rpc, json_body=body,
                                            path_params=path_params, query=query, read_only=method.read_only)
        return self._result(method, payload)

    def _result(self, method: Method, payload: dict[str, Any]) -> Any:
        """Turn a response's JSON into what the caller gets (the notebook layer overrides this).

        Empty responses (``google.protobuf.Empty``) come back as ``None``.
        """
        if method.response_message is None:
            return None
        return message_class(method.response_message).from_wire(payload)

    def _stream_result(self, method: Method, stream: Iterator[dict[str, Any]]) -> Iterator[Message]:
        cls = message_class(method.response)
        return (cls.from_wire(item) for item in stream)


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
        raise _no_such(self, f"the {self.server} server", "entity", name, self._entities)


class EntityClient:
    """One gRPC service: its methods are this object's methods."""

    service: Service

    def __init__(self, client: Client) -> None:
        self._client = client

    def __repr__(self) -> str:
        names = ", ".join(m.python for m in self.service.methods)
        return f"<{self.service.server}.{self.service.entity} ({self.service.proto}): {names}>"

    def __dir__(self) -> list[str]:
        return sorted({m.python for m in self.service.methods} | set(type(self).__dict__) - {"service"}
                      - {n for n in type(self).__dict__ if n.startswith("_")})

    def __getattr__(self, name: str) -> Any:  # only for names that are not there
        raise _no_such(self, f"{self.service.server}.{self.service.entity} ({type(self).__name__})", "method", name,
                       self.__dir__())


def _no_such(holder: object, where: str, kind: str, name: str, choices: Iterable[str]) -> AttributeError:
    """The error for a name ``holder`` lacks, naming the nearest of its ``choices`` when one is near."""
    if name.startswith("_"):  # protocol probes (_repr_html_, __deepcopy__, ...): no advice wanted
        return AttributeError(f"{type(holder).__name__!r} object has no attribute {name!r}", name=name, obj=holder)
    choices = list(choices)
    near = difflib.get_close_matches(name, choices, n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(near)}?" if near else f"; it has {', '.join(choices)}"
    return AttributeError(f"{where} has no {kind} {name!r}{hint}", name=name, obj=holder)


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
    cls = message_class(method.request_message)
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
    head = f"{method.rpc}: {method.verb} {method.full_path}"
    if method.verb == "POST" and method.request_message is None:
        body = "Takes no request: it sends ``{}``."
    elif method.request_message:
        fields = message_class(method.request_message).fields()
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
            for f in message_class(method.request_message).fields()
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


_ENTITY_CLASSES: dict[tuple[str, str], type[EntityClient]] = {}
_SERVER_CLASSES: dict[str, type[ServerClient]] = {}


def entity_class(server: str, entity: str) -> type[EntityClient]:
    return _ENTITY_CLASSES[(server, entity)]


def server_class(server: str) -> type[ServerClient]:
    return _SERVER_CLASSES[server]


def _build() -> None:
    for service in API.services:
        namespace: dict[str, Any] = {"service": service, "__module__": __name__}
        # "StorageProjectService", not "StorageProject": that is the entity's message class.
        name = _class_name(service.server, service.entity.removesuffix("_service"), "service")
        namespace["__qualname__"] = name
        namespace["__doc__"] = f"``{service.server}.{service.entity}``: the {service.proto} service."
        for method in service.methods:
            fn = _make_post(method) if method.verb == "POST" else _make_get(method)
            fn.__name__ = method.python
            fn.__qualname__ = f"{name}.{method.python}"
            fn.__doc__ = _method_doc(method)
            fn.__module__ = __name__
            namespace[method.python] = fn
        if (service.server, service.entity) == ("storage", "artifact"):
            namespace["upload_artifact"] = upload_artifact
            namespace["download_artifact"] = download_artifact
        if (service.server, service.entity) == ("bytestream", "bytestream"):
            namespace["upload_file"] = upload_file
            namespace["download_file"] = download_file
        cls = type(name, (EntityClient,), namespace)
        _ENTITY_CLASSES[(service.server, service.entity)] = cls
        setattr(_MODULE, name, cls)
    for server in API.servers:
        entities = {s.entity: _ENTITY_CLASSES[(s.server, s.entity)] for s in API.services_of(server)}
        if server == "storage":
            # The legacy client reaches ByteStream as ``storage.bytestream``.
            entities["bytestream"] = _ENTITY_CLASSES[("bytestream", "bytestream")]
        name = _class_name(server, "client")
        cls = type(name, (ServerClient,), {"server": server, "_entities": entities, "__module__": __name__,
                                           "__qualname__": name,
                                           "__doc__": f"The ``{server}`` server: {', '.join(entities)}."})
        _SERVER_CLASSES[server] = cls
        setattr(_MODULE, name, cls)


_build()
