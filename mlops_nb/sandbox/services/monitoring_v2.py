"""The workspaces generation's monitoring (``/monitoring/v2``): aggregates over what
``services/monitoring.py`` records of each scoring request.

The parent is ``workspaces/W/deployments/D/experiments/E`` (a deployment's model; ``E`` is ``-``
for all its models, as 1.6.5 sends it) or ``workspaces/W/jobs/J/experiments/E`` (a batch
scoring job's, recorded the same way by ``services/batch.py``).

* **Baseline aggregates**: one per column of the model's baseline, the same baseline the legacy
  drift metrics use: the experiment's training dataset when it links an uploaded CSV, else the
  first rows the model scored (its outputs too, ``isModelOutput``).
* **Scoring aggregates**: one per column and hour (``segmentDuration`` ``3600s``, ``startTime`` the
  hour) of every recorded row (the baseline's too): inputs, then outputs.

A column whose values are all numbers is ``NUMERICAL`` (``numericalAggregate``: ``binEdges``, the
baseline's deciles without their ends (its distinct values when it has ten or fewer), ``binCount`` one more than the edges, mean, standard
deviation, min, max, sum), any other ``CATEGORICAL`` (``valueCounts``); ``missingValues.rowCount``
counts the missing ones. A deployment whose monitoring is off has none. Lists and counts take
``filter``/``orderBy`` over ``id``, ``column_name``, ``logical_type``, ``timestamp``,
``experiment_ids`` and ``is_model_output``. ``GenerateAggregatorConfig`` is not implemented.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import numpy as np
import pandas as pd

from mlops_nb.sandbox.rpc import Call, handles, invalid_argument, not_found, not_implemented
from mlops_nb.sandbox.services.batch import job_experiments, job_key
from mlops_nb.sandbox.services.deployments import deployment_view, elements_of
from mlops_nb.sandbox.services.monitoring import (
    baseline_request_id,
    bins_of,
    missing_values,
    numeric_values,
    scored_rows,
    settle,
    training_baseline,
)
from mlops_nb.sandbox.services.rest import memory_count, memory_list, public_fields

__all__: list[str] = []

_PARENT = re.compile(r"^workspaces/([^/]+)/(deployments|jobs)/([^/]+)/experiments/([^/]+)$")
_FIELDS = {"id": "id", "column_name": "column", "column": "column", "logical_type": "logicalType",
           "timestamp": "startTime", "start_time": "startTime", "experiment_ids": "_experiments",
           "is_model_output": "isModelOutput"}
SEGMENT = "3600s"


def _models(call: Call, parent: Any) -> list[tuple[str, str]]:
    """(recording id, experiment id) of each model the parent names: a deployment's or a batch job's."""
    match = _PARENT.match(str(parent or ""))
    if match is None:
        raise invalid_argument("parent must look like 'workspaces/<workspace>/deployments/<deployment>/experiments/"
                               f"<experiment or ->' (or .../jobs/<job>/experiments/...), got {parent!r}")
    project_id, kind, owner_id, experiment = match.groups()
    settle(call.store)  # what the gateway has queued is recorded first
    if kind == "deployments":
        deployer = deployment_view(call, owner_id, field="parent")
        if deployer["projectId"] != project_id:
            raise not_found("deployment", f"workspaces/{project_id}/deployments/{owner_id}")
        if not deployer.get("monitor", {}).get("enable"):
            return []
        experiments = [e["deploymentComposition"]["experimentId"] for e in elements_of(deployer)]
    else:
        owner_id = job_key(owner_id)
        experiments = job_experiments(call, project_id, owner_id.split("/", 1)[1])
    if experiment != "-":
        if experiment not in experiments:
            raise not_found(f"experiment of {kind[:-1]} {owner_id!r}", experiment)
        experiments = [experiment]
    return [(owner_id, e) for e in experiments]


def _id(*parts: str) -> str:
    return hashlib.sha1("/".join(parts).encode()).hexdigest()[:24]


def _aggregate(values: pd.Series, edges: np.ndarray | None) -> dict[str, Any]:
    """The aggregate fields of one column's values (``edges``: the baseline's, for numbers)."""
    missing = missing_values(values)
    out: dict[str, Any] = {"missingValues": {"rowCount": int(missing.sum())}}
    numbers = numeric_values(values)
    if edges is not None and numbers is not None:
        present = numbers.dropna().to_numpy(dtype=float)
        counts = np.bincount(np.searchsorted(edges, present, side="right"), minlength=len(edges) + 1)
        out["logicalType"] = "NUMERICAL"
        out["numericalAggregate"] = {
            "binEdges": [float(e) for e in edges], "binCount": [int(c) for c in counts],
            **({"mean": float(present.mean()), "standardDeviation": float(present.std()),
                "min": float(present.min()), "max": float(present.max()), "sum": float(present.sum())}
               if len(present) else {})}
    else:
        text = values[~missing].astype(str)
        out["logicalType"] = "CATEGORICAL"
        out["categoricalAggregate"] = {"valueCounts": {str(k): int(v) for k, v in text.value_counts().items()}}
    return out


def _edges(baseline: pd.Series | None) -> np.ndarray | None:
    """Bin edges for a column whose baseline values are all numbers (None: the column is categorical):
    the baseline's deciles without their ends, or its distinct values when it has ten or fewer."""
    if baseline is None or baseline.empty:
        return None
    numbers = numeric_values(baseline)
    if numbers is None or numbers.notna().sum() == 0:
        return None
    kind, bins = bins_of(baseline)
    if kind == "numeric" and len(bins) > 2:
        return np.asarray(bins[1:-1], dtype=float)
    return np.unique(numbers.dropna().to_numpy(dtype=float))


def _baselines(call: Call, owner_id: str, experiment_id: str) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """(baseline inputs, baseline outputs, the request id the baseline ends at: 0 for a training dataset)."""
    training = training_baseline(call, experiment_id)
    if training is not None:
        return training[0], pd.DataFrame(), 0
    last = baseline_request_id(call, owner_id, experiment_id)
    inputs, outputs = scored_rows(call, owner_id, experiment_id, None, until=last)
    return inputs, outputs, last


def _columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c != "_time"]


def _baseline_rows(call: Call, parent: Any) -> list[dict[str, Any]]:
    rows = []
    for owner_id, experiment_id in _models(call, parent):
        inputs, outputs, _ = _baselines(call, owner_id, experiment_id)
        for frame, is_output in ((inputs, False), (outputs, True)):
            for column in _columns(frame):
                rows.append({"id": _id(owner_id, experiment_id, "baseline", str(column)), "column": str(column),
                             **_aggregate(frame[column], _edges(frame[column])), "deploymentId": owner_id,
                             "isModelOutput": is_output, "experimentIds": [experiment_id],
                             "_experiments": experiment_id})
    return rows


def _scoring_rows(call: Call, parent: Any) -> list[dict[str, Any]]:
    rows = []
    for owner_id, experiment_id in _models(call, parent):
        base_inputs, base_outputs, _ = _baselines(call, owner_id, experiment_id)
        inputs, outputs = scored_rows(call, owner_id, experiment_id, None)
        for frame, baseline, is_output in ((inputs, base_inputs, False), (outputs, base_outputs, True)):
            if frame.empty:
                continue
            hours = pd.to_datetime(frame["_time"], utc=True).dt.floor("h")
            for column in _columns(frame):
                edges = _edges(baseline[column] if column in baseline.columns else frame[column])
                for hour in sorted(hours.unique()):
                    start = pd.Timestamp(hour).strftime("%Y-%m-%dT%H:%M:%SZ")
                    rows.append({"id": _id(owner_id, experiment_id, start, str(column)), "column": str(column),
                                 "deploymentId": owner_id, "startTime": start, "segmentDuration": SEGMENT,
                                 **_aggregate(frame[column][hours == hour], edges), "isModelOutput": is_output,
                                 "experimentIds": [experiment_id], "_experiments": experiment_id})
    return rows


@handles("monitoring.aggregate.list_baseline_aggregates", generation="workspaces")
@handles("monitoring.aggregate.list_baseline_aggregates2", generation="workspaces")
def list_baseline_aggregates(call: Call, request: dict[str, Any]) -> dict[str, Any]:
    page, token = memory_list(_baseline_rows(call, request.get("parent")), request, _FIELDS)
    return {"baselineAggregates": [public_fields(r) for r in page], "nextPageToken": token}


@handles("monitoring.aggregate.count_baseline_aggregates", generation="workspaces")
@handles("monitoring.aggregate.count_baseline_aggregates2", generation="workspaces")
def count_baseline_aggregates(call: Call, request: dict[str, Any]) -> dict[str, Any]:
    return {"count": str(memory_count(_baseline_rows(call, request.get("parent")), request, _FIELDS))}


@handles("monitoring.aggregate.list_aggregates", generation="workspaces")
@handles("monitoring.aggregate.list_aggregates2", generation="workspaces")
def list_aggregates(call: Call, request: dict[str, Any]) -> dict[str, Any]:
    page, token = memory_list(_scoring_rows(call, request.get("parent")), request, _FIELDS)
    return {"aggregates": [public_fields(r) for r in page], "nextPageToken": token}


@handles("monitoring.aggregate.count_aggregates", generation="workspaces")
@handles("monitoring.aggregate.count_aggregates2", generation="workspaces")
def count_aggregates(call: Call, request: dict[str, Any]) -> dict[str, Any]:
    return {"count": str(memory_count(_scoring_rows(call, request.get("parent")), request, _FIELDS))}


not_implemented("monitoring.aggregate.generate_aggregator_config",
                "an aggregator configuration (its aggregates are computed from the recorded scoring rows, with "
                "no aggregator to configure)", generation="workspaces")
