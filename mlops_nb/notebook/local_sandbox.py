"""The sandbox a notebook runs in its own kernel (``%mlops sandbox``): one per process.

:func:`start_sandbox` starts it (or reuses the running one) and logs in to it, :func:`stop_sandbox`
stops it and logs out of it. The sandbox package loads only here, when called: nothing else in the
client imports it.
"""

from __future__ import annotations

import os
from typing import Any

from mlops_nb.notebook import session

__all__ = ["running_sandbox", "start_sandbox", "stop_sandbox"]


_sandbox: Any = None  # the sandbox start_sandbox started in this process


def start_sandbox(user: str = "alice", *, data: str = "demo", port: int = 0, db: str | None = None) -> Any:
    """Start a local sandbox in this process (once: later calls reuse it) and log in to it as ``user``;
    returns the user (a ``StorageUser``). ``db`` is its SQLite file; a running sandbox with another
    file raises ``ValueError`` (stop it first)."""
    global _sandbox
    if _sandbox is None or not _sandbox.running:
        from mlops_nb.sandbox import Sandbox  # the client works without the sandbox; it loads only here

        _sandbox = Sandbox(data=data, port=port, **({"db": db} if db else {})).start()
    elif db and os.path.abspath(db) != os.path.abspath(_sandbox.db):
        raise ValueError(f"a sandbox with database {_sandbox.db} is running; stop it first")
    try:
        client = _sandbox.client(user)
    except ValueError:
        known = ", ".join(a.username for a in _sandbox.idp.accounts())
        raise ValueError(f"the sandbox has no user {user!r}; it has {known}") from None
    found = client.storage.user.who_am_i().user
    session.set_current_client(client, found)
    return found


def running_sandbox() -> Any:
    """The sandbox :func:`start_sandbox` started, if it runs (else None)."""
    return _sandbox if _sandbox is not None and _sandbox.running else None


def stop_sandbox() -> str | None:
    """Stop the sandbox :func:`start_sandbox` started, logging out if logged in to it; its gateway
    URL, or None when none runs."""
    global _sandbox
    sandbox = running_sandbox()
    if sandbox is None:
        return None
    gateway = sandbox.gateway_url
    try:
        if session.current_client().gateway_url == gateway:
            session.logout()
    except session.NotLoggedIn:
        pass
    sandbox.stop()
    _sandbox = None
    return gateway
