"""Times of every RFC 3339 fraction width read everywhere, and values sent as their shortest text.

A real gateway writes 0, 3, 6 or 9 fraction digits, and our own formatter drops a zero fraction:
pandas without a format takes the first value's width for all and refuses the others. The log
test reads lines from a real sandbox (written into its SQLite file, as its supervisor writes
them); the scoring and monitoring conversions are pure functions of the received JSON and are
called directly.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest

import mlops_nb
from mlops_nb.notebook.frames import utc_times
from mlops_nb.notebook.generations import _points
from mlops_nb.notebook.scoring import _as_text, _typed
from mlops_nb.sandbox import Sandbox
from mlops_nb.sandbox.runtime.scorer import _column
from tests.deploying import deploy, experiment_with, wait_for_state, zip_of

WIDTHS = ["2024-05-01T12:00:00.5Z", "2024-05-01T12:00:01Z", "2024-05-01T12:00:02.123Z",
          "2024-05-01T12:00:03.123456Z", "2024-05-01T14:00:04.123456789+02:00"]
EXPECTED = [pd.Timestamp(2024, 5, 1, 12, 0, second, micro, tz="UTC")
            for second, micro in [(0, 500_000), (1, 0), (2, 123_000), (3, 123_456), (4, 123_456)]]


def test_utc_times_reads_every_fraction_width_and_offset() -> None:
    times = utc_times([*WIDTHS, None])
    assert list(times[:-1]) == EXPECTED and pd.isna(times.iloc[-1])
    assert str(times.dtype) == "datetime64[us, UTC]"


def test_scored_and_monitored_times_of_every_width() -> None:
    scored = _typed([WIDTHS], ["when"], {"when": "Time64"}, pd.Index(list("abcde")))
    assert list(scored["when"]) == EXPECTED and list(scored.index) == list("abcde")
    points = [mlops_nb.ApiPoint(x_axis=t, value=str(i)) for i, t in enumerate(WIDTHS)]
    assert list(_points(points, "rows").index) == EXPECTED


def test_the_sandbox_scorer_reads_times_of_every_width() -> None:
    assert [t.floor("us") for t in _column("when", "Time64", WIDTHS)] == EXPECTED  # it keeps nanoseconds


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with Sandbox(db=str(tmp_path_factory.mktemp("nb-values") / "s.sqlite3"), data="empty") as sb:
        yield sb


def test_log_times_of_every_width(sandbox: Sandbox, alice: Any) -> None:
    project = alice.storage.project.create_project(project={"display_name": "logs"}).project.id
    experiment = experiment_with(alice, project, zip_of({"pipeline.mojo": b"x"}), "dai/mojo_pipeline")
    deployment = deploy(alice, project, experiment, "dai/mojo_pipeline").id
    wait_for_state(alice, deployment, "FAILED", timeout=60)
    with sandbox.store.transaction() as db:
        db.execute("DELETE FROM deployment_log WHERE deployment_id = ?", (deployment,))
        db.executemany("INSERT INTO deployment_log (deployment_id, time, source, text) VALUES (?, ?, ?, ?)",
                       [(deployment, t, "scorer", f"line {i}") for i, t in enumerate(WIDTHS)])
    logs = mlops_nb.deployment_logs(alice, deployment)
    assert list(logs["time"]) == EXPECTED and list(logs["message"]) == [f"line {i}" for i in range(5)]


def test_numbers_go_as_their_shortest_text_at_their_own_precision() -> None:
    singles = pd.Series([0.1, 0.5, 1 / 3, None, 1e20], dtype="float32")
    text = _as_text(singles)
    assert text == ["0.1", "0.5", "0.33333334", "", "1e+20"]
    assert [np.float32(t) for t in text if t] == [v for v in singles if not pd.isna(v)]  # each reads back the same
    assert _as_text(pd.Series([0.1, None], dtype="Float32")) == ["0.1", ""]
    doubles = pd.Series([0.1, 1 / 3, 2.0])
    assert [float(t) for t in _as_text(doubles)] == list(doubles)
    mixed = pd.Series([np.float64(0.1), np.float32(0.1), 1, "a", None, 2.5, True], dtype=object)
    assert _as_text(mixed) == ["0.1", "0.1", "1", "a", "", "2.5", "True"]
