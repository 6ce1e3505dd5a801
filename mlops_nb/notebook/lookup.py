"""Find an entity by its id or its display name.

``find_project(client, "churn")`` gives the typed ``StorageProject`` whose id or
display name is ``"churn"``. An id match wins; otherwise exactly one entity must
carry the name. A name several entities share raises :class:`AmbiguousName`
(listing their ids), an unknown one :class:`NameNotFound` (with similar names, if
any); both are ``LookupError``.

Each lookup is one filtered list call: the filter's two clauses (``id`` equal to
the text, ``display_name`` equal to it) are ORed, as this package and its sandbox
read the API's filter clauses. When nothing matches, a second call (``display_name``
CONTAINS the text) finds similar names for the error message.
Entities inside a project (experiments, registered models, deployments) take the
project as a ``StorageProject``, an id or a name. Without a project, :func:`experiment_id` and
:func:`deployment_id` look in every project the user may see (every page of ``list_projects``).
This module is the package's only name resolution: the deployment helpers and the magics use it.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from mlops_nb.notebook.frames import list_all
from mlops_nb.wire.errors import NotFound
from mlops_nb.wire.messages import Message

__all__ = [
    "AmbiguousName",
    "EntityLookupError",
    "NameNotFound",
    "deployment_id",
    "experiment_id",
    "find_deployment",
    "find_experiment",
    "find_project",
    "find_registered_model",
    "home_project_id",
    "project_of",
]

# How many same-named entities an AmbiguousName error lists, and similar names a NameNotFound offers.
MAX_CANDIDATES = 20
MAX_SUGGESTIONS = 5


class EntityLookupError(LookupError):
    """An id or display name that does not pick exactly one entity."""

    def __init__(self, message: str, *, kind: str, query: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.query = query


class NameNotFound(EntityLookupError):
    """No entity has this id or display name. ``suggestions``: (id, name) of similar names."""

    def __init__(self, kind: str, query: str, scope: str, suggestions: list[tuple[str, str]]) -> None:
        message = f"no {kind} has the id or name {query!r}{scope}"
        if suggestions:
            message += "; similar names: " + ", ".join(f"{name!r} (id {i})" for i, name in suggestions)
        super().__init__(message, kind=kind, query=query)
        self.suggestions = suggestions


class AmbiguousName(EntityLookupError):
    """Several entities carry this display name. ``candidates``: their ids."""

    def __init__(self, kind: str, query: str, scope: str, candidates: list[str], more: bool) -> None:
        listed = ", ".join(candidates) + (", ..." if more else "")
        super().__init__(f"{len(candidates)}{'+' if more else ''} {kind}s are named {query!r}{scope}: "
                         f"pass one of their ids instead ({listed})", kind=kind, query=query)
        self.candidates = candidates


@dataclass(frozen=True)
class _Kind:
    name: str  # what users call it, e.g. "registered model"
    list_path: tuple[str, str, str]  # server, entity, method of the list call


_PROJECT = _Kind("project", ("storage", "project", "list_projects"))
_EXPERIMENT = _Kind("experiment", ("storage", "experiment", "list_experiments"))
_REGISTERED_MODEL = _Kind("registered model", ("storage", "registered_model", "list_registered_models"))
_DEPLOYMENT = _Kind("deployment", ("deployer", "deployment", "list_project_deployments"))


def _constraint(field: str, operator: str, text: str) -> dict[str, Any]:
    # Wire spelling, so one dict serves the storage and the deployer filter messages alike.
    return {"propertyConstraint": [{"property": {"field": field}, "operator": operator,
                                    "value": {"stringValue": text}}]}


def _matching(client: Any, kind: _Kind, id_or_name: str, **narrowing: Any) -> list[Message]:
    """Up to MAX_CANDIDATES + 1 entities whose id or display name is ``id_or_name``: one filtered list."""
    server, entity, method = kind.list_path
    list_method = getattr(getattr(getattr(client, server), entity), method)
    clauses = [_constraint("id", "EQUAL_TO", id_or_name), _constraint("display_name", "EQUAL_TO", id_or_name)]
    return list_all(list_method, filter={"query": {"clause": clauses}}, limit=MAX_CANDIDATES + 1,
                    progress=False, **narrowing).entities


def _the_one(kind: str, id_or_name: str, scope: str, entities: list[Message]) -> Message | None:
    """The entity with this id, else the one with this name; None if none; AmbiguousName if several."""
    by_id = [e for e in entities if e.id == id_or_name]
    if by_id:
        return by_id[0]
    named = [e for e in entities if e.display_name == id_or_name]
    if len(named) > 1:
        raise AmbiguousName(kind, id_or_name, scope, [e.id for e in named[:MAX_CANDIDATES]],
                            more=len(named) > MAX_CANDIDATES)
    return named[0] if named else None


def _find(client: Any, kind: _Kind, id_or_name: str, scope: str = "", **narrowing: Any) -> Message:
    if not isinstance(id_or_name, str) or not id_or_name:
        raise TypeError(f"find_{kind.name.replace(' ', '_')} needs an id or a name (a non-empty str), "
                        f"got {id_or_name!r}")
    found = _the_one(kind.name, id_or_name, scope, _matching(client, kind, id_or_name, **narrowing))
    if found is not None:
        return found
    server, entity, method = kind.list_path
    list_method = getattr(getattr(getattr(client, server), entity), method)
    similar = list_all(list_method, filter={"query": {"clause": [_constraint("display_name", "CONTAINS", id_or_name)]}},
                       limit=MAX_SUGGESTIONS, progress=False, **narrowing)
    raise NameNotFound(kind.name, id_or_name, scope, [(e.id, e.display_name) for e in similar.entities])


def project_of(client: Any, project: Message | str) -> Message:
    """The ``StorageProject`` given as itself, its id or its display name."""
    if isinstance(project, Message) and type(project).__name__ == "StorageProject":
        return project
    if isinstance(project, str):
        return find_project(client, project)
    raise TypeError(f"project must be a StorageProject, a project id or a display name, got {type(project).__name__}")


def _find_in_project(client: Any, kind: _Kind, project: Message | str, id_or_name: str) -> Message:
    project_id = project_of(client, project).id
    return _find(client, kind, id_or_name, f" in project {project_id}", project_id=project_id)


_EVERY_PROJECT = " in the projects you may see"


def _in_any_project(client: Any, kind: _Kind, id_or_name: str) -> Message | None:
    """The one entity of ``kind`` with this id or name in any project the user may see (every page of
    ``list_projects``); None if none; AmbiguousName if several carry the name."""
    found: list[Message] = []
    for project in list_all(client.storage.project.list_projects, progress=False).entities:
        found.extend(_matching(client, kind, id_or_name, project_id=project.id))
    return _the_one(kind.name, id_or_name, _EVERY_PROJECT, found)


def find_project(client: Any, id_or_name: str) -> Message:
    """The ``StorageProject`` with this id or display name (among the projects the user may see)."""
    return _find(client, _PROJECT, id_or_name)


def find_experiment(client: Any, project: Message | str, id_or_name: str) -> Message:
    """The ``StorageExperiment`` with this id or display name in ``project`` (a project, its id or name)."""
    return _find_in_project(client, _EXPERIMENT, project, id_or_name)


def find_registered_model(client: Any, project: Message | str, id_or_name: str) -> Message:
    """The ``StorageRegisteredModel`` with this id or display name in ``project``."""
    return _find_in_project(client, _REGISTERED_MODEL, project, id_or_name)


def find_deployment(client: Any, project: Message | str, id_or_name: str) -> Message:
    """The deployer's ``DeployDeployment`` with this id or display name in ``project``."""
    return _find_in_project(client, _DEPLOYMENT, project, id_or_name)


def experiment_id(client: Any, text: str) -> str:
    """The id of the experiment that ``text`` names: the experiment's id, a registered model version's
    id, or the experiment's display name in any project the user may see."""
    with contextlib.suppress(NotFound):
        return client.storage.experiment.get_experiment(id=text).experiment.id
    with contextlib.suppress(NotFound):
        return client.storage.registered_model_version.get_model_version(
            model_version_id=text).registered_model_version.experiment_id
    found = _in_any_project(client, _EXPERIMENT, text)
    if found is None:
        raise NameNotFound("experiment or registered model version", text, _EVERY_PROJECT, [])
    return found.id


def deployment_id(client: Any, deployment: Message | str, project: Message | str | None = None) -> str:
    """The id of a deployment given as a message, an id, or a display name (in ``project``, or any project)."""
    if isinstance(deployment, Message):
        kind = type(deployment).__name__
        if kind == "DeployDeploymentStatus":
            return deployment.deployment_id
        if kind in ("DeployDeployment", "StorageDeployment"):
            return deployment.id
        raise TypeError(f"a {kind} is not a deployment; pass a DeployDeployment, its status, or its id or name")
    if not isinstance(deployment, str) or not deployment:
        raise TypeError(f"pass a deployment (a message, its id or its name), got {type(deployment).__name__}")
    if project is not None:
        return find_deployment(client, project, deployment).id
    with contextlib.suppress(NotFound):
        client.deployer.deployment_status.get_deployment_status(deployment_id=deployment)
        return deployment
    found = _in_any_project(client, _DEPLOYMENT, deployment)
    if found is None:
        raise NameNotFound(_DEPLOYMENT.name, deployment, _EVERY_PROJECT, [])
    return found.id


def home_project_id(client: Any, experiment: Message) -> str:
    """The id of the project an experiment is in (the first one, if it is linked into several)."""
    projects = list_all(client.storage.project.list_projects_containing_experiment, experiment_id=experiment.id,
                        limit=1, progress=False).entities
    if not projects:
        raise LookupError(f"experiment {experiment.id} is in no project you may see")
    return projects[0].id
