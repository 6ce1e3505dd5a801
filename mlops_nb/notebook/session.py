"""The session's current client: what ``%mlops`` subcommands and the login form share.

One kernel, one current login. The login form and ``%mlops sandbox`` set it;
``%mlops logout`` clears it; everything that needs a client asks
:func:`current_client`, which says how to log in when there is none.

The embedded sandbox's lifecycle, which sets and clears the login, is beside this module
(``local_sandbox``).
"""

from __future__ import annotations

import threading
from typing import Any

from mlops_nb.wire.client import Client

__all__ = ["NotLoggedIn", "current_client", "current_user", "logout", "set_current_client"]

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

