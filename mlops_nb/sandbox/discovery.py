"""H2O AI Cloud discovery, served by the sandbox, so that code written for H2O AI Cloud finds it.

``h2o_mlops.Client()`` with no arguments (and ``h2o_discovery.discover(url)``) reads three
documents under ``{environment}/.ai.h2o.cloud.discovery``, as the ``h2o-cloud-discovery``
package does:

* ``GET v1/environment``: ``{"environment": {h2oCloudEnvironment, issuerUrl,
  h2oCloudPlatformOauth2Scope, h2oCloudVersion}}``, the OpenID issuer being the sandbox's own;
* ``GET v1/services``: ``{"services": [{name: "services/<id>", displayName, uri, version,
  oauth2Scope, pythonClient}]}``; the MLOps gateway is ``services/mlops-api``. With the workspaces
  face on, also ``services/authz-gateway`` (the gateway URL + ``/authz``) and
  ``services/secure-store`` (the gateway URL + ``/secure-store``), which ``h2o-mlops`` 1.4 and
  later look up; ``mlops-api`` then names the newest client (``h2o-mlops`` 1.6.5);
* ``GET v1/clients``: ``{"clients": [{name: "clients/<id>", displayName, oauth2ClientId}]}``;
  ``clients/platform`` is the sandbox's public client, whose refresh token the official client
  takes from ``H2O_CLOUD_CLIENT_PLATFORM_TOKEN``.

``h2o_secure_store`` checks its endpoint by a ``GET`` of ``version`` resolved against it (which,
without a trailing slash, is the root's ``/version``): both answer, without a token. Links and
components (newer discovery servers) are absent, answered 404, which the package reads as none.
Anything else below ``/secure-store`` (secrets) answers 501 UNIMPLEMENTED.
Lists fit in one page (no ``nextPageToken``), which is how the package knows it has them all.
Nothing here needs a token: discovery is public on H2O AI Cloud too.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mlops_nb.sandbox.faces import AUTHZ_ROOT
from mlops_nb.sandbox.identity import PUBLIC_CLIENT_ID, IdentityProvider

__all__ = ["PREFIX", "SECURE_STORE_ROOT", "discovery_routes"]

PREFIX = "/.ai.h2o.cloud.discovery"
PLATFORM_SCOPE = "openid offline_access"
# The h2o-mlops release whose API each face answers (each API description is read off it).
MLOPS_CLIENT = "h2o-mlops==1.0.1"
WORKSPACES_MLOPS_CLIENT = "h2o-mlops==1.6.5"
SECURE_STORE_ROOT = "/secure-store"


def discovery_routes(idp: IdentityProvider, faces: tuple[str, ...] = ("legacy",)) -> list[Route]:
    """The discovery documents for the sandbox whose identity provider is ``idp`` (its base URL set
    at start), serving ``faces``; with the workspaces face, the secure store's version check too."""
    workspaces = "workspaces" in faces

    def environment_url() -> str:
        return idp.issuer.removesuffix(idp.mount_path)

    async def environment(request: Request) -> Response:
        return JSONResponse({"environment": {
            "h2oCloudEnvironment": environment_url(), "issuerUrl": idp.issuer,
            "h2oCloudPlatformOauth2Scope": PLATFORM_SCOPE, "h2oCloudVersion": "mlops_nb sandbox"}})

    def service(name: str, display: str, uri: str, client: str = "") -> dict[str, str]:
        return {"name": f"services/{name}", "displayName": display, "uri": uri,
                "version": client.split("==")[1] if client else "", "oauth2Scope": "", "pythonClient": client}

    async def services(request: Request) -> Response:
        root = environment_url()
        if not workspaces:
            return JSONResponse({"services": [service("mlops-api", "H2O MLOps API (sandbox)", root, MLOPS_CLIENT)]})
        return JSONResponse({"services": [
            service("mlops-api", "H2O MLOps API (sandbox)", root, WORKSPACES_MLOPS_CLIENT),
            service("authz-gateway", "H2O MLOps authz gateway (sandbox: workspaces, users)", root + AUTHZ_ROOT),
            service("secure-store", "H2O Secure Store (sandbox: its version check only)", root + SECURE_STORE_ROOT),
        ]})

    async def version(request: Request) -> Response:
        return JSONResponse({"version": "mlops_nb sandbox"})

    async def no_secure_store(request: Request) -> Response:
        return JSONResponse({"code": 12, "message": f"{request.method} {request.url.path}: the mlops_nb sandbox has "
                             "no secure store (it answers its version check only); secrets work against H2O AI "
                             "Cloud's", "details": []}, status_code=501)

    async def clients(request: Request) -> Response:
        return JSONResponse({"clients": [{"name": "clients/platform", "displayName": "H2O AI Cloud platform client",
                                          "oauth2ClientId": PUBLIC_CLIENT_ID}]})

    return [Route(f"{PREFIX}/v1/environment", environment, methods=["GET"]),
            Route(f"{PREFIX}/v1/services", services, methods=["GET"]),
            Route(f"{PREFIX}/v1/clients", clients, methods=["GET"]),
            *([Route(f"{SECURE_STORE_ROOT}/version", version, methods=["GET"]),
               Route("/version", version, methods=["GET"]),
               Route(SECURE_STORE_ROOT + "/{rest:path}", no_secure_store,
                     methods=["GET", "POST", "PATCH", "DELETE", "PUT"])] if workspaces else [])]
