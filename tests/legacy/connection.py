# The seed's connection.py, as documented for the legacy client; only the four constants
# differ: they come from the environment that tests/test_legacy_client.py sets from a sandbox.
import os
from pprint import pprint

import h2o_mlops  # noqa: F401  (makes h2o_mlops_client importable)
import h2o_mlops_client as mlops

H2O_MLOPS_GATEWAY = os.environ["H2O_MLOPS_GATEWAY"]
TOKEN_ENDPOINT_URL = os.environ["TOKEN_ENDPOINT"]
REFRESH_TOKEN = os.environ["REFRESH_TOKEN"]
CLIENT_ID = os.environ["CLIENT_ID"]


def main():
    # Setting up the token provider using an existing refresh token.
    mlops_token_provider = mlops.TokenProvider(
        refresh_token=REFRESH_TOKEN,
        client_id=CLIENT_ID,
        token_endpoint_url=TOKEN_ENDPOINT_URL
    )
    # Setting up MLOPS client.
    mlops_client = mlops.Client(
        gateway_url=H2O_MLOPS_GATEWAY,
        token_provider=mlops_token_provider
    )
    # Sending a WhoAmI request to MLOps.
    r: mlops.StorageWhoAmIResponse = mlops_client.storage.user.who_am_i(body={})
    pprint(r.user)


if __name__ == "__main__":
    main()
