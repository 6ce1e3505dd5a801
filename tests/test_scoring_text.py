"""score's column conversions against the value-by-value code they replace: the same text, the same floats.

The scoring API carries values as strings; ``score`` writes a frame's numeric columns in one
``json`` call and reads float answers in one numpy call. Both must give exactly what writing
and reading value by value gives (the predictions may not change in the last digit).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlops_nb.notebook.scoring import _as_text, _Batches, _floats


def _value_by_value(column: pd.Series) -> list[str]:
    """A column written value by value: the shortest text that reads back to each value at the
    column's own precision (repr of a float64, numpy's shortest text of a float32), missing as ''."""
    if column.dtype == np.float32:
        return [str(v) if v == v else "" for v in column.to_numpy()]
    if pd.api.types.is_bool_dtype(column):
        text = column.map({True: "true", False: "false"})
    elif pd.api.types.is_datetime64_any_dtype(column):
        text = column.map(lambda v: v.isoformat() if not pd.isna(v) else None)
    else:
        text = column.astype(object).map(lambda v: v if isinstance(v, str) else repr(v) if isinstance(v, float)
                                          else str(v))
    return text.where(column.notna(), "").tolist()


@settings(max_examples=150, deadline=None)
@given(st.lists(st.floats(), max_size=40), st.lists(st.floats(width=32), max_size=40))
def test_float_columns_are_written_as_value_by_value(doubles: list[float], singles: list[float]) -> None:
    for column in (pd.Series(doubles, dtype="float64"), pd.Series(singles, dtype="float32")):
        assert _as_text(column) == _value_by_value(column)


@pytest.mark.parametrize("column", [
    pd.Series([1, -7, 2**62], dtype="int64"),
    pd.Series([3, 200], dtype="uint8"),
    pd.Series([1, None, 3], dtype="Int64"),
    pd.Series([1.5, None], dtype="Float64"),
    pd.Series([0.5, 1.25], dtype="float16"),
    pd.Series([True, False]),
    pd.Series(["a", None, "b"]),
    pd.Series(pd.to_datetime(["2024-01-01T10:00:00Z", None])),
    pd.Series([], dtype="float64"),
])
def test_other_columns_are_written_as_value_by_value(column: pd.Series) -> None:
    assert _as_text(column) == _value_by_value(column)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=40))
def test_float_answers_read_to_the_very_floats(values: list[float]) -> None:
    text = ["NaN" if v != v else repr(v) for v in values]
    expected = np.array([float(t) for t in text], dtype="float64")
    got = _floats(text, "float64")
    assert np.array_equal(got, expected, equal_nan=True) and (np.signbit(got) == np.signbit(expected)).all()


def test_missing_float_answers_are_nan() -> None:
    got = _floats(["1.5", "", "NaN", "2"], "float32")
    assert got.dtype == "float32" and np.isnan(got[1]) and np.isnan(got[2]) and got[[0, 3]].tolist() == [1.5, 2.0]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.floats(), st.floats(width=32)), min_size=1, max_size=30), st.integers(1, 7))
def test_float_frames_are_sent_as_their_columns_would_be(rows: list[tuple[float, float]], size: int) -> None:
    # float64 columns take the straight path; a float32 column goes column by column (its own precision).
    frame = pd.DataFrame({"a": pd.Series([a for a, _ in rows], dtype="float64"),
                          "b": pd.Series([b for _, b in rows], dtype="float64")})
    straight = _Batches(frame, ["b", "a"], size)
    by_column = _Batches(frame.assign(c="x"), ["b", "a", "c"], size)  # a text column: the general path
    assert straight.matrix is not None and by_column.matrix is None
    for start in range(0, len(frame), size):
        sent = json.loads(straight.body(start))
        general = json.loads(by_column.body(start))
        assert sent["fields"] == ["b", "a"]
        assert sent["rows"] == [row[:2] for row in general["rows"]]
