"""HTTP transport: one pooled ``requests`` session per client, bearer auth, retries, error mapping.

The transport knows URLs, headers and status codes; it deals in plain JSON
(dicts) and leaves messages to the client. Which calls are sent again, and when,
is :mod:`mlops_nb.wire.retry`'s business.
"""

from __future__ import annotations

import json
import os
import re
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator
from functools import cache
from typing import Any
from urllib.parse import quote, urlsplit

import requests
from urllib3.exceptions import InsecureRequestWarning

from mlops_nb.api import description
from mlops_nb.wire.errors import (
    ConnectionFailed,
    GatewayError,
    InsecureTLSWarning,
    Unauthenticated,
    WriteOutcomeUnknown,
    error_for_status,
)
from mlops_nb.wire.retry import PerCallRetryAdapter, RetryPolicy, causes, never_sent

__all__ = ["Transport", "validate_gateway_url", "tls_verify", "DEFAULT_MAX_CONNECTIONS"]

USER_AGENT = "mlops-nb/0.1"
# Connections kept open to the gateway: enough for the thread pools notebooks use (requests'
# default of 10 makes 16 threads open and throw away connections all the time).
DEFAULT_MAX_CONNECTIONS = 32
# The legacy client's variable: one CA file for the gateway and the identity provider.
CA_FILE_VARIABLE = "MLOPS_AUTH_CA_FILE_OVERRIDE"
TLS_ADVICE = ("if it uses a private certificate authority, pass ca_bundle='/path/to/ca.pem' "
              f"(or set REQUESTS_CA_BUNDLE or {CA_FILE_VARIABLE} to that file)")

_warned_insecure: set[str] = set()
_warned_lock = threading.Lock()


def tls_verify(verify: bool, ca_bundle: str | None, url: str) -> bool | str:
    """What requests' ``verify`` gets for ``url``: False, a CA file, or True (system and
    ``REQUESTS_CA_BUNDLE``). An explicit ``ca_bundle`` wins over ``MLOPS_AUTH_CA_FILE_OVERRIDE``.

    ``verify=False`` warns once per server and process (:class:`InsecureTLSWarning`).
    """
    if not verify:
        if url.startswith("https:"):  # plain http has no certificate to skip
            _warn_insecure(url)
        return False
    chosen, where = (ca_bundle, "ca_bundle") if ca_bundle else (os.environ.get(CA_FILE_VARIABLE), CA_FILE_VARIABLE)
    if not chosen:
        return True
    if not os.path.isfile(chosen):
        raise ValueError(f"{where} names {chosen!r}, which is not a file; give the path of a PEM file "
                         "with the certificate authorities to trust")
    return chosen


def _warn_insecure(url: str) -> None:
    host = urlsplit(url).hostname or url
    with _warned_lock:
        if url in _warned_insecure:
            return
        _warned_insecure.add(url)
    warnings.warn(
        f"TLS certificate verification is off for {url} (verify=False): anyone on the network path "
        f"can read and change the traffic, tokens included. Prefer ca_bundle='/path/to/ca.pem'. "
        "This warning shows once.", InsecureTLSWarning, stacklevel=4)
    # urllib3 would repeat its own warning on every request to that host.
    warnings.filterwarnings("ignore", message=f"Unverified HTTPS request is being made to host '{re.escape(host)}'",
                            category=InsecureRequestWarning)


def validate_gateway_url(url: str, what: str = "gateway_url") -> str:
    """Check that ``url`` is an absolute http(s) URL and return it without a trailing slash."""
    if not isinstance(url, str) or not url.strip():
        raise ValueError(f"{what} must be a URL such as 'https://api.mlops.my.domain', got {url!r}")
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(
            f"{what} must start with http:// or https:// and name a host, "
            f"such as 'https://api.mlops.my.domain'; got {url!r}"
        )
    return url.rstrip("/")


class Transport:
    """Sends calls to one gateway with a bearer token from ``token_provider``; in the workspaces
    generation also to its second gateway, ``authz_gateway_url`` (the same pooled session)."""

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
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        authz_gateway_url: str | None = None,
    ) -> None:
        if not callable(token_provider):
            raise TypeError(
                "token_provider must be callable and return an access token "
                "(an mlops_nb.TokenProvider, or any function returning a str)"
            )
        if not (isinstance(max_connections, int) and max_connections >= 1):
            raise ValueError(f"max_connections must be a positive integer, got {max_connections!r}")
        self.gateway_url = validate_gateway_url(gateway_url)
        self.authz_gateway_url = (validate_gateway_url(authz_gateway_url, "authz_gateway_url")
                                  if authz_gateway_url is not None else None)
        self.token_provider = token_provider
        self.timeout = timeout
        self.retry = RetryPolicy.from_option(retry)
        self.session = requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT
        self._adapter = PerCallRetryAdapter(pool_connections=4, pool_maxsize=max_connections)
        for scheme in ("http://", "https://"):
            self.session.mount(scheme, self._adapter)
        # A CA bundle given to either the client or its token provider serves both.
        ca_bundle = ca_bundle or getattr(token_provider, "ca_bundle", None)
        # ``verify`` and ``proxies`` go with every request, not on the session: requests lets
        # REQUESTS_CA_BUNDLE and HTTP(S)_PROXY override a session's own, which would silently
        # drop what the caller chose. Without them, those variables apply.
        self.verify: bool | str = tls_verify(verify, ca_bundle, self.gateway_url)
        if self.authz_gateway_url:
            tls_verify(verify, ca_bundle, self.authz_gateway_url)  # the same choice; warns for that server too
        if isinstance(self.verify, str) and getattr(token_provider, "ca_bundle", "") is None:
            token_provider.ca_bundle = self.verify  # type: ignore[attr-defined]
        self.proxies = dict(proxies or {})
        # A connection that cannot be made is retried only once the gateway has answered: a wrong
        # URL (or a gateway that is down from the start) says so at once instead of after the deadline.
        self.answered: set[str] = set()  # the gateways (base URLs) that have answered this client

    def close(self) -> None:
        self.session.close()

    def base_url(self, gateway: str = "mlops") -> str:
        """The root URL of one of the API's gateways: ``"mlops"`` (``gateway_url``) or ``"authz"``."""
        if gateway == "mlops":
            return self.gateway_url
        if gateway == "authz":
            if self.authz_gateway_url is None:
                raise ValueError(
                    "this call goes to the authz gateway (workspaces and users), whose URL this client was not "
                    "given: pass authz_gateway_url='https://...' to Client(...), or connect with "
                    "Client.from_discovery(environment_url), which finds it")
            return self.authz_gateway_url
        raise ValueError(f"no gateway {gateway!r}; known: mlops, authz")

    def url(self, path: str, path_params: dict[str, Any] | None = None, *, gateway: str = "mlops",
            keep_slashes: bool = False) -> str:
        """The URL of ``path`` with its ``{name}`` templates filled. ``keep_slashes``: a value's ``/``
        stays a path separator (the workspaces generation's resource names, ``workspaces/W/...``)."""
        for name, value in (path_params or {}).items():
            path = path.replace("{" + name + "}", quote(str(value), safe="/" if keep_slashes else ""))
        return self.base_url(gateway) + path

    # -- calls ---------------------------------------------------------------------------

    def request(
        self,
        verb: str,
        path: str,
        *,
        rpc: str,
        read_only: bool = False,
        json_body: Any = None,
        data: Iterable[bytes] | None = None,
        path_params: dict[str, Any] | None = None,
        query: list[tuple[str, str]] | None = None,
        stream: bool = False,
        gateway: str = "mlops",
        generation: str = "legacy",
    ) -> requests.Response:
        """Send one call (again, as the retry policy allows); raise the package's errors for
        anything but a 2xx answer. ``read_only`` calls may be sent more than once. ``gateway``
        names the gateway the call goes to and ``generation`` the API generation of ``rpc``."""
        url = self.url(path, path_params, gateway=gateway, keep_slashes=generation != "legacy")
        send = dict(rpc=rpc, read_only=read_only, json_body=json_body, data=data, query=query, stream=stream,
                    base_url=self.base_url(gateway), generation=generation)
        response, token = self._send(verb, url, **send)
        if response.status_code == 401 and data is None and _can_refresh(self.token_provider):
            # The token may have been revoked or expired early: refresh (once, however many
            # threads were refused the same token) and try again.
            response.close()
            _refresh_after_rejection(self.token_provider, token)
            response, _ = self._send(verb, url, **send)
        if not 200 <= response.status_code < 300:
            raise self._error(response, rpc, self.base_url(gateway))
        return response

    def call_json(self, verb: str, path: str, *, rpc: str, **kwargs: Any) -> dict[str, Any]:
        response = self.request(verb, path, rpc=rpc, **kwargs)
        if not response.content:
            return {}
        try:
            payload = response.json()
        except ValueError:
            raise GatewayError(
                f"{rpc}: the gateway at {self.gateway_url} answered HTTP {response.status_code} "
                f"with a body that is not JSON ({_describe_body(response)})",
                http_status=response.status_code, rpc=rpc,
            ) from None
        if not isinstance(payload, dict):
            raise GatewayError(f"{rpc}: expected a JSON object, got {type(payload).__name__}",
                               http_status=response.status_code, rpc=rpc)
        return payload

    def stream_json(self, verb: str, path: str, *, rpc: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """Newline-delimited ``{"result": ...}`` messages of a server-streaming call."""
        response = self.request(verb, path, rpc=rpc, stream=True, **kwargs)
        with response:
            for line in _lines(response, rpc, self.gateway_url):
                if not line.strip():
                    continue
                try:
                    message = json.loads(line)
                except ValueError:
                    raise GatewayError(f"{rpc}: a streamed message was not JSON", rpc=rpc) from None
                if "error" in message and message["error"]:
                    err = message["error"]
                    raise error_for_status(int(err.get("code", 2)), str(err.get("message", "")),
                                           details=err.get("details"), rpc=rpc)
                yield message.get("result", message)

    def send_outside_api(self, verb: str, url: str, *, data: bytes | None = None,
                         headers: dict[str, str] | None = None, refused: frozenset[int] = frozenset(),
                         timeout: float | tuple[float, float] | None = None) -> requests.Response:
        """One request to a URL the API pointed at (a deployment's scoring URL), over this
        client's pooled connections, with its proxies, TLS choice and retry policy, and without
        its access token. ``GET`` is read-only; any other verb is a write, sent again only when
        it cannot have arrived or was ``refused`` (see :meth:`RetryPolicy.for_call`).
        requests' own errors are raised as they are, for the caller to word.
        """
        with self._adapter.retrying(self.retry.for_call(verb == "GET", refused)):
            response = self.session.request(verb, url, data=data, headers=headers,
                                            timeout=self.timeout if timeout is None else timeout,
                                            verify=self.verify, proxies=self.proxies)
        response.content  # noqa: B018 - read the body here, within the caller's error handling
        return response

    # -- internals -------------------------------------------------------------------------

    def _send(self, verb: str, url: str, *, rpc: str, read_only: bool, json_body: Any, data: Any, query: Any,
              stream: bool, base_url: str, generation: str) -> tuple[requests.Response, str]:
        token = self._token(rpc)
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        if json_body is not None or data is not None:
            headers["Content-Type"] = "application/json"
        body = json.dumps(json_body, separators=(",", ":")).encode() if json_body is not None else data
        try:
            with self._adapter.retrying(self.retry.for_call(read_only, retry_connect=base_url in self.answered)):
                response = self.session.request(verb, url, data=body, params=query, headers=headers,
                                                timeout=self.timeout, stream=stream, verify=self.verify,
                                                proxies=self.proxies)
            self.answered.add(base_url)
            if not stream:
                response.content  # noqa: B018 - read the body here, where a lost connection is mapped
        except requests.exceptions.RequestException as e:
            raise self._network_error(e, rpc, read_only, base_url, generation) from None
        return response, token

    def _network_error(self, error: requests.exceptions.RequestException, rpc: str, read_only: bool,
                       base_url: str, generation: str) -> Exception:
        where = (f"the MLOps gateway at {base_url}" if base_url == self.gateway_url
                 else f"the authz gateway at {base_url}")
        if isinstance(error, requests.exceptions.SSLError):
            return ConnectionFailed(f"TLS verification failed for {where} ({_reason(error)}); {TLS_ADVICE}")
        retried = f", retried for up to {self.retry.deadline:g} s" if self.retry.enabled else ""
        if never_sent(error):
            if base_url not in self.answered:
                retried = "; it has never answered this client, so the call was not retried"
            return ConnectionFailed(f"{rpc}: could not reach {where} ({_reason(error)}{retried}); "
                                    "check the URL, your network and any proxy settings")
        timed_out = isinstance(error, requests.exceptions.Timeout) or "timed out" in _reason(error).lower()
        lost = f"did not answer within {self.timeout} s" if timed_out else f"dropped the connection ({_reason(error)})"
        if read_only:
            return ConnectionFailed(f"{rpc}: {where} {lost}{retried}")
        checks = _reads_to_check(rpc, generation)
        how = (f"check first, e.g. with {' or '.join(f'client.{c}(...)' for c in checks)}, "
               if checks else "check first ")
        return WriteOutcomeUnknown(
            f"{rpc}: the request was sent, but {where} {lost} before answering, so the change may or may "
            f"not have been applied. It was not sent again, since repeating a write could apply it twice: "
            f"{how}and send it again only if the change is not there.",
            rpc=rpc, check_with=checks)

    def _token(self, rpc: str) -> str:
        token = self.token_provider()
        if not isinstance(token, str) or not token:
            raise Unauthenticated(
                "the token provider returned no access token; log in again", rpc=rpc, http_status=None
            )
        return token

    def _error(self, response: requests.Response, rpc: str, base_url: str) -> Exception:
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if isinstance(payload, dict) and "code" in payload:
            try:
                code = int(payload["code"])
            except (TypeError, ValueError):
                code = 2
            return error_for_status(code, str(payload.get("message", "")), details=payload.get("details"),
                                    rpc=rpc, http_status=response.status_code)
        return GatewayError(
            f"{rpc}: the gateway at {base_url} answered HTTP {response.status_code} "
            f"{response.reason or ''} without an API error body ({_describe_body(response)}); "
            "a proxy or load balancer in front of MLOps may be failing",
            http_status=response.status_code, rpc=rpc,
        )


def _can_refresh(provider: Any) -> bool:
    return callable(getattr(provider, "force_refresh", None))


def _refresh_after_rejection(provider: Any, rejected_token: str) -> None:
    # mlops_nb's TokenProvider refreshes only if no other thread has replaced that token yet;
    # other providers with a force_refresh() (no argument) just refresh.
    if callable(getattr(provider, "token_rejected", None)):
        provider.token_rejected(rejected_token)
    else:
        provider.force_refresh()


def _lines(response: requests.Response, rpc: str, gateway_url: str) -> Iterator[bytes]:
    try:
        yield from response.iter_lines()
    except requests.exceptions.RequestException as e:
        raise ConnectionFailed(f"{rpc}: the stream from the MLOps gateway at {gateway_url} broke off "
                               f"({_reason(e)}); start the call again") from None


@cache
def _reads_to_check(rpc: str, generation: str = "legacy") -> tuple[str, ...]:
    """The read calls of the entity ``rpc`` belongs to (``server.entity.method``), gets first."""
    server, entity, _ = rpc.split(".", 2) if rpc.count(".") >= 2 else ("", "", "")
    reads = [m.qualified_name for m in description(generation).methods
             if m.read_only and (m.service.server, m.service.entity) == (server, entity)]
    # A get and the shortest list (list_projects rather than list_all_projects).
    return tuple(sorted(reads, key=lambda name: (not name.split(".")[-1].startswith("get_"), len(name)))[:2])


def _reason(error: Exception) -> str:
    """The innermost cause's words (the socket's, say), not requests' and urllib3's wrappers."""
    *_, innermost = causes(error)
    text = str(innermost) or type(innermost).__name__
    return text[:300]


def _describe_body(response: requests.Response) -> str:
    kind = response.headers.get("Content-Type", "no content type")
    text = response.text.strip().replace("\n", " ")
    snippet = text[:120] + ("..." if len(text) > 120 else "")
    return f"{kind}: {snippet!r}" if snippet else kind
