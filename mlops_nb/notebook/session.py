"""The session's current client: what ``%mlops`` subcommands and the login form share.

One kernel, one current login. The login form and ``%mlops sandbox`` set it;
``%mlops logout`` clears it; everything that needs a client asks
:func:`current_client`, which says how to log in when there is none.

:func:`start_sandbox` runs one local sandbox in this process and logs in to it;
:func:`stop_sandbox` stops it (the sandbox package loads only then).
"""

from __future__ import annotations

import os
import threading
from typing import Any

from mlops_nb.wire.client import Client

__all__ = ["NotLoggedIn", "current_client", "current_user", "logout", "set_current_client", "start_sandbox",
           "running_sandbox", "stop_sandbox"]

LOGIN_HINT = "not logged in to MLOps: run %mlops login (or %mlops sandbox for a local demo), or mlops_nb.login()"


class NotLoggedIn(RuntimeError):
    """There is no current client in this session."""

    def __init__(self, message: str = LOGIN_HINT) -> None:
        super().__init__(message)


_lock = threading.Lock()
_client: Client | None = None
# Who the client is logged in as (a StorageUser), when the code that logged in knew it.
_user: Any = None


def current_client() -> Client:
    """The client of the current login; raises :class:`NotLoggedIn` (with the ways to log in) if none."""
    client = _client
    if client is None:
        raise NotLoggedIn()
    return client


def current_user() -> Any:
    """The user recorded at login (``None`` when not logged in or not recorded)."""
    return _user


def set_current_client(client: Client, user: Any = None) -> None:
    """Make ``client`` the session's current client; ``user`` is who it is logged in as, if known.

    The previous client is only forgotten, not closed: the caller may still hold and use it.
    """
    global _client, _user
    if not isinstance(client, Client):
        raise TypeError(f"set_current_client takes an mlops_nb.Client, got {type(client).__name__}")
    with _lock:
        _client, _user = client, user


def logout() -> bool:
    """Forget the current client (it is not closed: others may hold it); returns whether there was one."""
    global _client, _user
    with _lock:
        previous, _client, _user = _client, None, None
    return previous is not None


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
    set_current_client(client, found)
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
    if _client is not None and _client.gateway_url == gateway:
        logout()
    sandbox.stop()
    _sandbox = None
    return gateway
