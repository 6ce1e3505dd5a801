"""Run INSIDE the isolated venv that has h2o-mlops==1.6.5: make a fixed set of calls with the newest
official client's service layer (what its high-level API calls) against the MLOps gateway URL in
argv[1] and the authz gateway URL in argv[2]. tests/test_wire_workspaces.py makes the same calls
with mlops_nb and compares what reached the capturing servers."""

import datetime
import sys

from h2o_mlops._client.client import Client
from h2o_mlops._client.models import compat, deployer, workspace

client = Client(gateway_url=sys.argv[1], authz_gateway_url=sys.argv[2], token_provider=lambda: "newest-token")
name = "workspaces/p1/deployments/d1"
when = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)

client.deployer.deployment.create_deployment(
    parent="workspaces/p1",
    deployment=deployer.V2Deployment(display_name="churn", description="scores churn",
                                      security=deployer.V2Security(passphrase=deployer.V2AuthenticationPassphrase(
                                          passphrase="open sesame", hash_algorithm="PLAINTEXT"))))
client.deployer.deployment.get_deployment(name=name)
client.deployer.deployment.list_deployments(parent="workspaces/p1", page_size=5, page_token="t1",
                                            filter='display_name = "churn"', order_by="create_time desc")
client.deployer.deployment.update_deployment(deployment_name=name,
                                             deployment=compat.TheDeploymentToUpdate(display_name="renamed"),
                                             update_mask="display_name")
client.deployer.deployment.pause_deployment(name=name, body={})
client.deployer.status.batch_get_deployment_statuses(parent="workspaces/p1",
                                                      names=[name, "workspaces/p1/deployments/d2"])
client.deployer.log.generate_logs(name=name, body=compat.GenerateLogsRequest(since_time=when.isoformat()))
client.deployer.deployment.delete_deployment(name=name)
client.authz.workspace.create_workspace(workspace=workspace.V1Workspace(display_name="W", description="d"))
client.authz.workspace.list_workspaces(page_size=2, show_archived=True)
client.authz.workspace.update_workspace(name="workspaces/p1", workspace={"description": "new"},
                                        update_mask="description")
client.authz.workspace.delete_workspace(name="workspaces/p1")
client.storage.experiment.list_experiments({"projectId": "p1"})
