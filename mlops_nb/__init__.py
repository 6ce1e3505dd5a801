"""mlops_nb: the Jupyter-native client for H2O MLOps.

``import mlops_nb as mlops`` gives what the legacy ``h2o_mlops_client`` module
gave (``mlops.Client``, ``mlops.TokenProvider`` and every request/response
message and enum by its legacy name, e.g. ``mlops.StorageListProjectsRequest``)
plus the notebook layer. ``%load_ext mlops_nb`` loads the ``%mlops`` magics.
"""

from mlops_nb.wire import messages as _messages
from mlops_nb.wire.auth import DeviceLogin, OpenIDConfiguration, TokenProvider, discover
from mlops_nb.wire.client import Client
from mlops_nb.wire.errors import (
    AlreadyExists,
    ApiError,
    AuthenticationError,
    ConnectionFailed,
    DeadlineExceeded,
    FailedPrecondition,
    GatewayError,
    Internal,
    InvalidArgument,
    MLOpsError,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
    Unimplemented,
)
from mlops_nb.wire.messages import Message, MessageEnum

__version__ = "0.1.0"

# The seed spells it ``mlops.client(...)`` in one place; both work.
client = Client

_MESSAGE_NAMES = sorted(_messages.all_message_classes()) + sorted(_messages.all_enum_classes())
globals().update({name: getattr(_messages, name) for name in _MESSAGE_NAMES})

__all__ = [
    "Client",
    "client",
    "TokenProvider",
    "DeviceLogin",
    "OpenIDConfiguration",
    "discover",
    "Message",
    "MessageEnum",
    "MLOpsError",
    "ApiError",
    "GatewayError",
    "ConnectionFailed",
    "AuthenticationError",
    "InvalidArgument",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "Unauthenticated",
    "FailedPrecondition",
    "ResourceExhausted",
    "Unavailable",
    "DeadlineExceeded",
    "Unimplemented",
    "Internal",
    *_MESSAGE_NAMES,
]
