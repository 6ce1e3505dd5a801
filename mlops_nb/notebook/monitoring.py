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

from mlops_nb.notebook.generations import HIGH_DRIFT, MEDIUM_DRIFT, operations
from mlops_nb.notebook.lookup import deployment_id
from mlops_nb.wire.messages import Message

__all__ = ["HIGH_DRIFT", "MEDIUM_DRIFT", "Monitoring", "monitoring"]


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


def monitoring(client: Any, deployment: Message | str, start: datetime | str | None = None,
               end: datetime | str | None = None, *, model: str | None = None,
               project: Message | str | None = None) -> Monitoring:
    """Operational, health and drift metrics of a deployment's model over ``start``..``end``.

    ``start``/``end`` are aware datetimes or RFC 3339 text (default: the whole life of the
    deployment until now). ``model`` is the experiment id of one of the deployment's models
    (default: its primary). On the workspaces generation of the API, whose monitoring keeps
    aggregates of the scored columns, the figures are made from those (drift: the population
    stability index against the baseline aggregates); it measures no latency, memory, CPU,
    availability or failed rows, so those columns are empty and ``summary["not_measured"]`` says so.
    """
    target = deployment_id(client, deployment, project)
    ops = operations(client)
    models = ops.models_of(target)
    model_id = model or models[0]
    if model_id not in models:
        raise ValueError(f"deployment {target} serves the models {', '.join(models)}, not {model_id!r}")
    found = ops.metrics(target, model_id, start, end)
    from mlops_nb.notebook.client import known_deployment_name, known_experiment_name

    return Monitoring(target, model_id, found.operational, found.predictions, found.prediction_values, found.drift,
                      found.drift_over_time, found.summary,
                      deployment_name=getattr(deployment, "display_name", "") or known_deployment_name(target) or "",
                      model_name=known_experiment_name(model_id) or "")
