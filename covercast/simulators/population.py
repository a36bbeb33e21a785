"""The simulated user population: one SimPy event engine over numpy arrays of user state.

:class:`Population` holds N users (1 to 100,000 and more) as arrays -- segment, activity
multiplier, taste, topic affinity, fatigue, the unseen push in the notification tray, rolling
counters of what the platform observed -- never as one Python object per user. A
:class:`simpy.Environment` (time unit: hours since ``start``) is the event engine:

* a **clock** process ticks every slot (``slot_minutes``). At the start of a slot it draws every
  user's number of organic sessions in the slot (non-homogeneous Poisson: the segment's rate at
  each hour of week times the user's activity multiplier, integrated over the slot); at its end
  it lets users with a push waiting in the tray see it at their first session, then closes the
  slot's books and returns a :class:`SlotOutcome`;
* **push deliveries** are SimPy events: :meth:`Population.schedule_push` schedules a batch for any
  time at or after now, :meth:`Population.step` pushes at the start of the coming slot;
* a daily **drift** process moves tastes and topic affinities by one Ornstein-Uhlenbeck step
  (:attr:`PopulationParams.drift`), woken by the clock at each day boundary.

Beyond :meth:`Population.step`: :meth:`Population.advance` runs several slots without pushes
at once, :meth:`Population.reset` starts over with new users (reusing the tables),
:meth:`Population.replace_users` swaps some users for fresh ones between slots (the population
vector environment's autoreset), :meth:`Population.observe_user` reads one user's observation as
Python numbers, and a population pickles (the engine is rebuilt on load, pushes scheduled for
later included). A one-user population (what the single-user environments step) runs a lean
path without SimPy -- same streams, same draws, same floating-point operations, bit-identical
outcomes, tens of times faster -- until something needs the engine (:meth:`schedule_push`,
:meth:`replace_users`, reading :attr:`Population.env`); :meth:`Population.step_user` and
:meth:`Population.advance_user` step it and report the user's responses as Python numbers
without building a :class:`SlotOutcome` (:attr:`Population.last_outcome` builds it on demand).
With numba installed (the ``fast`` extra) those one-user calls run the lean path compiled
(:mod:`covercast.simulators._kernel`), again with bit-identical outcomes; without it, or with
``COVERCAST_NO_NUMBA=1``, the Python lean path runs.

Only where it is needed are organic session *times* drawn: for users with a push waiting in the
tray (the time they see it), and for the event log when ``record_events=True``. The first session
time of a user with ``k`` sessions in a slot is drawn as the minimum of ``k`` uniforms (in the
slot's integrated-intensity scale) and later ones lazily as the next order statistics, so the
engine never draws more than it uses, and recording the log does not change any outcome.

The user model is the one specified in :mod:`covercast.simulators.params`; every formula comes
from :mod:`covercast.simulators.response`. Engine rules that the spec leaves open:

* **Notifications collapse.** The tray holds at most one unseen push per user. A newer push
  replaces an unseen older one (reported in :attr:`SlotOutcome.collapsed_push_id`), unless an
  organic session between the two let the user see the older one first.
* **Fatigue when seen.** A push is opened with the fatigue the user has when seeing it (its own
  increment included, decayed until then).
* **Opting out.** A user who opts out in response to a push does not open it, and the tray is
  cleared; later pushes to that user are not delivered (:attr:`SlotOutcome.blocked_user`).
  Organic sessions go on.
* **Pushed sessions.** An opened push is a pushed session (with its own dwell), distinct from
  organic sessions; a push seen at an organic session is opened at that session's time.
* **Random streams.** ``np.random.SeedSequence(seed)`` is split into independent streams for
  user sampling, organic session counts, session times, responses, drift, cover choice, the
  logging policy, and log-only draws. So the same seed gives the same users and the same
  organic session counts whatever the pushes, and the same seed with the same actions gives
  identical outcomes.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, fields
from itertools import accumulate, islice, repeat
from typing import Any

import numpy as np
import pandas as pd
import simpy
from simpy.core import URGENT

try:    # what np.einsum calls (optimize=False) after its Python-level argument handling
    from numpy._core.multiarray import c_einsum as _c_einsum
except ImportError:  # pragma: no cover - numpy moved it
    _c_einsum = np.einsum

from covercast.simulators import _kernel as K
from covercast.simulators import response as R
from covercast.simulators.logs import COLUMNS, EVENTS
from covercast.simulators.params import HOURS_PER_WEEK, PopulationParams

__all__ = [
    "OBSERVATION_KEYS",
    "HIDDEN_KEYS",
    "MAX_USERS",
    "Policy",
    "Population",
    "PopulationParams",
    "SlotOutcome",
    "USER_SUMMARY_KEYS",
    "simulate_log",
]

#: Largest population :class:`Population` accepts (memory grows linearly, ~1 KB per user).
MAX_USERS = 10_000_000

#: Keys of :meth:`Population.observe`, in a stable order.
OBSERVATION_KEYS: tuple[str, ...] = (
    "hour", "minute", "weekday", "hours_since_push", "hours_since_open", "pushes_24h",
    "pushes_7d", "opens_24h", "opens_7d", "dwell_24h", "dwell_7d", "sessions_24h", "opted_out")

#: What :meth:`Population.step_user` and :meth:`Population.advance_user` report, in order.
USER_SUMMARY_KEYS: tuple[str, ...] = (
    "pushed", "blocked", "opened", "dwell_s", "likes", "shares", "comments", "surveys",
    "sat_sum", "opted_out", "sessions", "cover")

#: Keys of :meth:`Population.hidden_state`.
HIDDEN_KEYS: tuple[str, ...] = (
    "fatigue", "taste", "topic_affinity", "activity_rate", "activity_multiplier", "segment",
    "opted_out", "pending_push")

#: A logging policy: ``policy(obs, rng) -> (push (N,) bool, style (N,) int, propensity (N,))``.
Policy = Callable[[dict[str, np.ndarray], np.random.Generator],
                  tuple[np.ndarray, np.ndarray, np.ndarray]]

_EVENT_CODE = {e: i for i, e in enumerate(EVENTS)}
_STREAMS = ("users", "sessions", "session_times", "responses", "drift", "actions", "policy",
            "log")
_EXP, _EXP2, _EXPM1, _LOG = np.exp, np.exp2, np.expm1, np.log
#: Days of drift draws the lean path takes from the ``drift`` stream at a time.
_DRIFT_BLOCK = 16
_I64 = np.empty(0, dtype=np.int64)
_I64.flags.writeable = False
_F64 = np.empty(0, dtype=np.float64)
_F64.flags.writeable = False
# no observation state for the compiled path (writable: the kernel's argument types)
_K_NO_B = np.zeros(0)
_K_NO_OBS = np.zeros(0, dtype=np.float32)
_K_NO_CLOCK = np.zeros((0, 5), dtype=np.float32)
_USER0 = np.zeros(1, dtype=np.int64)
_USER0.flags.writeable = False
_ONE_F64 = np.ones(1, dtype=np.float64)
_ONE_F64.flags.writeable = False


# ====================================================================================== outcome
@dataclass(frozen=True)
class SlotOutcome:
    """What happened during one slot ``[start_h, end_h)``, as sparse arrays.

    Times are hours since the population's ``start``. Arrays with the same prefix are aligned
    (one element per delivered push, per open, ...). :meth:`to_dense` turns them into per-user
    arrays.
    """

    start_h: float
    """Start of the slot (hours since start)."""
    end_h: float
    """End of the slot."""
    push_user: np.ndarray
    """Users a push was delivered to (int64)."""
    push_id: np.ndarray
    """Id of each delivered push."""
    push_cover: np.ndarray
    """Bank index of each delivered push's cover."""
    push_topic: np.ndarray
    """Topic index of each delivered push."""
    push_time: np.ndarray
    """Delivery time of each push."""
    push_propensity: np.ndarray
    """Logging propensity given with each push."""
    blocked_user: np.ndarray
    """Users pushed after opting out: not delivered."""
    blocked_push_id: np.ndarray
    """Ids of those undelivered pushes."""
    collapsed_push_id: np.ndarray
    """Unseen pushes replaced in the tray by a newer push to the same user (never seen)."""
    open_user: np.ndarray
    """Users who opened a push (one element per open)."""
    open_push_id: np.ndarray
    """The opened push."""
    open_cover: np.ndarray
    """Its cover."""
    open_topic: np.ndarray
    """Its topic."""
    open_time: np.ndarray
    """Time of the open."""
    open_delay_h: np.ndarray
    """Hours between delivery and the open (0 when seen at once)."""
    open_dwell_s: np.ndarray
    """Seconds spent in the pushed session."""
    open_like: np.ndarray
    """Whether the open brought a like (bool)."""
    open_share: np.ndarray
    """... a share."""
    open_comment: np.ndarray
    """... a comment."""
    open_satisfaction: np.ndarray
    """Survey score 1-5, or 0 when the open was not surveyed (int8)."""
    opt_out_user: np.ndarray
    """Users who opted out during the slot."""
    opt_out_push_id: np.ndarray
    """The push each opted out in response to."""
    opt_out_time: np.ndarray
    """When."""
    session_user: np.ndarray
    """Users with organic sessions in the slot (sorted)."""
    session_count: np.ndarray
    """Their number of organic sessions."""

    @property
    def n_pushes(self) -> int:
        """Number of delivered pushes."""
        return int(self.push_user.size)

    @property
    def n_opens(self) -> int:
        """Number of opens."""
        return int(self.open_user.size)

    @property
    def n_sessions(self) -> int:
        """Number of organic sessions."""
        return int(self.session_count.sum())

    def to_dense(self, n_users: int) -> dict[str, np.ndarray]:
        """Per-user arrays of length ``n_users``.

        Returns
        -------
        dict
            ``pushes`` (int, delivered), ``blocked`` (int), ``opens`` (int), ``dwell_s``
            (float, total pushed-session seconds), ``likes``, ``shares``, ``comments``,
            ``surveys`` (int), ``satisfaction`` (float, mean survey score, NaN if none),
            ``opted_out`` (bool, opted out in this slot), ``sessions`` (int, organic).
        """
        if n_users < 1:
            raise ValueError(f"`n_users` must be >= 1, got {n_users!r}.")

        def count(users: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
            return np.bincount(users, weights=w, minlength=n_users)[:n_users]

        surveyed = self.open_satisfaction > 0
        n_surv = count(self.open_user[surveyed])
        sat_sum = count(self.open_user[surveyed], self.open_satisfaction[surveyed].astype(float))
        with np.errstate(invalid="ignore", divide="ignore"):
            sat = np.where(n_surv > 0, sat_sum / np.maximum(n_surv, 1), np.nan)
        sessions = np.zeros(n_users, dtype=np.int64)
        sessions[self.session_user] = self.session_count
        opted = np.zeros(n_users, dtype=bool)
        opted[self.opt_out_user] = True
        return {
            "pushes": count(self.push_user),
            "blocked": count(self.blocked_user),
            "opens": count(self.open_user),
            "dwell_s": count(self.open_user, self.open_dwell_s).astype(np.float64),
            "likes": count(self.open_user[self.open_like]),
            "shares": count(self.open_user[self.open_share]),
            "comments": count(self.open_user[self.open_comment]),
            "surveys": n_surv,
            "satisfaction": sat,
            "opted_out": opted,
            "sessions": sessions,
        }


def _empty_outcome_fields() -> dict[str, Any]:
    empty = {"open_like": np.zeros(0, bool), "open_share": np.zeros(0, bool),
             "open_comment": np.zeros(0, bool), "open_satisfaction": np.zeros(0, np.int8)}
    for arr in empty.values():
        arr.flags.writeable = False
    out: dict[str, Any] = {}
    for f in fields(SlotOutcome):
        if f.name in empty:
            out[f.name] = empty[f.name]
        elif f.name.endswith(("_time", "_propensity", "_delay_h", "_dwell_s")):
            out[f.name] = _F64
        else:
            out[f.name] = _I64
    return out


def _merge_outcomes(outs: list[SlotOutcome], start: float, sessions: np.ndarray
                    ) -> SlotOutcome:
    """One outcome for consecutive slots: events concatenated in time order, organic
    sessions summed per user (``sessions``: the per-user totals)."""
    d: dict[str, Any] = {"start_h": start, "end_h": outs[-1].end_h}
    for f in fields(SlotOutcome):
        if f.name in d or f.name.startswith("session_"):
            continue
        parts = [getattr(o, f.name) for o in outs]
        d[f.name] = _cat([x for x in parts if x.size], parts[0][:0])
    users = np.flatnonzero(sessions)
    d["session_user"] = users
    d["session_count"] = sessions[users].astype(np.int64)
    return SlotOutcome(**d)


def _user_summary(out: SlotOutcome) -> tuple:
    """User 0's events of a one-user outcome as :data:`USER_SUMMARY_KEYS` (Python numbers)."""
    sat = out.open_satisfaction
    surveyed = sat[sat > 0]
    return (int(out.push_user.size), int(out.blocked_user.size), int(out.open_user.size),
            float(out.open_dwell_s.sum()) if out.open_user.size else 0.0,
            int(np.count_nonzero(out.open_like)), int(np.count_nonzero(out.open_share)),
            int(np.count_nonzero(out.open_comment)), int(surveyed.size),
            float(surveyed.sum()) if surveyed.size else 0.0, bool(out.opt_out_user.size),
            int(out.session_count.sum()), int(out.push_cover[0]) if out.push_cover.size else -1)


#: Every SlotOutcome field, empty (the lean path fills in what happened).
_EMPTY_OUTCOME = _empty_outcome_fields()

#: SlotOutcome fields gathered event by event during a slot.
_ACC_KEYS: tuple[str, ...] = tuple(f.name for f in fields(SlotOutcome)
                                   if f.name not in ("start_h", "end_h", "session_user",
                                                     "session_count"))


class _UrgentTimeout(simpy.Event):
    """A timeout processed before ordinary events at the same time (clock ticks, day marks).

    SimPy orders simultaneous events by priority, then by creation. The clock must close a slot
    and open the next before any push delivered at that boundary, so its ticks are URGENT,
    like SimPy's own ``run(until=...)`` marker; push deliveries are ordinary timeouts.
    """

    def __init__(self, env: simpy.Environment, delay: float, value: Any = None):
        super().__init__(env)
        self._ok = True
        self._value = value
        env.schedule(self, URGENT, delay)


class _Streams(dict):
    """The named random streams (:data:`_STREAMS`), the children ``ss.spawn(len(_STREAMS))`` of
    a fresh SeedSequence, each generator made on first use: the same numbers as spawning them
    all at once, without the cost of seeding streams an episode never draws from."""

    def __init__(self, ss: np.random.SeedSequence, made: dict | None = None,
                 pool: dict | None = None) -> None:
        super().__init__(made or {})
        self._seed = (ss.entropy, tuple(ss.spawn_key), ss.pool_size, ss.n_children_spawned)
        # With numba, a stream is seeded by the kernel's copy of SeedSequence (checked against
        # numpy's when it loads) in a generator of `pool`, the population's generators of the
        # previous episodes, reused: the same states at a fraction of the cost.
        self._pool = pool if pool is not None and type(ss.entropy) is int else None

    def __missing__(self, name: str) -> np.random.Generator:
        if name not in _STREAMS:
            raise KeyError(name)
        entropy, key, pool, first = self._seed
        key = key + (first + _STREAMS.index(name),)
        if self._pool is not None:
            impl = K.load()
            if impl is not None:
                g = self._pool.get(name)
                if g is None:
                    g = self._pool[name] = np.random.Generator(np.random.PCG64(0))
                K.seed_generator(g, impl.seed_state(K.assembled_entropy(entropy, key, pool),
                                                    pool))
                self[name] = g
                return g
        child = np.random.SeedSequence(entropy, spawn_key=key, pool_size=pool)
        g = self[name] = np.random.default_rng(child)
        return g

    def __reduce__(self) -> tuple:
        entropy, key, pool, first = self._seed
        ss = np.random.SeedSequence(entropy, spawn_key=key, pool_size=pool,
                                    n_children_spawned=first)
        return (_Streams, (ss, dict(self)))


@dataclass
class _PushBatch:
    users: np.ndarray
    push_id: np.ndarray
    cover: np.ndarray
    topic: np.ndarray
    propensity: np.ndarray


@dataclass
class _WindowRecord:
    start: float
    push_users: np.ndarray
    push_counts: np.ndarray
    open_users: np.ndarray
    open_counts: np.ndarray
    open_dwell: np.ndarray
    session_users: np.ndarray
    session_counts: np.ndarray


class _KState:
    """The state of a one-user population while the compiled kernel runs it
    (:meth:`Population._k_in`); the array layouts are :mod:`covercast.simulators._kernel`'s."""

    __slots__ = ("F", "C", "I", "M", "W", "SB", "NZ", "TT", "FE", "O", "run", "sess", "noise",
                 "slot", "sess_slot", "rngs")

    def __init__(self) -> None:
        self.sess: list[tuple[int, int, dict, np.ndarray]] = []  # start, end, state, lam
        self.noise: list[tuple[int, int, dict]] = []              # start, end, state
        self.slot = False                # the kernel holds the last slot's events


def _cat(parts: list[np.ndarray], empty: np.ndarray) -> np.ndarray:
    if not parts:
        return empty
    if len(parts) == 1:
        return parts[0]
    return np.concatenate(parts)


def _group(users: np.ndarray, values: np.ndarray | None, unique: bool
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Unique users with event counts (and summed values)."""
    if unique:
        return users, np.ones(users.size, dtype=np.int64), values
    u, inv, cnt = np.unique(users, return_inverse=True, return_counts=True)
    summed = None if values is None else np.bincount(inv, weights=values, minlength=u.size)
    return u, cnt, summed


# ==================================================================================== population
class Population:
    """N simulated users answering pushes, advanced by one SimPy engine over numpy arrays.

    Parameters
    ----------
    params : PopulationParams
        The user model (:func:`covercast.simulators.params.default_params` for the default).
    n_users : int
        Number of users, 1 to :data:`MAX_USERS` (fast up to 100,000 and beyond).
    bank : CoverBank, optional
        Covers to push. Its styles and topics must equal ``params.styles`` / ``params.topics``.
        Default: :func:`covercast.covers.procedural.default_bank`.
    seed : int or numpy.random.SeedSequence, optional
        Seed of every random draw (see the module docstring for the streams). ``None`` draws
        fresh entropy (recorded in :attr:`seed_entropy`).
    start : str or pandas.Timestamp
        Wall-clock time (UTC) of hour 0; naive times are taken as UTC. Must lie on the slot grid
        (a whole number of slots after midnight). Default Monday 2026-01-05 00:00 UTC.
    slot_minutes : int
        Length of a slot (one :meth:`step`); must divide 1440 (5, 10, 15, 20, 30, 60, 120, ...).
    record_events : bool
        Keep every event for :meth:`event_log` (costs memory; outcomes are identical either way).

    Examples
    --------
    >>> pop = Population(default_params(), 1000, seed=0)                     # doctest: +SKIP
    >>> out = pop.step(push=pop.observe()["hour"] == 0, style=1)             # doctest: +SKIP
    >>> out.n_opens, pop.now                                                 # doctest: +SKIP
    """

    def __init__(self, params: PopulationParams, n_users: int, *, bank: Any = None,
                 seed: int | np.random.SeedSequence | None = None,
                 start: str | pd.Timestamp = "2026-01-05T00:00:00Z", slot_minutes: int = 60,
                 record_events: bool = False) -> None:
        if not isinstance(params, PopulationParams):
            raise ValueError(f"`params` must be a PopulationParams, got {type(params).__name__}; "
                             "build one with covercast.simulators.params.default_params().")
        params.validate()
        if isinstance(n_users, bool) or not isinstance(n_users, (int, np.integer)):
            raise ValueError(f"`n_users` must be an integer, got {n_users!r}.")
        if not 1 <= int(n_users) <= MAX_USERS:
            raise ValueError(f"`n_users` must be in [1, {MAX_USERS}], got {n_users}.")
        if isinstance(slot_minutes, bool) or not isinstance(slot_minutes, (int, np.integer)) \
                or slot_minutes <= 0 or 1440 % int(slot_minutes) != 0:
            raise ValueError(f"`slot_minutes` must be a positive integer dividing 1440 (minutes "
                             f"in a day), e.g. 5, 10, 15, 20, 30, 60, 120; got {slot_minutes!r}.")
        self.params = params
        self.n_users = int(n_users)
        self.slot_minutes = int(slot_minutes)
        self.slot_hours = self.slot_minutes / 60.0
        self._spd = 1440 // self.slot_minutes         # slots per day
        self.record_events = bool(record_events)
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
        # the same tables as Python lists, for the lean one-user path
        self._style_list = [row[:k].tolist() for row, k in zip(self._style_table,
                                                                self._style_counts.tolist(),
                                                                strict=True)]
        self._style_len = self._style_counts.tolist()
        self._cover_topic_list = self._cover_topic.tolist()
        self._quality_list = self._quality.tolist()
        self._feature_rows = [self._features[c:c + 1] for c in range(len(self._features))]
        # per segment and hour of week: the first terms of the open logit (response.open_logit)
        self._open_base = (self._seg_intercept[:, None]
                           + params.open.beta_activity * self._rel_act_table).tolist()
        self._build_slot_tables()
        self._l_times = [0.0]          # slot start times of the lean path (_lean_times)
        self._kc: tuple | None = None  # the compiled path's constants (_k_consts)
        self._gen_pool: dict[str, np.random.Generator] = {}   # reused by _Streams
        self._k_ok = self._k_possible()   # whether the compiled path can run when lean
        self._week_rates: dict[tuple[int, int], np.ndarray] = {}   # _single_user_sessions

        self._init_state(seed)

    def _init_state(self, seed: int | np.random.SeedSequence | None) -> None:
        """Random streams, users, their state and a fresh engine at hour 0 (tables are kept)."""
        # ------------------------------------------------------------ random streams
        if isinstance(seed, np.random.SeedSequence):
            ss = seed
        elif seed is None or (isinstance(seed, (int, np.integer)) and not isinstance(seed, bool)
                              and seed >= 0):
            ss = np.random.SeedSequence(seed)
        else:
            raise ValueError(f"`seed` must be a non-negative integer, a SeedSequence or None, "
                             f"got {seed!r}.")
        self.seed_entropy = ss.entropy
        if ss is seed:          # the caller's SeedSequence: spawn now (it counts its children)
            self._rng = dict(zip(_STREAMS, (np.random.default_rng(s)
                                            for s in ss.spawn(len(_STREAMS))), strict=True))
        else:
            # (the single-user environments' populations seed their streams with numba)
            self._rng = _Streams(ss, pool=self._gen_pool if self.n_users == 1 else None)

        # ------------------------------------------------------------ users
        seg, mult, taste, topic = self._draw_users(self._rng["users"], self.n_users)
        self._segment, self._multiplier, self._taste, self._topic_aff = seg, mult, taste, topic
        n = self.n_users
        self._born = np.zeros(n)
        self._replaced_any = False
        self._fatigue = np.zeros(n)
        self._fatigue_t = np.full(n, -np.inf)
        self._opted_out = np.zeros(n, dtype=bool)
        self._pend_id = np.full(n, -1, dtype=np.int64)
        self._pend_time = np.zeros(n)
        self._pend_cover = np.zeros(n, dtype=np.int64)
        self._pend_topic = np.zeros(n, dtype=np.int64)
        self._last_push = np.full(n, -np.inf)
        self._last_open = np.full(n, -np.inf)
        self._push24 = np.zeros(n, dtype=np.int64)
        self._push7 = np.zeros(n, dtype=np.int64)
        self._open24 = np.zeros(n, dtype=np.int64)
        self._open7 = np.zeros(n, dtype=np.int64)
        self._dwell24 = np.zeros(n)
        self._dwell7 = np.zeros(n)
        self._sess24 = np.zeros(n, dtype=np.int64)
        self._win24: deque[_WindowRecord] = deque()
        self._win7: deque[_WindowRecord] = deque()
        self._next_push_id = 0

        # ------------------------------------------------------------ per-slot state
        self._slot_number = 0
        self._slot_start = 0.0
        self._act_users = _I64
        self._act_counts = _I64
        self._act_j = _I64
        self._act_last = _F64
        self._act_mask_of: np.ndarray | None = None     # the _act_users of _act_mask
        self._act_mask = np.zeros(0, dtype=bool)
        self._drawn: list[tuple[np.ndarray, np.ndarray]] = []
        self._reset_slot_accumulators()

        # ------------------------------------------------------------ recording
        self._outcomes: list[SlotOutcome] = []
        self._session_rows: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

        # ------------------------------------------------------------ one-user session counts
        self._sess_buf: list[int] = []
        self._sess_buf_pos = 0
        self._sess_buf_from: tuple[dict, np.ndarray] | None = None   # stream state, rates

        # ------------------------------------------------------------ the engine
        self._scheduled: dict[int, tuple[float, _PushBatch]] = {}
        self._n_scheduled = 0
        self._clock_started = False
        self._last_outcome: SlotOutcome | None = None
        self._l_slot: tuple | None = None      # the last lean slot's events (_lean_step)
        # The lean one-user path (see _lean_step) runs without SimPy until something needs
        # the engine (schedule_push, replace_users, reading `env`, a push it does not handle).
        self._lean = self.n_users == 1 and not self.record_events
        self._lean_now = 0.0
        self._l_count = 0          # organic sessions of the current slot
        self._l_j = 0              # session times drawn so far in the slot
        self._l_last = 0.0         # the last drawn one, as a fraction of the slot's intensity
        self._env: simpy.Environment | None = None
        self._k: _KState | None = None     # the compiled path's state (_k_in), when it runs
        if self._lean:
            self._lean_init()
        else:
            self._start_engine(0.0, resume=False)

    def _start_engine(self, now: float, resume: bool) -> None:
        """A new SimPy environment at ``now`` with the clock and drift processes.

        ``resume=True`` continues a pickled engine between two slots: the coming slot's organic
        sessions were drawn already, so the clock starts by waiting for the slot's end. Pushes
        scheduled for later (:attr:`_scheduled`, empty for a new engine) are put back on the
        queue in the order they were scheduled.
        """
        self._env = simpy.Environment(initial_time=now)
        self._slot_done = self._env.event()
        self._new_day = self._env.event()
        self._env.process(self._drift_process())
        self._env.process(self._clock(resume=resume))
        for key, (at, batch) in sorted(self._scheduled.items()):
            self._enqueue(key, at, batch)

    # ============================================================================ construction
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

    # ============================================================================ properties
    @property
    def now(self) -> float:
        """Hours since ``start`` (the start of the coming slot between steps)."""
        return self._lean_now if self._lean else float(self._env.now)

    @property
    def env(self) -> simpy.Environment:
        """The SimPy engine. A one-user population runs a lean path without it until it is
        needed; reading this attribute starts the engine (outcomes are the same either way)."""
        self._leave_lean()
        return self._env

    @property
    def start(self) -> pd.Timestamp:
        """Wall-clock time (UTC) of hour 0."""
        return self._start

    @property
    def timestamp(self) -> pd.Timestamp:
        """Wall-clock time (UTC) of :attr:`now`."""
        return self._start + pd.Timedelta(hours=self.now)

    @property
    def segment(self) -> np.ndarray:
        """Segment index of every user (read-only view)."""
        v = self._segment.view()
        v.flags.writeable = False
        return v

    @property
    def last_outcome(self) -> SlotOutcome | None:
        """The :class:`SlotOutcome` of the last completed slot (``None`` before the first)."""
        self._lean_outcome_now()
        return self._last_outcome

    @property
    def n_pushes_scheduled(self) -> int:
        """Push ids handed out so far (the next push gets this id)."""
        return self._next_push_id

    def __repr__(self) -> str:
        return (f"Population(n_users={self.n_users}, segments={self.params.segment_names}, "
                f"now={self.now:g} h, timestamp={self.timestamp.isoformat()}, "
                f"slot_minutes={self.slot_minutes})")

    # ============================================================================ time helpers
    def _hour_of_week(self, t: np.ndarray | float) -> np.ndarray:
        return (np.floor(self._week0_h + np.asarray(t, dtype=np.float64) + 1e-9)
                .astype(np.intp) % HOURS_PER_WEEK)

    def _slot_of_week(self, slot_number: int) -> int:
        return (self._week0_slot + slot_number) % self._slots_per_week

    def _frac_to_offset(self, users: np.ndarray, frac: np.ndarray) -> np.ndarray:
        knots = self._slot_knots[self._slot_of_week(self._slot_number)]
        if knots is None:
            return frac * self.slot_hours
        t_knots, c_knots = knots
        out = np.empty(frac.shape)
        seg = self._segment[users]
        for g in range(self._n_seg):
            m = seg == g
            if m.any():
                out[m] = np.interp(frac[m], c_knots[g], t_knots)
        return out

    def _offset_to_frac(self, users: np.ndarray, offset: np.ndarray) -> np.ndarray:
        knots = self._slot_knots[self._slot_of_week(self._slot_number)]
        if knots is None:
            return offset / self.slot_hours
        t_knots, c_knots = knots
        out = np.empty(offset.shape)
        seg = self._segment[users]
        for g in range(self._n_seg):
            m = seg == g
            if m.any():
                out[m] = np.interp(offset[m], t_knots, c_knots[g])
        return out

    # ============================================================================ processes
    def _clock(self, resume: bool = False):
        """The clock: open a slot, wait for its end, close it; mark day boundaries.

        With ``resume=True`` (an unpickled engine), the current slot is already open.
        """
        steps_per_day = 1440 // self.slot_minutes
        while True:
            if resume:
                resume = False
                yield _UrgentTimeout(self._env, self._slot_start + self.slot_hours - self._env.now)
            else:
                self._begin_slot()
                yield _UrgentTimeout(self._env, self.slot_hours)
            outcome = self._end_slot()
            self._slot_number += 1
            if self._slot_number % steps_per_day == 0:
                day, self._new_day = self._new_day, self._env.event()
                self._trigger_urgent(day, self._slot_number // steps_per_day)
            done, self._slot_done = self._slot_done, self._env.event()
            self._trigger_urgent(done, outcome)

    def _trigger_urgent(self, event: simpy.Event, value: Any) -> None:
        """Succeed ``event`` now, ahead of ordinary events at this time.

        ``Event.succeed`` would schedule it with normal priority, i.e. after pushes already
        scheduled for this instant; the day mark must wake the drift process, and the slot's
        end must stop :meth:`step`, before those pushes are delivered. This is how SimPy itself
        triggers its ``run(until=...)`` marker.
        """
        event._ok = True
        event._value = value
        self._env.schedule(event, URGENT, 0)

    def _drift_process(self):
        """Once a day (woken by the clock, before any push of the new day): one OU step."""
        while True:
            yield self._new_day
            self._drift_once()

    def _lean_drift(self) -> None:
        """:meth:`_drift_once` for the one user: taste and topic affinity drift as one vector
        (the same draws in the same order, the same operations element by element), updated
        in place. The draws are taken from the ``drift`` stream :data:`_DRIFT_BLOCK` days at a
        time (``standard_normal`` over an array draws its elements in turn, so these are the
        numbers of one draw a day); :meth:`_lean_sync_drift` puts the stream back where the
        daily draws leave it when the engine takes over."""
        x = self._l_tt
        if x is None:
            x = self._lean_drift_init()
            if x is None:
                return
        # x + pull * (mean - x), then + sd * z: the same roundings as the engine's new arrays
        tmp = self._l_tt_tmp
        np.subtract(self._l_tt_mean, x, out=tmp)
        tmp *= self._l_pull
        x += tmp
        if self._l_sd is not None:
            noise, k = self._l_noise, self._l_noise_pos
            if noise is None or k == len(noise):
                rng = self._rng["drift"]
                self._l_noise_from = rng.bit_generator.state
                noise = self._l_noise = self._l_sd * rng.standard_normal((_DRIFT_BLOCK, x.size))
                k = 0
            x += noise[k]
            self._l_noise_pos = k + 1
        self._taste, self._topic_aff = x[None, :self._l_split], x[None, self._l_split:]

    def _lean_drift_init(self) -> np.ndarray | None:
        """The lean drift's vector (taste then topic affinity) and constants, made on first
        use; ``None`` when the population does not drift."""
        d = self.params.drift
        if d.sd_per_day == 0 and d.reversion_per_day == 0:
            return None
        seg, n_f = self._lseg, self._taste.shape[1]
        x = self._l_tt = np.concatenate((self._taste[0], self._topic_aff[0]))
        self._l_tt_mean = np.concatenate((self._seg_taste_mean[seg],
                                          self._seg_topic_mean[seg]))
        self._l_tt_tmp = np.empty_like(x)
        self._l_pull = 1.0 - (1.0 - d.reversion_per_day) ** 1.0
        self._l_sd = d.sd_per_day * np.sqrt(1.0) if d.sd_per_day > 0 else None
        self._l_split = n_f
        return x

    def _lean_sync_drift(self) -> None:
        """Leave the ``drift`` stream where one draw a day would have: rewound to where the
        buffered draws were taken, the days used drawn again."""
        if self._l_noise is None:
            return
        rng = self._rng["drift"]
        rng.bit_generator.state = self._l_noise_from
        if self._l_noise_pos:
            rng.standard_normal((self._l_noise_pos, self._l_noise.shape[1]))
        self._l_noise = self._l_noise_from = None
        self._l_noise_pos = 0

    def _drift_once(self) -> None:
        """One day of taste and topic-affinity drift (:func:`response.drift_step`)."""
        d = self.params.drift
        if d.sd_per_day == 0 and d.reversion_per_day == 0:
            return
        rng = self._rng["drift"]
        mean_t = self._seg_taste_mean[self._segment]
        self._taste = R.drift_step(self._taste, mean_t, d, rng)
        mean_a = self._seg_topic_mean[self._segment]
        self._topic_aff = R.drift_step(self._topic_aff, mean_a, d, rng)

    # ============================================================================ slots
    def _reset_slot_accumulators(self) -> None:
        self._acc: dict[str, list[np.ndarray]] = {k: [] for k in _ACC_KEYS}
        self._push_batches = 0
        self._open_batches = 0
        self._drawn = []

    def _begin_slot(self) -> None:
        """Draw every user's organic session count for the slot now starting."""
        self._clock_started = True
        self._slot_start = float(self._env.now)
        sw = self._slot_of_week(self._slot_number)
        if self.n_users == 1:
            counts = np.array([self._single_user_sessions(sw)], dtype=np.int64)
        else:
            lam = self._slot_rate[:, sw][self._segment]
            lam *= self._multiplier
            counts = self._rng["sessions"].poisson(lam)
        act = np.flatnonzero(counts)
        self._act_users = act
        self._act_counts = counts[act]
        self._act_j = np.zeros(act.size, dtype=np.int64)
        self._act_last = np.zeros(act.size)

    def _segment_week_rates(self, seg: int, sw: int) -> np.ndarray:
        """Session rates per slot of segment ``seg`` for the week of slots starting at slot of
        week ``sw`` (cached: a one-user population asks for the same weeks again and again)."""
        rates = self._week_rates.get((seg, sw))
        if rates is None:
            if len(self._week_rates) >= 64:
                self._week_rates.clear()
            spw = self._slots_per_week
            rates = self._slot_rate[seg, (sw + np.arange(spw)) % spw]
            self._week_rates[seg, sw] = rates
        return rates

    def _single_user_sessions(self, sw: int) -> int:
        """Organic sessions of the only user in slot-of-week ``sw``, drawn a week of slots at a
        time: ``poisson`` over an array draws each element in turn from the stream, so this
        gives exactly the counts of one draw per slot, at a fraction of the cost (the draws
        left unused matter in one place only, see :meth:`_drop_session_buffer`)."""
        if self._sess_buf_pos >= len(self._sess_buf):
            # slots are opened one after the other, so buffer entry i is slot-of-week sw + i
            lam = self._segment_week_rates(int(self._segment[0]), sw) * self._multiplier[0]
            rng = self._rng["sessions"]
            self._sess_buf_from = (rng.bit_generator.state, lam)
            self._sess_buf = rng.poisson(lam).tolist()
            self._sess_buf_pos = 0
        c = self._sess_buf[self._sess_buf_pos]
        self._sess_buf_pos += 1
        return c

    def _drop_session_buffer(self) -> None:
        """Forget the buffered session counts (they were drawn for a user being replaced) and
        leave the ``sessions`` stream where drawing them a day of slots at a time, as needed,
        leaves it: rewound to the buffer's start, then the days begun drawn again. (So the
        stream does not depend on the buffer's length.)"""
        if self._sess_buf_pos < len(self._sess_buf):
            state, lam = self._sess_buf_from
            spd = 1440 // self.slot_minutes
            used = -(-self._sess_buf_pos // spd) * spd
            rng = self._rng["sessions"]
            rng.bit_generator.state = state
            if used:
                rng.poisson(lam[:used])
        self._sess_buf, self._sess_buf_pos = [], 0

    def _end_slot(self) -> SlotOutcome:
        """Let waiting pushes be seen at sessions of this slot, then close the slot."""
        act = self._act_users
        if act.size:
            cand = act[self._pend_id[act] >= 0]
            if cand.size:
                t_seen = self._first_session_after(cand, self._pend_time[cand])
                seen = np.isfinite(t_seen)
                if seen.any():
                    self._see_pending(cand[seen], t_seen[seen])
        start, end = self._slot_start, float(self._env.now)
        a = self._acc
        i64, f64 = _I64, _F64
        out = SlotOutcome(
            start_h=start, end_h=end,
            push_user=_cat(a["push_user"], i64), push_id=_cat(a["push_id"], i64),
            push_cover=_cat(a["push_cover"], i64), push_topic=_cat(a["push_topic"], i64),
            push_time=_cat(a["push_time"], f64),
            push_propensity=_cat(a["push_propensity"], f64),
            blocked_user=_cat(a["blocked_user"], i64),
            blocked_push_id=_cat(a["blocked_push_id"], i64),
            collapsed_push_id=_cat(a["collapsed_push_id"], i64),
            open_user=_cat(a["open_user"], i64), open_push_id=_cat(a["open_push_id"], i64),
            open_cover=_cat(a["open_cover"], i64), open_topic=_cat(a["open_topic"], i64),
            open_time=_cat(a["open_time"], f64), open_delay_h=_cat(a["open_delay_h"], f64),
            open_dwell_s=_cat(a["open_dwell_s"], f64),
            open_like=_cat(a["open_like"], np.zeros(0, bool)),
            open_share=_cat(a["open_share"], np.zeros(0, bool)),
            open_comment=_cat(a["open_comment"], np.zeros(0, bool)),
            open_satisfaction=_cat(a["open_satisfaction"], np.zeros(0, np.int8)),
            opt_out_user=_cat(a["opt_out_user"], i64),
            opt_out_push_id=_cat(a["opt_out_push_id"], i64),
            opt_out_time=_cat(a["opt_out_time"], f64),
            session_user=self._act_users, session_count=self._act_counts)
        self._update_windows(out)
        if self.record_events:
            self._record_sessions()
            self._outcomes.append(out)
        self._reset_slot_accumulators()
        self._last_outcome = out
        return out

    def _active_mask(self) -> np.ndarray:
        """Dense ``(n_users,)`` mask of the slot's active users (:attr:`_act_users`), built
        once per active set (looking users up in it beats a binary search of each)."""
        act = self._act_users
        if self._act_mask_of is not act:
            mask = np.zeros(self.n_users, dtype=bool)
            mask[act] = True
            self._act_mask, self._act_mask_of = mask, act
        return self._act_mask

    def _first_session_after(self, users: np.ndarray, after: np.ndarray) -> np.ndarray:
        """Time of each user's first organic session of the current slot strictly after
        ``after`` (``inf`` where none). Draws session times lazily as order statistics.

        ``users`` must be unique. Successive calls for a user must use non-decreasing ``after``
        (they do: pushes are processed in time order).
        """
        out = np.full(users.size, np.inf)
        act = self._act_users
        if act.size == 0 or users.size == 0:
            return out
        ok = self._active_mask()[users]
        if not ok.any():
            return out
        u = users[ok]
        p = np.searchsorted(act, u)            # only the active users: fewer to look up
        offset = after[ok] - self._slot_start
        thr = np.where(offset < 0, -1.0, self._offset_to_frac(u, np.maximum(offset, 0.0)))
        k = self._act_counts[p]
        j = self._act_j[p]
        last = self._act_last[p]
        rng = self._rng["session_times"]
        need = np.flatnonzero(((j == 0) | (last <= thr)) & (j < k))
        while need.size:
            v = 1.0 - rng.random(need.size)                   # in (0, 1]
            rem = k[need] - j[need]
            lo = last[need]
            # next order statistic of `rem` uniforms on [lo, 1]: lo + (1 - lo) * min(U_1..U_rem)
            nxt = lo + (1.0 - lo) * (-np.expm1(np.log(v) / rem))
            last[need] = nxt
            j[need] += 1
            if self.record_events:
                self._drawn.append((u[need], nxt))
            sub = need
            need = sub[((last[sub] <= thr[sub]) & (j[sub] < k[sub]))]
        self._act_j[p] = j
        self._act_last[p] = last
        found = (j > 0) & (last > thr)
        t = self._slot_start + self._frac_to_offset(u, last)
        out[ok] = np.where(found, t, np.inf)
        return out

    def _record_sessions(self) -> None:
        """Session times (and dwell) of every organic session of the slot, for the log."""
        act = self._act_users
        if act.size == 0:
            return
        rng = self._rng["log"]
        rem = self._act_counts - self._act_j
        users_r = np.repeat(act, rem)
        lo = np.repeat(self._act_last, rem)
        frac_r = lo + (1.0 - lo) * rng.random(users_r.size)
        users_d = [d[0] for d in self._drawn]
        frac_d = [d[1] for d in self._drawn]
        users = np.concatenate([users_r] + users_d)
        frac = np.concatenate([frac_r] + frac_d)
        t = self._slot_start + self._frac_to_offset(users, frac)
        seg = self._segment[users]
        dwell = R.draw_session_dwell(self._seg_session_mu[seg], self._seg_dwell_sigma[seg], rng)
        self._session_rows.append((users, t, dwell))

    def _update_windows(self, out: SlotOutcome) -> None:
        """Rolling 24 h / 7 day counters: add this slot, drop slots that left the window."""
        pu, pc, _ = _group(out.push_user, None, self._push_batches <= 1)
        ou, oc, od = _group(out.open_user, out.open_dwell_s, self._open_batches <= 1)
        rec = _WindowRecord(out.start_h, pu, pc, ou, oc, od, out.session_user, out.session_count)
        self._push24[pu] += pc
        self._push7[pu] += pc
        self._open24[ou] += oc
        self._open7[ou] += oc
        self._dwell24[ou] += od
        self._dwell7[ou] += od
        self._sess24[out.session_user] += out.session_count
        self._win24.append(rec)
        self._win7.append(rec)
        now = out.end_h
        while self._win24 and self._win24[0].start < now - 24.0 - 1e-9:
            r = self._win24.popleft()
            if self._replaced_any:
                r = self._still_present(r)
            self._push24[r.push_users] -= r.push_counts
            self._open24[r.open_users] -= r.open_counts
            self._dwell24[r.open_users] -= r.open_dwell
            zero = self._open24[r.open_users] == 0
            self._dwell24[r.open_users[zero]] = 0.0
            self._sess24[r.session_users] -= r.session_counts
        while self._win7 and self._win7[0].start < now - 168.0 - 1e-9:
            r = self._win7.popleft()
            if self._replaced_any:
                r = self._still_present(r)
            self._push7[r.push_users] -= r.push_counts
            self._open7[r.open_users] -= r.open_counts
            self._dwell7[r.open_users] -= r.open_dwell
            zero = self._open7[r.open_users] == 0
            self._dwell7[r.open_users[zero]] = 0.0

    def _still_present(self, r: _WindowRecord) -> _WindowRecord:
        """The part of a window record about users not replaced since it was made (a replaced
        user's counters were zeroed, so what the old user did must not be subtracted)."""
        def alive(users: np.ndarray) -> np.ndarray:
            return self._born[users] <= r.start + 1e-9

        p, o, ss = alive(r.push_users), alive(r.open_users), alive(r.session_users)
        return _WindowRecord(r.start, r.push_users[p], r.push_counts[p], r.open_users[o],
                             r.open_counts[o], r.open_dwell[o], r.session_users[ss],
                             r.session_counts[ss])

    # ============================================================================ pushes
    def schedule_push(self, users: np.ndarray | list[int], at: float | None = None, *,
                      style: Any = None, cover: Any = None, topic: Any = None,
                      propensity: Any = None) -> np.ndarray:
        """Schedule one push per user for time ``at`` (hours since start; default: now).

        The batch is delivered by a SimPy event at ``at``: to users who have opted out by then
        it is not delivered (reported in :attr:`SlotOutcome.blocked_user`).

        Parameters
        ----------
        users : array_like of int
            Distinct user indices.
        at : float, optional
            Delivery time, ``>= now``. Default: now (the start of the coming slot).
        style : int, str or array_like, optional
            Cover style per user (or one for all): a cover of that style is drawn uniformly
            from the bank now. Exclusive with ``cover``.
        cover : int or array_like, optional
            Bank indices of the covers.
        topic : int, str or array_like, optional
            The push's content topic; default: each cover's topic.
        propensity : float or array_like, optional
            Probability the logging policy gave to this push, in (0, 1]; default 1.

        With neither ``style`` nor ``cover``, covers are drawn uniformly from the whole bank.

        Returns
        -------
        numpy.ndarray
            The push ids, aligned with ``users``.
        """
        self._leave_lean()
        now = self.now
        at = now if at is None else at
        if isinstance(at, bool) or not isinstance(at, (int, float, np.integer, np.floating)) \
                or not math.isfinite(float(at)):
            raise ValueError(f"`at` must be a finite time in hours since start, got {at!r}.")
        at = float(at)
        if at < now:
            raise ValueError(f"`at` = {at} is in the past (now = {now}); pushes can only be "
                             "scheduled at or after now.")
        u = self._as_user_index(users, "users")
        batch = self._make_batch(u, style, cover, topic, propensity, full_length=None)
        if batch.users.size == 0:
            return batch.push_id
        key = self._n_scheduled
        self._n_scheduled += 1
        self._scheduled[key] = (at, batch)
        self._enqueue(key, at, batch)
        return batch.push_id

    def _enqueue(self, key: int, at: float, batch: _PushBatch) -> None:
        """Put a scheduled batch on the engine's queue (it leaves :attr:`_scheduled` when
        delivered; the record lets a pickled population put it back)."""
        ev = self._env.timeout(at - self._env.now)
        ev.callbacks.append(lambda _ev, k=key, b=batch: self._deliver_scheduled(k, b))

    def _deliver_scheduled(self, key: int, batch: _PushBatch) -> None:
        del self._scheduled[key]
        self._deliver(batch)

    def _as_user_index(self, users: Any, name: str) -> np.ndarray:
        a = np.asarray(users)
        if a.dtype == bool:
            if a.shape != (self.n_users,):
                raise ValueError(f"A boolean `{name}` mask must have shape ({self.n_users},), "
                                 f"got {a.shape}.")
            return np.flatnonzero(a)
        if a.ndim == 0:
            a = a.reshape(1)
        if a.ndim != 1:
            raise ValueError(f"`{name}` must be a 1-d array of user indices or a boolean mask, "
                             f"got shape {a.shape}.")
        if a.size == 0:
            return np.zeros(0, dtype=np.int64)
        if not np.issubdtype(a.dtype, np.integer):
            raise ValueError(f"`{name}` must hold integer user indices (or be a boolean mask), "
                             f"got dtype {a.dtype}.")
        a = np.array(a, dtype=np.int64)          # a copy: the caller may reuse its array
        lo, hi = int(a.min()), int(a.max())
        if lo < 0 or hi >= self.n_users:
            raise ValueError(f"`{name}` indices must lie in [0, {self.n_users - 1}], got "
                             f"[{lo}, {hi}].")
        if a.size > 1 and not (a[1:] > a[:-1]).all() and np.unique(a).size != a.size:
            raise ValueError(f"`{name}` contains duplicate users; push each user at most once "
                             "per batch (a second push would collapse the first).")
        return a

    def _per_push(self, value: Any, n: int, full_mask: np.ndarray | None, name: str
                  ) -> np.ndarray:
        """Broadcast a scalar, or select from a full-length array with the push mask."""
        a = np.asarray(value)
        if a.ndim == 0:
            return np.broadcast_to(a, (n,))
        if a.ndim != 1:
            raise ValueError(f"`{name}` must be a scalar or a 1-d array, got shape {a.shape}.")
        if a.size == n:
            return a
        if full_mask is not None and a.size == self.n_users:
            return a[full_mask]
        expected = f"{n} (one per pushed user)"
        if full_mask is not None:
            expected += f" or {self.n_users} (one per user)"
        raise ValueError(f"`{name}` has length {a.size}; expected a scalar or length {expected}.")

    def _make_batch(self, users: np.ndarray, style: Any, cover: Any, topic: Any,
                    propensity: Any, full_length: np.ndarray | None) -> _PushBatch:
        n = users.size
        if style is not None and cover is not None:
            raise ValueError("Give either `style` (a random cover of that style is drawn) or "
                             "`cover` (bank indices), not both.")
        rng = self._rng["actions"]
        n_cov = len(self._quality)
        if cover is not None:
            c = self._per_push(cover, n, full_length, "cover")
            if not np.issubdtype(c.dtype, np.integer):
                raise ValueError(f"`cover` must hold integer bank indices, got dtype {c.dtype}.")
            c = c.astype(np.int64)
            if n and (c.min() < 0 or c.max() >= n_cov):
                raise ValueError(f"`cover` indices must lie in [0, {n_cov - 1}], got "
                                 f"[{c.min()}, {c.max()}].")
        elif style is not None:
            s = self._per_push(style, n, full_length, "style")
            if s.dtype.kind in "US":
                names = list(self.params.styles)
                bad = sorted(set(s.tolist()) - set(names))
                if bad:
                    raise ValueError(f"Unknown style(s) {bad}; styles are {names}.")
                s = np.array([names.index(x) for x in s.tolist()], dtype=np.int64)
            elif not np.issubdtype(s.dtype, np.integer):
                raise ValueError(f"`style` must hold style indices or names, got dtype {s.dtype}.")
            s = s.astype(np.int64, copy=False)     # only read
            ns = len(self._style_counts)
            if n and (s.min() < 0 or s.max() >= ns):
                raise ValueError(f"`style` indices must lie in [0, {ns - 1}] "
                                 f"({list(self.params.styles)}), got [{s.min()}, {s.max()}].")
            c = self._style_table[s, rng.integers(0, self._style_counts[s])]
        else:
            c = rng.integers(0, n_cov, size=n)
        c = np.asarray(c, dtype=np.int64)        # each branch made a new array already
        if topic is None:
            tp = self._cover_topic[c]
        else:
            tp = self._per_push(topic, n, full_length, "topic")
            if tp.dtype.kind in "US":
                names = list(self.params.topics)
                bad = sorted(set(tp.tolist()) - set(names))
                if bad:
                    raise ValueError(f"Unknown topic(s) {bad}; topics are {names}.")
                tp = np.array([names.index(x) for x in tp.tolist()], dtype=np.int64)
            elif not np.issubdtype(tp.dtype, np.integer):
                raise ValueError(f"`topic` must hold topic indices or names, got dtype {tp.dtype}.")
            tp = np.array(tp, dtype=np.int64)
            nt = len(self.params.topics)
            if n and (tp.min() < 0 or tp.max() >= nt):
                raise ValueError(f"`topic` indices must lie in [0, {nt - 1}], got "
                                 f"[{tp.min()}, {tp.max()}].")
        if propensity is None:
            pr = np.ones(n)
        else:
            pr = np.array(self._per_push(propensity, n, full_length, "propensity"),
                          dtype=np.float64)
            if n and not np.all((pr > 0) & (pr <= 1)):
                bad = pr[~((pr > 0) & (pr <= 1))][0]
                raise ValueError(f"`propensity` must lie in (0, 1], got {bad!r}.")
        ids = np.arange(self._next_push_id, self._next_push_id + n, dtype=np.int64)
        self._next_push_id += n
        return _PushBatch(users=users, push_id=ids, cover=c, topic=tp, propensity=pr)

    def _deliver(self, b: _PushBatch) -> None:
        """A push batch fires: block opted-out users, collapse the tray, add fatigue, draw
        opt-outs, then seen-now opens; the rest waits in the tray."""
        t = float(self._env.now)
        a = self._acc
        users, pid, cover, topic, prop = b.users, b.push_id, b.cover, b.topic, b.propensity
        blocked = self._opted_out[users]
        if blocked.any():
            a["blocked_user"].append(users[blocked])
            a["blocked_push_id"].append(pid[blocked])
            keep = ~blocked
            users, pid, cover, topic, prop = (users[keep], pid[keep], cover[keep], topic[keep],
                                              prop[keep])
        n = users.size
        if n == 0:
            return
        # -- the tray: an older unseen push was either seen at a session before now, or collapses
        has_old = self._pend_id[users] >= 0
        if has_old.any():
            old = users[has_old]
            t_seen = self._first_session_after(old, self._pend_time[old])
            seen = t_seen < t
            if seen.any():
                self._see_pending(old[seen], t_seen[seen])
            gone = old[~seen]
            if gone.size:
                a["collapsed_push_id"].append(self._pend_id[gone])
                self._pend_id[gone] = -1
        # -- delivery
        self._push_batches += 1
        a["push_user"].append(users)
        a["push_id"].append(pid)
        a["push_cover"].append(cover)
        a["push_topic"].append(topic)
        a["push_time"].append(np.full(n, t))
        a["push_propensity"].append(prop)
        self._last_push[users] = t
        fat = R.add_push_fatigue(self._fatigue[users], self._fatigue_t[users], t,
                                 self.params.fatigue)
        self._fatigue[users] = fat
        self._fatigue_t[users] = t
        rng = self._rng["responses"]
        # -- opt-out (fatigue counted after this push)
        p_out = R.opt_out_probability(fat, self.params.opt_out)
        out = rng.random(n) < p_out
        if out.any():
            ou = users[out]
            a["opt_out_user"].append(ou)
            a["opt_out_push_id"].append(pid[out])
            a["opt_out_time"].append(np.full(ou.size, t))
            self._opted_out[ou] = True
            stay = ~out
            users, pid, cover, topic = users[stay], pid[stay], cover[stay], topic[stay]
            n = users.size
            if n == 0:
                return
        # -- seen at once, or waits in the tray
        how = self._hour_of_week(t)
        rate = self._seg_act[:, how][self._segment[users]] * self._multiplier[users]
        now_seen = rng.random(n) < R.seen_now_probability(rate, self.params.open.glance_hours)
        if now_seen.any():
            self._try_open(users[now_seen], pid[now_seen], cover[now_seen], topic[now_seen],
                           np.full(int(now_seen.sum()), t), np.zeros(int(now_seen.sum())))
        wait = ~now_seen
        if wait.any():
            wu = users[wait]
            self._pend_id[wu] = pid[wait]
            self._pend_time[wu] = t
            self._pend_cover[wu] = cover[wait]
            self._pend_topic[wu] = topic[wait]

    def _see_pending(self, users: np.ndarray, t_seen: np.ndarray) -> None:
        """Users see the push waiting in their tray at ``t_seen``; it may be opened."""
        pid = self._pend_id[users]
        delay = t_seen - self._pend_time[users]
        cover = self._pend_cover[users]
        topic = self._pend_topic[users]
        self._pend_id[users] = -1
        self._try_open(users, pid, cover, topic, t_seen, delay)

    def _try_open(self, users: np.ndarray, pid: np.ndarray, cover: np.ndarray,
                  topic: np.ndarray, t: np.ndarray, delay: np.ndarray) -> None:
        """Open draws for seen pushes; opens get dwell, engagement and maybe a survey."""
        p = self.params
        rng = self._rng["responses"]
        seg = self._segment[users]
        how = self._hour_of_week(t)
        taste = self._taste[users]
        feats = self._features[cover]
        match = np.einsum("ij,ij->i", taste, feats)
        aff = self._topic_aff[users, topic]
        fat = R.fatigue_at(self._fatigue[users], self._fatigue_t[users], t,
                           p.fatigue.half_life_h)
        prob = R.open_probability(self._seg_intercept[seg], self._rel_act_table[seg, how], match,
                                  self._quality[cover], aff, fat, delay, p.open)
        opened = rng.random(users.size) < prob
        if not opened.any():
            return
        users, pid, cover, topic, t, delay = (users[opened], pid[opened], cover[opened],
                                              topic[opened], t[opened], delay[opened])
        seg, match, aff, fat = seg[opened], match[opened], aff[opened], fat[opened]
        m = users.size
        rel = match + aff
        dwell = R.draw_dwell(self._seg_dwell_mu[seg], self._seg_dwell_sigma[seg], rel, p.dwell,
                             rng)
        like, share, comment = R.draw_engagement(rel, p.engagement, rng)
        sat = np.zeros(m, dtype=np.int8)
        surveyed = rng.random(m) < p.satisfaction.survey_rate
        if surveyed.any():
            sat[surveyed] = R.draw_satisfaction(rel[surveyed], dwell[surveyed], fat[surveyed],
                                                p.satisfaction, rng)
        a = self._acc
        self._open_batches += 1
        a["open_user"].append(users)
        a["open_push_id"].append(pid)
        a["open_cover"].append(cover)
        a["open_topic"].append(topic)
        a["open_time"].append(np.asarray(t, dtype=np.float64))
        a["open_delay_h"].append(np.asarray(delay, dtype=np.float64))
        a["open_dwell_s"].append(dwell)
        a["open_like"].append(like)
        a["open_share"].append(share)
        a["open_comment"].append(comment)
        a["open_satisfaction"].append(sat)
        np.maximum.at(self._last_open, users, np.asarray(t, dtype=np.float64))

    # ============================================================================ stepping
    def step(self, push: Any = None, style: Any = None, cover: Any = None, topic: Any = None,
             propensity: Any = None) -> SlotOutcome:
        """Push (optionally) at the start of the coming slot, then advance the clock one slot.

        Parameters
        ----------
        push : array_like, optional
            Boolean mask ``(n_users,)`` or index array of the users to push now.
        style, cover, topic, propensity : optional
            As in :meth:`schedule_push`: a scalar, one value per pushed user, or (with a mask)
            one value per user of which the pushed users' are used.

        Returns
        -------
        SlotOutcome
            Everything that happened in the slot.
        """
        if self._k is not None:
            self._k_out()
        if self._lean:
            lean_style = self._lean_style(push, style, cover, topic, propensity)
            if lean_style is not None:
                self._lean_step(lean_style)
                return self.last_outcome
            self._leave_lean()
        if push is not None:
            users = self._as_user_index(push, "push")
            mask = np.asarray(push) if np.asarray(push).dtype == bool else None
            if users.size:
                batch = self._make_batch(users, style, cover, topic, propensity, mask)
                ev = self._env.timeout(0)
                ev.callbacks.append(lambda _ev, b=batch: self._deliver(b))
        elif any(x is not None for x in (style, cover, topic, propensity)):
            raise ValueError("`style`, `cover`, `topic` or `propensity` given without `push`; "
                             "pass `push` (a mask or user indices) to push.")
        done = self._slot_done
        return self._env.run(until=done)

    # ============================================================================ lean path
    # One user, pushes only at slot starts -- what the single-user environments do -- runs
    # here without SimPy: the same model, the same random streams drawn in the same order and
    # the same floating-point operations as the engine (numpy's own exp/log on scalars, which
    # give the same bits as on arrays), in Python scalars, tens of times faster.
    # tests/envs/test_lean_path.py checks that both paths give bit-identical outcomes. Anything
    # else (schedule_push, covers or topics given, replace_users, reading `env`) starts the
    # engine from the lean state and goes on there.
    #
    # The user's state lives in Python numbers (`_lf` fatigue, `_lpid` the tray, `_lp24` the
    # windows, ...: _lean_init) and is written to the per-user arrays by _lean_sync whenever
    # those are read (observe, hidden_state, pickling, the hand-over to the engine). A lean
    # slot leaves its events in `_l_slot` (start, end, push, blocked, collapsed, opens,
    # opt-out, sessions); its SlotOutcome is built from them only when asked for (step(),
    # advance(), last_outcome), so step_user() / advance_user() allocate no arrays.

    def _lean_style(self, push: Any, style: Any, cover: Any, topic: Any, propensity: Any
                    ) -> int | None:
        """What the lean path makes of a step's arguments: -1 no push, -2 a push with a
        cover drawn from the whole bank, k >= 0 a push of style k; None: not for the lean
        path (the engine validates and runs it)."""
        if cover is not None or topic is not None or propensity is not None:
            return None
        if push is None:
            return -1 if style is None else None
        if type(push) is np.ndarray and push.shape == (1,):
            if push.dtype == bool:
                pushed = bool(push[0])
            elif push.dtype.kind in "iu" and push[0] == 0:
                pushed = True
            else:
                return None
        else:
            pushed = self._as_user_index(push, "push").size > 0
        if not pushed:
            return -1
        if style is None:
            return -2
        if isinstance(style, str):
            names = self.params.styles
            return names.index(style) if style in names else None
        if type(style) is np.ndarray and style.shape == (1,):
            style = style[0]
        if isinstance(style, (int, np.integer)) and not isinstance(style, bool) \
                and 0 <= style < len(self._style_counts):
            return int(style)
        return None

    def _leave_lean(self) -> None:
        """Hand the lean state to the SimPy engine (from now on this population uses it)."""
        if not self._lean:
            return
        if self._k is not None:
            self._k_out()
        self._lean_outcome_now()
        self._lean_sync()
        self._lean_sync_actions()
        self._lean_sync_drift()
        self._lean = False
        if self._clock_started:
            if self._l_count:
                self._act_users = np.zeros(1, dtype=np.int64)
                self._act_counts = np.array([self._l_count], dtype=np.int64)
                self._act_j = np.array([self._l_j], dtype=np.int64)
                self._act_last = np.array([self._l_last], dtype=np.float64)
            else:
                self._act_users = np.zeros(0, dtype=np.int64)
                self._act_counts = np.zeros(0, dtype=np.int64)
                self._act_j = np.zeros(0, dtype=np.int64)
                self._act_last = np.zeros(0, dtype=np.float64)
        records: dict[int, _WindowRecord] = {}

        def record(r: tuple[float, int, int, float, int]) -> _WindowRecord:
            if id(r) not in records:
                start, pushes, opens, dwell, sessions = r
                one = np.zeros(1, dtype=np.int64)
                records[id(r)] = _WindowRecord(
                    start, one if pushes else _I64, np.array([pushes] if pushes else [],
                                                             dtype=np.int64),
                    one if opens else _I64, np.array([opens] if opens else [], dtype=np.int64),
                    np.array([dwell] if opens else [], dtype=np.float64),
                    one if sessions else _I64,
                    np.array([sessions] if sessions else [], dtype=np.int64))
            return records[id(r)]

        self._win24 = deque(record(r) for r in self._win24)
        self._win7 = deque(record(r) for r in self._win7)
        self._start_engine(self._lean_now, resume=self._clock_started)

    def _lean_init(self) -> None:
        """The lean state at hour 0: the one user's state as Python numbers (written to the
        arrays by :meth:`_lean_sync`) and constants of the user."""
        self._lf, self._lft = 0.0, -math.inf            # fatigue, and when it was set
        self._lout = False                              # opted out
        self._lpid, self._lpt, self._lpc, self._lptp = -1, 0.0, 0, 0   # the tray's push
        self._llp = self._llo = -math.inf               # last push, last open
        self._lp24 = self._lp7 = self._lo24 = self._lo7 = self._ls24 = 0
        self._ld24 = self._ld7 = 0.0
        seg = self._lseg = int(self._segment[0])
        self._lmult = float(self._multiplier[0])
        self._l_open_base = self._open_base[seg]
        self._l_seen = [None] * HOURS_PER_WEEK          # seen-now probability by hour of week
        self._l_dwell_mu = float(self._seg_dwell_mu[seg])
        self._l_dwell_sigma = float(self._seg_dwell_sigma[seg])
        p = self.params
        self._l_consts = (p.fatigue.half_life_h, p.fatigue.increment, p.opt_out.base_hazard,
                          p.opt_out.fatigue_coef, p.open.glance_hours)
        om, em, sm = p.open, p.engagement, p.satisfaction
        self._l_open_consts = (om.beta_taste, om.beta_quality, om.beta_topic, om.beta_fatigue,
                               om.stale_tau_h)
        self._l_response_consts = (p.dwell.relevance_coef, em.relevance_coef, em.like_intercept,
                                   em.share_intercept, em.comment_intercept, sm.survey_rate,
                                   sm.relevance_coef, sm.dwell_coef, sm.fatigue_coef,
                                   tuple(sm.cutpoints))
        self._l_tt: np.ndarray | None = None     # taste and topic affinity (_lean_drift)
        self._l_noise: np.ndarray | None = None  # the drift draws of the coming days, scaled
        self._l_noise_pos = 0                    # the next day's row
        self._l_noise_from: dict | None = None   # the drift stream's state before them
        self._la_words: list[int] | None = None  # 64-bit words of the actions stream
        self._la_pos = 0                         # the next one
        self._la_half: int | None = None         # the upper half of the last one, not used yet
        self._la_from: dict | None = None        # the stream's state before the words

    def _lean_sync(self) -> None:
        """Write the lean state into the per-user arrays (for the views, pickling and the
        hand-over to the engine)."""
        if not self._lean:
            return
        if self._k is not None:
            self._k_out()
        self._fatigue[0], self._fatigue_t[0], self._opted_out[0] = self._lf, self._lft, self._lout
        self._pend_id[0], self._pend_time[0] = self._lpid, self._lpt
        self._pend_cover[0], self._pend_topic[0] = self._lpc, self._lptp
        self._last_push[0], self._last_open[0] = self._llp, self._llo
        self._push24[0], self._push7[0], self._open24[0] = self._lp24, self._lp7, self._lo24
        self._open7[0], self._dwell24[0], self._dwell7[0] = self._lo7, self._ld24, self._ld7
        self._sess24[0] = self._ls24

    def _lean_begin_slot(self) -> None:
        self._clock_started = True
        self._slot_start = self._lean_now
        pos = self._sess_buf_pos
        if pos < len(self._sess_buf):                   # _single_user_sessions, inlined
            self._l_count = self._sess_buf[pos]
            self._sess_buf_pos = pos + 1
        else:
            self._l_count = self._single_user_sessions(self._slot_of_week(self._slot_number))
        self._l_j = 0
        self._l_last = 0.0

    def _lean_step(self, code: int) -> None:
        """One slot of the one-user population (see :meth:`_lean_style` for ``code``); its
        events are left in ``_l_push``, ``_l_open``, ... and ``_l_slot``."""
        if not self._clock_started:
            self._lean_begin_slot()
        t = self._lean_now
        # At most one push, one open and one opt-out per slot here: a push at the slot's start
        # collapses an unseen older one (it cannot have been seen before the slot began), so
        # only one push can be opened in the slot.
        self._l_push = self._l_open = self._l_optout = None
        self._l_blocked = self._l_collapsed = -1
        if code != -1:
            self._lean_deliver(code, t)
        end = t + self.slot_hours
        self._lean_now = end
        count = self._l_count
        if count and self._lpid >= 0:
            t_seen = self._lean_first_session_after(self._lpt)
            if t_seen != math.inf:
                self._lean_see_pending(t_seen)
        push, opened = self._l_push, self._l_open
        # the 24 h / 7 day windows (_update_windows): records only for slots that add to them
        if push is not None:
            self._lp24 += 1
            self._lp7 += 1
        if opened is not None:
            dwell = opened[5]
            self._lo24 += 1
            self._lo7 += 1
            self._ld24 += dwell
            self._ld7 += dwell
            rec = (t, 1 if push is not None else 0, 1, dwell, count)
            self._win7.append(rec)
        else:
            rec = (t, 1 if push is not None else 0, 0, 0.0, count)
            if push is not None:
                self._win7.append(rec)
        if count:
            self._ls24 += count
        if count or push is not None or opened is not None:
            self._win24.append(rec)
        self._lean_expire(end)
        self._l_slot = (t, end, push, self._l_blocked, self._l_collapsed,
                        () if opened is None else (opened,), self._l_optout, count)
        self._last_outcome = None
        sn = self._slot_number = self._slot_number + 1
        if sn % self._spd == 0:
            self._lean_drift()
        # _lean_begin_slot, inlined
        self._slot_start = end
        pos = self._sess_buf_pos
        if pos < len(self._sess_buf):
            self._l_count = self._sess_buf[pos]
            self._sess_buf_pos = pos + 1
        else:
            self._l_count = self._single_user_sessions(self._slot_of_week(sn))
        self._l_j = 0
        self._l_last = 0.0

    def _lean_offset_to_frac(self, offset: float) -> float:
        knots = self._any_knots and self._slot_knots[self._slot_of_week(self._slot_number)]
        if not knots:
            return offset / self.slot_hours
        return float(np.interp(offset, knots[0], knots[1][self._lseg]))

    def _lean_frac_to_offset(self, frac: float) -> float:
        knots = self._any_knots and self._slot_knots[self._slot_of_week(self._slot_number)]
        if not knots:
            return frac * self.slot_hours
        return float(np.interp(frac, knots[1][self._lseg], knots[0]))

    def _lean_first_session_after(self, after: float) -> float:
        """:meth:`_first_session_after` for the one user."""
        k = self._l_count
        if k == 0:
            return math.inf
        offset = after - self._slot_start
        if offset < 0:
            thr = -1.0
        elif self._any_knots:
            thr = self._lean_offset_to_frac(offset)
        else:
            thr = offset / self.slot_hours
        j, last = self._l_j, self._l_last
        if (j == 0 or last <= thr) and j < k:
            random = self._rng["session_times"].random
            while True:
                v = 1.0 - random()
                last = last + (1.0 - last) * -float(_EXPM1(float(_LOG(v)) / (k - j)))
                j += 1
                if not (last <= thr and j < k):
                    break
            self._l_j, self._l_last = j, last
        if j > 0 and last > thr:
            if self._any_knots:
                return self._slot_start + self._lean_frac_to_offset(last)
            return self._slot_start + last * self.slot_hours
        return math.inf

    # The engine draws a cover with ``actions.integers(0, k)`` (one element per push). For k
    # below 2**32 numpy's algorithm is Lemire's: with x the stream's next 32-bit word
    # (PCG64 hands out the two halves of a 64-bit output in turn), m = x * k is accepted when
    # its low 32 bits are not below (2**32 - k) % k, and the draw is m >> 32. The lean path
    # does the same in Python on 64-bit outputs taken from the stream in blocks, and puts the
    # stream back where numpy would have left it when anything else is to draw from it
    # (:meth:`_lean_sync_actions`); tests/envs/test_lean_path.py checks both against numpy.

    def _lean_integer(self, k: int) -> int:
        """``actions.integers(0, k)`` (``1 <= k < 2**32``) from the lean word buffer."""
        if k == 1:
            return 0                                    # numpy draws nothing either
        half = self._la_half                            # _lean_word32's common cases, inlined
        if half is not None:
            self._la_half = None
            m = half * k
        elif self._la_words is not None and self._la_pos < len(self._la_words):
            w = self._la_words[self._la_pos]
            self._la_pos += 1
            self._la_half = w >> 32
            m = (w & 0xFFFFFFFF) * k
        else:
            m = self._lean_word32() * k
        low = m & 0xFFFFFFFF
        if low < k:
            threshold = (0xFFFFFFFF - (k - 1)) % k
            while low < threshold:
                m = self._lean_word32() * k
                low = m & 0xFFFFFFFF
        return m >> 32

    def _lean_word32(self) -> int:
        """The actions stream's next 32-bit word (PCG64's ``next_uint32``)."""
        half = self._la_half
        if half is not None:
            self._la_half = None
            return half
        words = self._la_words
        if words is None or self._la_pos == len(words):
            self._lean_sync_actions()
            bg = self._rng["actions"].bit_generator
            state = bg.state
            self._la_from = state
            self._la_half = None
            if state["has_uint32"]:
                # a half left by numpy (a stream drawn from before the lean path used it)
                half = int(state["uinteger"])
                return half
            words = self._la_words = bg.random_raw(64).tolist()
            self._la_pos = 0
        w = words[self._la_pos]
        self._la_pos += 1
        self._la_half = w >> 32
        return w & 0xFFFFFFFF

    def _lean_sync_actions(self) -> None:
        """Leave the actions stream where numpy's own draws would have: rewound to where the
        word buffer was taken, the words used drawn again, the unused half kept as numpy
        keeps it."""
        if self._la_words is None and self._la_from is None:
            return
        bg = self._rng["actions"].bit_generator
        start = self._la_from
        bg.state = start
        used = self._la_pos if self._la_words is not None else 0
        if used:
            bg.random_raw(used)
        state = bg.state
        # numpy keeps the upper half of the last word it split (used or not) in `uinteger`
        state["has_uint32"] = 0 if self._la_half is None else 1
        state["uinteger"] = self._la_words[used - 1] >> 32 if used else start["uinteger"]
        bg.state = state
        self._la_words = self._la_from = self._la_half = None
        self._la_pos = 0

    def _lean_fatigue_at(self, t: float) -> float:
        f = self._lf
        if f == 0.0:
            return 0.0
        return f * float(np.exp2(-(t - self._lft) / self.params.fatigue.half_life_h))

    def _lean_deliver(self, code: int, t: float) -> None:
        """:meth:`_make_batch` then :meth:`_deliver` for a one-user push at ``t``."""
        if code == -2:
            c = self._lean_integer(len(self._quality_list))
        else:
            c = self._style_list[code][self._lean_integer(self._style_len[code])]
        tp = self._cover_topic_list[c]
        pid = self._next_push_id
        self._next_push_id = pid + 1
        if self._lout:
            self._l_blocked = pid
            return
        if self._lpid >= 0:
            t_seen = self._lean_first_session_after(self._lpt)
            if t_seen < t:
                self._lean_see_pending(t_seen)
            else:
                self._l_collapsed = self._lpid
                self._lpid = -1
        self._l_push = (pid, c, tp)
        self._llp = t
        half_life, increment, base_hazard, hazard_coef, glance = self._l_consts
        f = self._lf                                     # _lean_fatigue_at, inlined
        fat = (0.0 if f == 0.0 else f * float(_EXP2(-(t - self._lft) / half_life))) \
            + increment
        self._lf, self._lft = fat, t
        rng = self._rng["responses"]
        if rng.random() < -float(_EXPM1(-(base_hazard + hazard_coef * fat))):
            self._l_optout = (pid, t)
            self._lout = True
            return
        how = math.floor(self._week0_h + t + 1e-9) % HOURS_PER_WEEK
        p_seen = self._l_seen[how]
        if p_seen is None:
            rate = self._seg_act[self._lseg, how] * self._lmult
            p_seen = self._l_seen[how] = -float(np.expm1(-rate * glance))
        if rng.random() < p_seen:
            self._lean_try_open(pid, c, tp, t, 0.0)
        else:
            self._lpid, self._lpt, self._lpc, self._lptp = pid, t, c, tp

    def _lean_see_pending(self, t_seen: float) -> None:
        pid = self._lpid
        self._lpid = -1
        self._lean_try_open(pid, self._lpc, self._lptp, t_seen, t_seen - self._lpt)

    @staticmethod
    def _lean_sigmoid(x: float) -> float:
        e = float(np.exp(-abs(x)))
        return 1.0 / (1.0 + e) if x >= 0 else e / (1.0 + e)

    def _lean_open_probability(self, cover: int, topic: int, t: float, delay: float
                               ) -> tuple[float, float, float, float]:
        """:func:`response.open_probability` for the one user: (probability, taste match,
        topic affinity, fatigue at ``t``)."""
        how = math.floor(self._week0_h + t + 1e-9) % HOURS_PER_WEEK
        # np.einsum's own kernel without its Python wrapper: the same numbers as the engine's
        match = float(_c_einsum("ij,ij->i", self._taste, self._feature_rows[cover])[0])
        aff = float(self._topic_aff[0, topic])
        b_taste, b_quality, b_topic, b_fatigue, tau = self._l_open_consts
        f = self._lf                                     # _lean_fatigue_at, inlined
        fat = 0.0 if f == 0.0 else f * float(_EXP2(-(t - self._lft) / self._l_consts[0]))
        # _open_base: intercept + beta_activity * relative activity, the first terms of the sum
        x = (self._l_open_base[how] + b_taste * match
             + b_quality * (self._quality_list[cover] - 0.5) + b_topic * aff
             - b_fatigue * fat)
        e = float(_EXP(-abs(x)))                         # _lean_sigmoid, inlined
        p = 1.0 / (1.0 + e) if x >= 0 else e / (1.0 + e)
        if delay:        # seen at once the staleness factor is exp(-0) = 1: the same number
            p = p * float(_EXP(-delay / tau))
        return p, match, aff, fat

    def _lean_try_open(self, pid: int, cover: int, topic: int, t: float, delay: float) -> None:
        """:meth:`_try_open` for the one user."""
        rng = self._rng["responses"]
        prob, match, aff, fat = self._lean_open_probability(cover, topic, t, delay)
        if not rng.random() < prob:
            return
        (dwell_coef, eng_coef, like_icpt, share_icpt, comment_icpt, survey_rate, sat_rel,
         sat_dwell, sat_fatigue, cutpoints) = self._l_response_consts
        rel = match + aff
        dwell = float(_EXP(self._l_dwell_mu + dwell_coef * rel
                           + self._l_dwell_sigma * rng.standard_normal()))
        r = eng_coef * rel
        sigmoid = self._lean_sigmoid
        p_like, p_share, p_comment = (sigmoid(like_icpt + r), sigmoid(share_icpt + r),
                                      sigmoid(comment_icpt + r))
        random = rng.random
        like, share, comment = random() < p_like, random() < p_share, random() < p_comment
        sat = 0
        if random() < survey_rate:
            eta = (sat_rel * rel + sat_dwell * float(np.log(dwell / 60.0))
                   - sat_fatigue * fat)
            latent = eta + rng.logistic()
            sat = 1 + sum(1 for cut in cutpoints if cut < latent)
        self._l_open = (pid, cover, topic, t, delay, dwell, like, share, comment, sat)
        if t > self._llo:
            self._llo = t

    def _lean_outcome_now(self) -> None:
        """Build the :class:`SlotOutcome` of the last lean slot (or span), if not done yet."""
        if self._k is not None:
            self._k_out()
        if self._l_slot is not None:
            self._last_outcome = self._lean_outcome(*self._l_slot)
            self._l_slot = None

    @staticmethod
    def _lean_outcome(start: float, end: float, push: tuple | None, blocked: int,
                      collapsed: int, opens: tuple, optout: tuple | None, sessions: int
                      ) -> SlotOutcome:
        """A lean slot's (or span's) :class:`SlotOutcome`, built without the dataclass' slow
        __init__."""
        d = dict(_EMPTY_OUTCOME)
        d["start_h"], d["end_h"] = start, end
        if push is not None:
            pid, c, tp = push
            d["push_user"] = _USER0
            d["push_id"] = np.array([pid], dtype=np.int64)
            d["push_cover"] = np.array([c], dtype=np.int64)
            d["push_topic"] = np.array([tp], dtype=np.int64)
            d["push_time"] = np.array([start])
            d["push_propensity"] = _ONE_F64
        if blocked >= 0:
            d["blocked_user"] = _USER0
            d["blocked_push_id"] = np.array([blocked], dtype=np.int64)
        if collapsed >= 0:
            d["collapsed_push_id"] = np.array([collapsed], dtype=np.int64)
        if opens:
            cols = list(zip(*opens, strict=True))
            d["open_user"] = np.zeros(len(opens), dtype=np.int64)
            for name, col, dtype in zip(
                    ("open_push_id", "open_cover", "open_topic", "open_time", "open_delay_h",
                     "open_dwell_s", "open_like", "open_share", "open_comment",
                     "open_satisfaction"), cols,
                    (np.int64, np.int64, np.int64, np.float64, np.float64, np.float64, bool,
                     bool, bool, np.int8), strict=True):
                d[name] = np.array(col, dtype=dtype)
        if optout is not None:
            d["opt_out_user"] = _USER0
            d["opt_out_push_id"] = np.array([optout[0]], dtype=np.int64)
            d["opt_out_time"] = np.array([optout[1]], dtype=np.float64)
        if sessions:
            d["session_user"] = _USER0
            d["session_count"] = np.array([sessions], dtype=np.int64)
        out = object.__new__(SlotOutcome)
        out.__dict__.update(d)
        return out

    def _lean_expire(self, now: float) -> None:
        """Drop the window records that left the 24 h / 7 day windows at ``now`` (records
        are tuples ``(start, pushes, opens, dwell, sessions)`` while the population is
        lean)."""
        win = self._win24
        cut = now - 24.0 - 1e-9
        while win and win[0][0] < cut:
            _, pushes, opens, dwell, sessions = win.popleft()
            if pushes:
                self._lp24 -= pushes
            if opens:
                self._lo24 -= opens
                self._ld24 -= dwell
                if self._lo24 == 0:
                    self._ld24 = 0.0
            if sessions:
                self._ls24 -= sessions
        win = self._win7
        cut = now - 168.0 - 1e-9
        while win and win[0][0] < cut:
            _, pushes, opens, dwell, _ = win.popleft()
            if pushes:
                self._lp7 -= pushes
            if opens:
                self._lo7 -= opens
                self._ld7 -= dwell
                if self._lo7 == 0:
                    self._ld7 = 0.0

    # ============================================================================ compiled
    # With numba installed (the `fast` extra), the single-user environments' calls --
    # step_user, advance_user (up to a day of slots) and step_user_span -- run the lean path
    # compiled (covercast.simulators._kernel): the same draws and operations, bit-identical
    # outcomes (tests/envs/test_kernel.py). Its state lives in arrays while it runs (_k_in);
    # anything else that reads the lean state moves it back first (_k_out).

    def _k_possible(self) -> bool:
        """Whether the compiled path can run this population while it is lean: one user,
        slots within an hour's rate (no knots), and numba loads."""
        return self.n_users == 1 and not self._any_knots and K.load() is not None

    def _k_consts(self) -> tuple:
        """The population's constants for the kernel (``C``, ``I``, features), made once."""
        if self._kc is None:
            p = self.params
            om, em, sm = p.open, p.engagement, p.satisfaction
            cut = np.asarray(sm.cutpoints, dtype=np.float64)
            C = np.zeros(K.C_CUT + cut.size + self._quality.size)
            C[:K.C_CUT - 2] = (
                self.slot_hours, self._week0_h, self._spd, p.fatigue.half_life_h,
                p.fatigue.increment, p.opt_out.base_hazard, p.opt_out.fatigue_coef,
                p.open.glance_hours, om.beta_taste, om.beta_quality, om.beta_topic,
                om.beta_fatigue, om.stale_tau_h, p.dwell.relevance_coef, em.relevance_coef,
                em.like_intercept, em.share_intercept, em.comment_intercept, sm.survey_rate,
                sm.relevance_coef, sm.dwell_coef, sm.fatigue_coef, 0.0, 0.0, 0.0,
                self._features.shape[1], cut.size, self._quality.size,
                8 * self._spd + 4, 0)
            C[K.C_CUT:K.C_CUT + cut.size] = cut
            C[K.C_CUT + cut.size:] = self._quality
            n_style, maxk = self._style_table.shape
            tables = np.concatenate(([n_style, maxk], self._style_table.ravel(),
                                     self._style_counts, self._cover_topic)).astype(np.int64)
            self._kc = (C, tables, np.ascontiguousarray(self._features, dtype=np.float64), {})
        return self._kc

    def _k_in(self) -> _KState:
        """Move the lean state into the kernel's arrays."""
        impl = K.load()
        self._lean_sync_actions()               # the kernel draws covers from the stream itself
        k = _KState()
        k.run = impl.run
        C, k.I, k.FE, _ = self._k_consts()
        C = k.C = C.copy()
        C[K.C_LANES] = impl.lanes()
        tt = self._l_tt if self._l_tt is not None else self._lean_drift_init()
        if tt is not None:
            C[K.C_HAS_DRIFT], C[K.C_PULL] = 1.0, self._l_pull
            C[K.C_HAS_NOISE] = 1.0 if self._l_sd is not None else 0.0
            self._taste, self._topic_aff = tt[None, :self._l_split], tt[None, self._l_split:]
        else:
            tt = np.concatenate((self._taste[0], self._topic_aff[0]))
        k.TT = tt
        seg = self._lseg
        # the segment's part of F, made once per segment
        templates = self._kc[3]
        F = templates.get(seg)
        if F is None:
            F = templates[seg] = np.zeros(K.F_TTM + tt.size)
            F[K.F_DWELL_MU], F[K.F_DWELL_SIGMA] = self._l_dwell_mu, self._l_dwell_sigma
            F[K.F_SEEN:K.F_SEEN + HOURS_PER_WEEK] = math.nan
            F[K.F_OPEN_BASE:K.F_OPEN_BASE + HOURS_PER_WEEK] = self._l_open_base
            F[K.F_ACT:K.F_ACT + HOURS_PER_WEEK] = self._seg_act[seg]
            F[K.F_TTM:] = np.concatenate((self._seg_taste_mean[seg],
                                          self._seg_topic_mean[seg]))
        F = k.F = F.copy()
        F[:K.F_H24] = (self._lf, self._lft, self._lout, self._lpid, self._lpt, self._lpc,
                       self._lptp, self._llp, self._llo, self._lp24, self._lp7, self._lo24,
                       self._lo7, self._ls24, self._ld24, self._ld7, self._lean_now,
                       self._slot_start, self._slot_number, self._l_count, self._l_j,
                       self._l_last, self._next_push_id, self._clock_started,
                       self._sess_buf_pos, len(self._sess_buf), self._l_noise_pos,
                       0 if self._l_noise is None else len(self._l_noise))
        F[K.F_LMULT] = self._lmult
        if self._l_seen.count(None) != HOURS_PER_WEEK:
            F[K.F_SEEN:K.F_SEEN + HOURS_PER_WEEK] = [math.nan if v is None else v
                                                      for v in self._l_seen]
        # the window records, tagged so that a record in both windows stays one record
        W = k.W = np.empty((2, int(C[K.C_CAP]), 6))
        if self._win24 or self._win7:
            ids: dict[int, int] = {}
            for w, win in enumerate((self._win24, self._win7)):
                for i, r in enumerate(win):
                    W[w, i, :5] = r
                    W[w, i, 5] = ids.setdefault(id(r), len(ids))
            F[K.F_N24], F[K.F_N7], F[K.F_RID] = len(self._win24), len(self._win7), len(ids)
        k.SB = np.array(self._sess_buf, dtype=np.int64)
        if self._sess_buf:
            state, lam = self._sess_buf_from
            k.sess.append((0, len(self._sess_buf), state, lam))
        # the slot number the next session count is for
        k.sess_slot = self._slot_number + 1 if self._clock_started else self._slot_number
        k.sess_slot -= self._sess_buf_pos
        if self._l_noise is not None:
            k.NZ = self._l_noise.copy()
            k.noise.append((0, len(k.NZ), self._l_noise_from))
        else:
            k.NZ = np.zeros((0, tt.size))
        k.M = K.math_addresses()
        k.rngs = (self._rng["session_times"], self._rng["responses"], self._rng["actions"])
        st = K.bitgen_addresses(k.rngs[0])
        rs = K.bitgen_addresses(k.rngs[1])
        ac = K.bitgen_addresses(k.rngs[2])
        k.M[K.M_ST_STATE:] = (st[0], st[3], rs[0], rs[3], rs[1], ac[0], ac[2])
        k.O = np.zeros(K.O_SESS + self._spd + 1)
        self._l_slot = None
        self._k = k
        self._k_refill(self._spd + 1)
        return k

    #: Slots of session counts the compiled path draws at a time (whole weeks, at least one).
    _K_SESSION_SLOTS = 504

    def _k_refill(self, n_slots: int) -> None:
        """Draw the session counts and drift noise the next ``n_slots`` slots may need, the
        lean path's blocks (weeks of slots, :data:`_DRIFT_BLOCK` days) ahead of time: the
        same numbers, since nothing else draws from those streams meanwhile. Several weeks
        of counts are drawn in one call (``poisson`` over an array draws its elements in
        turn); the stream's state between two of them is found again only if needed
        (:meth:`_k_sess_state`)."""
        k = self._k
        F = k.F
        pos, slen = int(F[K.F_SPOS]), int(F[K.F_SLEN])
        spw = self._slots_per_week
        weeks = max(1, self._K_SESSION_SLOTS // spw)
        while slen - pos < n_slots + 1:
            sw = self._slot_of_week(k.sess_slot + slen)
            lam = self._segment_week_rates(self._lseg, sw) * self._multiplier[0]
            rng = self._rng["sessions"]
            state = rng.bit_generator.state
            counts = rng.poisson(np.tile(lam, weeks) if weeks > 1 else lam)
            # keep the week the next count is in and the ones after it
            first = next((i for i, s in enumerate(k.sess) if s[1] > pos), len(k.sess))
            if first < len(k.sess):
                self._k_sess_state(k, first)
            keep = k.sess[first:]
            drop = keep[0][0] if keep else slen
            k.SB = np.concatenate((k.SB[drop:], counts))
            k.sess = [(a - drop, b - drop, st, lm) for a, b, st, lm in keep]
            at = slen - drop
            for w in range(weeks):
                k.sess.append((at + w * spw, at + (w + 1) * spw, state if w == 0 else None,
                               lam))
            k.sess_slot += drop
            pos, slen = pos - drop, at + counts.size
        F[K.F_SPOS], F[K.F_SLEN] = pos, slen
        if k.C[K.C_HAS_NOISE]:
            pos, nlen = int(F[K.F_NPOS]), int(F[K.F_NLEN])
            while nlen - pos < n_slots // self._spd + 1:
                rng = self._rng["drift"]
                state = rng.bit_generator.state
                noise = self._l_sd * rng.standard_normal((_DRIFT_BLOCK, k.TT.size))
                keep = [s for s in k.noise if s[1] > pos]
                drop = keep[0][0] if keep else nlen
                k.NZ = np.concatenate((k.NZ[drop:], noise))
                k.noise = [(a - drop, b - drop, st) for a, b, st in keep]
                k.noise.append((nlen - drop, nlen - drop + len(noise), state))
                pos, nlen = pos - drop, nlen - drop + len(noise)
            F[K.F_NPOS], F[K.F_NLEN] = pos, nlen

    def _k_sess_state(self, k: _KState, i: int) -> dict:
        """The ``sessions`` stream's state before the compiled path's week ``i`` of counts
        was drawn: the next week of a multi-week draw gets it by drawing the week before it
        again from that week's state."""
        a, b, state, lam = k.sess[i]
        if state is None:
            before = self._k_sess_state(k, i - 1)
            rng = self._rng["sessions"]
            now = rng.bit_generator.state
            rng.bit_generator.state = before
            rng.poisson(k.sess[i - 1][3])
            state = rng.bit_generator.state
            rng.bit_generator.state = now
            k.sess[i] = (a, b, state, lam)
        return state

    def _k_call(self, code: int, n_quiet: int) -> tuple[tuple, tuple | None, list[int]]:
        """Run the kernel: a slot with push ``code`` (-3: none) then ``n_quiet`` quiet slots
        unless the user opted out; returns (the slot's summary, the span's or None, the span's
        session counts)."""
        k = self._k
        if k is None:
            k = self._k_in()
        if k.run(k.F, k.C, k.I, k.M, k.W, k.SB, k.NZ, k.TT, k.FE, k.O, _K_NO_B, _K_NO_OBS, _K_NO_CLOCK,
                 code, n_quiet) < 0:
            self._k_refill((0 if code == -3 else 1) + n_quiet)
            k.run(k.F, k.C, k.I, k.M, k.W, k.SB, k.NZ, k.TT, k.FE, k.O, _K_NO_B, _K_NO_OBS, _K_NO_CLOCK,
                  code, n_quiet)
        o = k.O.tolist()
        k.slot = True
        self._lean_now = o[K.O_OBS]
        self._last_outcome = None
        n = int(o[K.O_STATUS])
        s = o[K.O_PUSH:K.O_SPAN]
        first = (int(s[0]), int(s[1]), int(s[2]), s[3], int(s[4]), int(s[5]), int(s[6]),
                 int(s[7]), s[8], s[9] != 0.0, int(s[10]), int(s[11])) if code != -3 else None
        if not n:
            return first, None, []
        s = o[K.O_SPAN:K.O_LAST]
        span = (0, 0, int(s[2]), s[3], int(s[4]), int(s[5]), int(s[6]), int(s[7]), s[8],
                False, int(s[10]), -1)
        return first, span, [int(c) for c in o[K.O_SESS:K.O_SESS + n]]

    def _k_out(self) -> None:
        """Move the kernel's state back to the lean path's attributes."""
        k = self._k
        self._k = None
        f = k.F.tolist()
        (self._lf, self._lft, lout, lpid, self._lpt, lpc, lptp, self._llp, self._llo, p24, p7,
         o24, o7, s24, self._ld24, self._ld7, self._lean_now, self._slot_start, sn, count, j,
         self._l_last, next_pid, started, spos, slen, npos, nlen) = f[:K.F_H24]
        self._lout, self._lpid, self._lpc, self._lptp = lout != 0.0, int(lpid), int(lpc), \
            int(lptp)
        self._lp24, self._lp7, self._lo24, self._lo7, self._ls24 = (int(p24), int(p7),
                                                                     int(o24), int(o7),
                                                                     int(s24))
        self._slot_number, self._l_count, self._l_j = int(sn), int(count), int(j)
        self._next_push_id, self._clock_started = int(next_pid), started != 0.0
        self._l_seen = [None if v != v else v
                        for v in f[K.F_SEEN:K.F_SEEN + HOURS_PER_WEEK]]
        # the windows: one tuple per record, shared by the two windows
        cap = k.W.shape[1]
        made: dict[float, tuple] = {}
        wins = []
        for w, (h, n) in enumerate(((f[K.F_H24], f[K.F_N24]), (f[K.F_H7], f[K.F_N7]))):
            rows = k.W[w, (int(h) + np.arange(int(n))) % cap].tolist()
            win: deque = deque()
            for start, pushes, opens, dwell, sessions, rid in rows:
                r = made.get(rid)
                if r is None:
                    r = made[rid] = (start, int(pushes), int(opens), dwell, int(sessions))
                win.append(r)
            wins.append(win)
        self._win24, self._win7 = wins
        # the session counts: the week the next count is in, the stream after that week
        spos, slen = int(spos), int(slen)
        if k.sess:
            i = next((i for i, s in enumerate(k.sess) if spos < s[1]), len(k.sess) - 1)
            a, b, _, lam = k.sess[i]
            self._sess_buf = k.SB[a:b].tolist()
            self._sess_buf_pos = spos - a
            self._sess_buf_from = (self._k_sess_state(k, i), lam)
            if i + 1 < len(k.sess):
                self._rng["sessions"].bit_generator.state = self._k_sess_state(k, i + 1)
        else:
            self._sess_buf, self._sess_buf_pos = [], 0
        if k.noise:
            npos = int(npos)
            i = next((i for i, s in enumerate(k.noise) if npos < s[1]), len(k.noise) - 1)
            a, b, state = k.noise[i]
            self._l_noise = k.NZ[a:b]
            self._l_noise_pos = npos - a
            self._l_noise_from = state
            if i + 1 < len(k.noise):
                self._rng["drift"].bit_generator.state = k.noise[i + 1][2]
        if k.slot:
            self._l_slot = self._k_slot(k.O[K.O_LAST:K.O_OBS].tolist())
            self._last_outcome = None

    @staticmethod
    def _k_slot(ev: list[float]) -> tuple:
        """The kernel's record of the last slot (or span) as :meth:`_lean_step` leaves it."""
        push = (int(ev[3]), int(ev[4]), int(ev[5])) if ev[2] else None
        opens: tuple = ()
        if ev[8]:
            opens = ((int(ev[9]), int(ev[10]), int(ev[11]), ev[12], ev[13], ev[14],
                      ev[15] != 0.0, ev[16] != 0.0, ev[17] != 0.0, int(ev[18])),)
        optout = (int(ev[20]), ev[21]) if ev[19] else None
        return (ev[0], ev[1], push, int(ev[6]), int(ev[7]), opens, optout, int(ev[25]))

    def _k_env_step(self, style: int, n_slots: int, B: np.ndarray, OBS: np.ndarray,
                    CK: np.ndarray) -> list[float] | None:
        """The single-user environments' compiled step: :meth:`step_user_span` that also
        records the slots' sessions in the observation's state ``B`` and writes the observation
        to ``OBS`` (see :func:`covercast.simulators._kernel_impl.run`); returns
        ``O[:O_PUSH]`` (status, clock key, the summed summary) as floats, or ``None`` when the
        compiled path cannot run this population (then nothing happened)."""
        k = self._k
        if k is None:
            if not (self._lean and n_slots <= self._spd and self._k_ok):
                return None
            k = self._k_in()
        elif n_slots > self._spd:
            return None
        if k.run(k.F, k.C, k.I, k.M, k.W, k.SB, k.NZ, k.TT, k.FE, k.O, B, OBS, CK, style,
                 n_slots) < 0:
            self._k_refill(1 + n_slots)
            k.run(k.F, k.C, k.I, k.M, k.W, k.SB, k.NZ, k.TT, k.FE, k.O, B, OBS, CK, style,
                  n_slots)
        k.slot = True
        self._last_outcome = None
        report = k.O
        self._lean_now = float(report[K.O_OBS])
        return report[:K.O_PUSH].tolist()

    def step_user_span(self, style: int, n_slots: int) -> tuple[tuple, tuple | None, list[int]]:
        """:meth:`step_user` with ``style``, then, unless the user opted out in that slot,
        :meth:`advance_user` over ``n_slots`` slots (``0``: none), in one call.

        Returns ``(summary, span_summary, sessions)``: the push slot's summary, the span's
        (``None`` when it did not run) and the span's session count per slot.
        """
        if type(n_slots) is not int or n_slots < 0:
            if isinstance(n_slots, bool) or not isinstance(n_slots, (int, np.integer)) \
                    or n_slots < 0:
                raise ValueError(f"`n_slots` must be an integer >= 0, got {n_slots!r}.")
            n_slots = int(n_slots)
        if type(style) is not int or not -1 <= style < len(self._style_len) \
                or self.n_users != 1:
            self._check_step_user(style)
            style = int(style)
        if self._lean and n_slots <= self._spd and (self._k is not None or self._k_ok):
            return self._k_call(style, n_slots)
        s = self.step_user(style)
        if s[9] or not n_slots:
            return s, None, []
        q, sessions = self.advance_user(n_slots)
        return s, q, sessions

    # ============================================================================ one user
    def step_user(self, style: int = -1) -> tuple:
        """:meth:`step` for a one-user population, summed up as Python numbers.

        Parameters
        ----------
        style : int
            Push user 0 at the start of the coming slot with a cover of this style (drawn
            uniformly from the bank's covers of the style), or ``-1``: no push.

        Returns
        -------
        tuple
            ``(pushed, blocked, opened, dwell_s, likes, shares, comments, surveys, sat_sum,
            opted_out, sessions, cover)`` (:data:`USER_SUMMARY_KEYS`): the counts of the
            slot's events, ``sat_sum`` the sum of the answered survey scores, ``opted_out``
            a bool and ``cover`` the delivered push's cover (``-1`` without one). The
            :class:`SlotOutcome` is :attr:`last_outcome`, as after :meth:`step`; the numbers
            are the same either way (the single-user environments' fast path).
        """
        if type(style) is not int or not -1 <= style < len(self._style_len) \
                or self.n_users != 1:
            self._check_step_user(style)
            style = int(style)
        if not self._lean:
            out = self.step(push=_USER0, style=int(style)) if style >= 0 else self.step()
            return _user_summary(out)
        if self._k is not None or self._k_ok:
            return self._k_call(style, 0)[0]
        self._lean_step(style)
        _, _, push, blocked, _, opens, optout, count = self._l_slot
        if opens:
            _, _, _, _, _, dwell, like, share, comment, sat = opens[0]
            return (0 if push is None else 1, 1 if blocked >= 0 else 0, 1, dwell,
                    1 if like else 0, 1 if share else 0, 1 if comment else 0,
                    1 if sat else 0, float(sat), optout is not None, count,
                    -1 if push is None else push[1])
        return (0 if push is None else 1, 1 if blocked >= 0 else 0, 0, 0.0, 0, 0, 0, 0, 0.0,
                optout is not None, count, -1 if push is None else push[1])

    def _check_step_user(self, style: Any) -> None:
        if self.n_users != 1:
            raise ValueError(f"step_user() is for a one-user population; this one has "
                             f"{self.n_users} users (use step()).")
        if isinstance(style, bool) or not isinstance(style, (int, np.integer)) \
                or not -1 <= style < len(self._style_counts):
            raise ValueError(f"`style` must be -1 (no push) or a style index in "
                             f"[0, {len(self._style_counts) - 1}], got {style!r}.")

    def advance_user(self, n_slots: int) -> tuple[tuple, list[int]]:
        """:meth:`advance` for a one-user population: ``(summary, sessions)``, the summary
        as in :meth:`step_user` (``cover`` -1) over the ``n_slots`` slots and the organic
        sessions of each slot as a list of ints."""
        if type(n_slots) is not int or n_slots < 1 or self.n_users != 1:
            if self.n_users != 1:
                raise ValueError(f"advance_user() is for a one-user population; this one has "
                                 f"{self.n_users} users (use advance()).")
            if isinstance(n_slots, bool) or not isinstance(n_slots, (int, np.integer)) \
                    or n_slots < 1:
                raise ValueError(f"`n_slots` must be an integer >= 1, got {n_slots!r}.")
            n_slots = int(n_slots)
        if not self._lean:
            out, sessions = self.advance(n_slots)
            return _user_summary(out), sessions[:, 0].tolist()
        if n_slots <= self._spd and (self._k is not None or self._k_ok):
            _, summary, counts = self._k_call(-3, n_slots)
            return summary, counts
        if self._k is not None:
            self._k_out()
        counts = self._lean_advance(n_slots)
        opens, total = self._l_slot[5], self._l_slot[7]
        if opens:               # at most one: only the push waiting in the tray can be opened
            _, _, _, _, _, dwell, like, share, comment, sat = opens[0]
            summary = (0, 0, 1, dwell, 1 if like else 0, 1 if share else 0,
                       1 if comment else 0, 1 if sat else 0, float(sat), False, total, -1)
        else:
            summary = (0, 0, 0, 0.0, 0, 0, 0, 0, 0.0, False, total, -1)
        return summary, counts

    def advance(self, n_slots: int) -> tuple[SlotOutcome, np.ndarray]:
        """Run ``n_slots`` slots without pushes: the same as ``n_slots`` calls of :meth:`step`
        with no push (identical outcomes), summed up, and much faster for one user.

        Parameters
        ----------
        n_slots : int
            Number of slots, >= 1.

        Returns
        -------
        outcome : SlotOutcome
            What happened over the span ``[now, now + n_slots * slot)``: the events of every
            slot, in time order (e.g. the open of a push seen late from the tray), with
            ``session_user`` / ``session_count`` summed over the span. It is also
            :attr:`last_outcome` afterwards.
        sessions : numpy.ndarray
            Organic sessions per slot and user, shape ``(n_slots, n_users)``.
        """
        if isinstance(n_slots, bool) or not isinstance(n_slots, (int, np.integer)) \
                or n_slots < 1:
            raise ValueError(f"`n_slots` must be an integer >= 1, got {n_slots!r}.")
        n_slots = int(n_slots)
        if self._k is not None:
            self._k_out()
        if self._lean:
            counts = self._lean_advance(n_slots)
            return self.last_outcome, np.array(counts, dtype=np.int64).reshape(n_slots, 1)
        start = self.now
        outs = [self.step() for _ in range(n_slots)]
        sessions = np.zeros((n_slots, self.n_users), dtype=np.int64)
        for k, o in enumerate(outs):
            sessions[k, o.session_user] = o.session_count
        merged = _merge_outcomes(outs, start, sessions.sum(axis=0))
        self._last_outcome = merged
        return merged, sessions

    def _lean_take_sessions(self, first: int, n: int) -> list[int]:
        """The organic sessions of slots ``first .. first + n - 1`` (slot numbers), the next
        ``n`` entries of the session buffer (:meth:`_single_user_sessions`)."""
        pos = self._sess_buf_pos
        out = self._sess_buf[pos:pos + n]
        self._sess_buf_pos = pos + len(out)
        while len(out) < n:
            out.append(self._single_user_sessions(
                (self._week0_slot + first + len(out)) % self._slots_per_week))
            pos = self._sess_buf_pos
            more = self._sess_buf[pos:pos + n - len(out)]
            self._sess_buf_pos = pos + len(more)
            out += more
        return out

    def _lean_times(self, last: int) -> list[float]:
        """Start times (hours) of slots ``0 .. last`` at least: each the previous one plus
        the slot length, the floats the slot-by-slot clock reaches. Kept across resets and
        extended a week of slots at a time."""
        times = self._l_times
        if len(times) <= last:
            more = max(last + 1 - len(times), self._slots_per_week)
            times += islice(accumulate(repeat(self.slot_hours, more), initial=times[-1]), 1,
                            None)
        return times

    def _lean_advance(self, n_slots: int) -> list[int]:
        """:meth:`advance` for the one user; returns the sessions of each slot and leaves the
        span's events in ``_l_slot``.

        Without pushes, a slot can only bring organic sessions and, when a push waits in the
        tray, its open at the user's first session (then the tray is empty: at most one open
        per span). So the span is run in bulk: the slot times (from :meth:`_lean_times`), the
        session counts, and the window records of the slots with sessions; the open (if any)
        at its slot, after the day's drift of the days before it. Expired window records are
        dropped before the open's dwell is added and at the end, which subtracts the same
        records in the same order, relative to the additions, as slot by slot."""
        if not self._clock_started:
            self._lean_begin_slot()
        n = n_slots
        sn = self._slot_number
        times = self._lean_times(sn + n)
        counts = [self._l_count]
        counts += self._lean_take_sessions(sn + 1, n)
        next_count = counts.pop()
        spd = self._spd
        day = (sn // spd + 1) * spd                    # slot number of the next drift
        self._l_push = self._l_optout = self._l_open = None
        self._l_blocked = self._l_collapsed = -1
        win24 = self._win24
        opens: tuple = ()
        done = 0                                       # slots with their records appended
        if self._lpid >= 0:
            # the push in the tray is seen at the first session of the span
            count = next(filter(None, counts), 0)
            if count:
                i = counts.index(count)                # the first slot with sessions
                while day <= sn + i:
                    self._lean_drift()
                    day += spd
                now = times[sn + i]
                done = i + 1
                # the slot's state as _lean_step has it, for the session-time draws
                self._lean_now, self._slot_number = times[sn + i + 1], sn + i
                self._slot_start = now
                self._l_count, self._l_j, self._l_last = count, 0, 0.0
                rec = (now, 0, 0, 0.0, count)
                t_seen = self._lean_first_session_after(self._lpt)
                if t_seen != math.inf:
                    self._lean_see_pending(t_seen)
                    opened = self._l_open
                    if opened is not None:
                        opens = (opened,)
                        self._lean_expire(now)
                        dwell = opened[5]
                        self._lo24 += 1
                        self._lo7 += 1
                        self._ld24 += dwell
                        self._ld7 += dwell
                        rec = (now, 0, 1, dwell, count)
                        self._win7.append(rec)
                win24.append(rec)
                assert self._lpid < 0       # a session after the push: always seen
        for k in range(done, n):
            if counts[k]:
                win24.append((times[sn + k], 0, 0, 0.0, counts[k]))
        last = sn + n
        while day <= last:
            self._lean_drift()
            day += spd
        end = times[last]
        self._lean_now = self._slot_start = end
        self._slot_number = last
        self._l_count, self._l_j, self._l_last = next_count, 0, 0.0
        total = sum(counts)
        if total:
            self._ls24 += total
        self._lean_expire(end)
        self._l_open = None
        self._l_slot = (times[sn], end, None, -1, -1, opens, None, total)
        self._last_outcome = None
        return counts

    def run(self, policy: Policy | None, days: float, progress: bool = False) -> pd.DataFrame:
        """Run a logging policy for ``days`` days (``policy=None``: organic sessions only).

        Each slot: ``obs = observe()``; ``push, style, propensity = policy(obs, rng)``;
        :meth:`step`. The policy's random stream is the population's ``policy`` stream.

        Returns
        -------
        pandas.DataFrame
            One row per slot: ``timestamp``, ``pushes``, ``blocked``, ``opens``, ``dwell_s``,
            ``likes``, ``shares``, ``comments``, ``surveys``, ``opt_outs``, ``sessions``,
            ``opted_out`` (users opted out by the end of the slot).
        """
        n_slots = self._n_slots(days)
        from tqdm.auto import tqdm

        rows = []
        rng = self._rng["policy"]
        with tqdm(total=n_slots, disable=not progress, desc="simulating", unit="slot") as bar:
            for _ in range(n_slots):
                ts = self.now
                if policy is None:
                    out = self.step()
                else:
                    push, style, prop = self._call_policy(policy, rng)
                    if push.any():
                        out = self.step(push=push, style=style, propensity=prop)
                    else:
                        out = self.step()
                rows.append((ts, out.n_pushes, out.blocked_user.size, out.n_opens,
                             float(out.open_dwell_s.sum()), int(out.open_like.sum()),
                             int(out.open_share.sum()), int(out.open_comment.sum()),
                             int((out.open_satisfaction > 0).sum()), out.opt_out_user.size,
                             out.n_sessions,
                             int(self._lout) if self._lean else int(self._opted_out.sum())))
                bar.update(1)
        df = pd.DataFrame(rows, columns=["hours", "pushes", "blocked", "opens", "dwell_s",
                                         "likes", "shares", "comments", "surveys", "opt_outs",
                                         "sessions", "opted_out"])
        df.insert(0, "timestamp", self._timestamps(df.pop("hours").to_numpy()))
        return df

    def _n_slots(self, days: float) -> int:
        if isinstance(days, bool) or not isinstance(days, (int, float, np.integer, np.floating)) \
                or not math.isfinite(float(days)) or days <= 0:
            raise ValueError(f"`days` must be a positive number, got {days!r}.")
        slots = float(days) * 1440.0 / self.slot_minutes
        n = int(round(slots))
        if abs(slots - n) > 1e-9:
            raise ValueError(f"`days` = {days} is not a whole number of {self.slot_minutes}-minute "
                             f"slots; use a multiple of {self.slot_minutes / 1440:g} days.")
        return n

    def _call_policy(self, policy: Policy, rng: np.random.Generator
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        res = policy(self.observe(), rng)
        if not (isinstance(res, tuple) and len(res) == 3):
            raise ValueError(f"A policy must return (push, style, propensity), got "
                             f"{type(res).__name__}.")
        push, style, prop = (np.asarray(x) for x in res)
        n = self.n_users
        for name, x in (("push", push), ("style", style), ("propensity", prop)):
            if x.shape != (n,):
                raise ValueError(f"The policy's `{name}` must have shape ({n},), got {x.shape}.")
        if push.dtype != bool:
            raise ValueError(f"The policy's `push` must be boolean, got dtype {push.dtype}.")
        return push, style, prop

    # ============================================================================ lifecycle
    def reset(self, seed: int | np.random.SeedSequence | None = None) -> None:
        """Start over at hour 0 with new users drawn from ``seed``.

        Equivalent to building a new :class:`Population` with the same parameters, bank, start,
        slot length and ``seed`` (identical outcomes for identical actions), but reuses the
        tables computed from the parameters, so it is much cheaper (an environment calls it at
        every episode start).
        """
        self._init_state(seed)

    def replace_users(self, users: Any) -> None:
        """Replace users by freshly sampled ones from the same parameters, between two slots.

        The new users have no history: no fatigue, nothing in the tray, not opted out, empty
        24 h / 7 day windows, and their organic sessions of the coming slot are drawn anew from
        their own activity. They are drawn from the ``users`` random stream (their session
        counts from the ``sessions`` stream), so a population that replaces the same users at
        the same times stays reproducible. Used by the population vector environment to keep N
        users when some opt out or end their episode.

        Parameters
        ----------
        users : array_like
            Boolean mask ``(n_users,)`` or distinct user indices.

        Raises
        ------
        ValueError
            For bad indices, with ``record_events=True`` (user ids would be reused in the log),
            or when a replaced user has a push scheduled for later with :meth:`schedule_push`.
        """
        if self.record_events:
            raise ValueError("replace_users() is not available with record_events=True: the "
                             "event log identifies users by index, which replacing would reuse. "
                             "Create the Population with record_events=False.")
        u = self._as_user_index(users, "users")
        if u.size == 0:
            return
        self._leave_lean()
        self._drop_session_buffer()                     # drawn for the old users
        for at, batch in self._scheduled.values():
            clash = np.intersect1d(batch.users, u)
            if clash.size:
                raise ValueError(f"User(s) {clash[:5].tolist()} have a push scheduled for "
                                 f"t = {at:g} h; replace users only when none of them has a "
                                 "push scheduled for later.")
        seg, mult, taste, topic = self._draw_users(self._rng["users"], u.size)
        self._segment[u] = seg
        self._multiplier[u] = mult
        self._taste[u] = taste
        self._topic_aff[u] = topic
        self._born[u] = self.now
        self._replaced_any = True
        self._fatigue[u] = 0.0
        self._fatigue_t[u] = -np.inf
        self._opted_out[u] = False
        self._pend_id[u] = -1
        self._last_push[u] = -np.inf
        self._last_open[u] = -np.inf
        for arr in (self._push24, self._push7, self._open24, self._open7, self._dwell24,
                    self._dwell7, self._sess24):
            arr[u] = 0
        if self._clock_started:
            # the coming slot's sessions were drawn for the old users: draw the new users'
            sw = self._slot_of_week(self._slot_number)
            lam = self._slot_rate[self._segment[u], sw] * self._multiplier[u]
            counts = self._rng["sessions"].poisson(lam)
            # the slot's active users (sorted): the old ones not replaced, then the new ones
            # with sessions, in user order
            replaced = np.zeros(self.n_users, dtype=bool)
            replaced[u] = True
            keep = ~replaced[self._act_users]
            fresh = counts > 0
            n_fresh = int(fresh.sum())
            act = np.concatenate((self._act_users[keep], u[fresh]))
            order = np.argsort(act, kind="stable")
            self._act_users = act[order]
            self._act_counts = np.concatenate((self._act_counts[keep], counts[fresh]))[order]
            self._act_j = np.concatenate((self._act_j[keep],
                                          np.zeros(n_fresh, dtype=np.int64)))[order]
            self._act_last = np.concatenate((self._act_last[keep], np.zeros(n_fresh)))[order]

    def __getstate__(self) -> dict[str, Any]:
        """Pickle support: everything but the SimPy engine, which is rebuilt on load."""
        self._lean_sync()
        state = self.__dict__.copy()
        for key in ("_env", "_slot_done", "_new_day", "_act_mask", "_kc", "_gen_pool"):
            state.pop(key, None)
        state["_act_mask_of"] = None                    # rebuilt when needed
        state["_pickled_now"] = self.now
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        now = state.pop("_pickled_now")
        self.__dict__.update(state)
        self._env = None
        self._k = None                          # (always None when pickled: _lean_sync)
        self._kc = None
        self._gen_pool = {}
        self._k_ok = self._k_possible()         # numba may differ where it is loaded
        if not self._lean:
            self._start_engine(now, resume=self._clock_started)

    # ============================================================================ views
    def observe(self, copy: bool = True) -> dict[str, np.ndarray]:
        """What a platform can see now, one array of length ``n_users`` per key.

        Keys (:data:`OBSERVATION_KEYS`): ``hour`` (0-23, UTC), ``minute``, ``weekday`` (0 =
        Monday), ``hours_since_push`` / ``hours_since_open`` (``inf`` when never),
        ``pushes_24h`` / ``pushes_7d`` (delivered), ``opens_24h`` / ``opens_7d``, ``dwell_24h``
        / ``dwell_7d`` (seconds in pushed sessions), ``sessions_24h`` (organic), ``opted_out``.
        Windows cover the last 24 h / 7 days of simulated time before now. ``hour``, ``minute``
        and ``weekday`` are read-only broadcast views; the others are fresh arrays, or with
        ``copy=False`` read-only views of the live counters (valid until the next step; what
        the vector environment uses to build observations without copying).
        """
        n = self.n_users
        now = self.now
        self._lean_sync()

        def get(a: np.ndarray) -> np.ndarray:
            if copy:
                return a.copy()
            v = a.view()
            v.flags.writeable = False
            return v

        wh = self._week0_h + now
        minute_of_week = int(round(wh * 60)) % (HOURS_PER_WEEK * 60)
        hour = (minute_of_week // 60) % 24
        minute = minute_of_week % 60
        weekday = minute_of_week // 1440
        return {
            "hour": np.broadcast_to(np.int64(hour), (n,)),
            "minute": np.broadcast_to(np.int64(minute), (n,)),
            "weekday": np.broadcast_to(np.int64(weekday), (n,)),
            "hours_since_push": now - self._last_push,
            "hours_since_open": now - self._last_open,
            "pushes_24h": get(self._push24),
            "pushes_7d": get(self._push7),
            "opens_24h": get(self._open24),
            "opens_7d": get(self._open7),
            "dwell_24h": get(self._dwell24),
            "dwell_7d": get(self._dwell7),
            "sessions_24h": get(self._sess24),
            "opted_out": get(self._opted_out),
        }

    def observe_user(self, i: int = 0) -> tuple:
        """:meth:`observe` for one user, as Python numbers in :data:`OBSERVATION_KEYS` order.

        The fast path of the single-user environments: the same values as
        ``observe()[key][i]`` without building the arrays of every user.
        """
        now = self._lean_now if self._lean else float(self._env.now)
        minute_of_week = round((self._week0_h + now) * 60) % (HOURS_PER_WEEK * 60)
        if self._k is not None:
            _, llp, llo, p24, p7, o24, o7, d24, d7, s24, out = \
                self._k.O[K.O_OBS:K.O_OBS + 11].tolist()
            return ((minute_of_week // 60) % 24, minute_of_week % 60, minute_of_week // 1440,
                    now - llp, now - llo, int(p24), int(p7), int(o24), int(o7), d24, d7,
                    int(s24), out != 0.0)
        if self._lean:
            return ((minute_of_week // 60) % 24, minute_of_week % 60, minute_of_week // 1440,
                    now - self._llp, now - self._llo, self._lp24, self._lp7, self._lo24,
                    self._lo7, self._ld24, self._ld7, self._ls24, self._lout)
        return ((minute_of_week // 60) % 24, minute_of_week % 60, minute_of_week // 1440,
                now - float(self._last_push[i]), now - float(self._last_open[i]),
                int(self._push24[i]), int(self._push7[i]), int(self._open24[i]),
                int(self._open7[i]), float(self._dwell24[i]), float(self._dwell7[i]),
                int(self._sess24[i]), bool(self._opted_out[i]))

    def hidden_state(self) -> dict[str, np.ndarray]:
        """What the platform cannot see (for oracles and diagnostics), as fresh arrays.

        Keys (:data:`HIDDEN_KEYS`): ``fatigue`` (now, decayed), ``taste`` ``(N, n_features)``,
        ``topic_affinity`` ``(N, n_topics)``, ``activity_rate`` (organic sessions per hour
        now), ``activity_multiplier``, ``segment`` (index into ``params.segments``),
        ``opted_out``, ``pending_push`` (id of the unseen push in the tray, -1 if none).
        """
        now = self.now
        how = int(self._hour_of_week(now))
        self._lean_sync()
        return {
            "fatigue": R.fatigue_at(self._fatigue, self._fatigue_t, now,
                                    self.params.fatigue.half_life_h),
            "taste": self._taste.copy(),
            "topic_affinity": self._topic_aff.copy(),
            "activity_rate": self._seg_act[self._segment, how] * self._multiplier,
            "activity_multiplier": self._multiplier.copy(),
            "segment": self._segment.astype(np.int64),
            "opted_out": self._opted_out.copy(),
            "pending_push": self._pend_id.copy(),
        }

    def draw_history(self, days: float, rng: np.random.Generator,
                     users: Any = None) -> np.ndarray:
        """Organic sessions of each user in each hour of day over the ``days`` before now.

        What a platform has already logged about existing users when an experiment starts:
        counts ``(n, 24)`` (float64; ``n`` = the number of ``users``, default all) of app
        sessions in the ``round(24 * days)`` whole hours before the current one, by hour of day.
        Each hour of week ``h`` that falls in that span adds a Poisson count at the user's
        rate now (segment activity at ``h`` times the activity multiplier); no pushes happen
        in that span. The draws come from ``rng`` (e.g. an environment's ``np_random``), so
        the population's own streams, and everything it simulates, are unchanged.

        Raises ``ValueError`` for a negative or non-finite ``days``.
        """
        if isinstance(days, bool) or not isinstance(days, (int, float, np.integer,
                                                            np.floating)) \
                or not math.isfinite(days) or days < 0:
            raise ValueError(f"`days` must be a finite number >= 0, got {days!r}.")
        idx = np.arange(self.n_users) if users is None else self._as_user_index(users, "users")
        n_hours = int(round(24.0 * float(days)))
        if n_hours == 0 or idx.size == 0:
            return np.zeros((idx.size, 24))
        self._lean_sync()
        how_now = int(self._hour_of_week(self.now))
        how = (how_now - np.arange(1, n_hours + 1)) % HOURS_PER_WEEK
        # times each hour of week occurs in the span, mapped to its hour of day
        occurs = np.bincount(how, minlength=HOURS_PER_WEEK).astype(np.float64)
        to_day = np.zeros((HOURS_PER_WEEK, 24))
        to_day[np.arange(HOURS_PER_WEEK), np.arange(HOURS_PER_WEEK) % 24] = occurs
        mean = (self._seg_act[self._segment[idx]] @ to_day) * self._multiplier[idx, None]
        return rng.poisson(mean).astype(np.float64)

    # ============================================================================ the log
    def _timestamps(self, hours: np.ndarray) -> pd.DatetimeIndex:
        ns = self._start.value + np.round(np.asarray(hours, dtype=np.float64) * 3.6e12
                                          ).astype(np.int64)
        return pd.DatetimeIndex(pd.to_datetime(ns, unit="ns", utc=True))

    def event_log(self) -> pd.DataFrame:
        """Every event so far, in the schema of :mod:`covercast.simulators.logs`.

        Columns :data:`~covercast.simulators.logs.COLUMNS` plus ``cover_id``,
        ``satisfaction`` and ``segment``; rows sorted by (timestamp, user_id, event order of
        :data:`~covercast.simulators.logs.EVENTS`). Engagement and survey rows carry their
        open's timestamp; an ``opt_out`` row carries the delivery time and id of the push that
        caused it. Requires ``record_events=True``.
        """
        if not self.record_events:
            raise ValueError("This Population was created with record_events=False; create it "
                             "with record_events=True to get an event log.")
        parts: list[dict[str, np.ndarray]] = []

        def add(event: str, user, time, push_id=None, cover=None, topic=None, dwell=None,
                propensity=None, satisfaction=None):
            m = len(user)
            if m == 0:
                return
            nan = np.full(m, np.nan)
            parts.append({
                "user": np.asarray(user, dtype=np.int64), "time": np.asarray(time, float),
                "event": np.full(m, _EVENT_CODE[event], dtype=np.int8),
                "push_id": np.full(m, -1, np.int64) if push_id is None else push_id,
                "cover": np.full(m, -1, np.int64) if cover is None else cover,
                "topic": np.full(m, -1, np.int64) if topic is None else topic,
                "dwell": nan if dwell is None else dwell,
                "propensity": nan if propensity is None else propensity,
                "satisfaction": np.zeros(m, np.int8) if satisfaction is None else satisfaction})

        for users, t, dwell in self._session_rows:
            add("session", users, t, dwell=dwell)
        for o in self._outcomes:
            add("push", o.push_user, o.push_time, o.push_id, o.push_cover, o.push_topic,
                propensity=o.push_propensity)
            add("open", o.open_user, o.open_time, o.open_push_id, o.open_cover, o.open_topic,
                dwell=o.open_dwell_s)
            for ev, mask in (("like", o.open_like), ("share", o.open_share),
                             ("comment", o.open_comment), ("survey", o.open_satisfaction > 0)):
                add(ev, o.open_user[mask], o.open_time[mask], o.open_push_id[mask],
                    o.open_cover[mask], o.open_topic[mask],
                    satisfaction=o.open_satisfaction[mask] if ev == "survey" else None)
            if o.opt_out_user.size:
                # the opting-out push's cover/topic, for analysis
                # (every opting-out push was delivered in the same slot)
                sorter = np.argsort(o.push_id, kind="stable")
                idx = sorter[np.searchsorted(o.push_id, o.opt_out_push_id, sorter=sorter)]
                cov, top = o.push_cover[idx], o.push_topic[idx]
                add("opt_out", o.opt_out_user, o.opt_out_time, o.opt_out_push_id, cov, top)
        return self._frame(parts)

    def _frame(self, parts: list[dict[str, np.ndarray]]) -> pd.DataFrame:
        keys = ("user", "time", "event", "push_id", "cover", "topic", "dwell", "propensity",
                "satisfaction")
        if parts:
            col = {k: np.concatenate([p[k] for p in parts]) for k in keys}
        else:
            col = {"user": _I64, "time": _F64, "event": np.zeros(0, np.int8), "push_id": _I64,
                   "cover": _I64, "topic": _I64, "dwell": _F64, "propensity": _F64,
                   "satisfaction": np.zeros(0, np.int8)}
        ns = self._start.value + np.round(col["time"] * 3.6e12).astype(np.int64)
        order = np.lexsort((col["event"], col["user"], ns))
        col = {k: v[order] for k, v in col.items()}
        ns = ns[order]
        styles = np.array(list(self.params.styles) + [None], dtype=object)
        topics = np.array(list(self.params.topics) + [None], dtype=object)
        seg_names = np.array(self.params.segment_names, dtype=object)
        has_cover = col["cover"] >= 0
        style_idx = np.where(has_cover, self._cover_style[np.where(has_cover, col["cover"], 0)],
                             -1)
        df = pd.DataFrame({
            "user_id": col["user"],
            "timestamp": pd.to_datetime(ns, unit="ns", utc=True),
            "event": pd.array(np.array(EVENTS, dtype=object)[col["event"]], dtype="str"),
            "push_id": pd.arrays.IntegerArray(col["push_id"], col["push_id"] < 0).astype("Int64"),
            "style": pd.array(styles[style_idx], dtype="str"),
            "topic": pd.array(topics[col["topic"]], dtype="str"),
            "dwell_s": col["dwell"],
            "propensity": col["propensity"],
            "cover_id": pd.arrays.IntegerArray(col["cover"], col["cover"] < 0).astype("Int64"),
            "satisfaction": pd.arrays.IntegerArray(col["satisfaction"].astype(np.int64),
                                                   col["satisfaction"] <= 0).astype("Int64"),
            "segment": pd.array(seg_names[self._segment[col["user"]]], dtype="str"),
        })
        assert tuple(df.columns[: len(COLUMNS)]) == COLUMNS
        return df


# ====================================================================================== helpers
def simulate_log(params: PopulationParams, policy: Policy | None, days: float, n_users: int,
                 seed: int | np.random.SeedSequence | None, *, bank: Any = None,
                 start: str | pd.Timestamp = "2026-01-05T00:00:00Z", slot_minutes: int = 60,
                 progress: bool = False) -> pd.DataFrame:
    """Simulate ``n_users`` users under a logging policy for ``days`` days; return the event log.

    Parameters
    ----------
    params : PopulationParams
        The user model.
    policy : callable or None
        ``policy(obs, rng) -> (push, style, propensity)`` (see
        :mod:`covercast.simulators.policies`); ``None`` sends no pushes.
    days : float
        Simulated days (a whole number of slots).
    n_users : int
        Population size.
    seed : int, SeedSequence or None
        Seed of every draw; the same seed and policy give the identical log.
    bank, start, slot_minutes :
        As in :class:`Population`.
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    pandas.DataFrame
        The log (:meth:`Population.event_log`): columns :data:`~covercast.simulators.logs.COLUMNS`
        + ``cover_id``, ``satisfaction``, ``segment``, sorted by (timestamp, user_id, event).
    """
    pop = Population(params, n_users, bank=bank, seed=seed, start=start,
                     slot_minutes=slot_minutes, record_events=True)
    pop.run(policy, days, progress=progress)
    return pop.event_log()
