"""The sandbox: a local, MLOps-compatible gateway with its own OpenID Connect provider and SQLite store.

From Python::

    from mlops_nb import sandbox
    sb = sandbox.start()              # port 0: a free port; demo data (alice, bob, projects, ...)
    client = sb.client("alice")       # a ready mlops_nb.Client
    sb.stop()

or ``with sandbox.Sandbox(db=":memory:") as sb: ...``. From a shell: ``mlops-nb sandbox``.
The client never imports this package; the sandbox uses the API description and the wire layer.
"""

from __future__ import annotations

from typing import Any

from mlops_nb.sandbox.server import Sandbox

__all__ = ["Sandbox", "start"]


def start(**options: Any) -> Sandbox:
    """Start a sandbox in the background of this process and return it (see :class:`Sandbox`)."""
    return Sandbox(**options).start()
