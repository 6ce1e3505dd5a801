"""How a deployment is doing: the model-monitoring metrics as DataFrames, and plots of them.

``monitoring(client, deployment)`` asks the model-monitoring server for one model of the
deployment (its primary, unless ``model=`` names another) over a time range, and gives:

* ``operational``: one row per time bucket (UTC), with ``scoring_latency_ms``, ``memory_mib``,
  ``cpu_percent``, ``availability_percent``, ``successful_rows``, ``failed_rows``;
* ``predictions``: the distribution of the model's output (one row per bin or class) and
  ``prediction_values``: its minimum, quartiles and maximum per time bucket;
* ``drift``: one row per input feature (``drift``, ``importance``, ``impact``,
  ``missing_values``, ``level``: high, medium or low) and ``drift_over_time`` (feature per
  column, bucket per row);
* ``summary``: the figures of the three answers (uptime, average latency, rows scored, ...).

``.plot()`` draws them with matplotlib in one Figure: latency, and successful and failed rows
over time; the prediction distribution; drift per feature. In a notebook the object shows as
its summary and that figure.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd

from mlops_nb.notebook.frames import utc_times
from mlops_nb.notebook.lookup import deployment_id
from mlops_nb.wire.messages import Message

__all__ = ["Monitoring", "monitoring"]

HIGH_DRIFT, MEDIUM_DRIFT = 0.25, 0.1


def _points(points: list[Message], column: str) -> pd.Series:
    """Points of a graph (x: a time, value: a number) as a series on a UTC time index."""
    index = pd.DatetimeIndex(utc_times(p.x_axis for p in points), name="time")
    return pd.Series(pd.to_numeric([p.value for p in points]), index=index, name=column, dtype="float64")


def _graph(graph: Message | None, column: str) -> pd.Series:
    return _points(graph.point if graph is not None else [], column)


def _bins(histogram: Message | None) -> pd.DataFrame:
    rows = [{"low": b.x_min, "high": b.x_max, "rows": int(b.y or 0)} for b in (histogram.bin if histogram else [])]
    frame = pd.DataFrame(rows, columns=["low", "high", "rows"])
    numeric = pd.to_numeric(frame["low"], errors="coerce")
    if len(frame) and numeric.notna().all() and (frame["low"] != frame["high"]).any():
        frame[["low", "high"]] = frame[["low", "high"]].apply(pd.to_numeric)
    else:
        frame = frame.rename(columns={"low": "value"}).drop(columns=["high"])
    return frame


def _level(drift: float) -> str:
    return "high" if drift >= HIGH_DRIFT else "medium" if drift >= MEDIUM_DRIFT else "low"


@dataclass
class Monitoring:
    """Monitoring metrics of one model of a deployment (see the module docstring)."""

    deployment_id: str
    model_id: str
    operational: pd.DataFrame
    predictions: pd.DataFrame
    prediction_values: pd.DataFrame
    drift: pd.DataFrame
    drift_over_time: pd.DataFrame
    summary: dict[str, Any] = field(default_factory=dict)
    deployment_name: str = ""
    model_name: str = ""

    def plot(self) -> Any:
        """A matplotlib Figure: latency and rows over time, prediction distribution, drift per feature."""
        import matplotlib.dates as mdates
        from matplotlib.figure import Figure

        figure = Figure(figsize=(12, 7.5), layout="constrained")
        grid = figure.subplot_mosaic([["latency", "latency"], ["rows", "rows"], ["predictions", "drift"]],
                                     sharex=False)
        grid["rows"].sharex(grid["latency"])
        op = self.operational
        latency = grid["latency"]
        if not op.empty:
            latency.plot(op.index, op["scoring_latency_ms"], marker="o", color="#1f77b4")
        latency.set(title="Scoring latency", ylabel="ms per request")
        rows = grid["rows"]
        if not op.empty:
            width = (op.index[1] - op.index[0]) * 0.8 if len(op) > 1 else pd.Timedelta(seconds=1)
            rows.bar(op.index, op["successful_rows"], width=width, color="#2e7d32", label="scored")
            rows.bar(op.index, op["failed_rows"], width=width, bottom=op["successful_rows"], color="#c62828",
                     label="failed")
            rows.legend(loc="upper left")
        rows.set(title="Rows scored", ylabel="rows", xlabel="time (UTC)")
        for axes in (latency, rows):
            axes.grid(alpha=0.3)
            locator = mdates.AutoDateLocator()
            axes.xaxis.set_major_locator(locator)
            axes.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
        predictions = grid["predictions"]
        if not self.predictions.empty:
            if "low" in self.predictions:
                centres = (self.predictions["low"] + self.predictions["high"]) / 2
                widths = (self.predictions["high"] - self.predictions["low"]) * 0.9
                predictions.bar(centres, self.predictions["rows"], width=widths, color="#6a51a3")
            else:
                predictions.bar(self.predictions["value"].astype(str), self.predictions["rows"], color="#6a51a3")
        predictions.set(title="Predictions", xlabel=self.summary.get("prediction_name", "prediction"), ylabel="rows")
        drift = grid["drift"]
        if not self.drift.empty:
            ordered = self.drift.sort_values("drift")
            colours = ordered["level"].map({"high": "#c62828", "medium": "#ef6c00", "low": "#2e7d32"})
            drift.barh(ordered.index.astype(str), ordered["drift"], color=list(colours))
            drift.axvline(MEDIUM_DRIFT, color="#ef6c00", linestyle="--", linewidth=1)
            drift.axvline(HIGH_DRIFT, color="#c62828", linestyle="--", linewidth=1)
        drift.set(title="Drift per feature (PSI)", xlabel="population stability index")
        # Names first; the ids, for a person who needs them, on a second line.
        figure.suptitle(f"{self.deployment_name or self.deployment_id}: model {self.model_name or self.model_id}\n"
                        f"deployment {self.deployment_id}, model {self.model_id}")
        _show_figures_in_ipython()
        return figure

    def _repr_html_(self) -> str:
        items = "".join(f"<tr><th style='text-align:left'>{html.escape(k)}</th><td style='text-align:left'>"
                        f"{html.escape(_show(v))}</td></tr>" for k, v in self.summary.items())
        buffer = io.BytesIO()
        self.plot().savefig(buffer, format="png", dpi=80)
        image = base64.b64encode(buffer.getvalue()).decode()
        return (f"<div class='mlops-nb-monitoring'><table>{items}</table>"
                f"<img alt='monitoring plots' src='data:image/png;base64,{image}'/></div>")

    def __repr__(self) -> str:
        figures = ", ".join(f"{k}={_show(v)}" for k, v in self.summary.items())
        return (f"<Monitoring of deployment {self.deployment_name or self.deployment_id}, model "
                f"{self.model_name or self.model_id}: {figures}>")


def _show_figures_in_ipython() -> None:
    """Let IPython show a matplotlib Figure as a PNG (once), as it does for pyplot's figures.

    The plots are made without pyplot, so that nothing is drawn twice and no global figure is
    left open; IPython then needs to be told how to show a bare Figure.
    """
    try:
        from IPython import get_ipython
        from IPython.core.pylabtools import print_figure
        from matplotlib.figure import Figure
    except ImportError:
        return
    shell = get_ipython()
    if shell is None:
        return
    png = shell.display_formatter.formatters["image/png"]
    try:
        png.lookup_by_type(Figure)
    except KeyError:
        png.for_type(Figure, lambda figure: print_figure(figure, "png", bbox_inches="tight"))


def _show(value: Any) -> str:
    return f"{value:,.3g}" if isinstance(value, float) else str(value)


def _models_of(client: Any, deployment: str) -> list[str]:
    storage = client.storage.deployment.get_deployment(deployment_id=deployment).deployment
    return [storage.experiment_id, *(s.experiment_id for s in storage.secondary_scorer)]


def monitoring(client: Any, deployment: Message | str, start: datetime | str | None = None,
               end: datetime | str | None = None, *, model: str | None = None,
               project: Message | str | None = None) -> Monitoring:
    """Operational, health and drift metrics of a deployment's model over ``start``..``end``.

    ``start``/``end`` are aware datetimes or RFC 3339 text (default: the whole life of the
    deployment until now). ``model`` is the experiment id of one of the deployment's models
    (default: its primary).
    """
    target = deployment_id(client, deployment, project)
    models = _models_of(client, target)
    model_id = model or models[0]
    if model_id not in models:
        raise ValueError(f"deployment {target} serves the models {', '.join(models)}, not {model_id!r}")
    span = {k: v for k, v in (("start_date_time", start), ("end_date_time", end)) if v is not None}
    service = client.model_monitoring.monitoring_service
    operational = service.get_model_operational_summary_metrics(target, model_id, **span)
    health = service.get_model_health_metrics(target, model_id, **span)
    drift = service.get_model_drift_metrics(target, model_id, **span)

    series = [_graph(operational.scoring_latency, "scoring_latency_ms"), _graph(operational.memory_usage, "memory_mib"),
              _graph(operational.cpu_usage, "cpu_percent"), _graph(operational.availability, "availability_percent"),
              _graph(operational.success_prediction, "successful_rows"),
              _graph(operational.failed_prediction, "failed_rows")]
    frame = pd.concat(series, axis=1, sort=True)
    frame[["successful_rows", "failed_rows"]] = frame[["successful_rows", "failed_rows"]].fillna(0)

    boxes = health.prediction_values.box if health.prediction_values is not None else []
    values = pd.DataFrame([{"time": b.x, "min": b.y0, "q1": b.y1, "median": b.y2, "q3": b.y3, "max": b.y4}
                           for b in boxes], columns=["time", "min", "q1", "median", "q3", "max"])
    values["time"] = utc_times(values["time"]).array
    values = values.set_index("time").apply(pd.to_numeric)

    features = drift.feature_summary.feature if drift.feature_summary is not None else []
    per_feature = pd.DataFrame([{"feature": f.name, "drift": f.drift, "importance": f.importance, "impact": f.impact,
                                 "missing_values": f.missing_values, "data_type": f.data_type}
                                for f in features if f.drift_calculated],
                               columns=["feature", "drift", "importance", "impact", "missing_values", "data_type"])
    per_feature["level"] = per_feature["drift"].map(_level).astype("string")
    per_feature = per_feature.set_index("feature")
    importance = drift.feature_importance.feature_drift if drift.feature_importance is not None else []
    over_time = (pd.concat([_points(d.drift, d.feature.name) for d in importance if d.feature is not None], axis=1,
                           sort=True)
                 if importance else pd.DataFrame())

    summary = {
        "uptime_percent": operational.uptime, "average_latency_ms": operational.avg_scoring_latency,
        "rows_scored": health.total_predictions, "features_drifting": drift.count_feature_drift,
        "high_drift": drift.high_feature_drift,
        "prediction_name": health.predictions.name if health.predictions is not None else "prediction",
        "baseline": drift.feature_summary.description if drift.feature_summary is not None else "",
    }
    from mlops_nb.notebook.client import known_deployment_name, known_experiment_name

    return Monitoring(target, model_id, frame, _bins(health.predictions), values, per_feature, over_time, summary,
                      deployment_name=getattr(deployment, "display_name", "") or known_deployment_name(target) or "",
                      model_name=known_experiment_name(model_id) or "")
