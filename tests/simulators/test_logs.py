"""The log schema: validation (one test per kind of malformed log), sorting, CSV/Parquet I/O."""

from __future__ import annotations

import datetime as dt
import os

import numpy as np
import pandas as pd
import pytest

from covercast.simulators.logs import (
    COLUMNS,
    DTYPES,
    EVENTS,
    LogProblem,
    LogValidationError,
    read_log,
    sort_log,
    validate_log,
    write_log,
)

NAN = np.nan


def _row(user, ts, event, push_id=NAN, style=NAN, topic=NAN, dwell=NAN, prop=NAN, **extra):
    return dict(user_id=user, timestamp=ts, event=event, push_id=push_id, style=style,
                topic=topic, dwell_s=dwell, propensity=prop, **extra)


@pytest.fixture
def log() -> pd.DataFrame:
    """A small valid log touching every event type (text timestamps, as read from a CSV)."""
    rows = [
        _row(1, "2024-03-04T07:55:00Z", "session", dwell=120.0),                       # 0
        _row(1, "2024-03-04T08:00:00Z", "push", 10, "vivid", "news", prop=0.25),        # 1
        _row(2, "2024-03-04T08:00:00Z", "push", 11, "noir", "music", prop=0.5),         # 2
        _row(1, "2024-03-04T08:03:00Z", "open", 10, "vivid", "news", dwell=45.5),       # 3
        _row(1, "2024-03-04T08:04:00Z", "like", 10, "vivid", "news"),                   # 4
        _row(1, "2024-03-04T08:04:30Z", "share", 10, "vivid", "news"),                  # 5
        _row(1, "2024-03-04T08:05:00Z", "comment", 10, "vivid", "news"),                # 6
        _row(1, "2024-03-04T08:06:00Z", "survey", 10, "vivid", "news", satisfaction=4),  # 7
        _row(2, "2024-03-04T09:00:00+01:00", "opt_out"),                                # 8
        _row(3, "2024-03-04T10:00:00Z", "push", 12, "pastel", "food", prop=1.0),        # 9
    ]
    df = pd.DataFrame(rows)
    df["segment"] = ["a", "a", "b", "a", "a", "a", "a", "a", "b", "c"]
    return df


def _err(df: pd.DataFrame, **kw) -> LogValidationError:
    with pytest.raises(LogValidationError) as info:
        validate_log(df, **kw)
    return info.value


def _only(err: LogValidationError, code: str, column: str) -> LogProblem:
    """The error has exactly one problem, of this kind, on this column."""
    assert err.codes == [code], str(err)
    p = err.problems[0]
    assert p.column == column
    assert f"column `{column}`" in str(err)
    assert "Fix:" in str(err)
    return p


# ---------------------------------------------------------------------- valid logs
def test_valid_log_passes_unchanged(log):
    out = validate_log(log)
    assert list(out.index) == list(log.index)
    assert len(out) == len(log)
    assert list(out.columns) == [*COLUMNS, "satisfaction", "segment"]
    for c, dtype in DTYPES.items():
        if c in out.columns:
            assert out[c].dtype == dtype, c
    assert out["event"].tolist() == log["event"].tolist()
    assert out["user_id"].tolist() == log["user_id"].tolist()
    np.testing.assert_array_equal(out["dwell_s"].to_numpy(), log["dwell_s"].to_numpy())
    # the +01:00 row is converted to UTC, the others keep their instant
    assert out["timestamp"].iloc[8] == pd.Timestamp("2024-03-04T08:00:00Z")
    assert out["timestamp"].iloc[0] == pd.Timestamp("2024-03-04T07:55:00Z")
    assert out["push_id"].tolist()[:3] == [pd.NA, 10, 11]
    # the input frame is not modified
    assert log["timestamp"].dtype != out["timestamp"].dtype


def test_validate_is_idempotent_and_keeps_index_and_extra_columns(log):
    log.index = pd.Index(np.arange(100, 100 + len(log)) * 7)
    log["note"] = [f"n{i}" for i in range(len(log))]
    once = validate_log(log)
    twice = validate_log(once)
    pd.testing.assert_frame_equal(once, twice)
    assert list(once.index) == list(log.index)
    assert once.columns[-1] == "note"
    assert once["note"].tolist() == log["note"].tolist()


def test_empty_log_is_valid():
    empty = pd.DataFrame({c: [] for c in COLUMNS})
    out = validate_log(empty)
    assert len(out) == 0
    assert out["timestamp"].dtype == DTYPES["timestamp"]


def test_datetime_objects_and_other_time_zones_are_converted_to_utc(log):
    df = validate_log(log)
    df["timestamp"] = df["timestamp"].dt.tz_convert("Asia/Tokyo")
    assert validate_log(df)["timestamp"].iloc[1] == pd.Timestamp("2024-03-04T08:00:00Z")
    obj = log.copy()
    obj["timestamp"] = obj["timestamp"].astype(object)
    obj.at[0, "timestamp"] = dt.datetime(2024, 3, 4, 7, 55, tzinfo=dt.timezone.utc)
    assert validate_log(obj)["timestamp"].iloc[0] == pd.Timestamp("2024-03-04T07:55:00Z")


# ---------------------------------------------------------------------- one test per defect
def test_missing_columns(log):
    err = _err(log.drop(columns=["propensity", "style"]))
    p = _only(err, "missing_columns", "style, propensity")
    assert "required columns are missing" in p.message


def test_duplicate_columns(log):
    df = pd.concat([log, log[["topic"]]], axis=1)
    _only(_err(df), "duplicate_columns", "topic")


def test_unparseable_timestamp(log):
    log.loc[4, "timestamp"] = "yesterday at noon"
    log.loc[6, "timestamp"] = "2024-13-45T99:00:00Z"
    p = _only(_err(log), "bad_timestamp", "timestamp")
    assert p.rows == (4, 6) and p.n_rows == 2
    assert "'yesterday at noon'" in p.message and "ISO 8601" in p.fix


def test_numeric_timestamps_are_refused_with_the_conversion(log):
    log["timestamp"] = np.arange(len(log), dtype=np.int64) * 60
    p = _only(_err(log), "bad_timestamp", "timestamp")
    assert "unit='s'" in p.fix and p.n_rows == len(log)


def test_naive_timestamps_need_assume_utc(log):
    log["timestamp"] = log["timestamp"].str.replace("Z", "", regex=False)
    err = _err(log)
    p = _only(err, "naive_timestamp", "timestamp")
    assert p.rows == (0, 1, 2, 3, 4) and p.n_rows == len(log) - 1  # row 8 has +01:00
    assert "utc=True" in p.fix and "assume_utc=True" in p.fix
    out = validate_log(log, assume_utc=True)
    assert out["timestamp"].iloc[1] == pd.Timestamp("2024-03-04T08:00:00Z")


def test_naive_datetime64_column_needs_assume_utc(log):
    log["timestamp"] = pd.to_datetime(log["timestamp"], utc=True).dt.tz_localize(None)
    _only(_err(log), "naive_timestamp", "timestamp")
    assert validate_log(log, assume_utc=True)["timestamp"].dtype == DTYPES["timestamp"]


@pytest.mark.parametrize("column, row", [("user_id", 3), ("timestamp", 5), ("event", 9)])
def test_missing_value_in_always_required_column(log, column, row):
    log[column] = log[column].astype(object)
    log.loc[row, column] = None
    p = _only(_err(log), "missing_value", column)
    assert p.rows == (row,) and p.n_rows == 1


@pytest.mark.parametrize("column, rows, events", [
    ("push_id", (2, 3), ("push", "open")),
    ("dwell_s", (0, 3), ("session", "open")),
    ("propensity", (1, 9), ("push", "push")),
])
def test_missing_value_on_the_events_that_need_it(log, column, rows, events):
    assert tuple(log.loc[list(rows), "event"]) == events
    log.loc[list(rows), column] = NAN
    extra = {"push_id": ["orphan_response"]}.get(column, [])  # an open without push_id is no orphan
    err = _err(log)
    assert err.codes[0] == "missing_value" and err.columns[0] == column, str(err)
    assert err.problems[0].rows == rows
    assert [c for c in err.codes[1:] if c not in extra] == []


def test_push_id_on_a_like_row_missing(log):
    log.loc[4, "push_id"] = NAN
    p = _only(_err(log), "missing_value", "push_id")
    assert p.rows == (4,)


def test_negative_dwell(log):
    log.loc[3, "dwell_s"] = -4.0
    p = _only(_err(log), "negative_dwell", "dwell_s")
    assert p.rows == (3,) and "-4.0" in p.message


def test_dwell_on_a_push_row_is_refused(log):
    log.loc[1, "dwell_s"] = 3.0
    p = _only(_err(log), "unexpected_value", "dwell_s")
    assert p.rows == (1,)


def test_open_without_any_push(log):
    log.loc[3, "push_id"] = 99
    p = _only(_err(log), "orphan_response", "push_id")
    assert p.rows == (3,)


def test_response_to_another_users_push(log):
    log.loc[4, "push_id"] = 11  # user 1 likes user 2's push
    p = _only(_err(log), "orphan_response", "push_id")
    assert p.rows == (4,)


def test_open_logged_before_its_push(log):
    df = log.copy()
    df.loc[3, "timestamp"] = "2024-03-04T08:00:00Z"  # same instant as its push ...
    df = df.iloc[[0, 3, 2, 1, 4, 5, 6, 7, 8, 9]]      # ... but in an earlier row
    p = _only(_err(df), "orphan_response", "push_id")
    assert p.rows == (1,)  # a position in the given frame, not the index label 3
    assert "sort_log" in p.fix
    fixed = sort_log(df)
    out = validate_log(fixed)
    assert out["event"].tolist()[:3] == ["session", "push", "push"]
    assert out["event"].iloc[3] == "open"


@pytest.mark.parametrize("code, survey_like", [("orphan_response", "survey"),
                                               ("orphan_response", "comment")])
def test_engagement_without_push(log, code, survey_like):
    row = 7 if survey_like == "survey" else 6
    log.loc[row, "push_id"] = 12  # user 3's push
    p = _only(_err(log), code, "push_id")
    assert p.rows == (row,)


def test_unknown_event_lists_the_allowed_ones(log):
    log.loc[[2, 9], "event"] = ["Push", "click"]
    p = _only(_err(log), "unknown_event", "event")
    assert p.rows == (2, 9)
    assert "'Push'" in p.message and "'click'" in p.message
    for e in EVENTS:
        assert e in p.fix


@pytest.mark.parametrize("value", [0.0, 1.5, -0.2, np.inf])
def test_propensity_outside_unit_interval(log, value):
    log.loc[9, "propensity"] = value
    p = _only(_err(log), "bad_propensity", "propensity")
    assert p.rows == (9,)


def test_propensity_of_exactly_one_is_valid(log):
    assert validate_log(log)["propensity"].iloc[9] == 1.0


def test_duplicate_push_id(log):
    log.loc[9, "push_id"] = 10
    p = _only(_err(log), "duplicate_push_id", "push_id")
    assert p.rows == (1, 9) and p.n_rows == 2


@pytest.mark.parametrize("value", [0, 6, 2.5])
def test_satisfaction_outside_1_to_5(log, value):
    log.loc[7, "satisfaction"] = value
    err = _err(log)
    code = "bad_type" if value == 2.5 else "bad_satisfaction"
    p = _only(err, code, "satisfaction")
    assert p.rows == (7,)


def test_survey_without_satisfaction(log):
    log.loc[7, "satisfaction"] = NAN
    p = _only(_err(log), "missing_value", "satisfaction")
    assert p.rows == (7,)
    p = _only(_err(log.drop(columns="satisfaction")), "missing_value", "satisfaction")
    assert p.rows == (7,)


def test_rows_out_of_time_order_for_a_user(log):
    log.loc[0, "timestamp"] = "2024-03-04T08:10:00Z"  # user 1's session, now after its push
    p = _only(_err(log), "out_of_order", "timestamp")
    assert p.rows == (1,)  # the push goes back in time from the session before it
    assert "sort_log" in p.fix and "never reorders" in p.fix
    fixed = sort_log(log)
    assert validate_log(fixed)["timestamp"].is_monotonic_increasing


def test_other_users_may_interleave_freely(log):
    log.loc[9, "timestamp"] = "2024-03-01T00:00:00Z"  # user 3's only row, earliest of all
    validate_log(log)


def test_non_integer_user_ids_are_refused_with_factorize_hint(log):
    log["user_id"] = log["user_id"].map(lambda u: f"u{u}")
    p = _only(_err(log), "bad_type", "user_id")
    assert "pd.factorize" in p.fix and p.n_rows == len(log)


def test_non_text_style_is_refused(log):
    log["style"] = log["style"].astype(object)
    log.loc[1, "style"] = 3
    p = _only(_err(log), "bad_type", "style")
    assert p.rows == (1,)


def test_negative_cover_id(log):
    log["cover_id"] = pd.array([pd.NA, 4, 5, 4, 4, 4, 4, 4, pd.NA, -1], dtype="Int64")
    p = _only(_err(log), "bad_value", "cover_id")
    assert p.rows == (9,)


def test_rows_shown_are_capped_at_five_and_counted(log):
    big = pd.concat([log] * 3, ignore_index=True)
    big["user_id"] = np.repeat([1, 2, 3], len(log)) * 10 + np.tile(log["user_id"], 3)
    big["push_id"] = big["push_id"] + np.repeat([0, 100, 200], len(log))
    big["dwell_s"] = -1.0
    err = _err(big)
    p = next(p for p in err.problems if p.code == "negative_dwell")
    assert p.rows == (0, 1, 2, 3, 4) and p.n_rows == len(big)
    assert f"({len(big)} rows in all)" in str(err)


def test_all_problems_are_reported_at_once(log):
    log.loc[3, "dwell_s"] = -1.0
    log.loc[1, "propensity"] = 2.0
    log.loc[0, "event"] = "sesh"
    err = _err(log)
    assert sorted(err.codes) == ["bad_propensity", "negative_dwell", "unknown_event"]
    assert isinstance(err, ValueError)


def test_not_a_dataframe():
    with pytest.raises(TypeError, match="pandas DataFrame"):
        validate_log([{"user_id": 1}])


# ---------------------------------------------------------------------- sort_log
def test_sort_log_is_stable_and_breaks_ties_by_event_order(log):
    shuffled = log.sample(frac=1.0, random_state=3)
    out = sort_log(shuffled)
    assert list(out.index) == list(range(len(log)))
    ts = pd.to_datetime(out["timestamp"], utc=True)
    assert ts.is_monotonic_increasing
    same = out[ts == pd.Timestamp("2024-03-04T08:00:00Z")]
    ranks = [EVENTS.index(e) for e in same["event"]]
    assert ranks == sorted(ranks)
    validate_log(out)
    kept = sort_log(shuffled, ignore_index=False)
    assert sorted(kept.index) == sorted(log.index)


# ---------------------------------------------------------------------- I/O
@pytest.mark.parametrize("name", ["log.csv", "log.csv.gz", "log.parquet"])
def test_round_trip(tmp_path, log, name):
    log.loc[3, "dwell_s"] = 0.1 + 0.2  # a float that needs full precision
    log.loc[2, "style"] = "NA"         # a string that pandas would read as missing by default
    log["timestamp"] = pd.to_datetime(log["timestamp"], utc=True, format="ISO8601").dt.as_unit("ns")
    log.loc[1, "timestamp"] += pd.Timedelta(nanoseconds=123)
    expected = validate_log(log)
    path = write_log(log, tmp_path / "sub" / name)
    assert path.exists()
    assert [p.name for p in path.parent.iterdir()] == [name]  # no temporary file left
    back = read_log(path)
    pd.testing.assert_frame_equal(back, expected.reset_index(drop=True))


def test_write_log_refuses_an_invalid_log_and_writes_nothing(tmp_path, log):
    log.loc[3, "dwell_s"] = -1.0
    with pytest.raises(LogValidationError):
        write_log(log, tmp_path / "log.csv")
    assert os.listdir(tmp_path) == []


def test_unknown_suffix(tmp_path, log):
    with pytest.raises(ValueError, match=r"\.csv, \.csv\.gz, \.parquet"):
        write_log(log, tmp_path / "log.json")
    with pytest.raises(ValueError, match="suffixes"):
        read_log(tmp_path / "log.xlsx")


def test_read_log_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="No log"):
        read_log(tmp_path / "nope.parquet")


def test_read_log_reports_file_rows(tmp_path, log):
    text = validate_log(log).to_csv(index=False).replace("45.5", "-45.5")
    (tmp_path / "bad.csv").write_text(text)
    with pytest.raises(LogValidationError) as info:
        read_log(tmp_path / "bad.csv")
    assert info.value.codes == ["negative_dwell"] and info.value.problems[0].rows == (3,)


def test_read_log_assume_utc(tmp_path, log):
    log["timestamp"] = log["timestamp"].str.replace("Z", "", regex=False)
    log.loc[8, "timestamp"] = "2024-03-04T08:00:00"
    log.to_csv(tmp_path / "naive.csv", index=False)
    with pytest.raises(LogValidationError, match="naive|without a time zone"):
        read_log(tmp_path / "naive.csv")
    out = read_log(tmp_path / "naive.csv", assume_utc=True)
    assert out["timestamp"].iloc[1] == pd.Timestamp("2024-03-04T08:00:00Z")


def test_a_large_log_goes_through_every_check():
    """A large log goes through every check (correctness at scale, not a timing test)."""
    n = 200_000
    rng = np.random.default_rng(0)
    users = rng.integers(0, 20_000, n)
    t = np.sort(rng.integers(0, 7 * 86_400 * 10**9, n))
    event = np.where(np.arange(n) % 2 == 0, "push", "session")
    is_push = event == "push"
    df = pd.DataFrame({
        "user_id": users,
        "timestamp": (pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(t)).astype(str),
        "event": event,
        "push_id": pd.array(np.where(is_push, np.cumsum(is_push), -1), dtype="Int64"),
        "style": np.where(is_push, "vivid", None), "topic": None,
        "dwell_s": np.where(is_push, NAN, rng.exponential(100.0, n)),
        "propensity": np.where(is_push, 0.3, NAN),
    })
    df.loc[~is_push, "push_id"] = pd.NA
    out = validate_log(df)
    assert len(out) == n and out["timestamp"].dtype == DTYPES["timestamp"]
    df.loc[n - 1, "dwell_s"] = -1.0
    assert _err(df).problems[0].rows == (n - 1,)


def test_an_empty_or_unreadable_log_file_is_named_in_a_clear_error(tmp_path):
    """Issue 18, item 5: an empty file, a binary file and a broken CSV give a ValueError naming
    the file (not pandas' or the codec's bare error)."""
    from covercast.simulators.logs import read_log

    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(ValueError, match=r"empty\.csv is empty.*user_id"):
        read_log(empty)
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"\x89PNG\x00\xff\xfe not text")
    with pytest.raises(ValueError, match=r"binary\.csv cannot be read as csv.*UnicodeDecodeError"):
        read_log(binary)
    broken = tmp_path / "broken.csv"
    broken.write_text('user_id,timestamp\n1,"2026-01-01\n')
    with pytest.raises(ValueError, match=r"broken\.csv cannot be read as csv.*ParserError"):
        read_log(broken)
    bad_gz = tmp_path / "log.csv.gz"
    bad_gz.write_text("not gzip")
    with pytest.raises(ValueError, match=r"log\.csv\.gz cannot be read as csv\.gz"):
        read_log(bad_gz)
    with pytest.raises(FileNotFoundError):
        read_log(tmp_path / "missing.csv")


def test_a_literal_nan_in_a_csv_number_column_is_a_missing_value(log, tmp_path):
    """Issue 18, item 5: "NaN" (as numpy/pandas write a missing float) in a numeric column of a
    CSV reads as missing; a real non-number is refused with advice that does not contradict
    it."""
    from covercast.simulators.logs import read_log

    path = tmp_path / "log.csv"
    log.to_csv(path, index=False)           # missing dwell_s / propensity cells are empty
    text = path.read_text()
    lines = text.splitlines()
    header = lines[0].split(",")
    col = header.index("dwell_s")
    i = next(k for k in range(1, len(lines)) if lines[k].split(",")[col] == "")  # no dwell
    cells = lines[i].split(",")

    def write(value: str) -> None:
        changed = list(cells)
        changed[col] = value
        path.write_text("\n".join([*lines[:i], ",".join(changed), *lines[i + 1:]]) + "\n")

    write("NaN")
    got = read_log(path)
    assert np.isnan(got["dwell_s"].iloc[i - 1])
    write("abc")
    with pytest.raises(LogValidationError) as e:
        read_log(path)
    assert "abc" in str(e.value) and "(or NaN)" not in str(e.value)
