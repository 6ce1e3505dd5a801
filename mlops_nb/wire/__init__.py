"""The wire layer: messages, transport, authentication and the client.

It depends on :mod:`mlops_nb.api` only; nothing here knows about notebooks. The
authentication and retry names load on first use, with ``requests``, so that importing the
package does not pay for an HTTP library before anything is sent; so do the workspaces
generation's classes (:mod:`mlops_nb.wire.workspaces`), generation detection
(:mod:`mlops_nb.wire.detect`) and H2O AI Cloud discovery (:mod:`mlops_nb.wire.discovery`).
"""

import importlib as _importlib
from typing import Any as _Any

from mlops_nb.wire.client import Client
from mlops_nb.wire.errors import *  # noqa: F403
from mlops_nb.wire.errors import __all__ as _error_names
from mlops_nb.wire.messages import Message, MessageEnum, enum_class, message_class

_LAZY = {
    **dict.fromkeys(("DeviceLogin", "OpenIDConfiguration", "TokenProvider", "discover"), "mlops_nb.wire.auth"),
    "RetryPolicy": "mlops_nb.wire.retry",
}


def __getattr__(name: str) -> _Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mlops_nb.wire' has no attribute {name!r}")
    value = globals()[name] = getattr(_importlib.import_module(module), name)
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "Client",
    *_LAZY,
    "Message",
    "MessageEnum",
    "message_class",
    "enum_class",
    *_error_names,
]
