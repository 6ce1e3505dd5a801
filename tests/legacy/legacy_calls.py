"""Run INSIDE the isolated venv that has h2o-mlops==1.0.1: make a fixed set of calls with the
official legacy client against the gateway URL given in argv[1]. tests/test_legacy_client.py
makes the same calls with mlops_nb and compares what reached the capturing server."""

import datetime
import io
import sys

import h2o_mlops  # noqa: F401  (makes h2o_mlops_client importable, as the seed says)
import h2o_mlops_client as mlops

client = mlops.Client(gateway_url=sys.argv[1], token_provider=lambda: "legacy-token")
when = datetime.datetime(2024, 5, 1, 12, 0, tzinfo=datetime.timezone.utc)

client.storage.user.who_am_i(body={})
client.storage.project.list_projects(mlops.StorageListProjectsRequest(
    paging=mlops.StoragePagingRequest(page_size=5, page_token="YWJj"),
    filter=mlops.StorageFilterRequest(query=mlops.StorageQuery(clause=[mlops.StorageClause(
        property_constraint=[mlops.StoragePropertyConstraint(
            _property=mlops.StorageProperty(field="display_name"),
            operator=mlops.StorageOperator.CONTAINS,
            value=mlops.StorageValue(string_value="churn"))])])),
    sorting=mlops.StorageSortingRequest(_property=[mlops.StorageSortProperty(
        _property=mlops.StorageProperty(field="created_time"), order=mlops.StorageOrder.DESCENDING)]),
))
client.storage.project.create_project(mlops.StorageCreateProjectRequest(
    project=mlops.StorageProject(display_name="Churn", description="models of churn")))
client.storage.project.get_project(mlops.StorageGetProjectRequest(project_id="p1"))
client.storage.experiment.list_experiments(mlops.StorageListExperimentsRequest(
    project_id="p1", filter=mlops.StorageFilterRequest(query=mlops.StorageQuery(clause=[mlops.StorageClause(
        property_constraint=[mlops.StoragePropertyConstraint(
            _property=mlops.StorageProperty(field="size"), operator=mlops.StorageOperator.GREATER_THAN,
            value=mlops.StorageValue(int64_value="12"))])]))))
client.storage.user.batch_get_users(mlops.StorageBatchGetUsersRequest(i_ds=["u1", "u2"]))
client.deployer.deployment_status.list_deployment_statuses(
    mlops.DeployListDeploymentStatusesRequest(project_id="p1"))
client.deployer.composition.list_artifact_compositions(body={})
client.ingest.model.create_model_ingestion(mlops.IngestCreateModelIngestionRequest(artifact_id="a1"))
client.model_monitoring.monitoring_service.get_model_drift_metrics(
    deployment_id="d1", model_id="m1", start_date_time=when)
client.model_monitoring.monitoring_service.list_monitored_deployments(page_size=10)
client.storage.artifact.upload_artifact("a1", io.BytesIO(b"0123456789"), chunk_size=4)
client.storage.artifact.download_artifact("a1", io.BytesIO())
print("legacy calls done")
