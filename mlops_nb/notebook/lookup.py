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

On the workspaces generation of the API a project is a workspace (``V1Workspace``, listed by
the authz gateway; its id is the last part of its name ``workspaces/W``) and errors say
"workspace"; where each kind is listed, and how a list is narrowed to a name, is
:mod:`~mlops_nb.notebook.generations`' (storage filters, or, for the REST lists of workspaces and
deployments, every page matched here). Deployments are also given as their resource name
``workspaces/W/deployments/D``.
"""

from __future__ import annotations

import contextlib
from typing import Any

from mlops_nb.notebook.frames import list_all
from mlops_nb.notebook.generations import Workspaces, entity_id, operations
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


# What users call each kind; generations.Operations.lists says where each is listed.
_PROJECT, _EXPERIMENT, _REGISTERED_MODEL, _DEPLOYMENT = "project", "experiment", "registered model", "deployment"


def _word(client: Any, kind: str) -> str:
    """The kind as the client's generation calls it (a project is a workspace there)."""
    return operations(client).project_word if kind == _PROJECT else kind


def _matching(client: Any, kind: str, id_or_name: str, **narrowing: Any) -> list[Message]:
    """Up to MAX_CANDIDATES + 1 entities whose id or display name is ``id_or_name``: one filtered list."""
    return operations(client).matching(kind, id_or_name, MAX_CANDIDATES + 1, narrowing)


def _the_one(kind: str, id_or_name: str, scope: str, entities: list[Message]) -> Message | None:
    """The entity with this id, else the one with this name; None if none; AmbiguousName if several."""
    by_id = [e for e in entities if entity_id(e) == id_or_name]
    if by_id:
        return by_id[0]
    named = [e for e in entities if e.display_name == id_or_name]
    if len(named) > 1:
        raise AmbiguousName(kind, id_or_name, scope, [entity_id(e) for e in named[:MAX_CANDIDATES]],
                            more=len(named) > MAX_CANDIDATES)
    return named[0] if named else None


def _find(client: Any, kind: str, id_or_name: str, scope: str = "", **narrowing: Any) -> Message:
    word = _word(client, kind)
    if not isinstance(id_or_name, str) or not id_or_name:
        raise TypeError(f"find_{kind.replace(' ', '_')} needs an id or a name (a non-empty str), "
                        f"got {id_or_name!r}")
    found = _the_one(word, id_or_name, scope, _matching(client, kind, id_or_name, **narrowing))
    if found is not None:
        return found
    similar = operations(client).similar(kind, id_or_name, MAX_SUGGESTIONS, narrowing)
    raise NameNotFound(word, id_or_name, scope, [(entity_id(e), e.display_name) for e in similar])


# What a project is on each generation: a StorageProject, or a workspace (V1Workspace).
_PROJECT_MESSAGES = ("StorageProject", "V1Workspace")


def project_of(client: Any, project: Message | str) -> Message:
    """The project (``StorageProject``; a ``V1Workspace`` on the workspaces generation) given as
    itself, its id or its display name."""
    if isinstance(project, Message) and type(project).__name__ in _PROJECT_MESSAGES:
        return project
    if isinstance(project, str):
        return find_project(client, project)
    word = _word(client, _PROJECT)
    raise TypeError(f"{word} must be a {' or '.join(_PROJECT_MESSAGES)}, a {word} id or a display name, "
                    f"got {type(project).__name__}")


def _find_in_project(client: Any, kind: str, project: Message | str, id_or_name: str) -> Message:
    project_id = entity_id(project_of(client, project))
    return _find(client, kind, id_or_name, f" in {_word(client, _PROJECT)} {project_id}",
                 **operations(client).scope(kind, project_id))


def _every_project(client: Any) -> str:
    return f" in the {_word(client, _PROJECT)}s you may see"


def _in_any_project(client: Any, kind: str, id_or_name: str) -> Message | None:
    """The one entity of ``kind`` with this id or name in any project the user may see (every page of
    the projects' list); None if none; AmbiguousName if several carry the name."""
    found: list[Message] = []
    ops = operations(client)
    for project in ops.projects():
        found.extend(_matching(client, kind, id_or_name, **ops.scope(kind, entity_id(project))))
    return _the_one(kind, id_or_name, _every_project(client), found)


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
        raise NameNotFound("experiment or registered model version", text, _every_project(client), [])
    return found.id


def deployment_id(client: Any, deployment: Message | str, project: Message | str | None = None) -> str:
    """The id of a deployment given as a message, an id, or a display name (in ``project``, or any project)."""
    if isinstance(deployment, Message):
        kind = type(deployment).__name__
        if kind == "DeployDeploymentStatus":
            return deployment.deployment_id
        if kind in ("DeployDeployment", "StorageDeployment"):
            return deployment.id
        if kind in ("V2Deployment", "V2DeploymentStatus", "V2DeploymentMetadata"):
            return _remembered(client, deployment.name)
        raise TypeError(f"a {kind} is not a deployment; pass a deployment (DeployDeployment, V2Deployment), its "
                        "status, or its id or name")
    if not isinstance(deployment, str) or not deployment:
        raise TypeError(f"pass a deployment (a message, its id or its name), got {type(deployment).__name__}")
    if deployment.startswith("workspaces/"):
        return _remembered(client, deployment)
    if project is not None:
        return _deployment_found(client, find_deployment(client, project, deployment))
    if operations(client).deployment_exists(deployment):
        return deployment
    found = _in_any_project(client, _DEPLOYMENT, deployment)
    if found is None:
        raise NameNotFound(_DEPLOYMENT, deployment, _every_project(client), [])
    return _deployment_found(client, found)


def _remembered(client: Any, resource_name: str) -> str:
    """The deployment id of a workspaces resource name, its workspace kept for later calls."""
    ops = operations(client)
    if not isinstance(ops, Workspaces):
        raise TypeError(f"{resource_name!r} names a deployment of the workspaces generation; this client speaks "
                        f"the {ops.generation} one")
    return ops.remember(resource_name)


def _deployment_found(client: Any, found: Message) -> str:
    return _remembered(client, found.name) if type(found).__name__ == "V2Deployment" else found.id


def home_project_id(client: Any, experiment: Message) -> str:
    """The id of the project an experiment is in (the first one, if it is linked into several)."""
    projects = list_all(client.storage.project.list_projects_containing_experiment, experiment_id=experiment.id,
                        limit=1, progress=False).entities
    if not projects:
        raise LookupError(f"experiment {experiment.id} is in no {_word(client, _PROJECT)} you may see")
    return projects[0].id
