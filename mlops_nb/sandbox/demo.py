"""The sandbox's demo data: what a newcomer sees on first start with ``data="demo"``.

Two users, ``alice`` and ``bob`` (passwords: their usernames):

* alice owns **Credit risk**, shared with bob as EDITOR: a training dataset, three
  experiments with uploaded artifacts (two DAI MOJO pipelines, one H2O-3 MOJO), a
  ``champion`` tag, the registered models ``credit-default`` (versions 1 and 2) and
  ``credit-default-h2o`` (version 1), and three deployments: version 2 alone
  (HEALTHY), an 80/20 split between versions 1 and 2 (UNHEALTY) and version 2 with the
  H2O-3 model in its shadow (LAUNCHING).
* alice owns **Customer churn**, not shared: an H2O-3 MOJO and an MLflow model, each
  registered, one deployed and FAILED, the other LAUNCHING.
* bob owns **Fraud detection**, not shared: an MLflow model, registered and deployed
  (HEALTHY).

Everything goes through the public client and the API, except the deployments, which
the sandbox cannot create through the API (:func:`add_deployment`). Seeding happens
once: a store where alice already has a project is left alone.
"""

from __future__ import annotations

import io
import zipfile
from typing import TYPE_CHECKING, Any

from mlops_nb.sandbox.services.access import ROLE_EDITOR
from mlops_nb.sandbox.services.deployments import add_deployment

if TYPE_CHECKING:
    from mlops_nb.sandbox.server import Sandbox

__all__ = ["seed_demo_data"]

# What goes inside each artifact: enough to look like the real thing when unzipped.
_ARTIFACT_FILES = {
    "dai/mojo_pipeline": {"mojo-pipeline/pipeline.mojo": b"MOJO demo pipeline\n",
                          "mojo-pipeline/README.txt": b"A demo DAI MOJO pipeline made by the mlops_nb sandbox.\n"},
    "h2o3/mojo": {"model.ini": b"[info]\nalgorithm = Gradient Boosting Machine\n",
                  "domains/d000.txt": b"no\nyes\n"},
    "python/mlflow": {"model/MLmodel": b"flavors:\n  python_function:\n    loader_module: mlflow.sklearn\n",
                      "model/requirements.txt": b"scikit-learn\n"},
}


def _artifact_bytes(artifact_type: str, experiment_name: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in _ARTIFACT_FILES[artifact_type].items():
            archive.writestr(name, content)
        archive.writestr("experiment.txt", f"{experiment_name}\n")
    return buffer.getvalue()


def _experiment(client: Any, project_id: str, name: str, artifact_type: str, *, target: str,
                metrics: dict[str, float], dataset_id: str = "", source: str) -> str:
    """An experiment with its metadata, parameters and an uploaded artifact; returns its id."""
    metadata = {"source": {"string_value": source}, **{k: {"double_value": v} for k, v in metrics.items()}}
    experiment = client.storage.experiment.create_experiment(project_id=project_id, experiment={
        "display_name": name, "status": "FINISHED",
        "metadata": {"values": metadata},
        "parameters": {"target_column": target, "training_dataset_id": dataset_id},
        "statistics": {"training_duration": "312s"},
    }).experiment
    artifact = client.storage.artifact.create_artifact(artifact={
        "entity_id": experiment.id, "type": artifact_type, "mime_type": "application/zip"}).artifact
    client.storage.artifact.upload_artifact(artifact.id, io.BytesIO(_artifact_bytes(artifact_type, name)))
    return experiment.id


def _register(client: Any, project_id: str, model_name: str, experiment_id: str) -> str:
    """Register the experiment as the next version of the model named ``model_name``; returns the version id."""
    return client.storage.registered_model_version.create_model_version(
        registered_model_version={"experiment_id": experiment_id},
        registered_model_display_name=model_name, project_id=project_id,
    ).registered_model_version.id


def seed_demo_data(sandbox: Sandbox) -> None:
    """Fill a new sandbox with the demo data (nothing happens if alice has a project already)."""
    with sandbox.client("alice") as alice, sandbox.client("bob") as bob:
        alice_id = alice.storage.user.who_am_i().user.id
        bob_id = bob.storage.user.who_am_i().user.id
        if alice.storage.project.list_projects().project:
            return
        store = sandbox.store
        assert store is not None  # the sandbox is running: seeding is part of start()

        credit = alice.storage.project.create_project(project={
            "display_name": "Credit risk", "description": "Who will default on a loan next month?"}).project.id
        alice.storage.project.share_project(project_id=credit, user_id=bob_id, restriction_role_id=ROLE_EDITOR)
        train = alice.storage.dataset.create_dataset(project_id=credit, dataset={
            "display_name": "credit-train.csv", "row_count": 24000, "col_count": 25, "size": 2_883_129}).dataset.id
        baseline = _experiment(alice, credit, "GBM baseline", "dai/mojo_pipeline", target="default_payment",
                               metrics={"auc": 0.771, "logloss": 0.432}, dataset_id=train, source="Driverless AI")
        tuned = _experiment(alice, credit, "GBM tuned", "dai/mojo_pipeline", target="default_payment",
                            metrics={"auc": 0.789, "logloss": 0.418}, dataset_id=train, source="Driverless AI")
        h2o_gbm = _experiment(bob, credit, "H2O-3 GBM", "h2o3/mojo", target="default_payment",
                              metrics={"auc": 0.781}, dataset_id=train, source="H2O-3")
        champion = alice.storage.tag.create_tag(project_id=credit, tag={"display_name": "champion"}).tag.id
        alice.storage.experiment.tag_experiment(experiment_id=tuned, tag_id=champion)
        v1 = _register(alice, credit, "credit-default", baseline)
        v2 = _register(alice, credit, "credit-default", tuned)
        h2o_v1 = _register(bob, credit, "credit-default-h2o", h2o_gbm)
        add_deployment(store, project_id=credit, owner_id=alice_id, model_version_ids=[v2],
                       display_name="credit-default", description="Version 2 on its own",
                       state="HEALTHY", message="all replicas are ready")
        add_deployment(store, project_id=credit, owner_id=alice_id, model_version_ids=[v1, v2], traffic="split",
                       weights=[80, 20], display_name="credit-default A/B", state="UNHEALTY",
                       message="1 of 2 scorers is failing its health check")
        add_deployment(store, project_id=credit, owner_id=bob_id, model_version_ids=[v2, h2o_v1], traffic="shadow",
                       display_name="credit-default with H2O-3 shadow", state="LAUNCHING",
                       message="waiting for the scorer to start")

        churn = alice.storage.project.create_project(project={
            "display_name": "Customer churn", "description": "Which subscribers leave this quarter?"}).project.id
        forest = _experiment(alice, churn, "Random forest", "h2o3/mojo", target="churned",
                             metrics={"auc": 0.842}, source="H2O-3")
        sklearn = _experiment(alice, churn, "scikit-learn pipeline", "python/mlflow", target="churned",
                              metrics={"auc": 0.836}, source="MLflow")
        add_deployment(store, project_id=churn, owner_id=alice_id,
                       model_version_ids=[_register(alice, churn, "churn-h2o", forest)], display_name="churn-h2o",
                       state="FAILED", message="the scorer could not load the model: out of memory")
        add_deployment(store, project_id=churn, owner_id=alice_id,
                       model_version_ids=[_register(alice, churn, "churn-sklearn", sklearn)],
                       runtime_names=["python-scorer_mlflow_39"], display_name="churn-sklearn",
                       state="LAUNCHING", message="pulling the runtime image")

        fraud = bob.storage.project.create_project(project={
            "display_name": "Fraud detection", "description": "Card transactions to hold for review"}).project.id
        isolation = _experiment(bob, fraud, "Isolation forest", "python/mlflow", target="is_fraud",
                                metrics={"precision_at_1pct": 0.64}, source="MLflow")
        add_deployment(store, project_id=fraud, owner_id=bob_id,
                       model_version_ids=[_register(bob, fraud, "fraud", isolation)],
                       runtime_names=["python-scorer_mlflow_39"], display_name="fraud", state="HEALTHY")
