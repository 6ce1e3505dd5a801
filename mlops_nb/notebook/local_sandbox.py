"""The sandbox a notebook runs in its own kernel (``%mlops sandbox``): one per process.

:func:`start_sandbox` starts it (or reuses the running one) and logs in to it, :func:`stop_sandbox`
stops it and logs out of it. The sandbox package loads only here, when called: nothing else in the
client imports it.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from mlops_nb.notebook import session
from mlops_nb.notebook.generations import operations

__all__ = ["running_sandbox", "start_sandbox", "stop_sandbox"]


def start_sandbox(user: str = "alice", *, data: str = "demo", port: int = 0, db: str | None = None,
                  generation: str | None = None) -> Any:
    """Start a local sandbox in this process, or reuse the running one, and log in to it as ``user``;
    returns the user (a ``StorageUser``; a ``V1User`` on the workspaces generation). ``db`` is its
    SQLite file: given another file than the running sandbox's, that sandbox is stopped (saying so)
    and one on ``db`` starts. ``generation`` (``"legacy"``, ``"workspaces"``) is the API the client
    speaks; the sandbox serves both, and a client left to find it speaks legacy."""
    from mlops_nb import sandbox  # the client works without the sandbox; it loads only here

    running = sandbox.started()
    if running is None or (db and os.path.abspath(db) != os.path.abspath(running.db)):
        if running is not None:
            _log_out_of(running.gateway_url)
        running = sandbox.start(data=data, port=port, **({"db": db} if db else {}))
    try:
        client = running.client(user, **({"generation": generation} if generation else {}))
    except ValueError:
        known = ", ".join(a.username for a in running.idp.accounts())
        raise ValueError(f"the sandbox has no user {user!r}; it has {known}") from None
    found = operations(client).who_am_i()
    session.set_current_client(client, found)
    return found


def running_sandbox() -> Any:
    """The sandbox started in this process (by :func:`start_sandbox` or ``mlops_nb.sandbox.start``),
    if it runs (else None)."""
    if "mlops_nb.sandbox" not in sys.modules:
        return None  # none was started: do not load the sandbox to say so
    from mlops_nb import sandbox

    return sandbox.started()


def stop_sandbox() -> str | None:
    """Stop the sandbox started in this process, logging out if logged in to it; its gateway URL, or
    None when none runs."""
    running = running_sandbox()
    if running is None:
        return None
    gateway = running.gateway_url
    _log_out_of(gateway)
    running.stop()
    return gateway


def _log_out_of(gateway: str) -> None:
    try:
        if session.current_client().gateway_url == gateway:
            session.logout()
    except session.NotLoggedIn:
        pass
