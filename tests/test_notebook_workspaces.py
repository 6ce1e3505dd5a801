"""The notebook helpers on both generations of the API: one sandbox, a client forced to each face.

upload -> register -> deploy -> wait -> score -> monitoring -> logs -> delete through the helpers
on the workspaces face as on the legacy one, a deployment made through one face seen through the
other, the clear error where a generation lacks a step, and ``%mlops`` on a workspaces client in a
real IPython shell. The first tests need no sandbox: the monitoring figures the workspaces
generation's aggregates give.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from mlops_nb.notebook.generations import HIGH_DRIFT, MEDIUM_DRIFT, aggregate_metrics, psi

# -- the workspaces monitoring figures, from aggregates made here of known data ------------------------

EDGES = np.linspace(-4.0, 8.0, 25)


def _numerical(values: np.ndarray) -> dict[str, Any]:
    counts, _ = np.histogram(values, bins=EDGES)
    return {"binEdges": EDGES.tolist(), "binCount": counts.tolist(), "min": float(values.min()),
            "max": float(values.max()), "mean": float(values.mean()), "sum": float(values.sum())}


def _scored(start: str, column: str, values: np.ndarray, *, output: bool = False, missing: int = 0) -> dict[str, Any]:
    return {"id": f"{start}-{column}", "column": column, "startTime": start, "segmentDuration": "3600s",
            "isModelOutput": output, "logicalType": "NUMERICAL", "numericalAggregate": _numerical(values),
            "missingValues": {"rowCount": missing}}


@pytest.fixture(scope="module")
def windows() -> dict[str, Any]:
    rng = np.random.default_rng(11)
    training = rng.normal(0.0, 1.0, 5000)
    same = rng.normal(0.0, 1.0, 800)
    shifted = rng.normal(2.5, 1.0, 600)
    predictions = [rng.normal(1.0, 0.5, 800), rng.normal(3.0, 0.5, 600)]
    scored = [_scored("2026-01-01T10:00:00Z", "x", same, missing=7),
              _scored("2026-01-01T11:00:00Z", "x", shifted),
              _scored("2026-01-01T10:00:00Z", "y", predictions[0], output=True),
              _scored("2026-01-01T11:00:00Z", "y", predictions[1], output=True)]
    baseline = [{"id": "b-x", "column": "x", "isModelOutput": False, "logicalType": "NUMERICAL",
                 "numericalAggregate": _numerical(training)}]
    return {"scored": scored, "baseline": baseline, "same": same, "shifted": shifted, "predictions": predictions}


def test_rows_and_predictions_come_from_the_model_output_aggregates(windows: dict[str, Any]) -> None:
    found = aggregate_metrics(windows["scored"], windows["baseline"], None, None)
    assert list(found.operational["successful_rows"]) == [len(p) for p in windows["predictions"]]
    assert found.summary["rows_scored"] == sum(len(p) for p in windows["predictions"])
    assert found.summary["prediction_name"] == "y"
    every = np.concatenate(windows["predictions"])
    expected, _ = np.histogram(every, bins=EDGES)
    shown = found.predictions.set_index("low")["rows"]
    assert {low: shown.get(low, 0) for low in EDGES[:-1]} == dict(zip(EDGES[:-1], expected.tolist(), strict=True))
    # Quartiles read off each window's histogram: within one bin width of the data's own.
    width = EDGES[1] - EDGES[0]
    for (_, row), values in zip(found.prediction_values.iterrows(), windows["predictions"], strict=True):
        assert (row["min"], row["max"]) == (values.min(), values.max())
        assert abs(row["median"] - np.median(values)) <= width
    # What the aggregates do not measure is empty, and said so.
    assert found.operational[["scoring_latency_ms", "memory_mib", "cpu_percent", "availability_percent"]].isna().all().all()
    assert "latency" in found.summary["not_measured"]


def test_drift_is_the_stability_index_of_each_window_against_the_baseline(windows: dict[str, Any]) -> None:
    found = aggregate_metrics(windows["scored"], windows["baseline"], None, None)
    over_time = found.drift_over_time["x"]
    assert over_time.iloc[0] < MEDIUM_DRIFT < HIGH_DRIFT < over_time.iloc[1]
    assert found.drift.loc["x", "level"] == "high"  # both windows together: the shifted one weighs in
    assert found.drift.loc["x", "missing_values"] == pytest.approx(7 / (len(windows["same"]) + 7 + len(windows["shifted"])))
    assert (found.summary["features_drifting"], found.summary["high_drift"]) == (1, 1)
    # The index is zero against itself and symmetric.
    a = {"1": 10.0, "2": 30.0, "3": 60.0}
    b = {"1": 40.0, "2": 40.0, "3": 20.0}
    assert psi(a, a) == 0.0 and psi(a, b) == pytest.approx(psi(b, a)) and psi(a, b) > HIGH_DRIFT
    assert math.isnan(psi({}, a))


def test_a_time_range_keeps_the_windows_inside_it(windows: dict[str, Any]) -> None:
    found = aggregate_metrics(windows["scored"], windows["baseline"], "2026-01-01T10:30:00Z", None)
    assert list(found.operational["successful_rows"]) == [len(windows["predictions"][1])]
    assert found.summary["rows_scored"] == len(windows["predictions"][1])
    none = aggregate_metrics(windows["scored"], windows["baseline"], None, "2026-01-01T09:00:00+00:00")
    assert none.operational.empty and none.summary["rows_scored"] == 0
