"""What a population's parameters, cover bank, start and slot length fix: the tables the
engines look things up in, and how users are drawn.

:class:`PopulationTables` is the part shared by the SimPy population engine
(:class:`~covercast.simulators.population.Population`, which extends it with users and an
engine) and the one-user stepper (:class:`~covercast.simulators.user.UserSimulator`, which reads
it): per segment, the activity by hour of week and its integral over each slot of the week,
the relative-activity feature of the open logit, the dwell and taste parameters; per cover,
features, quality, style and topic; and the checks of the arguments that fix them.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from covercast._io import check_number
from covercast.simulators import response as R
from covercast.simulators.params import HOURS_PER_WEEK, PopulationParams

__all__ = ["PopulationTables"]


class PopulationTables:
    """The tables of one population's parameters, bank, start and slot length.

    Parameters
    ----------
    params : PopulationParams
        The user model.
    bank : CoverBank, optional
        Covers (the population's styles and topics); default
        :func:`covercast.covers.procedural.default_bank`.
    start : str or pandas.Timestamp
        Wall-clock time (UTC) of hour 0, on the slot grid.
    slot_minutes : int
        Slot length, a divisor of 1440.
    """

    def __init__(self, params: PopulationParams, *, bank: Any = None,
                 start: str | pd.Timestamp = "2026-01-05T00:00:00Z",
                 slot_minutes: int = 60) -> None:
        if not isinstance(params, PopulationParams):
            raise ValueError(f"`params` must be a PopulationParams, got {type(params).__name__}; "
                             "build one with covercast.simulators.params.default_params().")
        params.validate()
        if isinstance(slot_minutes, bool) or not isinstance(slot_minutes, (int, np.integer)) \
                or slot_minutes <= 0 or 1440 % int(slot_minutes) != 0:
            raise ValueError(f"`slot_minutes` must be a positive integer dividing 1440 (minutes "
                             f"in a day), e.g. 5, 10, 15, 20, 30, 60, 120; got {slot_minutes!r}.")
        self.params = params
        self.slot_minutes = int(slot_minutes)
        self.slot_hours = self.slot_minutes / 60.0
        self._spd = 1440 // self.slot_minutes         # slots per day
        self._start = self._parse_start(start, self.slot_minutes)

        if bank is None:
            bank = self._default_bank()
        self._check_bank(bank, params)
        self.bank = bank

        # ------------------------------------------------------------ tables
        segs = params.segments
        self._n_seg = len(segs)
        self._seg_act = params.activity_matrix()                       # (S, 168)
        self._seg_mean_rate = self._seg_act.mean(axis=1)               # (S,)
        self._rel_act_table = R.relative_activity_feature(self._seg_act,
                                                          self._seg_mean_rate[:, None])
        self._seg_intercept = np.array([s.open_intercept for s in segs])
        self._seg_dwell_mu = np.array([s.dwell_mu for s in segs])
        self._seg_dwell_sigma = np.array([s.dwell_sigma for s in segs])
        self._seg_session_mu = np.array([s.session_dwell_mu for s in segs])
        self._seg_taste_mean = np.array([s.taste_mean for s in segs], dtype=np.float64)
        self._seg_topic_mean = np.array([s.topic_mean for s in segs], dtype=np.float64)
        w = params.segment_weights()
        self._seg_p = w / w.sum()
        self._seg_cdf = self._seg_p.cumsum()        # as Generator.choice computes it
        self._seg_cdf /= self._seg_cdf[-1]
        self._seg_shape = np.array([s.activity_shape for s in segs], dtype=np.float64)
        self._seg_taste_sd = np.array([s.taste_sd for s in segs], dtype=np.float64)
        self._seg_topic_sd = np.array([s.topic_sd for s in segs], dtype=np.float64)
        self._features = np.asarray(bank.features, dtype=np.float64)
        self._quality = np.asarray(bank.quality, dtype=np.float64)
        self._cover_style = np.asarray(bank.style, dtype=np.int64)
        self._cover_topic = np.asarray(bank.topic, dtype=np.int64)
        self._style_table, self._style_counts = bank.style_table()
        self._build_slot_tables()

    @property
    def start(self) -> pd.Timestamp:
        """Wall-clock time (UTC) of hour 0."""
        return self._start

    @staticmethod
    def _parse_start(start: str | pd.Timestamp, slot_minutes: int) -> pd.Timestamp:
        try:
            ts = pd.Timestamp(start)
        except (ValueError, TypeError) as e:
            raise ValueError(f"`start` must be a timestamp such as '2026-01-05T00:00:00Z', got "
                             f"{start!r} ({e}).") from e
        if ts is pd.NaT:
            raise ValueError("`start` must be a timestamp, got NaT.")
        ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
        ts = ts.as_unit("ns")
        since_midnight = ts - ts.normalize()
        if since_midnight.value % (slot_minutes * 60 * 10**9) != 0:
            raise ValueError(f"`start` {ts.isoformat()} is not on the {slot_minutes}-minute slot "
                             f"grid; use a time that is a whole number of slots after midnight "
                             f"UTC, e.g. {ts.floor(f'{slot_minutes}min').isoformat()}.")
        return ts

    @staticmethod
    def _default_bank() -> Any:
        try:
            from covercast.covers.procedural import default_bank
        except ImportError as e:  # pragma: no cover - depends on the generators package state
            raise ImportError("Population needs a cover bank: pass `bank=` (a CoverBank) or "
                              "install covercast with its procedural generator "
                              f"(covercast.covers.procedural.default_bank): {e}") from e
        return default_bank()

    @staticmethod
    def _check_bank(bank: Any, params: PopulationParams) -> None:
        for attr in ("features", "quality", "style", "topic", "styles", "topics", "style_table"):
            if not hasattr(bank, attr):
                raise ValueError(f"`bank` must be a CoverBank, got {type(bank).__name__} "
                                 f"(no `{attr}`).")
        if list(bank.styles) != list(params.styles):
            raise ValueError(f"The bank's styles {list(bank.styles)} differ from the "
                             f"population's styles {list(params.styles)}; build the bank with "
                             "the population's styles (same names, same order).")
        if list(bank.topics) != list(params.topics):
            raise ValueError(f"The bank's topics {list(bank.topics)} differ from the "
                             f"population's topics {list(params.topics)}; build the bank with "
                             "the population's topics (same names, same order).")

    def _build_slot_tables(self) -> None:
        """Per slot of the week: integrated session intensity per segment, and the knots that
        map a fraction of that intensity to a time inside the slot (for slots that straddle
        hours with different rates)."""
        s = self.slot_hours
        self._slots_per_week = HOURS_PER_WEEK * 60 // self.slot_minutes
        ts = self._start
        self._week0_h = (ts.day_of_week * 24 + ts.hour + ts.minute / 60.0 + ts.second / 3600.0)
        self._week0_slot = int(round(self._week0_h / s)) % self._slots_per_week
        spw = self._slots_per_week
        self._slot_rate = np.zeros((self._n_seg, spw))
        self._slot_knots: list[tuple[np.ndarray, np.ndarray] | None] = []
        for sw in range(spw):
            a, b = sw * s, (sw + 1) * s
            edges = [a] + [float(h) for h in range(math.floor(a) + 1, math.ceil(b))] + [b]
            edges_arr = np.array(edges)
            lens = np.diff(edges_arr)
            hours = np.floor(edges_arr[:-1] + 1e-9).astype(np.int64) % HOURS_PER_WEEK
            mass = self._seg_act[:, hours] * lens                  # (S, P)
            total = mass.sum(axis=1)
            self._slot_rate[:, sw] = total
            if len(lens) == 1 or np.all(np.ptp(self._seg_act[:, hours], axis=1) == 0):
                self._slot_knots.append(None)                     # uniform within the slot
                continue
            cum = np.concatenate([np.zeros((self._n_seg, 1)), np.cumsum(mass, axis=1)], axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                frac = np.where(total[:, None] > 0, cum / np.where(total > 0, total, 1)[:, None],
                                (edges_arr - a)[None, :] / s)
            self._slot_knots.append((edges_arr - a, frac))
        self._any_knots = any(k is not None for k in self._slot_knots)

    def _draw_users(self, rng: np.random.Generator, m: int
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Sample ``m`` users: (segment, activity multiplier, taste, topic affinity)."""
        p = self.params
        # rng.choice(n_seg, size=m, p=seg_p) without its argument checks: the same draws
        segment = self._seg_cdf.searchsorted(rng.random(m), side="right").astype(np.intp)
        multiplier = R.activity_multiplier(self._seg_shape[segment], rng)
        taste_sd = self._seg_taste_sd[segment]
        topic_sd = self._seg_topic_sd[segment]
        taste = (self._seg_taste_mean[segment]
                 + taste_sd[:, None] * rng.standard_normal((m, p.n_features)))
        topic_aff = (self._seg_topic_mean[segment]
                     + topic_sd[:, None] * rng.standard_normal((m, len(p.topics))))
        return segment, multiplier, taste, topic_aff

    def _hour_of_week(self, t: np.ndarray | float) -> np.ndarray:
        return (np.floor(self._week0_h + np.asarray(t, dtype=np.float64) + 1e-9)
                .astype(np.intp) % HOURS_PER_WEEK)

    def _slot_of_week(self, slot_number: int) -> int:
        return (self._week0_slot + slot_number) % self._slots_per_week

    def history_counts(self, segment: np.ndarray, multiplier: np.ndarray, now: float,
                       days: float, rng: np.random.Generator) -> np.ndarray:
        """Organic sessions in each hour of day over the ``days`` before ``now`` of users with
        these segments and activity multipliers, ``(len(segment), 24)`` float64 (see
        :meth:`Population.draw_history`); drawn from ``rng``."""
        n_hours = int(round(24.0 * check_number(days, "days", lo=0)))
        if n_hours == 0 or len(segment) == 0:
            return np.zeros((len(segment), 24))
        how_now = int(self._hour_of_week(now))
        how = (how_now - np.arange(1, n_hours + 1)) % HOURS_PER_WEEK
        # times each hour of week occurs in the span, mapped to its hour of day
        occurs = np.bincount(how, minlength=HOURS_PER_WEEK).astype(np.float64)
        to_day = np.zeros((HOURS_PER_WEEK, 24))
        to_day[np.arange(HOURS_PER_WEEK), np.arange(HOURS_PER_WEEK) % 24] = occurs
        mean = (self._seg_act[segment] @ to_day) * np.asarray(multiplier)[:, None]
        return rng.poisson(mean).astype(np.float64)
