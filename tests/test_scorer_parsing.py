"""The scorer's one-step parse of numeric rows and its column-wise answer text, against the careful paths.

The fast paths must give the very values and the very text of the value-by-value code (the
predictions may not change in the last digit), and must hand anything else to the careful
path, which says what is wrong. These are the scorer's own functions, called in this process.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlops_nb.sandbox.runtime import scorer


def _careful(rows: list[list[str]]) -> np.ndarray:
    return np.array([[float(v) for v in row] for row in rows], dtype="float64")


def _as_text(value: float, style: int) -> str:
    """A float written as clients write them: repr, str, fixed and exponent forms, padded."""
    if math.isnan(value):
        return ("NaN", "nan", "NAN")[style % 3]
    if math.isinf(value):
        return ("-" if value < 0 else "") + ("inf", "Infinity", "INF")[style % 3]
    return (repr(value), f"{value:.17g}", f"{value:e}", f" {value!r}", str(int(value)) if value.is_integer()
            and abs(value) < 1e18 else repr(value), f"{value:.3f}")[style % 6]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.tuples(st.floats(allow_nan=True, allow_infinity=True), st.integers(0, 11)),
                         min_size=3, max_size=3), min_size=1, max_size=20))
def test_numbers_parse_to_the_very_floats_python_reads(values: list[list[tuple[float, int]]]) -> None:
    rows = [[_as_text(value, style) for value, style in row] for row in values]
    matrix = scorer._float_matrix(rows, 3)
    assert matrix is not None, rows
    expected = _careful(rows)
    assert matrix.shape == expected.shape
    assert np.array_equal(matrix, expected, equal_nan=True)
    assert (np.signbit(matrix) == np.signbit(expected)).all()  # -0.0 keeps its sign


@pytest.mark.parametrize("rows", [
    [["1,5", "2"], ["3", "4"]],  # a comma inside a value
    [["1,2", "3"], ["4", "x"]],  # ... that would make the count come out right if the parse stopped early
    [["1", ""], ["3", "4"]],  # an empty value (a missing one)
    [["true", "1"]],  # not a number for a float column
    [["0x1p3", "1"]],  # hexadecimal: Python's float refuses it
    [["1_000", "1"]],  # an underscore: not in the scoring API's numbers
    [["1", None]],  # null
    [["1", 2.5]],  # a JSON number instead of a string
    [["1", "2", "3"]],  # a row too long
    [["1"]],  # a row too short
    [("1", "2")],  # not a list
    [["1.5e", "2"]],  # a broken exponent
    [["1 2", "3"]],  # two numbers in one value
    [["١", "2"]],  # a digit that is not ASCII
])
def test_anything_else_goes_to_the_careful_path(rows: list) -> None:
    assert scorer._float_matrix(rows, 2) is None


@pytest.mark.parametrize("values", [
    [1.5, float("nan"), -0.0, 1e-310, float("inf"), 0.1 + 0.2],
    np.array([0.1, float("nan"), 3.25], dtype="float32"),
    [1, -7, 2**40],
    [True, False],
    ["a", None, "b"],
    pd.to_datetime(["2024-01-01", None]),
])
def test_answer_text_is_what_the_value_by_value_code_wrote(values: list) -> None:
    column = pd.Series(values)
    assert scorer._column_text(column) == [scorer._text(v) for v in column]
