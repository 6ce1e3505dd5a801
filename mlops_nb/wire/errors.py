"""The package's exceptions.

::

    MLOpsError                      anything this package raises about the platform
    ├── ApiError                    the gateway answered with an error (RpcStatus)
    │   ├── Cancelled               gRPC 1
    │   ├── Unknown                 gRPC 2
    │   ├── InvalidArgument         gRPC 3   (HTTP 400)
    │   ├── DeadlineExceeded        gRPC 4   (HTTP 504)
    │   ├── NotFound                gRPC 5   (HTTP 404)
    │   ├── AlreadyExists           gRPC 6   (HTTP 409)
    │   ├── PermissionDenied        gRPC 7   (HTTP 403)
    │   ├── ResourceExhausted       gRPC 8   (HTTP 429)
    │   ├── FailedPrecondition      gRPC 9   (HTTP 400)
    │   ├── Aborted                 gRPC 10  (HTTP 409)
    │   ├── OutOfRange              gRPC 11  (HTTP 400)
    │   ├── Unimplemented           gRPC 12  (HTTP 501)
    │   ├── Internal                gRPC 13  (HTTP 500)
    │   ├── Unavailable             gRPC 14  (HTTP 503)
    │   ├── DataLoss                gRPC 15  (HTTP 500)
    │   └── Unauthenticated         gRPC 16  (HTTP 401)
    ├── GatewayError                the gateway's answer was not an RpcStatus (a proxy's HTML 502, ...)
    ├── ConnectionFailed            the gateway or identity provider could not be reached or timed out
    │   └── WriteOutcomeUnknown     a write was sent but its answer was lost: it may have been applied
    └── AuthenticationError         the identity provider refused to issue a token

    InsecureTLSWarning              (a warning) TLS certificate checking was turned off

Every class is defined here at module level, so errors pickle and can be caught
by name. Messages never contain access or refresh tokens.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "MLOpsError",
    "ApiError",
    "GatewayError",
    "GenerationUnknown",
    "DiscoveryError",
    "ConnectionFailed",
    "WriteOutcomeUnknown",
    "AuthenticationError",
    "InsecureTLSWarning",
    "Cancelled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
    "error_for_status",
    "GRPC_TO_HTTP",
]


class MLOpsError(Exception):
    """Base of every error this package raises about the platform."""


class ApiError(MLOpsError):
    """The gateway answered a call with a gRPC error status.

    Attributes: ``code`` (gRPC code number), ``code_name`` (e.g. ``NOT_FOUND``),
    ``message`` (the server's words), ``details`` (the RpcStatus details list),
    ``rpc`` (``server.entity.method``) and ``http_status``.
    """

    code: int = 2
    code_name: str = "UNKNOWN"

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        details: list[Any] | None = None,
        rpc: str | None = None,
        http_status: int | None = None,
    ) -> None:
        if code is not None:
            self.code = code
        self.message = message
        self.details = list(details or [])
        self.rpc = rpc
        self.http_status = http_status
        super().__init__(message)

    def __str__(self) -> str:
        where = f" in {self.rpc}" if self.rpc else ""
        return f"{self.code_name}{where}: {self.message}"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_api_error, (type(self), self.message, self.code, self.details, self.rpc, self.http_status))


def _rebuild_api_error(cls: type[ApiError], message: str, code: int, details: list, rpc: str | None,
                       http_status: int | None) -> ApiError:
    return cls(message, code=code, details=details, rpc=rpc, http_status=http_status)


class GatewayError(MLOpsError):
    """The gateway (or a proxy in front of it) answered with something that is not an API error body."""

    def __init__(self, message: str, *, http_status: int | None = None, rpc: str | None = None) -> None:
        self.http_status = http_status
        self.rpc = rpc
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_gateway_error, (str(self), self.http_status, self.rpc, type(self)))


def _rebuild_gateway_error(message: str, http_status: int | None, rpc: str | None,
                           cls: type[GatewayError] = GatewayError) -> GatewayError:
    return cls(message, http_status=http_status, rpc=rpc)


class GenerationUnknown(GatewayError):
    """The gateway answered neither generation's probe (:mod:`mlops_nb.wire.detect`): most likely it is
    not an MLOps API gateway; give the right URL, or the generation."""


class DiscoveryError(MLOpsError):
    """An H2O AI Cloud environment's discovery documents are missing, malformed, or lack what MLOps needs."""


class ConnectionFailed(MLOpsError):
    """A server could not be reached, refused the TLS handshake, or did not answer in time."""


class WriteOutcomeUnknown(ConnectionFailed):
    """A call that changes something was sent, but its answer never came (the connection dropped, or
    the gateway did not answer in time): the change may or may not have been applied.

    The client does not send it again by itself, since a second create or update could apply
    it twice. Look first (the message names the read calls to use, ``check_with``), then
    send it again if it is not there. ``rpc`` is the call (``server.entity.method``).
    """

    def __init__(self, message: str, *, rpc: str | None = None, check_with: tuple[str, ...] = ()) -> None:
        self.rpc = rpc
        self.check_with = tuple(check_with)
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_outcome_unknown, (str(self), self.rpc, self.check_with))


def _rebuild_outcome_unknown(message: str, rpc: str | None, check_with: tuple[str, ...]) -> WriteOutcomeUnknown:
    return WriteOutcomeUnknown(message, rpc=rpc, check_with=check_with)


class InsecureTLSWarning(UserWarning):
    """A client or token provider was made with ``verify=False``: certificates are not checked.

    Shown once per server per process (urllib3's per-request warning for that host is
    silenced then, so a notebook is not flooded).
    """


class AuthenticationError(MLOpsError):
    """The identity provider would not issue a token (expired or revoked refresh token, wrong client, ...).

    ``error`` is the RFC 6749 error code (``invalid_grant``, ``invalid_client``, ...) when the
    provider sent one; ``description`` what the provider said about it, when that says more
    than the code (``"The refresh token is not a well-formed token"``).
    """

    def __init__(self, message: str, *, error: str | None = None, description: str | None = None) -> None:
        self.error = error
        self.description = description
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_auth_error, (str(self), self.error, self.description))


def _rebuild_auth_error(message: str, error: str | None, description: str | None = None) -> AuthenticationError:
    return AuthenticationError(message, error=error, description=description)


GRPC_TO_HTTP = {
    0: 200, 1: 499, 2: 500, 3: 400, 4: 504, 5: 404, 6: 409, 7: 403, 8: 429,
    9: 400, 10: 409, 11: 400, 12: 501, 13: 500, 14: 503, 15: 500, 16: 401,
}

_BY_CODE: dict[int, type[ApiError]] = {}


def _define(name: str, code: int, code_name: str, doc: str) -> type[ApiError]:
    cls = type(name, (ApiError,), {"code": code, "code_name": code_name, "__doc__": doc, "__module__": __name__})
    _BY_CODE[code] = cls
    return cls


# Written out (not looped) so that each name is a plain module attribute that linters and IDEs see.
Cancelled = _define("Cancelled", 1, "CANCELLED", "The call was cancelled.")
Unknown = _define("Unknown", 2, "UNKNOWN", "The server failed in a way it did not classify.")
InvalidArgument = _define("InvalidArgument", 3, "INVALID_ARGUMENT", "The request was malformed or a field was invalid.")
DeadlineExceeded = _define("DeadlineExceeded", 4, "DEADLINE_EXCEEDED", "The server ran out of time.")
NotFound = _define("NotFound", 5, "NOT_FOUND", "The entity does not exist, or you may not see it.")
AlreadyExists = _define("AlreadyExists", 6, "ALREADY_EXISTS", "An entity with that identity exists already.")
PermissionDenied = _define("PermissionDenied", 7, "PERMISSION_DENIED", "You may not do this to that entity.")
ResourceExhausted = _define("ResourceExhausted", 8, "RESOURCE_EXHAUSTED", "A quota or rate limit was hit.")
FailedPrecondition = _define("FailedPrecondition", 9, "FAILED_PRECONDITION", "The entity is not in a state that allows this.")
Aborted = _define("Aborted", 10, "ABORTED", "The call was aborted, usually by a concurrent change.")
OutOfRange = _define("OutOfRange", 11, "OUT_OF_RANGE", "A value was past the valid range.")
Unimplemented = _define("Unimplemented", 12, "UNIMPLEMENTED", "The server does not implement this method.")
Internal = _define("Internal", 13, "INTERNAL", "The server failed internally.")
Unavailable = _define("Unavailable", 14, "UNAVAILABLE", "The service is unavailable; try again later.")
DataLoss = _define("DataLoss", 15, "DATA_LOSS", "Data was lost or corrupted.")
Unauthenticated = _define("Unauthenticated", 16, "UNAUTHENTICATED", "The gateway did not accept the access token.")


def error_for_status(
    code: int, message: str, *, details: list[Any] | None = None, rpc: str | None = None,
    http_status: int | None = None,
) -> ApiError:
    """The exception for a gRPC status code (``ApiError`` itself for codes we do not know)."""
    cls = _BY_CODE.get(code, ApiError)
    return cls(message, code=code, details=details, rpc=rpc, http_status=http_status)
