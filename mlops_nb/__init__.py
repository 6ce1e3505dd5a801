"""mlops_nb: the Jupyter-native client for H2O MLOps.

``import mlops_nb as mlops`` gives what the legacy ``h2o_mlops_client`` module
gave (``mlops.Client``, ``mlops.TokenProvider`` and every request/response
message and enum by its legacy name, e.g. ``mlops.StorageListProjectsRequest``)
plus the notebook layer. ``%load_ext mlops_nb`` loads the ``%mlops`` magics.
"""

from mlops_nb.notebook.catalogs import (
    artifact_compositions,
    artifact_types,
    deployable_artifact,
    runtimes,
    runtimes_for,
)
from mlops_nb.notebook.client import Client
from mlops_nb.notebook.deploy import (
    DeploymentFailed,
    DeploymentTimeout,
    RegisteredVersion,
    ScoringError,
    deploy,
    deploy_shadow,
    deploy_split,
    deployment_logs,
    register_model,
    score,
    upload_model,
    wait_for_healthy,
)
from mlops_nb.notebook.display import show_table
from mlops_nb.notebook.frames import list_all
from mlops_nb.notebook.login import login
from mlops_nb.notebook.lookup import (
    AmbiguousName,
    NameNotFound,
    find_deployment,
    find_experiment,
    find_project,
    find_registered_model,
)
from mlops_nb.notebook.magics import load_ipython_extension, unload_ipython_extension
from mlops_nb.notebook.monitoring import Monitoring, monitoring
from mlops_nb.notebook.session import current_client, set_current_client
from mlops_nb.wire import messages as _messages
from mlops_nb.wire.auth import DeviceLogin, OpenIDConfiguration, TokenProvider, discover
from mlops_nb.wire.errors import (
    AlreadyExists,
    ApiError,
    AuthenticationError,
    ConnectionFailed,
    DeadlineExceeded,
    FailedPrecondition,
    GatewayError,
    InsecureTLSWarning,
    Internal,
    InvalidArgument,
    MLOpsError,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
    Unimplemented,
    WriteOutcomeUnknown,
)
from mlops_nb.wire.messages import Message, MessageEnum
from mlops_nb.wire.retry import RetryPolicy

__version__ = "0.1.0"

# The seed spells it ``mlops.client(...)`` in one place; both work.
client = Client

_MESSAGE_NAMES = sorted(_messages.all_message_classes()) + sorted(_messages.all_enum_classes())
globals().update({name: getattr(_messages, name) for name in _MESSAGE_NAMES})

__all__ = [
    "Client",
    "client",
    "login",
    "current_client",
    "set_current_client",
    "load_ipython_extension",
    "unload_ipython_extension",
    "list_all",
    "show_table",
    "find_project",
    "find_experiment",
    "find_registered_model",
    "find_deployment",
    "AmbiguousName",
    "NameNotFound",
    "artifact_types",
    "runtimes",
    "runtimes_for",
    "deployable_artifact",
    "artifact_compositions",
    "upload_model",
    "register_model",
    "RegisteredVersion",
    "deploy",
    "deploy_split",
    "deploy_shadow",
    "wait_for_healthy",
    "score",
    "monitoring",
    "Monitoring",
    "deployment_logs",
    "DeploymentFailed",
    "DeploymentTimeout",
    "ScoringError",
    "TokenProvider",
    "DeviceLogin",
    "OpenIDConfiguration",
    "discover",
    "RetryPolicy",
    "Message",
    "MessageEnum",
    "MLOpsError",
    "ApiError",
    "GatewayError",
    "ConnectionFailed",
    "WriteOutcomeUnknown",
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
    "InsecureTLSWarning",
    *_MESSAGE_NAMES,
]
