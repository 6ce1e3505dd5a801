"""The workspaces generation's message and enum classes, by name: ``mlops_nb.workspaces.V2Deployment``.

The same classes as :mod:`mlops_nb.wire.workspaces` (where they are defined and pickled from),
loaded on first use of this module, so ``import mlops_nb`` stays as quick as before. The legacy
generation's classes stay where they were, at the package's top level (``mlops_nb.StorageProject``).
"""

from mlops_nb.wire.workspaces import *  # noqa: F403
from mlops_nb.wire.workspaces import __all__ as __all__  # noqa: PLE0605
