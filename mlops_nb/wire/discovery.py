"""H2O AI Cloud discovery, read as ``h2o-mlops`` 1.6 reads it (through ``h2o_discovery``).

An H2O AI Cloud environment (``https://cloud.example.com``) publishes, without a token, under
``{environment}/.ai.h2o.cloud.discovery``:

* ``GET v1/environment``: ``{"environment": {"h2oCloudEnvironment", "issuerUrl", ...}}``;
* ``GET v1/services``: ``{"services": [{"name": "services/<key>", "uri", ...}], "nextPageToken"}``;
* ``GET v1/clients``: ``{"clients": [{"name": "clients/<key>", "oauth2ClientId", ...}], "nextPageToken"}``.

Lists are paged with ``pageToken`` until an answer has no ``nextPageToken``. What the MLOps client
takes from them is data in the workspaces description (``ApiDescription.discovery``): the services
``mlops-api`` (the gateway) and ``authz-gateway`` (workspaces and users), the ``platform`` client
(whose refresh token signs in) and the environment's issuer. Where no environment URL is given,
``H2O_CLOUD_DISCOVERY`` (the discovery address itself) or ``H2O_CLOUD_ENVIRONMENT`` is read, as
``h2o_discovery`` does (its H2O CLI configuration file is not).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import requests

from mlops_nb.api import description
from mlops_nb.wire.errors import ConnectionFailed, DiscoveryError
from mlops_nb.wire.transport import TLS_ADVICE, USER_AGENT, tls_verify, validate_gateway_url

__all__ = ["CloudDiscovery", "WELL_KNOWN_PATH", "discover_cloud", "discovery_url"]

WELL_KNOWN_PATH = "/.ai.h2o.cloud.discovery"
_MAX_PAGES = 100


@dataclass(frozen=True)
class CloudDiscovery:
    """What an H2O AI Cloud environment's discovery says: service URIs and OAuth client ids by key."""

    discovery_url: str
    environment: str
    issuer_url: str
    services: dict[str, str] = field(default_factory=dict)  # key ("mlops-api") -> uri
    clients: dict[str, str] = field(default_factory=dict)  # key ("platform") -> OAuth client id

    def _role(self, role: str) -> str | None:
        """The URI of the service the workspaces description names for ``role`` (e.g. ``gateway_url``)."""
        keys = [k for k, v in description("workspaces").discovery.get("services", {}).items() if v == role]
        return next((self.services[k] for k in keys if k in self.services), None)

    @property
    def gateway_url(self) -> str | None:
        return self._role("gateway_url")

    @property
    def authz_gateway_url(self) -> str | None:
        return self._role("authz_gateway_url")

    @property
    def platform_client_id(self) -> str | None:
        keys = [k for k, v in description("workspaces").discovery.get("clients", {}).items() if v == "client_id"]
        return next((self.clients[k] for k in keys if k in self.clients), None)


def discovery_url(environment_url: str | None) -> str:
    """The discovery address for an environment URL, or from the variables ``h2o_discovery`` reads."""
    if environment_url is None:
        address = os.environ.get("H2O_CLOUD_DISCOVERY")
        if address:
            return validate_gateway_url(address, "H2O_CLOUD_DISCOVERY")
        environment_url = os.environ.get("H2O_CLOUD_ENVIRONMENT")
        if not environment_url:
            raise ValueError("give the H2O AI Cloud environment's URL (e.g. 'https://cloud.example.com'), "
                             "or set H2O_CLOUD_ENVIRONMENT")
    return validate_gateway_url(environment_url, "environment_url") + WELL_KNOWN_PATH


def discover_cloud(environment_url: str | None = None, *, verify: bool = True, ca_bundle: str | None = None,
                   proxies: dict[str, str] | None = None, timeout: float = 30.0) -> CloudDiscovery:
    """Read the environment's discovery documents (no token needed)."""
    base = discovery_url(environment_url)
    with requests.Session() as session:
        session.headers["User-Agent"] = USER_AGENT
        trust = tls_verify(verify, ca_bundle, base)

        def get(path: str, page_token: str | None = None) -> dict[str, Any]:
            url = f"{base}/{path}"
            try:
                response = session.get(url, params={"pageToken": page_token} if page_token else None,
                                       timeout=timeout, verify=trust, proxies=dict(proxies or {}),
                                       headers={"Accept": "application/json"})
            except requests.exceptions.SSLError:
                raise ConnectionFailed(f"TLS verification failed for H2O AI Cloud discovery at {base}; "
                                       f"{TLS_ADVICE}") from None
            except requests.exceptions.RequestException as e:
                raise ConnectionFailed(f"could not reach H2O AI Cloud discovery at {url} ({type(e).__name__}); "
                                       "check the environment URL") from None
            try:
                body = response.json() if response.ok else None
            except ValueError:
                body = None
            if not isinstance(body, dict):
                raise DiscoveryError(f"{url} answered HTTP {response.status_code} without a discovery document; "
                                     "check that the URL is the H2O AI Cloud environment's (e.g. "
                                     "https://cloud.example.com)")
            return body

        def listed(path: str, key: str) -> list[dict[str, Any]]:
            items: list[dict[str, Any]] = []
            token = None
            for _ in range(_MAX_PAGES):
                page = get(path, token)
                items += [item for item in page.get(key, []) if isinstance(item, dict)]
                token = page.get("nextPageToken")
                if not token:
                    return items
            raise DiscoveryError(f"{base}/{path} kept giving pages ({_MAX_PAGES}); the discovery service looks broken")

        environment = get("v1/environment").get("environment")
        if not isinstance(environment, dict) or not environment.get("issuerUrl"):
            raise DiscoveryError(f"{base}/v1/environment names no issuerUrl (the identity provider)")
        services = {str(s.get("name", "")).removeprefix("services/"): str(s.get("uri", ""))
                    for s in listed("v1/services", "services")}
        clients = {str(c.get("name", "")).removeprefix("clients/"): str(c.get("oauth2ClientId", ""))
                   for c in listed("v1/clients", "clients")}
    return CloudDiscovery(discovery_url=base, environment=str(environment.get("h2oCloudEnvironment") or ""),
                          issuer_url=str(environment["issuerUrl"]), services=services, clients=clients)
