"""The workspaces generation's message and enum classes (MLOps 1.0 and later), built when this
module is first imported.

Built like the legacy ones in :mod:`mlops_nb.wire.messages` (module-level, so they pickle by
reference; ``__signature__``, ``__doc__``, the proto3 JSON mapping), from
``mlops_nb.api.description("workspaces")``. Names the two generations share
(``StorageExperiment``, ...) are separate classes here, since their fields may differ; reach
them as ``mlops_nb.workspaces.StorageExperiment`` or
``message_class("StorageExperiment", generation="workspaces")``. Nothing imports this module
at package import: the first workspaces client, ``message_class(..., "workspaces")`` or
``mlops_nb.workspaces`` does.
"""

import sys as _sys

from mlops_nb.api import description as _description
from mlops_nb.wire.messages import Message, MessageEnum
from mlops_nb.wire.messages import build_classes as _build_classes

__all__ = ["Message", "MessageEnum", *_build_classes(_description("workspaces"), _sys.modules[__name__])]
