"""The MLOps API, described as data.

Two generations of the API, each a JSON file read by one loader (:class:`ApiDescription`):

* ``description.json`` (``API``): the legacy generation (projects), regenerated from the
  legacy client's wheel by ``scripts/regen_api_description.py``. Everything else in the
  package (message classes, client methods, DataFrame conversion, sandbox routes) is built
  from it.
* ``description_workspaces.json`` (``description("workspaces")``, loaded on first use): the
  workspaces generation of MLOps 1.0 and later, regenerated from ``h2o-mlops`` 1.6.5 and
  1.5.x by ``scripts/regen_api_description_workspaces.py``. The wire layer builds a second set of
  message and client classes from it (``mlops_nb.wire.workspaces``) for servers of that generation.

``catalogs.json`` holds the seed's artifact-name and runtime-name tables. This module
imports nothing from the package.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cache, cached_property
from importlib import resources
from typing import Any

__all__ = [
    "API",
    "ApiDescription",
    "Catalogs",
    "Field",
    "Method",
    "Param",
    "Service",
    "CATALOGS",
    "GENERATIONS",
    "SECRET_FIELDS",
    "description",
]


@dataclass(frozen=True)
class Field:
    """One field of a message: python name, wire (JSON) name and type.

    ``type`` is a scalar (``string``, ``int32``, ``int64``, ``double``, ``bool``,
    ``bytes``, ``timestamp``, ``object``), an enum name or a message name.
    """

    name: str
    json: str
    type: str
    repeated: bool = False
    map: bool = False


@dataclass(frozen=True)
class Param:
    """A path or query parameter of a REST-style method (``wire``: its name in the URL)."""

    name: str
    wire: str
    type: str
    repeated: bool = False  # a query parameter given once per value (``names=a&names=b``)


@dataclass(frozen=True)
class Method:
    service: Service = field(repr=False, compare=False)
    rpc: str  # CamelCase RPC name, e.g. ListProjects
    python: str  # snake_case, e.g. list_projects
    verb: str
    path: str  # below the server prefix, e.g. /ai.h2o.storage.ProjectService/ListProjects
    request: str | None  # a message name, "object" (an empty body) or None (REST: path/query params)
    response: str  # a message name, or "object" (empty)
    streaming: bool
    path_params: tuple[Param, ...]
    query_params: tuple[Param, ...]
    # Changes nothing on the server, so sending it again is safe (the client retries only these
    # after an answer was lost); see scripts/api_description_common.py for how it is known.
    read_only: bool
    # Workspaces generation: the request field the HTTP body fills ("*": the whole request),
    # ``None`` when nothing is sent. The legacy description does not record it.
    body_field: str | None = None

    @property
    def full_path(self) -> str:
        """The path below its gateway's root, server prefix included."""
        return self.service.api.servers[self.service.server] + self.path

    @property
    def request_message(self) -> str | None:
        """The request message's name; ``None`` for REST methods and for empty (``object``) bodies."""
        return self.request if self.request in self.service.api.messages else None

    @property
    def response_message(self) -> str | None:
        """The response message's name; ``None`` where the response is ``google.protobuf.Empty``."""
        return self.response if self.response in self.service.api.messages else None

    @property
    def qualified_name(self) -> str:
        """``server.entity.method``, the name users type in ``%mlops call``."""
        return f"{self.service.server}.{self.service.entity}.{self.python}"

    @property
    def is_list(self) -> bool:
        """Methods whose response carries a page (or a batch) of entities."""
        return self.python.startswith("list_") or self.python.startswith("batch_get_")


@dataclass(frozen=True)
class Service:
    server: str
    name: str  # e.g. ProjectService
    proto: str | None  # e.g. ai.h2o.storage.ProjectService
    entity: str  # attribute on the server client, e.g. project
    api: ApiDescription = field(repr=False, compare=False)  # the description it belongs to
    methods: tuple[Method, ...] = ()


_RPC_FROM_PATH = re.compile(r"/([A-Za-z0-9]+)$")


class ApiDescription:
    """Typed, indexed view of one generation's description file."""

    def __init__(self, raw: dict[str, Any]) -> None:
        self.source: str = raw["source"]
        self.generation: str = raw.get("generation", "legacy")
        self.servers: dict[str, str] = raw["servers"]
        # Which gateway serves each server: "mlops" (the MLOps API URL) or, in the workspaces
        # generation, "authz" (a second gateway for workspaces and users).
        self.gateways: dict[str, str] = raw.get("gateways", dict.fromkeys(self.servers, "mlops"))
        # Workspaces generation: what the client looks up in H2O AI Cloud discovery (service,
        # client and environment names, each with what it is used for) and how it learns who
        # the caller is (a header of a plain GET); empty for the legacy generation.
        self.discovery: dict[str, dict[str, str]] = raw.get("discovery", {})
        self.identity: dict[str, str] | None = raw.get("identity")
        self.enums: dict[str, tuple[str, ...]] = {k: tuple(v) for k, v in raw["enums"].items()}
        self.messages: dict[str, tuple[Field, ...]] = {
            name: tuple(Field(**f) for f in fields) for name, fields in raw["messages"].items()
        }
        services = []
        for s in raw["services"]:
            service = Service(server=s["server"], name=s["name"], proto=s["proto"], entity=s["entity"], api=self)
            methods = tuple(
                Method(
                    service=service,
                    rpc=_rpc_name(m),
                    python=m["python"],
                    verb=m["verb"],
                    path=m["path"],
                    request=m["request"],
                    response=m["response"],
                    streaming=m["streaming"],
                    read_only=m["read_only"],
                    body_field=m.get("body_field"),
                    path_params=tuple(Param(**p) for p in m["path_params"]),
                    query_params=tuple(Param(**p) for p in m["query_params"]),
                )
                for m in s["methods"]
            )
            object.__setattr__(service, "methods", methods)
            services.append(service)
        self.services: tuple[Service, ...] = tuple(services)

    @cached_property
    def methods(self) -> tuple[Method, ...]:
        return tuple(m for s in self.services for m in s.methods)

    def method(self, qualified_name: str) -> Method:
        """Look a method up by ``server.entity.method``."""
        try:
            return self._by_qualified_name[qualified_name]
        except KeyError:
            raise KeyError(
                f"no API method {qualified_name!r}; names look like 'storage.project.list_projects'"
            ) from None

    @cached_property
    def _by_qualified_name(self) -> dict[str, Method]:
        return {m.qualified_name: m for m in self.methods}

    def services_of(self, server: str) -> tuple[Service, ...]:
        return tuple(s for s in self.services if s.server == server)

    def is_message(self, type_name: str) -> bool:
        return type_name in self.messages

    def is_enum(self, type_name: str) -> bool:
        return type_name in self.enums


def _rpc_name(method: dict[str, Any]) -> str:
    match = _RPC_FROM_PATH.search(method["path"])
    if match and method["verb"] == "POST":
        return match.group(1)
    return "".join(part.capitalize() for part in method["python"].split("_"))


@dataclass(frozen=True)
class Catalogs:
    """The seed's two tables: artifact names and runtime names.

    Each artifact row also names the ``model_type`` of the runtimes that serve it (``None``
    for ``python/pickle``, which no runtime of the seed serves): the seed does not state
    that link, so it is ours, kept here once for the client and the sandbox.
    """

    artifacts: tuple[dict[str, str | None], ...]
    runtimes: tuple[dict[str, str], ...]

    def runtimes_of(self, model_type: str | None) -> list[dict[str, str]]:
        """The runtime rows that serve a model type (none for ``None``)."""
        return [r for r in self.runtimes if model_type and r["model_type"] == model_type]

    def compositions(self) -> list[dict[str, Any]]:
        """``DeployArtifactComposition`` rows in wire JSON: each artifact row with each runtime of its
        model type, as the deployer's ListArtifactCompositions answers. An artifact type no runtime
        serves (``python/pickle``) has no composition: it cannot be deployed."""
        result = []
        for row in self.artifacts:
            deployable = row["deployable_artifact_type_name"]
            for runtime in self.runtimes_of(row["model_type"]):
                result.append({
                    "deployableArtifactType": {"name": deployable, "artifactType": row["artifact_type"]},
                    "artifactProcessor": {"name": row["artifact_processor_name"],
                                          "deployableArtifactTypeName": deployable,
                                          "modelTypeName": row["model_type"]},
                    "modelType": {"name": row["model_type"]},
                    "runtime": {"name": runtime["runtime_name"], "displayName": runtime["runtime_display_name"],
                                "modelTypeName": row["model_type"]},
                })
        return result


# Fields that hold a secret: reprs show that they are set, never their value. A deployment's
# passphrase travels in ``DeployAuthenticationPassphrase.hash`` (plain text unless its hash
# type is BCRYPT); in the workspaces generation in ``V2AuthenticationPassphrase.passphrase`` and
# ``V2AuthenticationAPIKey.plaintext``, and batch jobs carry cloud storage credentials. (Class
# names: no legacy class has these names.)
SECRET_FIELDS: frozenset[tuple[str, str]] = frozenset({
    ("DeployAuthenticationPassphrase", "hash"),
    ("V2AuthenticationPassphrase", "passphrase"),
    ("V2AuthenticationAPIKey", "plaintext"),
    ("CredentialsAWSCredentials", "access_token"),
    ("CredentialsAWSCredentials", "secret_token"),
    ("CredentialsAWSCredentials", "session_token"),
    ("CredentialsAzureCredentials", "account_key"),
    ("CredentialsAzureCredentials", "sas_token"),
    ("CredentialsAzureCredentials", "storage_connection_string"),
})


def _load_json(name: str) -> dict[str, Any]:
    return json.loads(resources.files(__name__).joinpath(name).read_text(encoding="utf-8"))


# The description file of each generation of the API.
GENERATIONS = {"legacy": "description.json", "workspaces": "description_workspaces.json"}


@cache
def description(generation: str) -> ApiDescription:
    """One generation's description, read on first use and then kept."""
    try:
        name = GENERATIONS[generation]
    except KeyError:
        raise ValueError(f"no API generation {generation!r}; known: {', '.join(GENERATIONS)}") from None
    return ApiDescription(_load_json(name))


API = description("legacy")
_catalogs = _load_json("catalogs.json")
CATALOGS = Catalogs(
    artifacts=tuple(_catalogs["artifacts"]), runtimes=tuple(_catalogs["runtimes"])
)
