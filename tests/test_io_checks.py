"""The shared argument checks and Markdown table helpers of :mod:`covercast._io`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from covercast._io import check_fields, check_int, check_number, md_frame, md_table


def test_check_int_accepts_numpy_ints_and_refuses_bools_floats_and_out_of_range():
    assert check_int(np.int64(3), "n") == 3 and type(check_int(np.int64(3), "n")) is int
    assert check_int(0, "seed", 0) == 0
    for bad in (True, 2.0, "2", 0):
        with pytest.raises(ValueError, match=r"`n` must be an integer >= 1, got"):
            check_int(bad, "n")
    with pytest.raises(ValueError, match=r"`k` must be an integer in \[1, 3\], got 4\."):
        check_int(4, "k", 1, 3)


@pytest.mark.parametrize("kwargs, bad, message", [
    (dict(lo=0, lo_open=True), 0.0, "> 0"),
    (dict(lo=0), -1e-9, ">= 0"),
    (dict(lo=0, hi=1, hi_open=True), 1.0, r"in \[0, 1\)"),
    (dict(lo=0, hi=1, lo_open=True), 0.0, r"in \(0, 1\]"),
    (dict(hi=2), 3, "<= 2"),
    (dict(lo=0), float("nan"), ">= 0"),
    (dict(lo=0), True, ">= 0"),
])
def test_check_number_names_the_interval(kwargs, bad, message):
    with pytest.raises(ValueError, match=rf"`x` must be a number {message}, got"):
        check_number(bad, "x", **kwargs)


def test_check_number_returns_a_float_inside_the_interval():
    assert check_number(np.float32(0.5), "x", lo=0, hi=1) == 0.5
    assert check_number(1, "x", lo=0, hi=1) == 1.0


@dataclass
class _Config:
    steps: int = 0
    batch: int = 4
    lr: float = 0.1
    decay: float = 0.0
    drop: float = 0.5
    mode: str = "a"


@pytest.mark.parametrize("field, value, message", [
    ("batch", 0, "`batch` must be an integer >= 1"),
    ("steps", -1, "`steps` must be an integer >= 0"),
    ("lr", 0.0, "`lr` must be a number > 0"),
    ("decay", -0.5, "`decay` must be a number >= 0"),
    ("drop", 1.0, r"`drop` must be a number in \[0, 1\)"),
    ("mode", "c", r"`mode` must be one of \('a', 'b'\), got 'c'"),
])
def test_check_fields_refuses_each_kind_of_bad_field(field, value, message):
    rules = dict(ints=("batch",), counts=("steps",), positive=("lr",), nonneg=("decay",),
                 fractions=("drop",), choices={"mode": ("a", "b")})
    check_fields(_Config(), **rules)
    with pytest.raises(ValueError, match=message):
        check_fields(_Config(**{field: value}), **rules)


def test_md_table_and_md_frame():
    assert md_table(["a", "b"], [[1, "x"]], align=["---:", "---"]) == [
        "| a | b |", "|---:|---|", "| 1 | x |"]
    df = pd.DataFrame({"n": [1, 2], "p": [0.12345, np.nan], "s": ["x", "y"]})
    assert md_frame(df) == "| n | p | s |\n|---|---|---|\n| 1 | 0.123 | x |\n| 2 | n/a | y |"
    assert md_frame(df, ".1f").splitlines()[2] == "| 1 | 0.1 | x |"


def test_check_number_refuses_infinity_unless_allowed():
    with pytest.raises(ValueError, match=r"`x` must be a number > 0, got inf"):
        check_number(float("inf"), "x", lo=0, lo_open=True)
    assert check_number(float("inf"), "x", lo=0, lo_open=True, allow_inf=True) == float("inf")
    with pytest.raises(ValueError, match=r"> 0 \(or inf\), got -1"):
        check_number(-1, "x", lo=0, lo_open=True, allow_inf=True)
