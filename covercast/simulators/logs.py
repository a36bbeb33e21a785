"""Interaction logs: the schema every covercast log follows, validation, readers, loaders.

A log is a :class:`pandas.DataFrame` with one row per event, in time order:

==============  =======================  ==========================================================
column          dtype                    meaning
==============  =======================  ==========================================================
user_id         int64                    the user
timestamp       datetime64[ns, UTC]      when the event happened
event           str                      one of :data:`EVENTS`
push_id         Int64 (nullable)         the push this event belongs to; required on ``push``,
                                         ``open``, ``like``, ``share``, ``comment``, ``survey``
style           str (nullable)           the cover style of the push (on push-related rows)
topic           str (nullable)           the push's content topic (on push-related rows)
dwell_s         float (NaN allowed)      seconds spent; required (>= 0) on ``open`` and
                                         ``session`` rows, NaN elsewhere
propensity      float (NaN allowed)      probability the logging policy gave to this push's
                                         action; required on ``push`` rows, in (0, 1]
==============  =======================  ==========================================================

Optional columns, validated when present: ``cover_id`` (Int64, index into the cover bank),
``satisfaction`` (1-5 on ``survey`` rows), ``segment`` (str; the true segment in simulated logs).

Event meanings: ``session`` an organic app session (not caused by a push); ``push`` a
notification delivered; ``open`` the user opened that push (the pushed session, with its dwell);
``like``/``share``/``comment`` engagement after an open; ``survey`` a 1-5 satisfaction answer
after an open; ``opt_out`` the user turned notifications off (terminal for pushes).

Validation
----------
:func:`validate_log` checks a frame against this schema and returns it with canonical dtypes;
it never drops, clips or reorders anything: the returned frame has the same rows, in the same
order, with the same index. Every problem found is reported at once in one
:class:`LogValidationError`, each as a :class:`LogProblem` naming the column, the first
offending rows (0-based *positions* in the given frame, not index labels), how many rows in all
and the fix. The rules, beyond the column types above:

* ``user_id``, ``timestamp`` and ``event`` are never missing; ``push_id`` is present on the
  push-related events (:data:`PUSH_EVENTS`), ``dwell_s`` on ``open`` and ``session`` rows and
  ``propensity`` on ``push`` rows;
* ``dwell_s`` is finite and >= 0 where present and missing on the other events;
* ``propensity`` is in (0, 1] wherever present;
* timestamps are time zone aware (converted to UTC) and ISO 8601 when given as text; naive
  timestamps are refused unless ``assume_utc=True`` says they already are UTC;
* each user's rows are in time order (a log is never sorted silently: :func:`sort_log` is the
  explicit fix);
* a ``push_id`` names one ``push`` row only, and every ``open``/``like``/``share``/``comment``/
  ``survey`` row comes after the ``push`` row of its ``push_id`` for the same user;
* ``satisfaction`` (when the column is present) is an integer 1-5, required on ``survey`` rows;
  ``cover_id`` is a non-negative integer.

Columns outside the schema are allowed and passed through untouched, after the schema columns.

Readers and writers: :func:`read_log` and :func:`write_log` handle ``.csv``, ``.csv.gz`` and
``.parquet`` (chosen by the file name's suffix); both validate, and :func:`write_log` writes
atomically (temporary file in the same folder, then :func:`os.replace`). The Open Bandit Dataset
loader lives in :mod:`covercast.simulators.obd`.
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from covercast._io import atomic_write

#: Event types, in the order used to break ties between rows with the same timestamp.
EVENTS: tuple[str, ...] = ("session", "push", "open", "like", "share", "comment", "survey",
                           "opt_out")

#: Required columns, in canonical order.
COLUMNS: tuple[str, ...] = ("user_id", "timestamp", "event", "push_id", "style", "topic",
                            "dwell_s", "propensity")

#: Optional columns, validated when present.
OPTIONAL_COLUMNS: tuple[str, ...] = ("cover_id", "satisfaction", "segment")

#: Events that must carry a push_id.
PUSH_EVENTS: frozenset[str] = frozenset({"push", "open", "like", "share", "comment", "survey"})

#: Events that answer a push and so must come after the ``push`` row of their push_id.
RESPONSE_EVENTS: frozenset[str] = PUSH_EVENTS - {"push"}

#: Events whose ``dwell_s`` is required (and must be NaN on all other events).
DWELL_EVENTS: frozenset[str] = frozenset({"open", "session"})

#: File name suffixes :func:`read_log` and :func:`write_log` understand.
LOG_SUFFIXES: tuple[str, ...] = (".csv", ".csv.gz", ".parquet")

_PANDAS_3 = int(pd.__version__.split(".")[0]) >= 3
#: The dtype of text columns: pandas' ``str`` dtype (missing = NaN) on pandas >= 3, ``object``
#: (strings and NaN) before.
TEXT_DTYPE = "str" if _PANDAS_3 else "object"

#: Canonical dtype of every schema column.
DTYPES: dict[str, str] = {
    "user_id": "int64", "timestamp": "datetime64[ns, UTC]", "event": TEXT_DTYPE,
    "push_id": "Int64", "style": TEXT_DTYPE, "topic": TEXT_DTYPE, "dwell_s": "float64",
    "propensity": "float64", "cover_id": "Int64", "satisfaction": "Int64", "segment": TEXT_DTYPE,
}

_MAX_ROWS_SHOWN = 5
_STRING_COLUMNS = ("event", "style", "topic", "segment")
_SORT_FIX = ("sort the log explicitly with `covercast.simulators.logs.sort_log(df)` (a stable sort "
             "by timestamp, then event order); covercast never reorders a log silently")
# An ISO 8601 string carries its UTC offset when it ends in "Z" or in "+hh[:mm]" / "-hh[:mm]"
# right after a time of day ("...10:30+09:00"); a date alone ("2019-11-24") has none.
_TZ_SUFFIX = r"(?:[Zz]|\d:\d{2}(?::\d{2}(?:[.,]\d+)?)?\s*[+-]\d{2}(?::?\d{2})?|\d\s*(?:UTC|GMT))\s*$"


# ---------------------------------------------------------------------- errors
@dataclass(frozen=True)
class LogProblem:
    """One way in which a log breaks the schema.

    Attributes
    ----------
    code:
        A short stable key for the kind of problem (e.g. ``"negative_dwell"``), for programs.
    column:
        The column at fault (several joined by ``", "`` for ``missing_columns``).
    message:
        What is wrong, in words.
    rows:
        The first offending rows (at most 5), as 0-based positions in the frame given to
        :func:`validate_log`; empty when the problem is not about rows.
    n_rows:
        How many rows are affected in all.
    fix:
        How to fix it.
    """

    code: str
    column: str
    message: str
    rows: tuple[int, ...]
    n_rows: int
    fix: str

    def __str__(self) -> str:
        where = f"column `{self.column}`"
        if self.n_rows:
            more = "" if self.n_rows <= len(self.rows) else ", ..."
            where += (f", row{'s' if len(self.rows) != 1 else ''} "
                      f"{', '.join(map(str, self.rows))}{more} "
                      f"({self.n_rows} row{'s' if self.n_rows != 1 else ''} in all)")
        return f"{where}: {self.message}. Fix: {self.fix}."


class LogValidationError(ValueError):
    """A log breaks the covercast log schema.

    ``problems`` lists every :class:`LogProblem` found (the message shows them all); row numbers
    are 0-based positions in the frame that was validated.
    """

    def __init__(self, problems: Sequence[LogProblem]):
        self.problems: list[LogProblem] = list(problems)
        if not self.problems:
            raise ValueError("LogValidationError needs at least one LogProblem.")
        n = len(self.problems)
        head = f"Invalid covercast log: {n} problem{'s' if n != 1 else ''} (rows are 0-based positions)"
        lines = [head] + [f"  {i + 1}. {p}" for i, p in enumerate(self.problems)]
        super().__init__("\n".join(lines))

    @property
    def codes(self) -> list[str]:
        """The :attr:`LogProblem.code` of every problem, in the order found."""
        return [p.code for p in self.problems]

    @property
    def columns(self) -> list[str]:
        """The :attr:`LogProblem.column` of every problem, in the order found."""
        return [p.column for p in self.problems]


def _problem(code: str, column: str, message: str, fix: str,
             mask: np.ndarray | None = None) -> LogProblem:
    if mask is None:
        return LogProblem(code, column, message, (), 0, fix)
    pos = np.flatnonzero(mask)
    return LogProblem(code, column, message, tuple(int(i) for i in pos[:_MAX_ROWS_SHOWN]),
                      int(pos.size), fix)


def _examples(values: pd.Series | np.ndarray, mask: np.ndarray, k: int = 3) -> str:
    vals = np.asarray(values, dtype=object)[np.flatnonzero(mask)]
    uniq: list[object] = []
    for v in vals:
        if not any(v is u or v == u for u in uniq):
            uniq.append(v)
        if len(uniq) == k:
            break
    return ", ".join(repr(v) for v in uniq)


# ---------------------------------------------------------------------- column parsers
def _parse_int(name: str, s: pd.Series, problems: list[LogProblem], *,
               allow_missing: bool) -> pd.Series | None:
    """``s`` as nullable Int64, or None (with problems added) if some values are not integers."""
    if pd.api.types.is_bool_dtype(s.dtype):
        problems.append(_problem("bad_type", name, "holds booleans, not integer ids",
                                 f"store integers in `{name}`", np.ones(len(s), bool)))
        return None
    missing = s.isna().to_numpy()
    if pd.api.types.is_integer_dtype(s.dtype):
        out = s.astype("Int64")
    else:
        num = pd.to_numeric(s, errors="coerce") if not pd.api.types.is_numeric_dtype(s.dtype) \
            else s
        num = num.astype("float64")
        arr = num.to_numpy(dtype=np.float64, na_value=np.nan)
        not_number = ~missing & np.isnan(arr)
        if s.dtype == object:  # True/False mixed into a text column would read as 1/0
            not_number |= np.fromiter((isinstance(v, (bool, np.bool_)) for v in s), bool, len(s))
        with np.errstate(invalid="ignore"):
            fractional = ~np.isnan(arr) & ((arr != np.round(arr)) | (np.abs(arr) >= 2.0 ** 63))
        bad = not_number | fractional
        if bad.any():
            problems.append(_problem(
                "bad_type", name, f"holds values that are not integers, e.g. {_examples(s, bad)}",
                f"store whole numbers in `{name}`"
                + (", e.g. map labels to ids with `df['user_id'] = pd.factorize(df['user_id'])[0]`"
                   if name == "user_id" else ""), bad))
            return None
        out = pd.Series(pd.array(arr, dtype="Int64"), index=s.index, name=s.name)
    if not allow_missing and missing.any():
        problems.append(_problem(
            "missing_value", name, "is missing (NaN/empty)",
            f"every row needs a `{name}`; find these rows with `df[df['{name}'].isna()]`",
            missing))
        return None
    return out


def _parse_float(name: str, s: pd.Series, problems: list[LogProblem]) -> pd.Series | None:
    if pd.api.types.is_bool_dtype(s.dtype):
        problems.append(_problem("bad_type", name, "holds booleans, not numbers",
                                 f"store numbers in `{name}`", np.ones(len(s), bool)))
        return None
    numeric = pd.api.types.is_numeric_dtype(s.dtype)
    num = s if numeric else pd.to_numeric(s, errors="coerce")
    out = num.astype("float64")
    bad = s.notna().to_numpy() & out.isna().to_numpy()
    if bad.any() and not numeric:
        # a literal "NaN" (as numpy and pandas write a missing float) is a missing number
        bad &= ~s.astype(str).str.strip().str.lower().eq("nan").to_numpy()
    if bad.any():
        problems.append(_problem("bad_type", name,
                                 f"holds values that are not numbers, e.g. {_examples(s, bad)}",
                                 f"store numbers in `{name}` (an empty cell or NaN for a "
                                 "missing value)", bad))
        return None
    return pd.Series(out.to_numpy(dtype=np.float64, na_value=np.nan), index=s.index, name=s.name)


def _as_text(s: pd.Series) -> pd.Series:
    """Strings and missing values as the canonical text dtype (missing stays NaN)."""
    if _PANDAS_3:
        return s.astype("str")
    return s.astype(object).where(s.notna(), np.nan)


def _parse_str(name: str, s: pd.Series, problems: list[LogProblem]) -> pd.Series | None:
    if pd.api.types.is_string_dtype(s.dtype) and s.dtype != object:
        return _as_text(s)
    present = s.notna().to_numpy()
    arr = s.to_numpy(dtype=object)
    is_str = np.fromiter((isinstance(v, str) for v in arr), dtype=bool, count=arr.size)
    bad = present & ~is_str
    if bad.any():
        problems.append(_problem("bad_type", name,
                                 f"holds values that are not text, e.g. {_examples(s, bad)}",
                                 f"store strings in `{name}` (an empty cell for a missing value), e.g. "
                                 f"`df['{name}'] = df['{name}'].astype(str)`", bad))
        return None
    return _as_text(s)


def _parse_timestamps(s: pd.Series, problems: list[LogProblem], *,
                      assume_utc: bool) -> pd.Series | None:
    """``s`` as datetime64[ns, UTC], or None with problems added."""
    name = "timestamp"
    naive_fix = ("timestamps must be UTC and say so: convert them with "
                 "`pd.to_datetime(df['timestamp'], utc=True)` (if they are UTC already) or "
                 "`.dt.tz_localize('<their time zone>').dt.tz_convert('UTC')`, or pass "
                 "`assume_utc=True` to declare naive timestamps UTC")
    dtype = s.dtype
    if isinstance(dtype, pd.DatetimeTZDtype):
        ts = s.dt.tz_convert("UTC")
    elif pd.api.types.is_datetime64_dtype(dtype):
        if not assume_utc:
            problems.append(_problem("naive_timestamp", name,
                                     "holds time-zone-naive timestamps", naive_fix,
                                     s.notna().to_numpy()))
            return None
        ts = s.dt.tz_localize("UTC")
    elif (pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype)) \
            and s.notna().any():
        problems.append(_problem(
            "bad_timestamp", name, f"holds numbers, not timestamps (dtype {dtype})",
            "convert epoch numbers explicitly, e.g. "
            "`pd.to_datetime(df['timestamp'], unit='s', utc=True)`", s.notna().to_numpy()))
        return None
    elif not s.notna().any():  # nothing but missing values, whatever the dtype: reported below
        ts = pd.Series(pd.NaT, index=s.index, dtype=DTYPES["timestamp"])
    else:
        parsed = _parse_timestamp_text(s, problems, naive_fix, assume_utc=assume_utc)
        if parsed is None:
            return None
        ts = parsed
    lo, hi = pd.Timestamp.min.tz_localize("UTC"), pd.Timestamp.max.tz_localize("UTC")
    out_of_range = (ts.notna() & ((ts < lo) | (ts > hi))).to_numpy()
    if out_of_range.any():
        problems.append(_problem(
            "bad_timestamp", name, "holds timestamps outside the range datetime64[ns] can "
            f"hold ({lo.date()} .. {hi.date()})", "correct these dates (wrong year or units?)",
            out_of_range))
        return None
    ts = ts.dt.as_unit("ns")
    missing = ts.isna().to_numpy()
    if missing.any():
        problems.append(_problem("missing_value", name, "is missing (NaN/NaT/empty)",
                                 "every row needs a timestamp; find these rows with "
                                 "`df[df['timestamp'].isna()]`", missing))
        return None
    return pd.Series(ts.array, index=s.index, name=s.name).astype(DTYPES["timestamp"])


def _parse_timestamp_text(s: pd.Series, problems: list[LogProblem], naive_fix: str, *,
                          assume_utc: bool) -> pd.Series | None:
    """Parse a text (or object) timestamp column: ISO 8601 strings and datetime objects."""
    name = "timestamp"
    n = len(s)
    present = s.notna().to_numpy()
    if pd.api.types.is_string_dtype(s.dtype) and s.dtype != object:
        text = s
        other = np.zeros(n, dtype=bool)
    else:
        arr = s.to_numpy(dtype=object)
        is_str = np.fromiter((isinstance(v, str) for v in arr), dtype=bool, count=n)
        other = present & ~is_str
        text = s.where(pd.Series(is_str, index=s.index))
    parsed = pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce")
    has_tz = text.str.contains(_TZ_SUFFIX, regex=True, na=False).to_numpy()
    unparsed = present & ~other & parsed.isna().to_numpy()
    # datetime objects (and Timestamps) mixed into an object column
    other_bad = np.zeros(n, dtype=bool)
    other_naive = np.zeros(n, dtype=bool)
    if other.any():
        values = s.to_numpy(dtype=object)
        fixed = np.array(parsed.astype(object).to_numpy(), dtype=object, copy=True)
        for i in np.flatnonzero(other):
            v = values[i]
            if isinstance(v, (_dt.datetime, np.datetime64)):
                t = pd.Timestamp(v)
                if t.tzinfo is None:
                    other_naive[i] = True
                    t = t.tz_localize("UTC")
                fixed[i] = t.tz_convert("UTC")
            else:
                other_bad[i] = True
        parsed = pd.Series(pd.to_datetime(fixed, utc=True), index=s.index)
    bad = unparsed | other_bad
    if bad.any():
        problems.append(_problem(
            "bad_timestamp", name,
            f"holds values that are not ISO 8601 timestamps, e.g. {_examples(s, bad)}",
            "write timestamps in ISO 8601 with their UTC offset, e.g. "
            "'2019-11-24T09:30:00+00:00', or parse them yourself with "
            "`pd.to_datetime(df['timestamp'], format=..., utc=True)`", bad))
        return None
    naive = (present & ~other & ~has_tz) | other_naive
    if naive.any() and not assume_utc:
        problems.append(_problem("naive_timestamp", name,
                                 f"holds timestamps without a time zone (e.g. "
                                 f"{_examples(s, naive)})", naive_fix, naive))
        return None
    return parsed


# ---------------------------------------------------------------------- validation
def validate_log(df: pd.DataFrame, *, assume_utc: bool = False) -> pd.DataFrame:
    """Check a log against the covercast schema and return it with canonical dtypes.

    Parameters
    ----------
    df:
        The log, one row per event (see the module docstring for the schema).
    assume_utc:
        Treat time-zone-naive timestamps as UTC. By default they are an error: a log must say
        which clock it uses.

    Returns
    -------
    pandas.DataFrame
        A new frame with the same rows in the same order and the same index; schema columns
        first, in canonical order (:data:`COLUMNS`, then the :data:`OPTIONAL_COLUMNS` present),
        converted to their canonical dtypes (:data:`DTYPES`); other columns follow unchanged.
        Nothing is dropped, clipped or reordered.

    Raises
    ------
    TypeError
        If ``df`` is not a DataFrame.
    LogValidationError
        If the log breaks the schema; ``err.problems`` lists every problem with its column, the
        first offending rows (0-based positions in ``df``) and the fix.
    """
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"validate_log expects a pandas DataFrame, got {type(df).__name__}; "
                        "build one with `pd.DataFrame(records)` or read it with `read_log`.")
    problems: list[LogProblem] = []
    dup_cols = sorted({str(c) for c in df.columns[df.columns.duplicated()]})
    if dup_cols:
        raise LogValidationError([_problem(
            "duplicate_columns", ", ".join(dup_cols), "appears more than once in the header",
            "keep one column of each name")])
    missing_cols = [c for c in COLUMNS if c not in df.columns]
    if missing_cols:
        raise LogValidationError([_problem(
            "missing_columns", ", ".join(missing_cols),
            f"required column{'s are' if len(missing_cols) > 1 else ' is'} missing (the schema "
            f"needs {', '.join(COLUMNS)})",
            "add the missing columns; columns that do not apply can hold NaN, e.g. "
            "`df['style'] = np.nan`")])

    n = len(df)
    col = {c: df[c] for c in df.columns}
    user = _parse_int("user_id", col["user_id"], problems, allow_missing=False)
    ts = _parse_timestamps(col["timestamp"], problems, assume_utc=assume_utc)
    push_id = _parse_int("push_id", col["push_id"], problems, allow_missing=True)
    dwell = _parse_float("dwell_s", col["dwell_s"], problems)
    prop = _parse_float("propensity", col["propensity"], problems)
    strings = {c: _parse_str(c, col[c], problems) for c in _STRING_COLUMNS if c in col}
    cover = (_parse_int("cover_id", col["cover_id"], problems, allow_missing=True)
             if "cover_id" in col else None)
    sat = (_parse_int("satisfaction", col["satisfaction"], problems, allow_missing=True)
           if "satisfaction" in col else None)

    # ---- events
    ev = strings.get("event")
    ev_code = None  # index into EVENTS, -1 unknown
    if ev is not None:
        ev_missing = ev.isna().to_numpy()
        if ev_missing.any():
            problems.append(_problem("missing_value", "event", "is missing (NaN/empty)",
                                     f"every row needs an event, one of {', '.join(EVENTS)}",
                                     ev_missing))
        ev_code = pd.Index(EVENTS).get_indexer(ev).astype(np.int64)
        unknown = (ev_code < 0) & ~ev_missing
        if unknown.any():
            problems.append(_problem(
                "unknown_event", "event", f"holds unknown event types: {_examples(ev, unknown)}",
                f"use only the event types {', '.join(EVENTS)} (lower case)", unknown))
    known = ev_code is not None

    def is_event(names: frozenset[str] | set[str]) -> np.ndarray:
        assert ev_code is not None
        return np.isin(ev_code, [EVENTS.index(e) for e in names])

    # ---- per-event requirements
    if known and push_id is not None:
        need = is_event(PUSH_EVENTS) & push_id.isna().to_numpy()
        if need.any():
            problems.append(_problem(
                "missing_value", "push_id", "is missing on push-related rows "
                f"({', '.join(sorted(PUSH_EVENTS))})",
                "give each push a unique integer push_id and copy it onto the rows that answer "
                "that push", need))
    if dwell is not None:
        d = dwell.to_numpy()
        nan = np.isnan(d)
        if known:
            need = is_event(DWELL_EVENTS) & nan
            if need.any():
                problems.append(_problem(
                    "missing_value", "dwell_s", "is missing on open/session rows",
                    "record the seconds spent on every open and session row", need))
            extra = ~is_event(DWELL_EVENTS) & (ev_code >= 0) & ~nan
            if extra.any():
                problems.append(_problem(
                    "unexpected_value", "dwell_s", "is set on rows that are neither open nor "
                    "session (the schema keeps dwell on open/session rows only)",
                    "set dwell_s to NaN on push, like, share, comment, survey and opt_out rows",
                    extra))
        with np.errstate(invalid="ignore"):
            neg = ~nan & (d < 0)
            inf = np.isinf(d)
        if neg.any():
            problems.append(_problem("negative_dwell", "dwell_s",
                                     f"is negative, e.g. {_examples(dwell, neg)}",
                                     "dwell times are seconds >= 0; check the sign and how they "
                                     "were computed (end - start)", neg))
        if (inf & ~neg).any():
            problems.append(_problem("bad_value", "dwell_s", "is infinite",
                                     "store a finite number of seconds", inf & ~neg))
    if prop is not None:
        p = prop.to_numpy()
        nan = np.isnan(p)
        if known:
            need = is_event({"push"}) & nan
            if need.any():
                problems.append(_problem(
                    "missing_value", "propensity", "is missing on push rows",
                    "record on every push the probability the logging policy gave to the action "
                    "it took (1.0 for a deterministic policy)", need))
        with np.errstate(invalid="ignore"):
            outside = ~nan & ~((p > 0) & (p <= 1))
        if outside.any():
            problems.append(_problem("bad_propensity", "propensity",
                                     f"is outside (0, 1], e.g. {_examples(prop, outside)}",
                                     "propensities are probabilities in (0, 1]; a logged action "
                                     "had a positive probability (1.0 if deterministic)",
                                     outside))
    if sat is not None:
        s_arr = sat.to_numpy(dtype=np.float64, na_value=np.nan)
        with np.errstate(invalid="ignore"):
            outside = ~np.isnan(s_arr) & ((s_arr < 1) | (s_arr > 5))
        if outside.any():
            problems.append(_problem("bad_satisfaction", "satisfaction",
                                     f"is outside 1..5, e.g. {_examples(sat, outside)}",
                                     "satisfaction scores are integers 1 to 5", outside))
        if known:
            need = is_event({"survey"}) & np.isnan(s_arr)
            if need.any():
                problems.append(_problem("missing_value", "satisfaction",
                                         "is missing on survey rows",
                                         "record the 1-5 answer on every survey row", need))
    elif known and "satisfaction" not in col:
        survey = is_event({"survey"})
        if survey.any():
            problems.append(_problem("missing_value", "satisfaction",
                                     "column is absent but the log has survey rows",
                                     "add a `satisfaction` column with the 1-5 answer on survey "
                                     "rows (NaN elsewhere)", survey))
    if cover is not None:
        c_arr = cover.to_numpy(dtype=np.float64, na_value=np.nan)
        with np.errstate(invalid="ignore"):
            neg = ~np.isnan(c_arr) & (c_arr < 0)
        if neg.any():
            problems.append(_problem("bad_value", "cover_id", "is negative",
                                     "cover_id indexes the cover bank: use integers >= 0", neg))

    # ---- per-user time order
    if user is not None and ts is not None and n:
        u = user.to_numpy(dtype=np.int64)
        t = ts.to_numpy(dtype="datetime64[ns]").view(np.int64)
        order = np.lexsort((np.arange(n), u))  # by user, then row position
        u_o, t_o = u[order], t[order]
        back = np.zeros(n, dtype=bool)
        back[1:] = (u_o[1:] == u_o[:-1]) & (t_o[1:] < t_o[:-1])
        late = np.zeros(n, dtype=bool)
        late[order[back]] = True
        if late.any():
            problems.append(_problem(
                "out_of_order", "timestamp",
                "goes back in time within a user (the row is earlier than that user's previous "
                "row)", _SORT_FIX, late))

    # ---- push ids: unique per push, responses after their push
    if known and push_id is not None and n:
        pid = push_id.to_numpy(dtype=np.float64, na_value=np.nan)
        pushes = is_event({"push"}) & ~np.isnan(pid)
        push_pos = np.flatnonzero(pushes)
        dup_local = pd.Series(pid[push_pos]).duplicated(keep=False).to_numpy()
        if dup_local.any():
            dup = np.zeros(n, dtype=bool)
            dup[push_pos[dup_local]] = True
            problems.append(_problem(
                "duplicate_push_id", "push_id", "is shared by several push rows "
                f"(e.g. push_id {_examples(push_id, dup)})",
                "give every push row its own push_id (e.g. `np.arange(n_pushes)`)", dup))
        elif user is not None:
            resp = np.flatnonzero(is_event(RESPONSE_EVENTS) & ~np.isnan(pid))
            if resp.size:
                idx = pd.Index(pid[push_pos]).get_indexer(pid[resp])
                found = idx >= 0
                u = user.to_numpy(dtype=np.int64)
                ok = np.zeros(resp.size, dtype=bool)
                pp = push_pos[idx[found]]
                ok[found] = (u[pp] == u[resp[found]]) & (pp < resp[found])
                orphan = np.zeros(n, dtype=bool)
                orphan[resp[~ok]] = True
                if orphan.any():
                    problems.append(_problem(
                        "orphan_response", "push_id",
                        "names no earlier push row for the same user on open/like/share/"
                        "comment/survey rows", "every response must come after the push row "
                        "with the same push_id and user_id: add the missing push rows or correct "
                        f"push_id / user_id; if the push is logged later, {_SORT_FIX}", orphan))

    if problems:
        raise LogValidationError(problems)

    canon: dict[str, pd.Series] = {
        "user_id": user.astype("int64"), "timestamp": ts, "event": strings["event"],
        "push_id": push_id, "style": strings["style"], "topic": strings["topic"],
        "dwell_s": dwell, "propensity": prop,
    }
    if cover is not None:
        canon["cover_id"] = cover
    if sat is not None:
        canon["satisfaction"] = sat
    if "segment" in strings:
        canon["segment"] = strings["segment"]
    out = pd.DataFrame({k: v.array for k, v in canon.items()}, index=df.index)
    for c in df.columns:
        if c not in canon:
            out[c] = df[c].array
    out.attrs = dict(df.attrs)
    return out


# ---------------------------------------------------------------------- sorting
def sort_log(df: pd.DataFrame, *, assume_utc: bool = False,
             ignore_index: bool = True) -> pd.DataFrame:
    """Sort a log into time order: by timestamp, then event order (:data:`EVENTS`), stably.

    This is the explicit fix for the ``out_of_order`` problem of :func:`validate_log`, which
    never reorders rows itself. Rows with the same timestamp and event keep their relative
    order; unknown event types sort after the known ones. The values are not changed (the
    timestamps are parsed only to sort).

    Parameters
    ----------
    df:
        The log; its ``timestamp`` column may be text or datetimes.
    assume_utc:
        Treat naive timestamps as UTC (as in :func:`validate_log`).
    ignore_index:
        Reset the index to ``0..n-1`` (default) so that positions and labels agree; False keeps
        each row's original index label.

    Returns
    -------
    pandas.DataFrame
        The sorted copy.

    Raises
    ------
    LogValidationError
        If the ``timestamp`` or ``event`` column is missing or timestamps cannot be parsed.
    """
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"sort_log expects a pandas DataFrame, got {type(df).__name__}.")
    absent = [c for c in ("timestamp", "event") if c not in df.columns]
    if absent:
        raise LogValidationError([_problem("missing_columns", ", ".join(absent),
                                           "is needed to sort the log",
                                           "add the column (see the log schema)")])
    problems: list[LogProblem] = []
    ts = _parse_timestamps(df["timestamp"], problems, assume_utc=assume_utc)
    if ts is None:
        raise LogValidationError(problems)
    rank = pd.Index(EVENTS).get_indexer(df["event"]).astype(np.int64)
    rank = np.where(rank < 0, len(EVENTS), rank)
    order = np.lexsort((np.arange(len(df)), rank, ts.to_numpy(dtype="datetime64[ns]").view(np.int64)))
    out = df.iloc[order]
    return out.reset_index(drop=True) if ignore_index else out


# ---------------------------------------------------------------------- I/O
def _log_format(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(".csv.gz"):
        return "csv.gz"
    if name.endswith(".csv"):
        return "csv"
    if name.endswith(".parquet"):
        return "parquet"
    raise ValueError(f"Cannot tell the log format of {str(path)!r} from its name; use one of the "
                     f"suffixes {', '.join(LOG_SUFFIXES)}.")


def read_log(path: str | os.PathLike, *, assume_utc: bool = False) -> pd.DataFrame:
    """Read a log from ``.csv``, ``.csv.gz`` or ``.parquet`` and validate it.

    CSV cells are read as written: only empty cells are missing (strings such as ``"NA"`` or
    ``"None"`` stay strings).

    Parameters
    ----------
    path:
        The file; its format is chosen by suffix.
    assume_utc:
        Treat naive timestamps as UTC (see :func:`validate_log`).

    Returns
    -------
    pandas.DataFrame
        The validated log with canonical dtypes and a ``0..n-1`` index.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If the suffix is not one of :data:`LOG_SUFFIXES`.
    LogValidationError
        If the log breaks the schema (row numbers are 0-based data rows of the file).
    """
    path = Path(path)
    fmt = _log_format(path)
    if not path.exists():
        raise FileNotFoundError(f"No log at {path}.")
    try:
        if fmt == "parquet":
            df = pd.read_parquet(path)
        else:
            header = pd.read_csv(path, nrows=0, compression="gzip" if fmt == "csv.gz" else None)
            text_cols = {c: str for c in ("timestamp", *_STRING_COLUMNS) if c in header.columns}
            exact = {} if _PANDAS_3 else {"float_precision": "round_trip"}  # pandas 3: default
            df = pd.read_csv(path, dtype=text_cols, keep_default_na=False, na_values=[""],
                             **exact, compression="gzip" if fmt == "csv.gz" else None)
    except pd.errors.EmptyDataError:
        raise ValueError(f"The log {path} is empty (no header row); a log is a table with the "
                         f"columns {list(COLUMNS)}.") from None
    except (UnicodeDecodeError, pd.errors.ParserError, OSError, EOFError) as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise ValueError(f"The log {path} cannot be read as {fmt} ({type(e).__name__}: {e}); "
                         "is it a log written by covercast simulate-log or a table in that "
                         "format?") from None
    return validate_log(df.reset_index(drop=True), assume_utc=assume_utc)


def write_log(df: pd.DataFrame, path: str | os.PathLike, *,
              assume_utc: bool = False) -> Path:
    """Validate a log and write it atomically to ``.csv``, ``.csv.gz`` or ``.parquet``.

    The file is first written to a temporary file in the same folder, then moved into place
    with :func:`os.replace`, so a reader never sees half a file. The index is not written.

    Parameters
    ----------
    df:
        The log.
    path:
        Destination; the format is chosen by suffix (:data:`LOG_SUFFIXES`). Parent folders are
        created.
    assume_utc:
        Treat naive timestamps as UTC (see :func:`validate_log`).

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    ValueError
        If the suffix is not supported.
    LogValidationError
        If the log breaks the schema (nothing is written then).
    """
    path = Path(path)
    fmt = _log_format(path)
    log = validate_log(df, assume_utc=assume_utc)

    def write(tmp: Path) -> None:
        if fmt == "parquet":
            log.to_parquet(tmp, index=False)
        else:
            log.to_csv(tmp, index=False, compression="gzip" if fmt == "csv.gz" else None)

    atomic_write(path, write, suffix=".tmp")
    return path


__all__ = [
    "COLUMNS", "DTYPES", "DWELL_EVENTS", "EVENTS", "LOG_SUFFIXES", "OPTIONAL_COLUMNS",
    "PUSH_EVENTS", "RESPONSE_EVENTS", "TEXT_DTYPE", "LogProblem", "LogValidationError", "read_log",
    "sort_log", "validate_log", "write_log",
]
