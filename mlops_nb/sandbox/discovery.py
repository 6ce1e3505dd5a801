"""H2O AI Cloud discovery, served by the sandbox, so that code written for H2O AI Cloud finds it.

``h2o_mlops.Client()`` with no arguments (and ``h2o_discovery.discover(url)``) reads three
documents under ``{environment}/.ai.h2o.cloud.discovery``, as the ``h2o-cloud-discovery``
package does:

* ``GET v1/environment``: ``{"environment": {h2oCloudEnvironment, issuerUrl,
  h2oCloudPlatformOauth2Scope, h2oCloudVersion}}``, the OpenID issuer being the sandbox's own;
* ``GET v1/services``: ``{"services": [{name: "services/<id>", displayName, uri, version,
  oauth2Scope, pythonClient}]}``; the MLOps gateway is ``services/mlops-api``;
* ``GET v1/clients``: ``{"clients": [{name: "clients/<id>", displayName, oauth2ClientId}]}``;
  ``clients/platform`` is the sandbox's public client, whose refresh token the official client
  takes from ``H2O_CLOUD_CLIENT_PLATFORM_TOKEN``.

Lists fit in one page (no ``nextPageToken``), which is how the package knows it has them all.
Nothing here needs a token: discovery is public on H2O AI Cloud too.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mlops_nb.sandbox.identity import PUBLIC_CLIENT_ID, IdentityProvider

__all__ = ["PREFIX", "discovery_routes"]

PREFIX = "/.ai.h2o.cloud.discovery"
PLATFORM_SCOPE = "openid offline_access"
# The h2o-mlops release whose API the sandbox answers (the API description is read off it).
MLOPS_CLIENT = "h2o-mlops==1.0.1"


def discovery_routes(idp: IdentityProvider) -> list[Route]:
    """The discovery documents for the sandbox whose identity provider is ``idp`` (its base URL set at start)."""

    def environment_url() -> str:
        return idp.issuer.removesuffix(idp.mount_path)

    async def environment(request: Request) -> Response:
        return JSONResponse({"environment": {
            "h2oCloudEnvironment": environment_url(), "issuerUrl": idp.issuer,
            "h2oCloudPlatformOauth2Scope": PLATFORM_SCOPE, "h2oCloudVersion": "mlops_nb sandbox"}})

    async def services(request: Request) -> Response:
        return JSONResponse({"services": [{
            "name": "services/mlops-api", "displayName": "H2O MLOps API (sandbox)", "uri": environment_url(),
            "version": MLOPS_CLIENT.split("==")[1], "oauth2Scope": "", "pythonClient": MLOPS_CLIENT}]})

    async def clients(request: Request) -> Response:
        return JSONResponse({"clients": [{"name": "clients/platform", "displayName": "H2O AI Cloud platform client",
                                          "oauth2ClientId": PUBLIC_CLIENT_ID}]})

    return [Route(f"{PREFIX}/v1/environment", environment, methods=["GET"]),
            Route(f"{PREFIX}/v1/services", services, methods=["GET"]),
            Route(f"{PREFIX}/v1/clients", clients, methods=["GET"])]
