"""Scoring a DataFrame on a deployment: :func:`score`.

The frame's columns the model takes go to the deployment's scoring URL as the scoring API wants
them (strings, in batches); the predictions come back as a DataFrame typed from the schema.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mlops_nb.notebook.frames import utc_times
from mlops_nb.notebook.lookup import deployment_id
from mlops_nb.notebook.progress import progress
from mlops_nb.wire.errors import MLOpsError
from mlops_nb.wire.messages import Message

__all__ = ["ScoringError", "score"]


class ScoringError(MLOpsError):
    """The deployment refused to score (``status`` is the HTTP status, ``message`` what it said)."""

    def __init__(self, status: int, message: str) -> None:
        self.status, self.message = status, message
        super().__init__(f"the deployment answered {status}: {message}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.status, self.message))


# Scoring API data types -> pandas dtypes of the output columns.
_DTYPES = {"Float64": "float64", "Float32": "float32", "Int64": "Int64", "Int32": "Int32", "Bool": "boolean",
           "Str": "string", "Bytes": "string"}
RETRY_STATUSES = (404, 502, 503, 504)  # a just-healthy deployment's routes can answer these for a moment


def _session(client: Any, passphrase: str | None) -> Any:
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    session = requests.Session()
    retry = Retry(total=8, backoff_factor=0.25, status_forcelist=RETRY_STATUSES, allowed_methods=["GET", "POST"],
                  raise_on_status=False, respect_retry_after_header=True)
    session.mount("http://", HTTPAdapter(max_retries=retry))
    session.mount("https://", HTTPAdapter(max_retries=retry))
    transport = getattr(client, "_transport", None)
    session.verify = getattr(transport, "verify", True)
    if transport is not None:
        session.proxies.update(transport.session.proxies)
    if passphrase:
        session.headers["Authorization"] = f"Bearer {passphrase}"
    return session


def _answer(response: Any) -> Any:
    if response.status_code == 401:
        raise ScoringError(401, "the deployment wants a passphrase (or a different one): pass passphrase=")
    if not 200 <= response.status_code < 300:
        try:
            message = response.json().get("message", response.text)
        except ValueError:
            message = response.text[:500]
        raise ScoringError(response.status_code, message)
    return response.json()


def _as_text(column: pd.Series) -> list[str]:
    """One input column as the scoring API wants it: strings, missing values as empty ones.

    A number goes as the shortest text that reads back to the same value at its own precision
    (a float32 0.1 as ``0.1``, not its float64 widening ``0.10000000149011612``; a NumPy float
    of an object column as ``0.1``, not its repr ``np.float64(0.1)``).
    """
    if pd.api.types.is_bool_dtype(column):
        text = column.map({True: "true", False: "false"})
    elif pd.api.types.is_datetime64_any_dtype(column):
        text = column.map(lambda v: v.isoformat() if not pd.isna(v) else None)
    elif pd.api.types.is_float_dtype(column):
        width = getattr(column.dtype, "numpy_dtype", column.dtype)  # float32 of a nullable Float32 column too
        text = pd.Series(column.to_numpy(dtype=width, na_value=np.nan).astype(str), index=column.index)
    else:
        text = column.astype(object).map(str)
    return text.where(column.notna(), "").tolist()


def _typed(values: list[list[str]], fields: list[str], kinds: dict[str, str], index: pd.Index) -> pd.DataFrame:
    frame = pd.DataFrame(values, columns=fields, index=index, dtype=object)
    for name in fields:
        kind = kinds.get(name, "Str")
        column = frame[name].replace({"": None, "NaN": None})
        if kind == "Time64":
            frame[name] = utc_times(column).array
        elif kind == "Bool":
            frame[name] = column.map({"true": True, "false": False, "1": True, "0": False}).astype("boolean")
        elif kind in ("Float64", "Float32", "Int64", "Int32"):
            frame[name] = pd.to_numeric(column).astype(_DTYPES[kind])
        else:
            frame[name] = frame[name].astype("string")
    return frame


def score(client: Any, deployment: Message | str, frame: pd.DataFrame, passphrase: str | None = None,
          batch_size: int = 1000, *, project: Message | str | None = None, progress: bool | None = None) -> pd.DataFrame:
    """Score ``frame`` on a deployment; returns the predictions as a DataFrame on ``frame``'s index.

    The columns the model takes (from the deployment's schema) are sent as the scoring API wants
    them (strings, in batches of ``batch_size`` rows, with a progress bar past a few batches);
    other columns are left out. The output columns are typed from the schema. A column the model
    needs and ``frame`` lacks raises ``KeyError`` naming it, before anything is sent; the short
    404/502/503 of a just-healthy deployment is retried; other refusals raise :class:`ScoringError`
    with the deployment's words.
    """
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"score takes a pandas DataFrame, got {type(frame).__name__}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    target = deployment_id(client, deployment, project)
    url = client.deployer.deployment_status.get_deployment_status(
        deployment_id=target).deployment_status.scorer.score.url
    if not url:
        raise ScoringError(503, f"deployment {target} has no scoring URL yet; wait_for_healthy first")
    session = _session(client, passphrase)
    try:
        schema = _answer(session.get(url.rsplit("/", 1)[0] + "/schema", timeout=60))["schema"]
        inputs = [f["name"] for f in schema["inputFields"]]
        missing = [name for name in inputs if name not in frame.columns]
        if missing:
            raise KeyError(f"the frame lacks the column{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))}"
                           f" that the model takes; it takes {', '.join(inputs)}")
        kinds = {f["name"]: f["dataType"] for f in schema["outputFields"]}
        columns = {name: _as_text(frame[name]) for name in inputs}
        batches = range(0, len(frame), batch_size)
        show = progress if progress is not None else len(batches) > 3
        bar = _bar(len(frame)) if show else None
        out_fields: list[str] = [f["name"] for f in schema["outputFields"]]
        scored: list[list[str]] = []
        try:
            for start in batches:
                rows = [list(r) for r in zip(*(c[start:start + batch_size] for c in columns.values()), strict=True)]
                body = _answer(session.post(url, json={"fields": inputs, "rows": rows}, timeout=300))
                out_fields = body.get("fields", out_fields)
                scored.extend(body["score"])
                if bar is not None:
                    bar.update(len(scored), f"{len(scored):,} / {len(frame):,} rows", len(frame))
        finally:
            if bar is not None:
                bar.close(len(scored), f"{len(scored):,} rows scored", len(scored) == len(frame))
    finally:
        session.close()
    return _typed(scored, out_fields, kinds, frame.index)


def _bar(total: int) -> Any:
    return progress("scoring", "rows", total)
