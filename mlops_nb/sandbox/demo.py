"""The sandbox's demo data: what a newcomer sees on first start with ``data="demo"``.

Two users, ``alice`` and ``bob`` (passwords: their usernames):

* alice owns **Credit risk**, shared with bob as EDITOR: a training dataset, three
  experiments (two scikit-learn models saved with MLflow, ``GBM baseline`` and ``GBM tuned``,
  and an H2O-3 MOJO), a ``champion`` tag, the registered models ``credit-default`` (versions 1
  and 2) and ``credit-default-h2o`` (version 1), and three deployments: version 2 alone, an
  80/20 split between versions 1 and 2, and version 2 with the H2O-3 model in its shadow.
* alice owns **Customer churn**, not shared: an H2O-3 MOJO (registered and deployed) and a
  scikit-learn pipeline saved with MLflow (registered, not deployed).
* bob owns **Fraud detection**, not shared: an isolation forest saved with MLflow,
  registered and deployed.

Everything goes through the API, as a user's code would: each model zip is uploaded as an
artifact of its project, ingested, made an experiment and moved to it (the official
client's way), then registered and deployed. The deployments' states are real: the
scikit-learn ones become HEALTHY once their scorers load, and the ones with an H2O-3 MOJO
end FAILED: the H2O-3 MOJOs are stand-ins (a ``model.ini`` and a domain file), enough to be
ingested, not to be loaded by H2O's genmodel (the status says so).

The scikit-learn models are trained on generated data (seeded, so the same every time) and
saved once per scikit-learn and MLflow version in ``~/.cache/mlops_nb/demo-models``
(``$XDG_CACHE_HOME``); seeding happens once: a store where alice has a project is left alone.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import tempfile
import zipfile
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_nb.sandbox.services.access import ROLE_EDITOR

if TYPE_CHECKING:
    from mlops_nb.sandbox.server import Sandbox

__all__ = ["seed_demo_data", "demo_model_zip"]

MLFLOW_RUNTIME = "python-scorer_mlflow_39"
H2O3_RUNTIME = "h2o3_mojo_runtime"


def _credit(n: int = 2000) -> tuple[Any, Any]:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(7)
    frame = pd.DataFrame({
        "limit_balance": rng.gamma(2.0, 50_000.0, n).round(0),
        "age": rng.integers(21, 70, n).astype("float64"),
        "pay_delay_months": rng.poisson(0.6, n).astype("float64"),
        "bill_amount": rng.gamma(1.5, 20_000.0, n).round(2),
        "paid_amount": rng.gamma(1.2, 4_000.0, n).round(2),
    })
    risk = (1.1 * frame["pay_delay_months"] - frame["paid_amount"] / 8_000 - frame["limit_balance"] / 200_000
            + rng.normal(0, 0.8, n))
    return frame, (risk > 0.3).astype(int).rename("default_payment")


def _churn(n: int = 1500) -> tuple[Any, Any]:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(11)
    frame = pd.DataFrame({"tenure_months": rng.integers(1, 72, n).astype("float64"),
                          "monthly_charges": rng.normal(65, 20, n).round(2),
                          "support_calls": rng.poisson(1.5, n).astype("float64")})
    score = 0.7 * frame["support_calls"] - frame["tenure_months"] / 24 + rng.normal(0, 0.7, n)
    return frame, (score > 0).astype(int).rename("churned")


def _fraud(n: int = 2000) -> tuple[Any, Any]:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(13)
    frame = pd.DataFrame({"amount": rng.lognormal(3.5, 1.0, n).round(2), "merchant_risk": rng.beta(2, 8, n).round(3),
                          "hour": rng.integers(0, 24, n).astype("float64")})
    return frame, None


def _estimator(name: str) -> tuple[Any, Any]:
    """A demo model, fitted, and the frame it was trained on."""
    from sklearn.ensemble import GradientBoostingClassifier, IsolationForest
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if name == "credit-baseline":
        X, y = _credit()
        return make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y), X
    if name == "credit-tuned":
        X, y = _credit()
        return GradientBoostingClassifier(n_estimators=60, max_depth=3, random_state=7).fit(X, y), X
    if name == "churn":
        X, y = _churn()
        return make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y), X
    X, _ = _fraud()
    return IsolationForest(n_estimators=50, random_state=13).fit(X), X


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "mlops_nb" / "demo-models" / f"sklearn-{version('scikit-learn')}-mlflow-{version('mlflow-skinny')}"


def demo_model_zip(name: str) -> bytes:
    """One demo model as an MLflow model zip (``MLmodel`` at its root), saved by MLflow itself."""
    cached = _cache_dir() / f"{name}.zip"
    if cached.exists():
        return cached.read_bytes()
    import mlflow.sklearn
    from mlflow.models import infer_signature

    estimator, X = _estimator(name)
    quiet = logging.getLogger("mlflow.sklearn")  # its pickle-format warning is for models of unknown origin
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    folder = Path(tempfile.mkdtemp()) / "model"
    try:
        # cloudpickle, one of MLflow's formats: skops, the default, would want the trees of a
        # gradient-boosting model listed as trusted types.
        mlflow.sklearn.save_model(estimator, str(folder), signature=infer_signature(X, estimator.predict(X)),
                                  input_example=X.head(3), serialization_format="cloudpickle")
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(folder.rglob("*")):
                if path.is_file():
                    archive.write(path, path.relative_to(folder).as_posix())
    finally:
        quiet.setLevel(level)
        shutil.rmtree(folder.parent, ignore_errors=True)
    cached.parent.mkdir(parents=True, exist_ok=True)
    partial = cached.with_suffix(f".{os.getpid()}.part")
    partial.write_bytes(buffer.getvalue())
    shutil.move(partial, cached)  # whole or not at all, should two sandboxes seed at once
    return buffer.getvalue()


def _h2o3_mojo(algorithm: str, columns: list[str]) -> bytes:
    """A stand-in H2O-3 MOJO: its model.ini and a domain file (no trees: genmodel refuses to load it)."""
    ini = ("[info]\nh2o_version = 3.46.0.6\nmojo_version = 1.40\nalgo = gbm\n"
           f"algorithm = {algorithm}\ncategory = Binomial\nsupervised = true\nn_features = {len(columns) - 1}\n"
           f"n_classes = 2\nn_columns = {len(columns)}\nn_domains = 1\n\n[columns]\n" + "\n".join(columns)
           + f"\n\n[domains]\n{len(columns) - 1}: 2 d000.txt\n")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("model.ini", ini)
        archive.writestr("domains/d000.txt", "0\n1\n")
    return buffer.getvalue()


def _experiment(client: Any, project_id: str, name: str, data: bytes, *, metrics: dict[str, float],
                dataset_id: str = "") -> str:
    """Upload, ingest, create the experiment with what ingest found, move the artifact to it."""
    artifact = client.storage.artifact.create_artifact(artifact={
        "entity_id": project_id, "mime_type": "application/zip"}).artifact
    client.storage.artifact.upload_artifact(artifact.id, io.BytesIO(data))
    ingestion = client.ingest.model.create_model_ingestion(artifact_id=artifact.id).ingestion
    metadata = {**ingestion.model_metadata.to_dict().get("values", {}),
                **{k: {"double_value": v} for k, v in metrics.items()}}
    experiment = client.storage.experiment.create_experiment(project_id=project_id, experiment={
        "display_name": name, "status": "FINISHED", "metadata": {"values": metadata},
        "parameters": {"target_column": ingestion.model_parameters.target_column, "training_dataset_id": dataset_id},
    }).experiment
    client.storage.artifact.update_artifact(artifact={"id": artifact.id, "entity_id": experiment.id,
                                                      "type": ingestion.artifact_type}, update_mask="type,entityId")
    return experiment.id


def _register(client: Any, project_id: str, model_name: str, experiment_id: str) -> str:
    client.storage.registered_model_version.create_model_version(
        registered_model_version={"experiment_id": experiment_id},
        registered_model_display_name=model_name, project_id=project_id)
    return experiment_id


def _composition(experiment_id: str, runtime: str) -> dict[str, Any]:
    deployable, processor = (("python/mlflow.zip", "unzip_processor") if runtime == MLFLOW_RUNTIME
                             else ("h2o3_mojo", "h2o3_mojo_extractor"))
    return {"deployment_composition": {"experiment_id": experiment_id, "deployable_artifact_type_name": deployable,
                                       "artifact_processor_name": processor, "runtime_name": runtime}}


def _deploy(client: Any, project_id: str, name: str, description: str, **shape: Any) -> None:
    client.deployer.deployment.create_deployment(deployment={
        "project_id": project_id, "display_name": name, "description": description, **shape})


def seed_demo_data(sandbox: Sandbox) -> None:
    """Fill a new sandbox with the demo data (nothing happens if alice has a project already)."""
    # Seeding speaks the legacy API (the sandbox serves it meanwhile, whatever its faces).
    with sandbox.client("alice", generation="legacy") as alice, \
            sandbox.client("bob", generation="legacy") as bob:
        bob_id = bob.storage.user.who_am_i().user.id
        if alice.storage.project.list_projects().project:
            return
        credit = alice.storage.project.create_project(project={
            "display_name": "Credit risk", "description": "Who will default on a loan next month?"}).project.id
        alice.storage.project.share_project(project_id=credit, user_id=bob_id, restriction_role_id=ROLE_EDITOR)
        train = alice.storage.dataset.create_dataset(project_id=credit, dataset={
            "display_name": "credit-train.csv", "row_count": 2000, "col_count": 6, "size": 96_318}).dataset.id
        baseline = _experiment(alice, credit, "GBM baseline", demo_model_zip("credit-baseline"),
                               metrics={"auc": 0.771, "logloss": 0.432}, dataset_id=train)
        tuned = _experiment(alice, credit, "GBM tuned", demo_model_zip("credit-tuned"),
                            metrics={"auc": 0.789, "logloss": 0.418}, dataset_id=train)
        h2o_gbm = _experiment(bob, credit, "H2O-3 GBM", _h2o3_mojo("Gradient Boosting Machine", [
            "limit_balance", "age", "pay_delay_months", "bill_amount", "paid_amount", "default_payment"]),
            metrics={"auc": 0.781}, dataset_id=train)
        champion = alice.storage.tag.create_tag(project_id=credit, tag={"display_name": "champion"}).tag.id
        alice.storage.experiment.tag_experiment(experiment_id=tuned, tag_id=champion)
        _register(alice, credit, "credit-default", baseline)
        _register(alice, credit, "credit-default", tuned)
        _register(bob, credit, "credit-default-h2o", h2o_gbm)
        _deploy(alice, credit, "credit-default", "Version 2 on its own",
                single_deployment=_composition(tuned, MLFLOW_RUNTIME))
        _deploy(alice, credit, "credit-default A/B", "80% to version 1, 20% to version 2",
                split_deployment={"split_elements": [{**_composition(baseline, MLFLOW_RUNTIME), "weight": 80},
                                                     {**_composition(tuned, MLFLOW_RUNTIME), "weight": 20}]})
        _deploy(bob, credit, "credit-default with H2O-3 shadow", "Version 2, with the H2O-3 model in its shadow",
                shadow_deployment={"primary_element": _composition(tuned, MLFLOW_RUNTIME),
                                   "secondary_element": _composition(h2o_gbm, H2O3_RUNTIME)})

        churn = alice.storage.project.create_project(project={
            "display_name": "Customer churn", "description": "Which subscribers leave this quarter?"}).project.id
        forest = _experiment(alice, churn, "Random forest", _h2o3_mojo("Distributed Random Forest", [
            "tenure_months", "monthly_charges", "support_calls", "churned"]), metrics={"auc": 0.842})
        pipeline = _experiment(alice, churn, "scikit-learn pipeline", demo_model_zip("churn"), metrics={"auc": 0.836})
        _deploy(alice, churn, "churn-h2o", "The H2O-3 forest",
                single_deployment=_composition(_register(alice, churn, "churn-h2o", forest), H2O3_RUNTIME))
        _register(alice, churn, "churn-sklearn", pipeline)

        fraud = bob.storage.project.create_project(project={
            "display_name": "Fraud detection", "description": "Card transactions to hold for review"}).project.id
        isolation = _experiment(bob, fraud, "Isolation forest", demo_model_zip("fraud"),
                                metrics={"precision_at_1pct": 0.64})
        _deploy(bob, fraud, "fraud", "Scores each transaction: -1 holds it for review",
                single_deployment=_composition(_register(bob, fraud, "fraud", isolation), MLFLOW_RUNTIME))
