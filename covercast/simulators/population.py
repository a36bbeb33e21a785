"""The simulated user population: one SimPy event engine over numpy arrays of user state.

(The tables its parameters fix live in :mod:`covercast.simulators.tables`, which
:class:`Population` extends; what a slot reports, :class:`SlotOutcome`, in
:mod:`covercast.simulators.outcome`.)

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
vector environment's autoreset), and a population pickles (the engine is rebuilt on load, pushes
scheduled for later included). The single-user environments step one user with
:class:`covercast.simulators.user.UserSimulator` instead: the same model and the same response
functions, compiled.

Only where it is needed are organic session *times* drawn: for users with a push waiting in the
tray (the time they see it), and for the event log when ``record_events=True``. The first session
time of a user with ``k`` sessions in a slot is drawn as the minimum of ``k`` uniforms (in the
slot's integrated-intensity scale) and later ones lazily as the next order statistics, so the
engine never draws more than it uses, and recording the log does not change any outcome.

The user model is the one specified in :mod:`covercast.simulators.params`; every response (seen
at once, open, dwell, engagement, survey, opt-out) comes from the
:class:`~covercast.simulators.response.ResponseModel` given as ``response``. Engine rules that the spec leaves open:

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
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import simpy
from simpy.core import URGENT

from covercast.simulators import response as R
from covercast.simulators.logs import COLUMNS, EVENTS
from covercast.simulators.outcome import (
    _ACC_KEYS,
    _F64,
    _I64,
    SlotOutcome,
    _cat,
    _group,
    _merge_outcomes,
)
from covercast.simulators.params import HOURS_PER_WEEK, PopulationParams
from covercast.simulators.tables import PopulationTables

__all__ = [
    "OBSERVATION_KEYS",
    "HIDDEN_KEYS",
    "MAX_USERS",
    "Policy",
    "Population",
    "PopulationParams",
    "SlotOutcome",
    "simulate_log",
]

#: Largest population :class:`Population` accepts (memory grows linearly, ~1 KB per user).
MAX_USERS = 10_000_000

#: Keys of :meth:`Population.observe`, in a stable order.
OBSERVATION_KEYS: tuple[str, ...] = (
    "hour", "minute", "weekday", "hours_since_push", "hours_since_open", "pushes_24h",
    "pushes_7d", "opens_24h", "opens_7d", "dwell_24h", "dwell_7d", "sessions_24h", "opted_out")

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


_NO_KNOTS = np.zeros((1, 0))
_KERNELS: dict[tuple, tuple[Any, Any] | None] = {}


def _run_kernel(response: R.ResponseModel, layout: tuple, which: int, *args: Any) -> Any:
    """Run compiled pass ``which`` (0: ``deliver``, 1: ``see_pending``) for a response model
    and coefficient layout (compiled once per process, kept in numba's on-disk cache); None,
    having changed nothing, where the model's functions do not compile with numba (then the
    numpy path serves it: it runs any function that works on arrays)."""
    key = (response, layout)
    if key not in _KERNELS:
        from covercast.simulators import _population_kernel
        from covercast.simulators.user import _jit_tree, _record_builder
        _KERNELS[key] = _population_kernel.make(response, _record_builder(layout), _jit_tree)
    kernels = _KERNELS[key]
    if kernels is None:
        return None
    from numba.core.errors import NumbaError

    try:
        return kernels[which](*args)
    except NumbaError:                   # at typing, before the pass changed anything
        _KERNELS[key] = None
        return None


# ==================================================================================== population
class Population(PopulationTables):
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
    response : ResponseModel, optional
        How users answer pushes (:class:`~covercast.simulators.response.ResponseModel`;
        default: the model of :mod:`covercast.simulators.params`), called with arrays.

    Examples
    --------
    >>> pop = Population(default_params(), 1000, seed=0)                     # doctest: +SKIP
    >>> out = pop.step(push=pop.observe()["hour"] == 0, style=1)             # doctest: +SKIP
    >>> out.n_opens, pop.now                                                 # doctest: +SKIP
    """

    def __init__(self, params: PopulationParams, n_users: int, *, bank: Any = None,
                 seed: int | np.random.SeedSequence | None = None,
                 start: str | pd.Timestamp = "2026-01-05T00:00:00Z", slot_minutes: int = 60,
                 record_events: bool = False, response: R.ResponseModel | None = None) -> None:
        if isinstance(n_users, bool) or not isinstance(n_users, (int, np.integer)):
            raise ValueError(f"`n_users` must be an integer, got {n_users!r}.")
        if not 1 <= int(n_users) <= MAX_USERS:
            raise ValueError(f"`n_users` must be in [1, {MAX_USERS}], got {n_users}.")
        super().__init__(params, bank=bank, start=start, slot_minutes=slot_minutes)
        self.response = R.check_response(response)
        self.n_users = int(n_users)
        self.record_events = bool(record_events)
        self._kernel_tables: tuple | None = None      # the compiled passes' constants
        # each slot of week's session rate by segment, contiguous
        self._slot_rate_cols = np.ascontiguousarray(self._slot_rate.T)

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
        self._rng = dict(zip(_STREAMS, (np.random.default_rng(s)
                                        for s in ss.spawn(len(_STREAMS))), strict=True))

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
        self._compiled_slot = False      # the slot so far went through the compiled passes
        self._reset_slot_accumulators()

        # ------------------------------------------------------------ recording
        self._outcomes: list[SlotOutcome] = []
        self._session_rows: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

        # ------------------------------------------------------------ the engine
        self._scheduled: dict[int, tuple[float, _PushBatch]] = {}
        self._n_scheduled = 0
        self._clock_started = False
        self._last_outcome: SlotOutcome | None = None
        self._env: simpy.Environment | None = None
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
    # ============================================================================ properties
    @property
    def now(self) -> float:
        """Hours since ``start`` (the start of the coming slot between steps)."""
        return float(self._env.now)

    @property
    def env(self) -> simpy.Environment:
        """The SimPy engine."""
        return self._env

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
    def _frac_to_offset(self, users: np.ndarray, frac: np.ndarray, inverse: bool = False
                        ) -> np.ndarray:
        """Time after the slot's start at which a fraction ``frac`` of each user's session
        intensity in the current slot has passed (``inverse=True``: the fraction passed at
        offset ``frac``)."""
        knots = self._slot_knots[self._slot_of_week(self._slot_number)]
        if knots is None:
            return frac / self.slot_hours if inverse else frac * self.slot_hours
        t_knots, c_knots = knots
        out = np.empty(frac.shape)
        seg = self._segment[users]
        for g in range(self._n_seg):
            m = seg == g
            if m.any():
                out[m] = (np.interp(frac[m], t_knots, c_knots[g]) if inverse
                          else np.interp(frac[m], c_knots[g], t_knots))
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
        self._compiled_slot = True
        from covercast.simulators._population_kernel import session_counts

        sw = self._slot_of_week(self._slot_number)
        act = np.empty(self.n_users, np.int64)
        counts = np.empty(self.n_users, np.int64)
        n_act = session_counts(self._slot_rate_cols[sw], self._segment, self._multiplier,
                               self._rng["sessions"], act, counts)
        self._act_users = act[:n_act]
        self._act_counts = counts[:n_act]
        self._act_j = np.zeros(n_act, dtype=np.int64)
        self._act_last = np.zeros(n_act)

    def _end_slot(self) -> SlotOutcome:
        """Let waiting pushes be seen at sessions of this slot, then close the slot."""
        act = self._act_users
        if act.size and not (self._compiled_slot and self._see_pending_compiled()):
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
        thr = np.where(offset < 0, -1.0, self._frac_to_offset(u, np.maximum(offset, 0.0),
                                                                 inverse=True))
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
            from covercast.simulators._population_kernel import covers_of_styles

            c = np.empty(n, np.int64)
            covers_of_styles(np.ascontiguousarray(s), self._style_table, self._style_counts, rng,
                             c)
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
        if self._compiled_slot and t == self._slot_start and self._deliver_compiled(b, t):
            return
        self._compiled_slot = False              # the slot's end takes the numpy path too
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
        p_out = self.response.opt_out_probability(fat, self.params.opt_out)
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
        now_seen = rng.random(n) < self.response.seen_now_probability(
            rate, self.params.open.glance_hours)
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
        rm = self.response
        rng = self._rng["responses"]
        seg = self._segment[users]
        how = self._hour_of_week(t)
        taste = self._taste[users]
        feats = self._features[cover]
        match = np.einsum("ij,ij->i", taste, feats)
        aff = self._topic_aff[users, topic]
        fat = R.fatigue_at(self._fatigue[users], self._fatigue_t[users], t,
                           p.fatigue.half_life_h)
        prob = rm.open_probability(self._seg_intercept[seg], self._rel_act_table[seg, how],
                                   match, self._quality[cover], aff, fat, delay, p.open)
        opened = rng.random(users.size) < prob
        if not opened.any():
            return
        users, pid, cover, topic, t, delay = (users[opened], pid[opened], cover[opened],
                                              topic[opened], t[opened], delay[opened])
        seg, match, aff, fat = seg[opened], match[opened], aff[opened], fat[opened]
        m = users.size
        rel = match + aff
        dwell = rm.dwell_seconds(self._seg_dwell_mu[seg], self._seg_dwell_sigma[seg], rel,
                                 rng.standard_normal(m), p.dwell)
        p_like, p_share, p_comment = rm.engagement_probabilities(rel, p.engagement)
        u = rng.random((3, m))
        like, share, comment = u[0] < p_like, u[1] < p_share, u[2] < p_comment
        sat = np.zeros(m, dtype=np.int8)
        surveyed = rng.random(m) < rm.survey_probability(rel, dwell, fat, p.satisfaction)
        if surveyed.any():
            sat[surveyed] = rm.satisfaction_score(rel[surveyed], dwell[surveyed], fat[surveyed],
                                                  rng.logistic(size=int(surveyed.sum())),
                                                  p.satisfaction)
        self._record_opens(users, pid, cover, topic, np.asarray(t, dtype=np.float64),
                           np.asarray(delay, dtype=np.float64), dwell, like, share, comment, sat)
        np.maximum.at(self._last_open, users, np.asarray(t, dtype=np.float64))

    def _record_opens(self, users: np.ndarray, pid: np.ndarray, cover: np.ndarray,
                      topic: np.ndarray, t: np.ndarray, delay: np.ndarray, dwell: np.ndarray,
                      like: np.ndarray, share: np.ndarray, comment: np.ndarray,
                      sat: np.ndarray) -> None:
        """Add a batch of opens to the slot's books."""
        a = self._acc
        self._open_batches += 1
        for key, v in (("open_user", users), ("open_push_id", pid), ("open_cover", cover),
                       ("open_topic", topic), ("open_time", t), ("open_delay_h", delay),
                       ("open_dwell_s", dwell), ("open_like", like), ("open_share", share),
                       ("open_comment", comment), ("open_satisfaction", sat)):
            a[key].append(v)

    # ------------------------------------------------------------------ the compiled passes
    def _kernel_args(self) -> tuple:
        """The compiled passes' first arguments: the state arrays (updated in place), the
        tables, the scalars, the response model's coefficients and the responses stream."""
        k = self._kernel_tables
        if k is None:
            from covercast.simulators.user import _coefficients
            p = self.params
            coef, layout = _coefficients(p)
            tables = (self._seg_act, self._rel_act_table, self._features, self._quality,
                      self._seg_intercept, self._seg_dwell_mu, self._seg_dwell_sigma)
            scalars = np.array([self._week0_h, p.fatigue.half_life_h, p.fatigue.increment,
                                p.open.glance_hours])
            k = self._kernel_tables = (tables, scalars, coef, layout)
        state = (self._opted_out, self._pend_id, self._pend_time, self._pend_cover,
                 self._pend_topic, self._last_push, self._last_open, self._fatigue,
                 self._fatigue_t, self._segment, self._multiplier, self._taste,
                 self._topic_aff)
        return (state, k[0], k[1], k[2], self._rng["responses"]), k[3]

    def _open_buffers(self, n: int) -> tuple[np.ndarray, ...]:
        """Buffers for up to ``n`` opens of a compiled pass (see ``_population_kernel``)."""
        return (np.empty(n, np.int64), np.empty(n, np.int64), np.empty(n), np.empty(n),
                np.empty(n), np.empty(n, bool), np.empty(n, bool), np.empty(n, bool),
                np.empty(n, np.int8))

    def _opens_from(self, o: tuple[np.ndarray, ...], m: int, users: np.ndarray,
                    cover: np.ndarray | None = None, topic: np.ndarray | None = None) -> None:
        """Record the ``m`` opens a compiled pass wrote to ``o`` (index into ``users``, and
        into ``cover`` and ``topic``; ``None``: the covers and topics of the users' trays)."""
        if m:
            idx = o[0][:m]
            u = users[idx]
            c = self._pend_cover[u] if cover is None else cover[idx]
            tp = self._pend_topic[u] if topic is None else topic[idx]
            self._record_opens(u, o[1][:m], c, tp, *(x[:m] for x in o[2:]))

    def _deliver_compiled(self, b: _PushBatch, t: float) -> bool:
        """:meth:`_deliver` at the slot's start, compiled: no session of the slot has come
        yet, so an unseen push in the tray collapses. False (nothing done) where the
        response model does not compile."""
        from covercast.simulators._population_kernel import BLOCKED, OPTED_OUT

        args, layout = self._kernel_args()
        users = b.users
        n = users.size
        cover = np.ascontiguousarray(b.cover, dtype=np.int64)
        topic = np.ascontiguousarray(b.topic, dtype=np.int64)
        pid = np.ascontiguousarray(b.push_id, dtype=np.int64)
        status = np.empty(n, np.int8)
        collapsed = np.empty(n, np.int64)
        o = self._open_buffers(n)
        res = _run_kernel(self.response, layout, 0, *args, users, cover, topic, pid, t, status,
                          collapsed, o)
        if res is None:
            return False
        n_coll, m = res
        a = self._acc
        if n_coll:
            a["collapsed_push_id"].append(collapsed[:n_coll])
        blocked = status == BLOCKED
        if blocked.any():
            a["blocked_user"].append(users[blocked])
            a["blocked_push_id"].append(pid[blocked])
            keep = ~blocked
            if not keep.any():
                return True
            d_users, d_pid, d_cover, d_topic = users[keep], pid[keep], cover[keep], topic[keep]
            prop, status = np.asarray(b.propensity)[keep], status[keep]
        else:
            d_users, d_pid, d_cover, d_topic, prop = users, pid, cover, topic, b.propensity
        self._push_batches += 1
        a["push_user"].append(d_users)
        a["push_id"].append(d_pid)
        a["push_cover"].append(d_cover)
        a["push_topic"].append(d_topic)
        a["push_time"].append(np.full(d_users.size, t))
        a["push_propensity"].append(prop)
        out = status == OPTED_OUT
        if out.any():
            a["opt_out_user"].append(d_users[out])
            a["opt_out_push_id"].append(d_pid[out])
            a["opt_out_time"].append(np.full(int(out.sum()), t))
        self._opens_from(o, m, users, cover, topic)
        return True

    def _see_pending_compiled(self) -> bool:
        """The slot's end, compiled: each active user with a push in the tray sees it at the
        slot's first session after it (every push of the slot came at its start). False
        (nothing done) where the response model does not compile."""
        args, layout = self._kernel_args()
        act = self._act_users
        knots = self._slot_knots[self._slot_of_week(self._slot_number)]
        t_knots, c_knots = (_F64, _NO_KNOTS) if knots is None else knots
        o = self._open_buffers(act.size)
        cap = int(self._act_counts.sum())
        d_idx, d_frac = np.empty(cap, np.int64), np.empty(cap)
        res = _run_kernel(self.response, layout, 1, *args, act, self._act_counts, self._act_j,
                          self._act_last, self._slot_start, self.slot_hours, t_knots, c_knots,
                          o, d_idx, d_frac)
        if res is None:
            return False
        m, n_d = res
        if self.record_events and n_d:
            self._drawn.append((act[d_idx[:n_d]], d_frac[:n_d]))
        self._opens_from(o, m, act)
        return True

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

    # ============================================================================ one user
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
        start = self.now
        outs = [self.step() for _ in range(n_slots)]
        sessions = np.zeros((n_slots, self.n_users), dtype=np.int64)
        for k, o in enumerate(outs):
            sessions[k, o.session_user] = o.session_count
        merged = _merge_outcomes(outs, start, sessions.sum(axis=0))
        self._last_outcome = merged
        return merged, sessions

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
                             int(self._opted_out.sum())))
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
        state = self.__dict__.copy()
        for key in ("_env", "_slot_done", "_new_day", "_act_mask", "_state_views"):
            state.pop(key, None)
        state["_act_mask_of"] = None                    # rebuilt when needed
        state["_pickled_now"] = self.now
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        now = state.pop("_pickled_now")
        self.__dict__.update(state)
        self._env = None
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

    def observe_state(self) -> dict[str, Any]:
        """What :meth:`observe` is computed from, without allocating: ``hour``, ``minute``,
        ``weekday`` (broadcast views as in :meth:`observe`), ``now`` (a float), ``last_push`` /
        ``last_open`` (times of the last delivered push / open, ``-inf`` when never; hours since
        = ``now - last``) and the window counters of :meth:`observe`, all read-only views of the
        live arrays (valid until the next step). What the vector environment builds its
        observations from; the views are made once per set of arrays (:meth:`reset` makes new
        arrays)."""
        arrays = (self._last_push, self._last_open, self._push24, self._push7, self._open24,
                  self._open7, self._dwell24, self._dwell7, self._sess24, self._opted_out)
        cached = self.__dict__.get("_state_views")
        if cached is None or any(a is not b for a, b in zip(cached[0], arrays, strict=True)):
            views = {}
            for key, a in zip(("last_push", "last_open", "pushes_24h", "pushes_7d",
                               "opens_24h", "opens_7d", "dwell_24h", "dwell_7d",
                               "sessions_24h", "opted_out"), arrays, strict=True):
                v = a.view()
                v.flags.writeable = False
                views[key] = v
            cached = self._state_views = (arrays, views)
        n = self.n_users
        now = self.now
        minute_of_week = int(round((self._week0_h + now) * 60)) % (HOURS_PER_WEEK * 60)
        return {"hour": np.broadcast_to(np.int64((minute_of_week // 60) % 24), (n,)),
                "minute": np.broadcast_to(np.int64(minute_of_week % 60), (n,)),
                "weekday": np.broadcast_to(np.int64(minute_of_week // 1440), (n,)),
                "now": now, **cached[1]}

    def hidden_state(self) -> dict[str, np.ndarray]:
        """What the platform cannot see (for oracles and diagnostics), as fresh arrays.

        Keys (:data:`HIDDEN_KEYS`): ``fatigue`` (now, decayed), ``taste`` ``(N, n_features)``,
        ``topic_affinity`` ``(N, n_topics)``, ``activity_rate`` (organic sessions per hour
        now), ``activity_multiplier``, ``segment`` (index into ``params.segments``),
        ``opted_out``, ``pending_push`` (id of the unseen push in the tray, -1 if none).
        """
        now = self.now
        how = int(self._hour_of_week(now))
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
        idx = np.arange(self.n_users) if users is None else self._as_user_index(users, "users")
        return self.history_counts(self._segment[idx], self._multiplier[idx], self.now, days,
                                   rng)

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
