"""Which generation of the MLOps API a gateway speaks, found by asking it.

MLOps servers up to 0.70 speak the legacy generation (projects); 1.0 and later the workspaces
generation. Both serve storage at the same paths, so storage cannot tell them apart: the probes
are read-only calls that only one generation has.

1. The legacy deployer's ``GetVersion`` (``POST /deployer/ai.h2o.deploy.VersionService/GetVersion``,
   an empty request): answered -> ``"legacy"``. A server that speaks both generations (only the
   sandbox does) is therefore spoken to as legacy, the generation every earlier client spoke.
2. Otherwise (404, 405 or 501: no such route), the workspaces generation's identity call
   (``GET {gateway}/me``, whose ``X-User-Id`` header names the caller, as ``h2o-mlops`` 1.6 asks
   it): answered with that header -> ``"workspaces"`` (a web page that answers any path has no
   such header).
3. Neither: :class:`GenerationUnknown`, saying what each probe got.

A legacy server costs one probe, a workspaces server two; the client asks once, on first use, and
keeps the answer. Errors that say nothing about routes (the gateway cannot be reached, the token is
refused, the gateway is unavailable or throttles, after the client's retries) are raised as they
are, and the next use asks again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlops_nb.api import API, description
from mlops_nb.wire.errors import ApiError, GatewayError, GenerationUnknown

if TYPE_CHECKING:
    from mlops_nb.wire.transport import Transport

__all__ = ["LEGACY_PROBE", "detect_generation"]

# The legacy generation's read-only call that the workspaces generation does not have.
LEGACY_PROBE = "deployer.version.get_version"
# HTTP statuses that say "no such route here" (501: the gRPC service behind the route is missing).
_ABSENT = frozenset({404, 405, 501})
# gRPC codes of a call the server routed and then refused on its merits: the route is there. Other
# errors (unavailable, throttled, internal...) say nothing about routes and are raised as they are.
_REFUSED_ON_MERITS = frozenset({3, 6, 7, 9, 10, 11})  # INVALID_ARGUMENT ... OUT_OF_RANGE


def detect_generation(transport: Transport) -> str:
    """``"legacy"`` or ``"workspaces"``: the generation the gateway behind ``transport`` speaks."""
    legacy = API.method(LEGACY_PROBE)
    seen_legacy = _probe(transport, legacy.verb, legacy.full_path, f"{LEGACY_PROBE} (generation probe)", {}, None)
    if seen_legacy is None:
        return "legacy"
    identity = description("workspaces").identity or {}
    verb, path = identity.get("verb", "GET"), identity.get("path", "/me")
    seen_workspaces = _probe(transport, verb, path, f"{verb} {path} (generation probe)", None,
                             identity.get("header"))
    if seen_workspaces is None:
        return "workspaces"
    raise GenerationUnknown(
        f"could not tell which generation of the MLOps API {transport.gateway_url} speaks: the legacy "
        f"generation's {legacy.verb} {legacy.full_path} got {seen_legacy}, and the workspaces generation's "
        f"{verb} {path} got {seen_workspaces}. Check that gateway_url is the MLOps API gateway "
        "(e.g. https://api.mlops.example.com; on H2O AI Cloud, Client.from_discovery(environment_url) finds it), "
        "or pass generation='legacy' or generation='workspaces' to Client(...)",
        http_status=None, rpc="generation probe")


def _probe(transport: Transport, verb: str, path: str, rpc: str, body: dict | None,
           header: str | None) -> str | None:
    """``None`` if the gateway has the route (and answers with ``header``, when one is named), else
    what it answered (for the error)."""
    try:
        response = transport.request(verb, path, rpc=rpc, read_only=True, json_body=body)
        response.close()
        if header and not response.headers.get(header):
            return f"HTTP {response.status_code} without the {header} header"
    except ApiError as e:
        if e.http_status in _ABSENT:
            return f"HTTP {e.http_status} {e.code_name} ({e.message[:120]})"
        if e.code in _REFUSED_ON_MERITS:
            return None  # the route is there; the call itself was refused (permission, argument...)
        raise
    except GatewayError as e:
        if e.http_status not in _ABSENT:
            raise
        return f"HTTP {e.http_status} without an API error body"
    return None
