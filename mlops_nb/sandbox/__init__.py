"""The sandbox: a local, MLOps-compatible gateway with its own OpenID Connect provider and SQLite store.

From Python::

    from mlops_nb import sandbox
    sb = sandbox.start()              # port 0: a free port; demo data (alice, bob, projects, ...)
    client = sb.client("alice")       # a ready mlops_nb.Client
    sb.stop()

or ``with sandbox.Sandbox(db=":memory:") as sb: ...``. From a shell: ``mlops-nb sandbox``.

It answers both generations of the MLOps API over one store (``faces``, default both): the legacy
one of ``h2o-mlops`` 1.0 (projects) and the workspaces one of MLOps 1.0 and later (a workspace is
a project); ``sb.client("alice", generation="workspaces")`` speaks the second, whose authz gateway
is ``sb.authz_gateway_url``.
The client never imports this package; the sandbox uses the API description and the wire layer.
"""

from __future__ import annotations

from typing import Any

from mlops_nb.sandbox.server import Sandbox

__all__ = ["Sandbox", "start", "started"]

_started: Sandbox | None = None  # the sandbox start() started last in this process


def start(**options: Any) -> Sandbox:
    """Start a sandbox in the background of this process and return it (see :class:`Sandbox`).

    One at a time: the sandbox an earlier ``start()`` in this process started, if it still runs, is
    stopped first, with its scorers, and a line says so. Re-running a notebook in the same kernel so
    leaves one sandbox running, not one per run. (``Sandbox(...).start()`` starts one beside it.)
    """
    global _started
    previous = started()
    if previous is not None:
        gateway = previous.gateway_url
        previous.stop()
        print(f"Stopped the sandbox started before in this kernel, at {gateway}.")
    _started = Sandbox(**options).start()
    return _started


def started() -> Sandbox | None:
    """The sandbox :func:`start` started last in this process, if it still runs."""
    return _started if _started is not None and _started.running else None
