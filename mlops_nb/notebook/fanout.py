"""The same calls for many projects, made concurrently.

``all_deployments(client)`` is "every deployment I can see, with its state": the
deployer's deployments and their statuses, two list calls per project (on the workspaces
generation of the API, one call per workspace that lists them and then asks their statuses by
name; :mod:`~mlops_nb.notebook.generations` says which calls). Those calls run
on a bounded pool of threads (``settings.concurrent_calls``, default 8; ``%config
MLOps.concurrent_calls``) that share the client, and with it the token and the pooled
connections to the gateway. The rows and their order are those of a loop making the
calls one after another (projects in the order ``list_projects`` gives them, each
project's deployments in the server's order), whatever order the answers arrive in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

import pandas as pd

from mlops_nb.notebook.frames import FRAME_ATTR, entity_field, frame_from_wire, list_all
from mlops_nb.notebook.generations import Legacy, entity_id, operations
from mlops_nb.notebook.lookup import find_project
from mlops_nb.notebook.query import condition_field, conditions, filter_frame, sort_frame
from mlops_nb.notebook.settings import MAX_CONCURRENT_CALLS, settings
from mlops_nb.wire.messages import Message

__all__ = ["all_deployments", "call_concurrently", "with_states"]

T = TypeVar("T")

# The columns all_deployments adds to the deployer's (no server filters on them).
ADDED_COLUMNS = ("state", "state_message", "project")


def call_concurrently(calls: Sequence[Callable[[], T]], concurrent_calls: int | None = None) -> list[T]:
    """Each call's result, in the order of ``calls``, making at most ``concurrent_calls`` at once.

    The default is ``settings.concurrent_calls``; with 1 (or a single call) they run one after
    another in this thread. The first call to fail (in the order of ``calls``) raises its error
    once the calls already running have ended; calls not started by then are not made.
    """
    workers = settings.concurrent_calls if concurrent_calls is None else concurrent_calls
    if not 1 <= workers <= MAX_CONCURRENT_CALLS:
        raise ValueError(f"concurrent_calls must be 1 to {MAX_CONCURRENT_CALLS}, got {workers}")
    if workers == 1 or len(calls) <= 1:
        return [call() for call in calls]
    pool = ThreadPoolExecutor(max_workers=min(workers, len(calls)), thread_name_prefix="mlops-nb-call")
    try:
        futures = [pool.submit(call) for call in calls]
        return [future.result() for future in futures]
    finally:
        # On an error or Ctrl-C the calls not started yet are dropped; running ones end by their timeout.
        pool.shutdown(wait=True, cancel_futures=True)


def with_states(deployments: pd.DataFrame, states: dict[str, Message], project_names: Sequence[str]) -> pd.DataFrame:
    """The deployer's deployments with their state, state message and project name (one per row) up front."""
    ids = deployments["id"] if "id" in deployments else deployments["name"].str.rsplit("/", n=1).str[-1]
    extra = pd.DataFrame({
        "state": pd.Series([str(states[i].state) if i in states else None for i in ids], dtype="string"),
        "state_message": pd.Series([states[i].message if i in states else None for i in ids], dtype="string"),
        "project": pd.Series(list(project_names), dtype="string"),
    }, index=deployments.index)
    first = [c for c in ("id", "name", "display_name") if c in deployments]
    rest = [c for c in deployments.columns if c not in first]
    return pd.concat([deployments[first], extra, deployments[rest]], axis=1)


def _projects_holding_deployments(client: Any, concurrent_calls: int | None) -> list[Message]:
    """The projects the caller may read that hold a deployment, in ``list_projects`` order (on the
    workspaces generation, which cannot ask which hold one, every workspace)."""
    ops = operations(client)
    if not isinstance(ops, Legacy):
        return ops.projects()
    holding, everything = call_concurrently([
        partial(list_all, client.storage.deployment.list_all_deployments, progress=False),
        partial(list_all, client.storage.project.list_projects, progress=False),
    ], concurrent_calls)
    ids = set(holding["project_id"])
    return [p for p in everything.entities if p.id in ids]


def all_deployments(
    client: Any,
    projects: Iterable[Message | str] | None = None,
    *,
    concurrent_calls: int | None = None,
    limit_per_project: int | None = None,
    where: str | Sequence[str] | None = None,
    sort: str | None = None,
    **fields: Any,
) -> pd.DataFrame:
    """Every deployment of ``projects`` as one frame, with its state, state message and project name.

    ``projects`` are ``StorageProject`` messages, ids or display names; by default every
    project the caller may read that holds a deployment. Each project costs two calls (its
    deployments, their statuses), made ``concurrent_calls`` at once (default:
    ``settings.concurrent_calls``). ``limit_per_project`` caps each project's rows; ``fields``
    go into each ``list_project_deployments`` request (``filter=...``, ``sort=...``). ``where``
    and ``sort`` are :func:`mlops_nb.list_all`'s (``where="state~fail"``): conditions on the
    columns added here (``state``, ``state_message``, ``project``) are applied to the frame, the
    others by the deployer; a sort orders the rows of every project together.
    """
    here = [c for c in conditions(where) if condition_field(c) in ADDED_COLUMNS]
    server = [c for c in conditions(where) if c not in here]
    if projects is None:
        chosen = _projects_holding_deployments(client, concurrent_calls)
    else:
        chosen = [p if isinstance(p, Message) else find_project(client, p) for p in projects]
    # The answers stay JSON until the end: one frame of every row costs far less than a frame per project.
    ops = operations(client)
    list_fields = {"where": server, "sort": sort, "limit": limit_per_project, **fields}
    per_project = [ops.deployment_calls(entity_id(p), list_fields) for p in chosen]
    answers = iter(call_concurrently([call for calls in per_project for call in calls], concurrent_calls))
    method = ops.deployments_method
    entity = entity_field(method).json
    rows: list[dict[str, Any]] = []
    names: list[str] = []
    states: dict[str, Message] = {}
    for project, calls in zip(chosen, per_project, strict=True):
        found, found_states = ops.deployments_found([next(answers) for _ in calls])
        rows += found
        names += [project.display_name] * len(found)
        states.update(found_states)
    result = with_states(frame_from_wire(method, {entity: rows}), states, names)
    for condition in here:
        result = filter_frame(result, condition)
    if sort is not None and len(chosen) > 1:
        result = sort_frame(result, sort)
    result.attrs[FRAME_ATTR] = entity_field(method).type
    return result
