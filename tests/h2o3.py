"""H2O-3 models for the MOJO tests: trained here, in one local h2o cluster per test session.

The cluster runs on 127.0.0.1 with a small heap; nothing is downloaded (h2o's own jar starts
it). Each model is trained on generated data with a categorical input and exported as a MOJO;
H2O-3's own in-cluster predictions on 1,000 held-out rows (among them missing values and a
categorical level the model never saw) are what the deployed MOJO must reproduce.
"""

from __future__ import annotations

import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

TRAIN_ROWS = 600
SCORED_ROWS = 1000
FEATURES = ["size", "weight", "color"]


@dataclass(frozen=True)
class TrainedModel:
    kind: str  # binomial, multinomial or regression
    model: Any  # the h2o estimator
    mojo: bytes
    train: pd.DataFrame  # the training frame, response included
    rows: pd.DataFrame  # the rows to score, features only
    expected: pd.DataFrame  # H2O-3's in-cluster predictions for them


def _free_port_pair() -> int:
    """A port p with p and p + 1 free (h2o listens on both)."""
    for _ in range(50):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            port = first.getsockname()[1]
            with socket.socket() as second:
                try:
                    second.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
        return port
    raise RuntimeError("no two adjacent free ports on 127.0.0.1")


@contextmanager
def h2o_cluster() -> Iterator[Any]:
    """A local h2o cluster for the session (a JVM h2o starts from its own jar), shut down after."""
    import h2o

    h2o.init(ip="127.0.0.1", port=_free_port_pair(), max_mem_size="512M", nthreads=2, verbose=False,
             strict_version_check=True)
    h2o.no_progress()
    try:
        yield h2o
    finally:
        h2o.cluster().shutdown()


def frame(rows: int, seed: int, *, unseen_level: bool = False) -> pd.DataFrame:
    """Features: two numbers and a colour; with ``unseen_level``, some rows are purple and some values missing."""
    rng = np.random.default_rng(seed)
    data = pd.DataFrame({"size": rng.normal(10, 3, rows), "weight": rng.uniform(0, 5, rows),
                         "color": rng.choice(["red", "green", "blue"], rows)})
    if unseen_level:
        data.loc[data.index[::97], "color"] = "purple"  # a level the model never saw
        data.loc[data.index[5::89], "size"] = np.nan
        data.loc[data.index[7::101], "color"] = None
    return data


def _response(kind: str, data: pd.DataFrame, seed: int) -> pd.Series:
    rng = np.random.default_rng(seed + 1)
    red = (data["color"] == "red").to_numpy() * 2.0
    signal = (data["size"] - 10) / 3 + data["weight"] - 2.5 + red + rng.normal(0, 0.5, len(data))
    if kind == "binomial":
        return pd.Series(np.where(signal > 0.5, "yes", "no"), index=data.index)
    if kind == "multinomial":
        return pd.Series(np.select([signal < -0.5, signal < 1.0], ["low", "mid"], "high"), index=data.index)
    return pd.Series(3.0 * signal + 20, index=data.index)


def train(h2o: Any, kind: str, seed: int = 0) -> TrainedModel:
    from h2o.estimators import H2OGeneralizedLinearEstimator, H2OGradientBoostingEstimator

    train_frame = frame(TRAIN_ROWS, seed)
    train_frame["label"] = _response(kind, train_frame, seed)
    types = {"color": "enum", **({"label": "enum"} if kind != "regression" else {})}
    training = h2o.H2OFrame(train_frame, column_types=types)
    if kind == "regression":  # a GLM, the categorical input one-hot encoded by H2O
        model = H2OGeneralizedLinearEstimator(family="gaussian", lambda_=0.001, seed=1)
    else:
        model = H2OGradientBoostingEstimator(ntrees=15, max_depth=3, seed=1)
    model.train(x=FEATURES, y="label", training_frame=training)
    rows = frame(SCORED_ROWS, seed + 100, unseen_level=True)
    scored = h2o.H2OFrame(rows, column_types={"color": "enum"})
    expected = model.predict(scored).as_data_frame(use_multi_thread=False)
    with tempfile.TemporaryDirectory() as scratch:
        mojo = Path(model.save_mojo(scratch)).read_bytes()
    return TrainedModel(kind, model, mojo, train_frame, rows, expected)


def as_request_values(rows: pd.DataFrame) -> list[list[str]]:
    """The rows as the scoring API takes them: strings, a missing value as an empty one."""
    return [["" if pd.isna(v) else repr(v) if isinstance(v, float) else str(v) for v in row]
            for row in rows.itertuples(index=False, name=None)]
