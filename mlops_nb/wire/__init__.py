"""The wire layer: messages, transport, authentication and the client.

It depends on :mod:`mlops_nb.api` only; nothing here knows about notebooks.
"""

from mlops_nb.wire.auth import DeviceLogin, OpenIDConfiguration, TokenProvider, discover
from mlops_nb.wire.client import Client
from mlops_nb.wire.errors import *  # noqa: F403
from mlops_nb.wire.errors import __all__ as _error_names
from mlops_nb.wire.messages import Message, MessageEnum, enum_class, message_class
from mlops_nb.wire.retry import RetryPolicy

__all__ = [
    "Client",
    "TokenProvider",
    "DeviceLogin",
    "OpenIDConfiguration",
    "discover",
    "RetryPolicy",
    "Message",
    "MessageEnum",
    "message_class",
    "enum_class",
    *_error_names,
]
