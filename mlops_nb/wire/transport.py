"""HTTP transport: one pooled ``requests`` session per client, bearer auth, error mapping.

The transport knows URLs, headers and status codes; it deals in plain JSON
(dicts) and leaves messages to the client.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import quote, urlsplit

import requests

from mlops_nb.wire.errors import ConnectionFailed, GatewayError, Unauthenticated, error_for_status

__all__ = ["Transport", "validate_gateway_url"]

USER_AGENT = "mlops-nb/0.1"


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
    """Sends calls to one gateway with a bearer token from ``token_provider``."""

    def __init__(
        self,
        gateway_url: str,
        token_provider: Callable[[], str],
        *,
        timeout: float | tuple[float, float] | None = 60.0,
        verify: bool = True,
        ca_bundle: str | None = None,
        proxies: dict[str, str] | None = None,
    ) -> None:
        if not callable(token_provider):
            raise TypeError(
                "token_provider must be callable and return an access token "
                "(an mlops_nb.TokenProvider, or any function returning a str)"
            )
        self.gateway_url = validate_gateway_url(gateway_url)
        self.token_provider = token_provider
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT
        # Passed on every request, not set on the session: requests lets REQUESTS_CA_BUNDLE
        # override a session's ``verify``, which would silently drop the caller's ca_bundle.
        self.verify: bool | str = ca_bundle if (ca_bundle and verify) else verify
        if proxies:
            self.session.proxies.update(proxies)

    def close(self) -> None:
        self.session.close()

    def url(self, path: str, path_params: dict[str, Any] | None = None) -> str:
        for name, value in (path_params or {}).items():
            path = path.replace("{" + name + "}", quote(str(value), safe=""))
        return self.gateway_url + path

    # -- calls ---------------------------------------------------------------------------

    def request(
        self,
        verb: str,
        path: str,
        *,
        rpc: str,
        json_body: Any = None,
        data: Iterable[bytes] | None = None,
        path_params: dict[str, Any] | None = None,
        query: list[tuple[str, str]] | None = None,
        stream: bool = False,
    ) -> requests.Response:
        """Send one call; raise the package's errors for anything but a 2xx answer."""
        url = self.url(path, path_params)
        response = self._send(verb, url, rpc=rpc, json_body=json_body, data=data, query=query, stream=stream)
        if response.status_code == 401 and data is None and _can_refresh(self.token_provider):
            # The token may have been revoked or expired early: refresh once and retry.
            response.close()
            self.token_provider.force_refresh()  # type: ignore[attr-defined]
            response = self._send(verb, url, rpc=rpc, json_body=json_body, data=data, query=query, stream=stream)
        if not 200 <= response.status_code < 300:
            raise self._error(response, rpc)
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
            for line in response.iter_lines():
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

    # -- internals -------------------------------------------------------------------------

    def _send(self, verb: str, url: str, *, rpc: str, json_body: Any, data: Any, query: Any,
              stream: bool) -> requests.Response:
        headers = {"Authorization": f"Bearer {self._token(rpc)}", "Accept": "application/json"}
        if json_body is not None or data is not None:
            headers["Content-Type"] = "application/json"
        body = json.dumps(json_body, separators=(",", ":")).encode() if json_body is not None else data
        try:
            return self.session.request(verb, url, data=body, params=query, headers=headers,
                                        timeout=self.timeout, stream=stream, verify=self.verify)
        except requests.exceptions.SSLError as e:
            raise ConnectionFailed(
                f"TLS verification failed for the MLOps gateway at {self.gateway_url} ({_reason(e)}). "
                "If it uses a private certificate authority, pass ca_bundle='/path/to/ca.pem'."
            ) from None
        except requests.exceptions.Timeout:
            raise ConnectionFailed(
                f"{rpc}: the MLOps gateway at {self.gateway_url} did not answer within {self.timeout} s"
            ) from None
        except requests.exceptions.ConnectionError as e:
            raise ConnectionFailed(
                f"could not reach the MLOps gateway at {self.gateway_url} ({_reason(e)}); "
                "check the URL and your network"
            ) from None

    def _token(self, rpc: str) -> str:
        token = self.token_provider()
        if not isinstance(token, str) or not token:
            raise Unauthenticated(
                "the token provider returned no access token; log in again", rpc=rpc, http_status=None
            )
        return token

    def _error(self, response: requests.Response, rpc: str) -> Exception:
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
            f"{rpc}: the gateway at {self.gateway_url} answered HTTP {response.status_code} "
            f"{response.reason or ''} without an API error body ({_describe_body(response)}); "
            "a proxy or load balancer in front of MLOps may be failing",
            http_status=response.status_code, rpc=rpc,
        )


def _can_refresh(provider: Any) -> bool:
    return callable(getattr(provider, "force_refresh", None))


def _reason(error: Exception) -> str:
    text = str(error.args[0]) if error.args else type(error).__name__
    reason = getattr(error.args[0], "reason", None) if error.args else None
    if reason is not None:
        text = str(reason)
    return text[:300]


def _describe_body(response: requests.Response) -> str:
    kind = response.headers.get("Content-Type", "no content type")
    text = response.text.strip().replace("\n", " ")
    snippet = text[:120] + ("..." if len(text) > 120 else "")
    return f"{kind}: {snippet!r}" if snippet else kind
