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
project as a ``StorageProject``, an id or a name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlops_nb.notebook.frames import list_all
from mlops_nb.wire.messages import Message

__all__ = [
    "AmbiguousName",
    "EntityLookupError",
    "NameNotFound",
    "find_deployment",
    "find_experiment",
    "find_project",
    "find_registered_model",
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


def _find(client: Any, kind: _Kind, id_or_name: str, scope: str = "", **narrowing: Any) -> Message:
    if not isinstance(id_or_name, str) or not id_or_name:
        raise TypeError(f"find_{kind.name.replace(' ', '_')} needs an id or a name (a non-empty str), "
                        f"got {id_or_name!r}")
    server, entity, method = kind.list_path
    list_method = getattr(getattr(getattr(client, server), entity), method)
    clauses = [_constraint("id", "EQUAL_TO", id_or_name), _constraint("display_name", "EQUAL_TO", id_or_name)]
    frame = list_all(list_method, filter={"query": {"clause": clauses}}, limit=MAX_CANDIDATES + 1,
                     progress=False, **narrowing)
    entities = frame.entities
    by_id = [e for e in entities if e.id == id_or_name]
    if by_id:
        return by_id[0]
    named = [e for e in entities if e.display_name == id_or_name]
    if len(named) == 1:
        return named[0]
    if named:
        raise AmbiguousName(kind.name, id_or_name, scope, [e.id for e in named[:MAX_CANDIDATES]],
                            more=len(named) > MAX_CANDIDATES)
    similar = list_all(list_method, filter={"query": {"clause": [_constraint("display_name", "CONTAINS", id_or_name)]}},
                       limit=MAX_SUGGESTIONS, progress=False, **narrowing)
    raise NameNotFound(kind.name, id_or_name, scope, [(e.id, e.display_name) for e in similar.entities])


def _find_in_project(client: Any, kind: _Kind, project: Message | str, id_or_name: str) -> Message:
    project_id = project.id if isinstance(project, Message) else find_project(client, project).id
    return _find(client, kind, id_or_name, f" in project {project_id}", project_id=project_id)


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
