"""The notebook client: list calls give DataFrames, and what it sees is remembered for cards.

``mlops_nb.Client`` is this class. It differs from :class:`mlops_nb.wire.client.Client`
in two ways:

* every list call (``list_*``, ``batch_get_*``) returns a
  :class:`~mlops_nb.notebook.frames.ListFrame` instead of a typed response;
* users it sees (``who_am_i``, ``get_user``, ``get_user_by_username``,
  ``list_users``, ``batch_get_users``; in the workspaces generation authz's ``get_user`` and
  ``list_users*``) are recorded in ``client.usernames`` (id -> username, or the login
  principal), the names of experiments and deployments it sees (got, listed, created) in
  ``client.experiment_names`` and ``client.deployment_names``, and deployment statuses
  (``get_deployment_status``, ``list_deployment_statuses``, ``batch_get_deployment_statuses``)
  in ``client.deployment_statuses`` (deployment id -> status JSON), and, in the workspaces
  generation, deployments' scoring URLs (``get_deployment_metadata``,
  ``batch_get_deployments_metadata``) in ``client.scoring_urls``. Cards use them to name
  owners, models and deployments and to show a deployment's state and scoring URL.

Both generations key these by the entity's id: a workspaces resource's id is the last part of
its ``name`` (``workspaces/W/deployments/D`` -> ``D``, the legacy deployment's id in servers
that speak both).

A name no live client has seen is asked for once (``known_username``,
``known_experiment_name``, ``known_deployment_name``: one read call of a live client,
remembered, an unanswered one too), so that cards and figures show names wherever one
exists, with the id beside it.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from mlops_nb.api import Method
from mlops_nb.notebook.frames import list_all, list_result
from mlops_nb.notebook.settings import settings
from mlops_nb.wire import client as wire
from mlops_nb.wire.errors import MLOpsError
from mlops_nb.wire.messages import Message, message_class

if TYPE_CHECKING:
    from mlops_nb.wire.retry import RetryPolicy

__all__ = ["Client", "RecentCache", "known_deployment_name", "known_deployment_status", "known_experiment_name",
           "known_scoring_url", "known_username", "resource_id"]

V = TypeVar("V")

# method -> wire name of the response field carrying the users / the deployment statuses, for
# both generations (a workspaces method of the same name as a legacy one answers the same field)
_USERS = {
    "storage.user.who_am_i": "user",
    "storage.user.get_user": "user",
    "storage.user.get_user_by_username": "user",
    "storage.user.list_users": "user",
    "storage.user.batch_get_users": "users",
    "authz.user.get_user": "user",
    "authz.user.list_users": "users",
    "authz.user.list_users_by_email": "users",
    "authz.user.list_users_by_email2": "users",
}
_EXPERIMENTS = {name: "experiment" for name in ("storage.experiment.get_experiment", "storage.experiment.list_experiments",
                                               "storage.experiment.create_experiment")}
_DEPLOYMENTS = {
    **{name: "deployment" for name in ("deployer.deployment.list_project_deployments",
                                       "deployer.deployment.create_deployment",
                                       "deployer.deployment.update_model_deployment",
                                       "deployer.deployment.get_deployment",
                                       "deployer.deployment.update_deployment")},
    "deployer.deployment.list_deployments": "deployments",
}
_STATUSES = {
    "deployer.deployment_status.get_deployment_status": "deploymentStatus",
    "deployer.deployment_status.list_deployment_statuses": "deploymentStatus",
    "deployer.status.get_deployment_status": "deploymentStatus",
    "deployer.status.batch_get_deployment_statuses": "deploymentStatuses",
}
_METADATA = {
    "deployer.metadata.get_deployment_metadata": "deploymentMetadata",
    "deployer.metadata.batch_get_deployments_metadata": "deploymentsMetadata",
}
# The status message of each generation, for the statuses kept as JSON.
_STATUS_MESSAGE = {"legacy": "DeployDeploymentStatus", "workspaces": "V2DeploymentStatus"}


def resource_id(name: str | None, *, below: str = "") -> str:
    """The id in a workspaces resource name: its last part (``workspaces/W/deployments/D`` -> ``D``),
    or, for a sub-resource ending in ``below`` (``.../deployments/D/status``), the part before it."""
    if not name:
        return ""
    parts = name.split("/")
    if below and len(parts) > 1 and parts[-1] == below:
        parts = parts[:-1]
    return parts[-1]


def _entity_id(entity: dict[str, Any], below: str = "") -> str:
    """A legacy entity's ``id`` (or ``deploymentId``), or the id in a workspaces entity's ``name``."""
    return entity.get("id") or entity.get("deploymentId") or resource_id(entity.get("name"), below=below)


def _username(user: dict[str, Any]) -> str | None:
    return user.get("username") or user.get("loginPrincipal") or user.get("displayName")


class _FromSettings:
    """A default read from ``settings`` when the client is made (shows so in ``help()``)."""

    def __init__(self, names: str) -> None:
        self.names = names

    def __repr__(self) -> str:
        return self.names


_TIMEOUT_FROM_SETTINGS: Any = _FromSettings("settings.timeout")
_RETRY_FROM_SETTINGS: Any = _FromSettings("settings.retries/retry_deadline")


class RecentCache(Generic[V]):
    """Key -> value for the most recently recorded ``capacity`` keys."""

    def __init__(self, capacity: int = 10_000) -> None:
        self.capacity = capacity
        self._values: OrderedDict[str, V] = OrderedDict()
        # Concurrent calls of one client (mlops_nb.all_deployments) record from several threads.
        self._lock = threading.Lock()

    def record(self, key: str | None, value: V | None) -> None:
        """Remember ``value`` under ``key``; empty keys and values are ignored."""
        if not key or not value:
            return
        with self._lock:
            self._values[key] = value
            self._values.move_to_end(key)
            if len(self._values) > self.capacity:
                self._values.popitem(last=False)

    def get(self, key: str) -> V | None:
        with self._lock:
            return self._values.get(key)

    def __len__(self) -> int:
        return len(self._values)

    def __contains__(self, key: object) -> bool:
        return key in self._values

    def __repr__(self) -> str:
        return f"<RecentCache: {len(self)} of at most {self.capacity}>"


def _entities(payload: dict[str, Any], wire_name: str) -> list[dict[str, Any]]:
    value = payload.get(wire_name)
    if isinstance(value, dict):
        return [value]
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


_CLIENTS: weakref.WeakSet[Client] = weakref.WeakSet()


def _named(names_of: Callable[[Client], RecentCache[str]], key: str,
           ask: Callable[[Client, str], str | None]) -> str | None:
    """The name of ``key`` as a live client has seen it; else asked of the live clients, once."""
    if not key:
        return None
    clients = list(_CLIENTS)
    found = next((name for c in clients if (name := names_of(c).get(key))), None)
    for client in clients:
        if found is not None:
            break
        if key in client.unnamed:
            continue
        client.unnamed.record(key, True)  # asked: an entity without a name, or out of reach, is asked once
        with contextlib.suppress(MLOpsError):
            found = ask(client, key) or None
        names_of(client).record(key, found)
    return found


def known_username(user_id: str) -> str | None:
    """The username of ``user_id``: as a live client has seen it, else asked once (``get_user``;
    in the workspaces generation authz's, whose users have a login principal rather than a username)."""
    def ask(client: Client, key: str) -> str | None:
        if client.generation == "workspaces":
            return _username(client.authz.user.get_user(name=f"users/{key}").user.to_wire())
        return client.storage.user.get_user(id=key).user.username

    return _named(lambda c: c.usernames, resource_id(user_id), ask)


def known_experiment_name(experiment_id: str) -> str | None:
    """The display name of an experiment: as a live client has seen it, else asked once (``get_experiment``)."""
    return _named(lambda c: c.experiment_names, experiment_id,
                  lambda c, key: c.storage.experiment.get_experiment(id=key).experiment.display_name)


def known_deployment_name(deployment_id: str) -> str | None:
    """The display name of a deployment: as a live client has seen it, else asked once (its project's
    deployments, which records the names of them all)."""
    def ask(client: Client, key: str) -> str | None:
        if client.generation == "workspaces":
            # No call finds a deployment by id alone: the deployments of each workspace, until found.
            for workspace in list_all(client.authz.workspace.list_workspaces, progress=False).name:
                list_all(client.deployer.deployment.list_deployments, parent=workspace, progress=False)
                if key in client.deployment_names:
                    break
            return client.deployment_names.get(key)
        project_id = client.storage.deployment.get_deployment(deployment_id=key).deployment.project_id
        list_all(client.deployer.deployment.list_project_deployments, {"project_id": project_id})
        return client.deployment_names.get(key)

    return _named(lambda c: c.deployment_names, resource_id(deployment_id), ask)


def known_deployment_status(deployment_id: str) -> Message | None:
    """The latest status a live client has seen for the deployment: a ``DeployDeploymentStatus``, or
    from a client of the workspaces generation a ``V2DeploymentStatus``."""
    key = resource_id(deployment_id)
    found = next(((c, s) for c in list(_CLIENTS) if (s := c.deployment_statuses.get(key))), None)
    if found is None:
        return None
    client, status = found
    generation = client.generation
    return message_class(_STATUS_MESSAGE[generation], generation).from_wire(status)


def known_scoring_url(deployment_id: str) -> str | None:
    """A deployment's scoring URL as a live client of the workspaces generation has seen it (its
    deployment metadata); legacy statuses carry theirs."""
    return next((u for c in list(_CLIENTS) if (u := c.scoring_urls.get(resource_id(deployment_id)))), None)


class Client(wire.Client):
    """A connection to one MLOps gateway, for notebooks.

    Calls follow the legacy client (``client.storage.project.list_projects(request)``);
    list calls return DataFrames whose ``.project`` (etc.) still give the typed
    entities. ``timeout`` defaults to ``mlops_nb.notebook.settings.settings.timeout``
    (seconds per HTTP attempt) and ``retry`` to the default ``RetryPolicy`` with
    ``settings.retry_deadline`` as its deadline, or none when ``settings.retries`` is
    False; the other arguments are those of the wire client (``generation``: ``"legacy"``,
    ``"workspaces"`` or ``None`` to find it on first use; ``authz_gateway_url``: the workspaces
    generation's second gateway, found by ``Client.from_discovery``).
    """

    def __init__(
        self,
        gateway_url: str,
        token_provider: Callable[[], str],
        *,
        generation: str | None = None,
        authz_gateway_url: str | None = None,
        timeout: float | tuple[float, float] | None = _TIMEOUT_FROM_SETTINGS,
        verify: bool = True,
        ca_bundle: str | None = None,
        proxies: dict[str, str] | None = None,
        retry: RetryPolicy | bool | None = _RETRY_FROM_SETTINGS,
        max_connections: int | None = None,
    ) -> None:
        if timeout is _TIMEOUT_FROM_SETTINGS:
            timeout = settings.timeout
        if retry is _RETRY_FROM_SETTINGS:
            from mlops_nb.wire.retry import RetryPolicy  # with requests, when the first client is made

            retry = RetryPolicy(deadline=settings.retry_deadline) if settings.retries else RetryPolicy.off()
        super().__init__(gateway_url, token_provider, generation=generation, authz_gateway_url=authz_gateway_url,
                         timeout=timeout, verify=verify, ca_bundle=ca_bundle,
                         proxies=proxies, retry=retry, max_connections=max_connections)
        self.usernames: RecentCache[str] = RecentCache()
        self.experiment_names: RecentCache[str] = RecentCache()
        self.deployment_names: RecentCache[str] = RecentCache()
        self.unnamed: RecentCache[bool] = RecentCache()  # ids whose names were asked for (see _named)
        self.deployment_statuses: RecentCache[dict[str, Any]] = RecentCache()
        self.scoring_urls: RecentCache[str] = RecentCache()
        _CLIENTS.add(self)

    def close(self) -> None:
        """Close the connections; what this client saw no longer informs cards."""
        _CLIENTS.discard(self)
        super().close()

    def _result(self, method: Method, payload: dict[str, Any]) -> Any:
        name = method.qualified_name
        if name in _USERS:
            for user in _entities(payload, _USERS[name]):
                self.usernames.record(_entity_id(user), _username(user))
        for names, methods in ((self.experiment_names, _EXPERIMENTS), (self.deployment_names, _DEPLOYMENTS)):
            if name in methods:
                for entity in _entities(payload, methods[name]):
                    names.record(_entity_id(entity), entity.get("displayName"))
        if name in _STATUSES:
            for status in _entities(payload, _STATUSES[name]):
                self.deployment_statuses.record(_entity_id(status, below="status"), status)
        if name in _METADATA:
            for metadata in _entities(payload, _METADATA[name]):
                score = ((metadata.get("scoringInterface") or {}).get("score") or {}).get("uri")
                self.scoring_urls.record(_entity_id(metadata, below="metadata"), score)
        if method.is_list:
            return list_result(method, payload)
        return super()._result(method, payload)
