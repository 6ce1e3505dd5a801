"""mlops_nb: the Jupyter-native client for H2O MLOps.

``import mlops_nb as mlops`` gives what the legacy ``h2o_mlops_client`` module
gave (``mlops.Client``, ``mlops.TokenProvider`` and every request/response
message and enum by its legacy name, e.g. ``mlops.StorageListProjectsRequest``)
plus the notebook layer. ``%load_ext mlops_nb`` loads the ``%mlops`` magics.
The workspaces generation's messages and enums (MLOps 1.0 and later) are in
``mlops.workspaces`` (``mlops.workspaces.V2Deployment``), built on first use.

Importing the package stays quick: the login form (ipywidgets), the magics (IPython,
yaml), authentication and retries (requests), the deployment and monitoring helpers and the concurrent
ones load on first use of their names (``_LAZY``); every name is importable and listed by
``dir()`` all the same.
"""

import gc as _gc
import importlib as _importlib
from typing import Any as _Any

# Building the API's classes at import makes many long-lived objects. A garbage collection every
# few hundred of them walks every object of the process (in a Jupyter kernel, several hundred
# thousand), which would cost the import as much again as the building: collections wait until
# it is done.
_collecting = _gc.isenabled()
_gc.disable()
try:
    from mlops_nb.notebook.catalogs import (
        artifact_compositions,
        artifact_types,
        deployable_artifact,
        runtimes,
        runtimes_for,
    )
    from mlops_nb.notebook.client import Client
    from mlops_nb.notebook.frames import list_all
    from mlops_nb.notebook.lookup import (
        AmbiguousName,
        NameNotFound,
        find_deployment,
        find_experiment,
        find_project,
        find_registered_model,
    )
    from mlops_nb.notebook.session import current_client, set_current_client
    from mlops_nb.wire import messages as _messages
    from mlops_nb.wire.errors import (
        AlreadyExists,
        ApiError,
        AuthenticationError,
        ConnectionFailed,
        DeadlineExceeded,
        DiscoveryError,
        FailedPrecondition,
        GatewayError,
        GenerationUnknown,
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
finally:
    if _collecting:
        _gc.enable()

__version__ = "0.1.0"

# The seed spells it ``mlops.client(...)`` in one place; both work.
client = Client

_MESSAGE_NAMES = sorted(_messages.all_message_classes()) + sorted(_messages.all_enum_classes())
globals().update({name: getattr(_messages, name) for name in _MESSAGE_NAMES})

# Public names whose modules load on first use: name -> module that defines it.
_LAZY = {
    "login": "mlops_nb.notebook.login",
    "load_ipython_extension": "mlops_nb.notebook.magics",
    "unload_ipython_extension": "mlops_nb.notebook.magics",
    "all_deployments": "mlops_nb.notebook.fanout",
    "show_table": "mlops_nb.notebook.display",
    "upload_model": "mlops_nb.notebook.upload",
    **dict.fromkeys(("register_model", "RegisteredVersion", "deploy", "deploy_split", "deploy_shadow"),
                    "mlops_nb.notebook.deploy"),
    **dict.fromkeys(("wait_for_healthy", "DeploymentFailed", "DeploymentTimeout"), "mlops_nb.notebook.waiting"),
    **dict.fromkeys(("score", "ScoringError"), "mlops_nb.notebook.scoring"),
    "deployment_logs": "mlops_nb.notebook.logs",
    **dict.fromkeys(("monitoring", "Monitoring"), "mlops_nb.notebook.monitoring"),
    **dict.fromkeys(("TokenProvider", "DeviceLogin", "OpenIDConfiguration", "discover"), "mlops_nb.wire.auth"),
    "RetryPolicy": "mlops_nb.wire.retry",
}
# Submodules that are public names, loaded on first use: the workspaces generation's classes.
_LAZY_MODULES = {"workspaces": "mlops_nb.workspaces"}


def __getattr__(name: str) -> _Any:
    if name in _LAZY_MODULES:
        value = globals()[name] = _importlib.import_module(_LAZY_MODULES[name])
        return value
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mlops_nb' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY, *_LAZY_MODULES})

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
    "all_deployments",
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
    "GenerationUnknown",
    "DiscoveryError",
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
    "workspaces",
    *_MESSAGE_NAMES,
]
