"""The sandbox's two faces: which HTTP route serves which method of which API generation.

One sandbox, one store, two faces (``Sandbox(faces=...)``):

* ``legacy``: every method of the legacy description (``mlops_nb.api.API``) at its real path;
* ``workspaces``: every method of ``description("workspaces")`` (MLOps 1.0 and later). Its
  storage calls whose route is also a legacy route (73 of them) are that one route, served by
  the legacy handler; the rest are REST templates such as ``/deployer/v2/{parent}/deployments``,
  matched here. The ``authz`` server's routes are below :data:`AUTHZ_ROOT`.

Templates are matched by :class:`TemplateRouter`: a ``{param}`` spans slashes but not colons
(``{name}`` is ``workspaces/W/deployments/D``; ``{name}:pause`` is a custom verb), and the most
specific template (most literal characters) wins, so ``{parent}/deployments`` beats ``{name}``.
Several reads share one template (``GET /deployer/v2/{name}`` is a deployment, its status, an
endpoint, a schedule...): the resource name's shape, ids replaced by ``*``, tells them apart
(:data:`NAME_SHAPES`, read off how ``h2o-mlops`` 1.6.5 builds each name).
"""

from __future__ import annotations

import re
from collections.abc import Container, Iterable
from dataclasses import dataclass

from mlops_nb.api import API, Method, Param, description

__all__ = [
    "AUTHZ_ROOT",
    "EXTRA_QUERY",
    "FACES",
    "NAME_SHAPES",
    "Match",
    "TemplateRouter",
    "check_faces",
    "legacy_twin",
    "name_shape",
    "served_path",
    "shared_with_workspaces",
    "workspaces_only",
]

FACES = ("legacy", "workspaces")
# The authz gateway (workspaces, users) is served below the MLOps gateway's root.
AUTHZ_ROOT = "/authz"

# Which method of a shared template a resource name's shape selects (see name_shape).
NAME_SHAPES: dict[str, str] = {
    # GET/PATCH/DELETE /deployer/v2/{name}
    "deployer.deployment.get_deployment": "workspaces/*/deployments/*",
    "deployer.deployment.update_deployment": "workspaces/*/deployments/*",
    "deployer.deployment.delete_deployment": "workspaces/*/deployments/*",
    "deployer.status.get_deployment_status": "workspaces/*/deployments/*/status",
    "deployer.metadata.get_deployment_metadata": "workspaces/*/deployments/*/metadata",
    "deployer.schedule.get_deployment_schedule": "workspaces/*/deployments/*/schedule",
    "deployer.schedule.update_deployment_schedule": "workspaces/*/deployments/*/schedule",
    "deployer.on_demand.get_deployment_on_demand": "workspaces/*/deployments/*/onDemand",
    "deployer.on_demand.update_deployment_on_demand": "workspaces/*/deployments/*/onDemand",
    "deployer.endpoint.get_endpoint": "workspaces/*/endpoints/*",
    "deployer.endpoint.update_endpoint": "workspaces/*/endpoints/*",
    "deployer.endpoint.delete_endpoint": "workspaces/*/endpoints/*",
    "deployer.endpoint_schedule.get_endpoint_schedule": "workspaces/*/endpoints/*/schedule",
    "deployer.endpoint_schedule.update_endpoint_schedule": "workspaces/*/endpoints/*/schedule",
    "deployer.config.get_monitoring_config": "configuration/*",
    # GET /batch/v1/{name}
    "batch.job.get_job": "workspaces/*/jobs/*",
    "batch.source_spec.get_source_spec": "sourceSpecs/*",
    "batch.sink_spec.get_sink_spec": "sinkSpecs/*",
    # /runtime/v1/{name} and its custom verbs
    "runtime.runtime.get_runtime": "workspaces/*/runtimes/*",
    "runtime.runtime.update_runtime": "workspaces/*/runtimes/*",
    "runtime.runtime.delete_runtime": "workspaces/*/runtimes/*",
    "runtime.runtime.deprecate_runtime": "workspaces/*/runtimes/*",
    "runtime.runtime.disable_runtime": "workspaces/*/runtimes/*",
    "runtime.runtime.enable_runtime": "workspaces/*/runtimes/*",
    "runtime.runtime_image.get_runtime_image": "workspaces/*/runtimeImages/*",
    "runtime.runtime_image.update_runtime_image": "workspaces/*/runtimeImages/*",
    "runtime.runtime_image.delete_runtime_image": "workspaces/*/runtimeImages/*",
    "runtime.runtime_image.deprecate_runtime_image": "workspaces/*/runtimeImages/*",
    "runtime.runtime_image.disable_runtime_image": "workspaces/*/runtimeImages/*",
    "runtime.runtime_image.enable_runtime_image": "workspaces/*/runtimeImages/*",
    "runtime.runtime_image_version.get_runtime_image_version": "workspaces/*/runtimeImages/*/versions/*",
    "runtime.runtime_image_version.deprecate_runtime_image_version": "workspaces/*/runtimeImages/*/versions/*",
    "runtime.runtime_image_version.disable_runtime_image_version": "workspaces/*/runtimeImages/*/versions/*",
    # GET /authz/v1/{name}
    "authz.user.get_user": "users/*",
    "authz.workspace.get_workspace": "workspaces/*",
    # /monitoring/v2/{parent}/...: a deployment's aggregates, or (the "2" calls) a batch job's
    "monitoring.aggregate.list_baseline_aggregates": "workspaces/*/deployments/*/experiments/*",
    "monitoring.aggregate.count_baseline_aggregates": "workspaces/*/deployments/*/experiments/*",
    "monitoring.aggregate.list_aggregates": "workspaces/*/deployments/*/experiments/*",
    "monitoring.aggregate.count_aggregates": "workspaces/*/deployments/*/experiments/*",
    "monitoring.aggregate.list_baseline_aggregates2": "workspaces/*/jobs/*/experiments/*",
    "monitoring.aggregate.count_baseline_aggregates2": "workspaces/*/jobs/*/experiments/*",
    "monitoring.aggregate.list_aggregates2": "workspaces/*/jobs/*/experiments/*",
    "monitoring.aggregate.count_aggregates2": "workspaces/*/jobs/*/experiments/*",
}


# Query parameters h2o-mlops 1.6.5 sends that the description (read off the generated client,
# which lacks them) does not list: accepted too, typed.
EXTRA_QUERY: dict[str, tuple[Param, ...]] = {
    "batch.job.get_job_output": (Param("since_time", "sinceTime", "timestamp"),),
    "batch.job.get_job_output_without_preload_content": (Param("since_time", "sinceTime", "timestamp"),),
}


def name_shape(name: str) -> str:
    """A resource name with its ids replaced by ``*``: ``workspaces/W/deployments/D/status`` is
    ``workspaces/*/deployments/*/status`` (collections at even places, ids at odd ones)."""
    return "/".join(part if i % 2 == 0 else "*" for i, part in enumerate(name.split("/")))


def check_faces(faces: Iterable[str]) -> tuple[str, ...]:
    """``faces`` as a tuple in the canonical order; ValueError for an unknown or missing face."""
    chosen = tuple(faces) if not isinstance(faces, str) else tuple(f.strip() for f in faces.split(","))
    unknown = [f for f in chosen if f not in FACES]
    if unknown or not chosen:
        raise ValueError(f"faces must be one or both of {', '.join(FACES)} (e.g. 'legacy,workspaces'), "
                         f"got {','.join(chosen) or 'none'}")
    return tuple(f for f in FACES if f in chosen)


def served_path(method: Method) -> str:
    """Where the sandbox serves ``method``: its full path, below :data:`AUTHZ_ROOT` for the authz gateway."""
    root = AUTHZ_ROOT if method.service.api.gateways.get(method.service.server) == "authz" else ""
    return root + method.full_path


_LEGACY_ROUTES: dict[tuple[str, str], Method] = {(m.verb, m.full_path): m for m in API.methods}


def legacy_twin(method: Method) -> Method | None:
    """The legacy method whose route a workspaces method shares (storage's RPC-style calls), or None."""
    if method.service.api.generation == "legacy":
        return method
    return _LEGACY_ROUTES.get((method.verb, served_path(method)))


def workspaces_only() -> list[Method]:
    """The workspaces methods with a route of their own (not served by a legacy route)."""
    return [m for m in description("workspaces").methods if legacy_twin(m) is None]


def shared_with_workspaces() -> set[tuple[str, str]]:
    """The legacy routes the workspaces face uses too."""
    return {(m.verb, m.full_path) for m in description("workspaces").methods if legacy_twin(m) is not None}


@dataclass(frozen=True)
class Match:
    """A request matched to a method: its path parameters by wire name."""

    method: Method
    path_params: dict[str, str]


@dataclass(frozen=True)
class _Template:
    verb: str
    pattern: re.Pattern[str]
    params: tuple[str, ...]  # wire names, in order
    literal: int  # how many literal characters: more is more specific
    methods: tuple[Method, ...]  # several when methods share the template


_PARAM = re.compile(r"\{([^}]+)\}")


def _compile(path: str) -> tuple[re.Pattern[str], tuple[str, ...], int]:
    parts = _PARAM.split(path)  # literal, param, literal, param, ..., literal
    literals, params = parts[0::2], parts[1::2]
    regex = "".join(re.escape(lit) + ("([^:]+)" if i < len(params) else "") for i, lit in enumerate(literals))
    return re.compile(regex + r"\Z"), tuple(params), sum(len(lit) for lit in literals)


class TemplateRouter:
    """Finds the method of a verb and path among REST templates (see the module's docstring)."""

    def __init__(self, methods: Iterable[Method]) -> None:
        groups: dict[tuple[str, str], list[Method]] = {}
        for m in methods:
            groups.setdefault((m.verb, _PARAM.sub("{}", served_path(m))), []).append(m)
        templates = []
        for (verb, _), group in groups.items():
            pattern, params, literal = _compile(served_path(group[0]))
            templates.append(_Template(verb, pattern, params, literal, tuple(group)))
        # Most literal characters first; among equals, fewer parameters first.
        self._templates = sorted(templates, key=lambda t: (-t.literal, len(t.params)))

    def match(self, verb: str, path: str, implemented: Container[str] = ()) -> Match | list[str]:
        """The method and its path parameters, or the verbs the path takes (empty: no such path).

        ``implemented`` (qualified names) breaks ties between methods of the same template and shape.
        """
        verbs: list[str] = []
        for t in self._templates:
            found = t.pattern.match(path)
            if found is None:
                continue
            if t.verb != verb:
                verbs.append(t.verb)
                continue
            method = self._pick(t, found.group(1) if t.params else "", implemented)
            # Methods sharing a template may name its parameters differently ({deployment.name}, {endpoint.name}).
            names = _PARAM.findall(served_path(method))
            return Match(method, dict(zip((_wire(p) for p in names), found.groups(), strict=True)))
        return sorted(set(verbs))

    @staticmethod
    def _pick(t: _Template, name: str, implemented: Container[str]) -> Method:
        if len(t.methods) == 1:
            return t.methods[0]
        shape = name_shape(name)
        fitting = [m for m in t.methods if NAME_SHAPES.get(m.qualified_name, shape) == shape]
        if not fitting:
            expected = ", ".join(sorted({NAME_SHAPES[m.qualified_name] for m in t.methods}))
            raise ValueError(f"resource name {name!r} has none of the shapes this route takes ({expected})")
        return next((m for m in fitting if m.qualified_name in implemented), fitting[0])


def _wire(param: str) -> str:
    """A template parameter's wire name (``{deployment.name=workspaces/*/...}`` would keep its name only)."""
    return param.split("=", 1)[0]
