"""Run in the h2o-mlops 1.6.5 virtual environment: deploy, score, batch-score and watch through the sandbox.

Usage: python deploy_workflow.py ENVIRONMENT_URL REFRESH_TOKEN MLFLOW_ZIP RUNTIME CSV OUTPUT_DIR

Connects through discovery, makes a workspace, an experiment from the MLflow zip, a model and its
version, then deploys it with the RUNTIME composition and a plain passphrase, waits until it is
healthy, reads the scorer's schema and sample request and scores them, runs a batch scoring job over
CSV (a local file) into OUTPUT_DIR, reads the monitoring aggregates, renames the deployment and
changes its security to a hashed passphrase. Prints one JSON object of what it saw, with timings.
"""

import json
import sys
import time

import h2o_mlops
from h2o_mlops import options, types

url, refresh_token, zip_path, runtime_uid, csv_path, output_dir = sys.argv[1:7]
seconds = {}
started = time.monotonic()
mlops = h2o_mlops.Client(h2o_cloud_url=url, refresh_token=refresh_token)
workspace = mlops.workspaces.create(name="Deploying with 1.6.5")
experiment = workspace.experiments.create(data=zip_path, name="iris for deploying")
model = workspace.models.create(name="iris deployed")
model.register(experiment=experiment)
seconds["setup"] = time.monotonic() - started

scoring_runtimes = mlops.runtimes.scoring.list()
runtime = next(r for r in scoring_runtimes if r.runtime.uid == runtime_uid and r.artifact_type.artifact_type == "python/mlflow")
composition = options.CompositionOptions(model=model, scoring_runtime=runtime, model_version=1)
plain = options.SecurityOptions(security_type=types.SecurityType.PLAIN_PASSPHRASE, passphrase="s3cret-plain")
started = time.monotonic()
deployment = workspace.deployments.create(name="iris on 1.6.5", composition_options=composition,
                                          security_options=plain, description="deployed by h2o-mlops 1.6.5")
states = [deployment.state]
deployment.wait_for_healthy(timeout=180, interval=1)
seconds["healthy"] = time.monotonic() - started
states.append(deployment.state)

scorer = deployment.scorer
schema = scorer.schema(auth_value="s3cret-plain")
sample = scorer.sample_request(auth_value="s3cret-plain")
scored = scorer.score(sample, auth_value="s3cret-plain")
rows = {"fields": [f["name"] for f in schema["schema"]["inputFields"]],
        "rows": [["5.1", "3.5", "1.4", "0.2"], ["6.7", "3.0", "5.2", "2.3"], ["5.9", "3.0", "4.2", "1.5"]]}
scored_rows = scorer.score(rows, auth_value="s3cret-plain", timeout=30)
try:
    scorer.score(sample, auth_value="wrong")
    refused = None
except Exception as e:  # noqa: BLE001 - what the client raises for a 401 is what we report
    refused = getattr(getattr(e, "response", None), "status_code", str(e))

started = time.monotonic()
job = workspace.batch_scoring_jobs.create(
    source=options.BatchSourceOptions(spec_uid="local", config={}, mime_type=types.MimeType.CSV_WITH_HEADER,
                                      location=csv_path),
    sink=options.BatchSinkOptions(spec_uid="local", config={}, mime_type=types.MimeType.CSV_WITH_HEADER,
                                  location=output_dir),
    model=model, scoring_runtime=runtime, name="iris batch", mini_batch_size=50,
    monitoring_options=options.MonitoringOptions(enabled=True))
job.wait(logs=True)
seconds["batch_job"] = time.monotonic() - started
job.refresh()
jobs = [j.uid for j in workspace.batch_scoring_jobs.list()]
stats = job._job.completion_stats
job_aggregates = job.monitoring.scoring_aggregates.list()
job_aggregate_rows = {a._raw_info.column: sum(a._raw_info.numerical_aggregate.bin_count)
                      + a._raw_info.missing_values.row_count for a in job_aggregates
                      if a._raw_info.numerical_aggregate}

aggregates = deployment.monitoring.scoring_aggregates.list()

aggregate = aggregates[0] if len(aggregates) else None
baselines = deployment.monitoring.baseline_aggregates.list()

# Update: a new name and description, and the security changed to a hashed passphrase.
deployment.update(name="iris renamed", description="updated by h2o-mlops 1.6.5",
                  security_options=options.SecurityOptions(security_type=types.SecurityType.HASHED_PASSPHRASE,
                                                           passphrase="n3w-hashed"))
updated = workspace.deployments.get(deployment.uid)
after_update = updated.scorer.score(sample, auth_value="n3w-hashed")
# Granular: token authentication added beside the passphrase; either one scores.
deployment.update(security_options=[options.SecurityOptions(action=types.SecurityAction.ADD,
                                                            security_type=types.SecurityType.OIDC_AUTH)])
token = str(mlops._token_provider.token())
with_token = workspace.deployments.get(deployment.uid).scorer.score(sample, auth_value=token)
securities = [str(s.security_type) for s in workspace.deployments.get(deployment.uid).securities_options]
logs = deployment.logs()

started = time.monotonic()
deployment.pause()
paused = {"is_paused": deployment.is_paused, "can_resume": deployment.can_resume, "state": deployment.state}
deployment.resume()
deployment.wait_for_healthy(timeout=180, interval=1)
seconds["pause_resume"] = time.monotonic() - started
after_resume = deployment.scorer.score(sample, auth_value="n3w-hashed")
endpoint = deployment.configure_endpoint(path="iris-ws", name="iris endpoint")
configs = mlops.configs

# An A/B test of two versions of the model (a second experiment from the same zip), 70/30.
second = workspace.experiments.create(data=zip_path, name="iris again")
model.register(experiment=second)
started = time.monotonic()
ab = workspace.deployments.create(
    name="iris A/B", mode=types.DeploymentModeType.AB_TEST,
    composition_options=[options.CompositionOptions(model=model, scoring_runtime=runtime, model_version=1,
                                                    traffic_weight=70),
                         options.CompositionOptions(model=model, scoring_runtime=runtime, model_version=2,
                                                    traffic_weight=30)],
    security_options=options.SecurityOptions(security_type=types.SecurityType.DISABLED))
ab.wait_for_healthy(timeout=180, interval=1)
seconds["ab_healthy"] = time.monotonic() - started
ab_seen = {"uid": ab.uid, "mode": str(ab.mode), "experiments": [e.uid for e in ab.experiments],
           "weights": [c.traffic_weight for c in ab.composition_options],
           "scored": ab.scorer.score(sample)}
ab.delete()
described = workspace.deployments.get(deployment.uid)

print(json.dumps({
    "workspace": workspace.uid, "experiment": experiment.uid, "deployment": deployment.uid,
    "states": states, "seconds": seconds,
    "scoring_runtimes": len(scoring_runtimes),
    "score_url": scorer.scoring_endpoint, "schema_url": scorer.schema_endpoint,
    "schema_fields": rows["fields"], "sample": sample, "scored": scored, "scored_rows": scored_rows,
    "refused": refused,
    "job": {"uid": job.uid, "state": str(job.state), "processed": stats.processed_rows if stats else None,
            "errors": stats.error_rows_count if stats else None, "listed": jobs,
            "aggregate_rows": job_aggregate_rows},
    "aggregates": {"count": len(aggregates), "columns": sorted({a._raw_info.column for a in aggregates}),
                   "first_type": str(aggregate._raw_info.logical_type.value) if aggregate else None},
    "baselines": {"count": len(baselines), "columns": sorted({b._raw_info.column for b in baselines})},
    "updated": {"name": updated.name, "description": updated.description,
                "security": [str(s.security_type) for s in updated.securities_options],
                "scored": after_update, "securities": securities, "with_token": with_token},
    "paused": paused, "after_resume": after_resume,
    "logs": {k: len(v) for k, v in logs.items()},
    "ab": ab_seen, "second_experiment": second.uid,
    "configs": {"security_types": sorted(str(t) for t in configs.allowed_security_types),
                "max_replicas": configs.allowed_k8s_max_replicas, "requests": configs.default_k8s_requests,
                "monitoring": bool(configs.monitoring_config)},
    "described": {"mode": str(described.mode), "endpoints": described.endpoints_count,
                  "runtimes": [c.scoring_runtime.runtime.uid for c in described.composition_options],
                  "replicas": described.kubernetes_options.replicas if described.kubernetes_options else None},
    "endpoint": {"uid": endpoint.uid, "path": endpoint.path,
                 "target": endpoint.target_deployment.uid if endpoint.target_deployment else None},
}, default=str))
