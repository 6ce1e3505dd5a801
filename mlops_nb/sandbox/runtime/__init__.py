"""What runs behind the sandbox's deployments: scorer processes and their supervisor.

``supervisor.py`` starts, watches and restarts one scorer process per model replica;
``scorer.py`` is the program each of them runs (the MLOps scoring API around an MLflow model);
``runtimes.py`` says which runtimes the sandbox can run and unpacks artifacts for them. This
package knows nothing of the store or the API: the deployment services tell it what should
run and it reports what happens.
"""

from mlops_nb.sandbox.runtime.runtimes import cannot_run, runnable_runtimes, runtime_display_name
from mlops_nb.sandbox.runtime.supervisor import (
           DeploymentSpec,
           Events,
           ModelSpec,
           Route,
           RoutedModel,
           Supervisor,
)

__all__ = ["Supervisor", "DeploymentSpec", "ModelSpec", "Events", "Route", "RoutedModel", "cannot_run",
           "runnable_runtimes", "runtime_display_name"]
