"""Imported by the scripts of this folder, INSIDE the legacy venv: the connection every script makes
from the four constants of its environment, and the two ways the scripts wait for a deployment.

The scripts run as ``python tests/legacy/<script>.py``, so this folder is first on their path."""

import os
import time

import h2o_mlops  # noqa: F401  (makes h2o_mlops_client importable)
import h2o_mlops_client


def token_provider():
    """The legacy client's token provider for the refresh token of the environment."""
    return h2o_mlops_client.TokenProvider(refresh_token=os.environ["REFRESH_TOKEN"], client_id=os.environ["CLIENT_ID"],
                                          token_endpoint_url=os.environ["TOKEN_ENDPOINT"])


def legacy_client(provider=None):
    """The legacy low-level client of the environment's gateway."""
    return h2o_mlops_client.Client(gateway_url=os.environ["H2O_MLOPS_GATEWAY"],
                                   token_provider=provider or token_provider())


def high_level_client(provider=None):
    """h2o_mlops 1.0.1's high-level client of the environment's gateway."""
    return h2o_mlops.Client(gateway_url=os.environ["H2O_MLOPS_GATEWAY"], token_provider=provider or token_provider())


def wait_until_healthy(deployment, timeout=240):
    """The high-level client's deployment, polled until healthy (raises on failure and on timeout)."""
    deadline = time.monotonic() + timeout
    while not deployment.is_healthy():
        deployment.raise_for_failure()
        if time.monotonic() > deadline:
            raise TimeoutError(f"deployment {deployment.uid} is still {deployment.status()}")
        time.sleep(0.5)


def legacy_states(client, deployment_id, timeout=240):
    """Every state the deployer reports for ``deployment_id`` until HEALTHY, FAILED or ``timeout``:
    the list of distinct states in order, and the last status."""
    states = []
    deadline = time.monotonic() + timeout
    while True:
        status = client.deployer.deployment_status.get_deployment_status(
            h2o_mlops_client.DeployGetDeploymentStatusRequest(deployment_id=deployment_id)).deployment_status
        if not states or states[-1] != status.state:
            states.append(status.state)
        if status.state in ("HEALTHY", "FAILED") or time.monotonic() > deadline:
            return states, status
        time.sleep(0.2)
