"""The one-user stepper: the single-user environments' engine, compiled with numba.

:class:`UserSimulator` simulates one user of a population, slot by slot, with pushes at slot
starts only -- what ``PushTiming-v0``, ``CoverStyle-v0`` and ``PushSchedule-v0`` need. It is the
same user model as :class:`~covercast.simulators.population.Population` (the SimPy engine of
populations and of the population vector environment): the user is drawn from the same
parameters, every response comes from the same :class:`~covercast.simulators.response.
ResponseModel` (compiled here with numba, called with arrays there), and the engine rules are the
population engine's (one unseen push in the tray, a newer push collapses it; fatigue when seen;
an opted-out user receives nothing more; a push seen late is opened at the first organic
session after it; daily taste drift). The two engines draw from different random streams, so
they agree in distribution, not draw for draw (``tests/simulators/test_user.py`` tests that).

Random streams
--------------
Everything a step draws comes from the simulator's own counter-based generator: SplitMix64,
whose ``i``-th 64-bit word of the stream ``key`` is ``mix(key + i * 0x9E3779B97F4A7C15)``
(Steele, Lea and Flood, "Fast splittable pseudorandom number generators", OOPSLA 2014).
:meth:`UserSimulator.reset` takes three keys from ``np.random.SeedSequence(seed)``'s second
child (``generate_state(3, np.uint64)``): the **session** stream, whose word ``n`` gives slot
``n``'s organic session count; the **drift** stream, whose normal number ``d * m + j`` moves
taste/topic component ``j`` at the end of day ``d + 1`` (``m`` components); and the
**response** stream, drawn in turn (its counter restarts at 0). So the same seed gives the same
user, the same organic sessions and the same taste drift whatever the pushes (agents compared on
a seed meet the same users), as in :class:`Population`. A word ``w`` gives the uniform
``((w >> 11) + 0.5) / 2**53`` in (0, 1); a standard normal takes two uniforms (Box-Muller,
cosine branch), a standard logistic one
(``log(u / (1 - u))``), a Poisson count one (inversion; above a mean of 500 the rounded normal
approximation), a uniform index ``floor(u * n)``. The response stream, per slot in order: with
a push, the cover, the opt-out, whether it is seen at once, then (if seen) the open; at the
slot's end, with a push waiting and sessions in the slot, the first session's time, then the
open; after an open: the dwell's normal, the like, share and comment, the survey, and with a
survey the score's logistic noise. The user (segment, activity, taste,
topic affinity) is drawn at reset from ``numpy.random.default_rng`` on the same seed sequence's
first child, as :class:`Population` draws its users.

The state of the user lives in one float64 array (offsets ``S_*``; then a ring of the last
week's slot records for the 24 h / 7 day windows, and the streams' keys and counter as four
uint64 words); the population's constants in another (its length, the int64 words of the integer
tables ``T``, offsets ``I_*``, then the float tables ``F``, offsets ``F_*`` and ``T[I_...]``), so
that a step is one call with few arguments.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import types
from typing import Any

import numpy as np
import pandas as pd

from covercast.simulators import response as R
from covercast.simulators.params import HOURS_PER_WEEK, PopulationParams
from covercast.simulators.tables import PopulationTables

__all__ = ["UserSimulator", "SUMMARY_KEYS", "OBS_DIM"]

#: The counts a step reports (sums over the slots it ran), in the order the compiled code
#: writes them; :meth:`UserSimulator.step` returns the first nine, ``dwell_s``, ``opted_out``
#: and ``satisfaction`` in its dict, the others in :attr:`UserSimulator.last_counts`.
SUMMARY_KEYS: tuple[str, ...] = (
    "pushed", "blocked", "opened", "likes", "shares", "comments", "surveys", "sessions",
    "cover", "opted_out", "collapsed", "slots")
_DICT_KEYS = SUMMARY_KEYS[:9]
#: Length of the observation vector (:mod:`covercast.envs.observation`'s layout).
OBS_DIM = 40
_LOG_HOURS_CAP = float(np.log1p(720.0))

# ------------------------------------------------------------------ S: the user's state
(S_NOW, S_SLOT, S_FAT, S_FAT_T, S_OUT, S_PEND, S_PEND_T, S_PEND_C, S_PEND_TP, S_LAST_PUSH,
 S_LAST_OPEN, S_NEXT_PID, S_P24, S_O24, S_D24, S_S24, S_P7, S_O7, S_D7, S_HEAD, S_H24, S_H7,
 S_SEG, S_MULT, S_DWELL_MU, S_DWELL_SIGMA, S_INTERCEPT, S_TOTAL, S_ELAPSED) = range(29)
# (the window sums in blocks: 24 h pushes, opens, dwell, sessions; 7 d pushes, opens, dwell)
S_PROFILE = 29                    # 24: organic sessions seen per hour of day
S_SUM = S_PROFILE + 24            # 2: the last call's dwell and survey score sums
S_USER = S_SUM + 2                # taste, topic affinity, then their segment means
# then the ring of slot records (I_S_RING), then the streams' three keys and counter (uint64)
# ------------------------------------------------------------------ T: integer constants
(I_NSEG, I_SPW, I_SPD, I_WEEK0_SLOT, I_NCOV, I_NF, I_NT, I_NSTYLE, I_MAXK, I_RING,
 I_RATE, I_ACT, I_RELACT, I_FEAT, I_QUAL, I_CLOCK, I_COEF, I_STYLES, I_STYLE_LEN,
 I_COVER_TOPIC, I_S_RING) = range(21)
I_SIZE = 21
# ------------------------------------------------------------------ F: float scalars (F[0:8])
(F_SLOT_H, F_WEEK0_H, F_HALF_LIFE, F_INCREMENT, F_PULL, F_DRIFT_SD, F_GLANCE, F_CAP) = range(8)
_RING_COLS = 5                    # slot start, pushes, opens, dwell, sessions
#: the response model's parameter groups, in the order the compiled code receives them
_PARTS = ("open", "opt_out", "dwell", "engagement", "satisfaction")


class UserSimulator:
    """One simulated user, stepped slot by slot by compiled code (pushes at slot starts).

    Parameters
    ----------
    params : PopulationParams
        The population the user is drawn from.
    bank : CoverBank
        Covers to push (the population's styles and topics).
    start : str or pandas.Timestamp
        Wall-clock time (UTC) of hour 0, on the slot grid.
    slot_minutes : int
        Slot length (divides 1440).
    response : ResponseModel, optional
        The response functions (default :data:`~covercast.simulators.response.
        DEFAULT_RESPONSE`); compiled with numba on first use, once per model: the machine
        code is kept in numba's on-disk cache (``__pycache__`` beside the package, else
        ``NUMBA_CACHE_DIR`` or the user's cache folder), so later processes load it.

    It reads like a one-user :class:`~covercast.simulators.population.Population` for the
    agents that look inside an environment: :attr:`params`, :attr:`bank`, :attr:`n_users`,
    :attr:`now`, :attr:`timestamp`, :attr:`slot_minutes`, :meth:`hidden_state`,
    :meth:`observe`. Call :meth:`reset` before stepping.
    """

    n_users = 1

    def __init__(self, params: PopulationParams, bank: Any, *,
                 start: str | pd.Timestamp = "2026-01-05T00:00:00Z", slot_minutes: int = 60,
                 response: R.ResponseModel | None = None) -> None:
        self.response = R.check_response(response)
        # the population's tables (and the checks of params, bank, start and slot length)
        self._tab = tab = PopulationTables(params, bank=bank, start=start,
                                           slot_minutes=slot_minutes)
        self.params, self.bank = tab.params, tab.bank
        self.slot_minutes, self.slot_hours = tab.slot_minutes, tab.slot_hours
        self.start = tab.start
        spd = 1440 // self.slot_minutes
        spw = tab._slots_per_week
        n_cov, n_f = tab._features.shape
        n_t = len(params.topics)
        style_table, style_len = tab._style_table, tab._style_counts
        # clock features of each slot of week (the observation's first five)
        minutes = np.arange(spw) * self.slot_minutes          # slot of week -> minute

        hour = (minutes // 60) % 24 + (minutes % 60) / 60.0
        weekday = (minutes // 1440).astype(np.float64)
        clock = np.stack([np.sin(2 * np.pi * hour / 24), np.cos(2 * np.pi * hour / 24),
                          np.sin(2 * np.pi * weekday / 7), np.cos(2 * np.pi * weekday / 7),
                          (weekday >= 5).astype(np.float64)], axis=1)
        coef, self._layout = _coefficients(params)
        d = params.drift
        scalars = np.array([self.slot_hours, tab._week0_h, params.fatigue.half_life_h,
                            params.fatigue.increment, d.reversion_per_day, d.sd_per_day,
                            params.open.glance_hours, _LOG_HOURS_CAP])
        parts = [scalars, tab._slot_rate.ravel(), tab._seg_act.ravel(),
                 tab._rel_act_table.ravel(), tab._features.ravel(), tab._quality, clock.ravel(),
                 coef]
        offsets = np.cumsum([0] + [p.size for p in parts])
        floats = np.concatenate(parts)
        ring = 7 * spd + 2
        T = np.zeros(I_SIZE, dtype=np.int64)
        T[[I_NSEG, I_SPW, I_SPD, I_WEEK0_SLOT, I_NCOV, I_NF, I_NT, I_NSTYLE, I_MAXK, I_RING]] = (
            tab._n_seg, spw, spd, tab._week0_slot, n_cov, n_f, n_t, style_table.shape[0],
            style_table.shape[1], ring)
        T[[I_RATE, I_ACT, I_RELACT, I_FEAT, I_QUAL, I_CLOCK, I_COEF]] = offsets[1:8]
        ints = [style_table.ravel(), style_len, tab._cover_topic]
        ioff = np.cumsum([I_SIZE] + [p.size for p in ints])
        T[[I_STYLES, I_STYLE_LEN, I_COVER_TOPIC]] = ioff[:3]
        self._user_size = 2 * (n_f + n_t)
        T[I_S_RING] = S_USER + self._user_size
        ints = np.concatenate([T] + [p.astype(np.int64) for p in ints])
        # one float64 array of constants: the integer part's length, its int64 words, floats
        self._P = np.concatenate([[float(ints.size)], ints.view(np.float64), floats])
        self._S = np.zeros(S_USER + self._user_size + ring * _RING_COLS + 4)
        self._G = self._S[-4:].view(np.uint64)
        self._N = np.zeros(len(SUMMARY_KEYS), dtype=np.int64)
        self._obs = np.zeros(OBS_DIM, dtype=np.float32)
        self._n_f, self._n_t = n_f, n_t
        self._run = None
        self._started = False

    # ------------------------------------------------------------------ episodes
    def reset(self, seed: int | np.random.SeedSequence | None = None) -> None:
        """A new user drawn from ``seed`` (as :meth:`Population.reset` draws its users), at
        hour 0 with no history; the step stream restarts from the same seed."""
        ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
        users_ss, steps_ss = ss.spawn(2)
        tab = self._tab
        seg, mult, taste, topic = tab._draw_users(np.random.default_rng(users_ss), 1)
        g = int(seg[0])
        S = self._S
        S[:-4] = 0.0
        S[[S_FAT_T, S_LAST_PUSH, S_LAST_OPEN]] = -np.inf
        S[[S_PEND]] = -1.0
        S[S_SEG], S[S_MULT] = g, float(mult[0])
        S[S_DWELL_MU], S[S_DWELL_SIGMA] = tab._seg_dwell_mu[g], tab._seg_dwell_sigma[g]
        S[S_INTERCEPT] = tab._seg_intercept[g]
        S[S_USER:S_USER + self._user_size] = np.concatenate(
            [taste[0], topic[0], tab._seg_taste_mean[g], tab._seg_topic_mean[g]])
        self._G[:3] = steps_ss.generate_state(3, np.uint64)
        self._G[3] = 0
        self._started = True

    def add_history(self, counts: np.ndarray, hours: float) -> None:
        """Sessions seen before the episode: ``counts`` by hour of day (24 values, from
        :meth:`draw_history`) over ``hours`` hours, added to the observed activity profile."""
        S = self._S
        S[S_PROFILE:S_PROFILE + 24] += np.asarray(counts, dtype=np.float64).reshape(24)
        S[S_TOTAL] += float(np.sum(counts))
        S[S_ELAPSED] += hours

    def draw_history(self, days: float, rng: np.random.Generator) -> np.ndarray:
        """Organic sessions in each hour of day over the ``days`` before now, ``(1, 24)``
        (:meth:`Population.draw_history` for this user, drawn from ``rng``)."""
        S = self._S
        return self._tab.history_counts(np.array([int(S[S_SEG])]), np.array([S[S_MULT]]),
                                        self.now, days, rng)

    # ------------------------------------------------------------------ stepping
    def step(self, style: int, n_slots: int = 1) -> dict[str, Any]:
        """Run ``n_slots`` slots (>= 1), with a push of a random cover of style ``style`` at
        the start of the first (``-1``: no push); stop early after a slot in which the user
        opts out. Returns the responses summed over the slots run (``pushed``, ``blocked``,
        ``opened``, ``likes``, ``shares``, ``comments``, ``surveys``, ``sessions``,
        ``cover`` -- the pushed cover or -1 --, ``dwell_s``, ``opted_out`` and, after a
        survey, ``satisfaction``: the mean score); :attr:`last_counts` has every count of
        :data:`SUMMARY_KEYS` (the slots run included) and :attr:`observation` the next
        observation."""
        run = self._run
        if run is None:
            run = self._compile()
        N = self._N
        run(self._S, self._P, N, self._obs, style, n_slots)
        n = N.tolist()
        r = dict(zip(_DICT_KEYS, n[:9], strict=True))
        r["dwell_s"], sat = self._S[S_SUM:S_SUM + 2].tolist()
        r["opted_out"] = n[9] != 0
        if n[6]:
            r["satisfaction"] = sat / n[6]
        return r

    def _compile(self) -> Any:
        if not self._started:
            raise RuntimeError("Call UserSimulator.reset() before step().")
        self._run = _compiled(self.response, self._layout)
        return self._run

    @property
    def last_counts(self) -> dict[str, int]:
        """The counts of the last :meth:`step` (:data:`SUMMARY_KEYS`), e.g. ``slots`` run and
        pushes ``collapsed`` (an unseen push replaced by a newer one)."""
        return dict(zip(SUMMARY_KEYS, self._N.tolist(), strict=True))

    @property
    def slots_run(self) -> int:
        """Slots the last :meth:`step` ran."""
        return int(self._N[11])

    @property
    def observation(self) -> np.ndarray:
        """The observation after the last :meth:`step` (a buffer: copy it to keep it)."""
        return self._obs

    def observe_now(self) -> np.ndarray:
        """The observation now (a new array), e.g. right after :meth:`reset`: runs no slot."""
        run = self._run if self._run is not None else self._compile()
        run(self._S, self._P, self._N, self._obs, -1, 0)
        return self._obs.copy()

    # ------------------------------------------------------------------ reading
    @property
    def now(self) -> float:
        """Hours since ``start`` (the start of the coming slot)."""
        return float(self._S[S_NOW])

    @property
    def timestamp(self) -> pd.Timestamp:
        """Wall-clock time (UTC) of :attr:`now`."""
        return self.start + pd.Timedelta(hours=self.now)

    @property
    def _pend_cover(self) -> np.ndarray:
        return np.array([int(self._S[S_PEND_C])], dtype=np.int64)

    @property
    def _pend_time(self) -> np.ndarray:
        return np.array([self._S[S_PEND_T]])

    def hidden_state(self) -> dict[str, np.ndarray]:
        """What the platform cannot see, as :meth:`Population.hidden_state` gives it (arrays
        with a leading axis of length 1)."""
        S, tab = self._S, self._tab
        n_f, n_t = self._n_f, self._n_t
        g = int(S[S_SEG])
        how = int(math.floor(tab._week0_h + self.now + 1e-9)) % HOURS_PER_WEEK
        return {
            "fatigue": np.atleast_1d(R.fatigue_at(S[S_FAT], S[S_FAT_T], self.now,
                                                  self.params.fatigue.half_life_h)),
            "taste": S[S_USER:S_USER + n_f][None, :].copy(),
            "topic_affinity": S[S_USER + n_f:S_USER + n_f + n_t][None, :].copy(),
            "activity_rate": np.array([tab._seg_act[g, how] * S[S_MULT]]),
            "activity_multiplier": np.array([S[S_MULT]]),
            "segment": np.array([g], dtype=np.int64),
            "opted_out": np.array([S[S_OUT] != 0.0]),
            "pending_push": np.array([int(S[S_PEND])], dtype=np.int64),
        }

    def observe(self) -> dict[str, np.ndarray]:
        """What a platform can see now, as :meth:`Population.observe` gives it (one-element
        arrays)."""
        S = self._S
        now = self.now
        mow = int(round((self._tab._week0_h + now) * 60)) % (HOURS_PER_WEEK * 60)

        def one(x: float, dtype: Any = np.int64) -> np.ndarray:
            return np.array([x], dtype=dtype)

        return {"hour": one((mow // 60) % 24), "minute": one(mow % 60),
                "weekday": one(mow // 1440),
                "hours_since_push": one(now - S[S_LAST_PUSH], np.float64),
                "hours_since_open": one(now - S[S_LAST_OPEN], np.float64),
                "pushes_24h": one(S[S_P24]), "pushes_7d": one(S[S_P7]),
                "opens_24h": one(S[S_O24]), "opens_7d": one(S[S_O7]),
                "dwell_24h": one(S[S_D24], np.float64), "dwell_7d": one(S[S_D7], np.float64),
                "sessions_24h": one(S[S_S24]), "opted_out": one(S[S_OUT] != 0.0, bool)}

    def __getstate__(self) -> dict[str, Any]:
        """Pickle support: the compiled function is found again on load; the stream's words
        stay a view of the state array."""
        state = self.__dict__.copy()
        del state["_run"], state["_G"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._G = self._S[-4:].view(np.uint64)
        self._run = None

    def __repr__(self) -> str:
        return (f"UserSimulator(segments={self.params.segment_names}, now={self.now:g} h, "
                f"slot_minutes={self.slot_minutes})")


# ====================================================================== compilation
def _coefficients(params: PopulationParams) -> tuple[np.ndarray, tuple]:
    """The response model's parameters as one float array, and its layout: per part of
    :data:`_PARTS`, the field names and how many numbers each holds (1, or a list's length)."""
    values: list[float] = []
    layout = []
    for part in _PARTS:
        model = getattr(params, part)
        fields = []
        for f in dataclasses.fields(model):
            v = getattr(model, f.name)
            if isinstance(v, (list, tuple)):
                values.extend(float(x) for x in v)
                fields.append((f.name, len(v)))
            else:
                values.append(float(v))
                fields.append((f.name, 1))
        layout.append((part, tuple(fields)))
    return np.array(values), tuple(layout)


def _record_builder(layout: tuple) -> Any:
    """A function ``build(coef) -> tuple`` of namedtuples (one per part, the dataclass's field
    names) read from the coefficient array: what the response functions get under numba."""
    env: dict[str, Any] = {}
    parts, pos = [], 0
    for part, fields in layout:
        nt = collections.namedtuple(f"{part}_params", [name for name, _ in fields])
        env[f"NT_{part}"] = nt
        args = []
        for _, n in fields:
            if n == 1:
                args.append(f"c[{pos}]")
            else:
                args.append("(" + "".join(f"c[{pos + k}], " for k in range(n)) + ")")
            pos += n
        parts.append(f"NT_{part}({', '.join(args)})")
    src = f"def build(c):\n    return ({', '.join(parts)},)\n"
    exec(compile(src, "<covercast.simulators.user coefficients>", "exec"), env)
    env["build"].layout = layout          # the namedtuples' field names, for the cache key
    return env["build"]


def _jit_tree(fn: Any, njit: Any, memo: dict) -> Any:
    """``njit(fn)`` with the plain Python functions it calls (through its globals) compiled
    too, recursively: the response functions call their helpers as ordinary functions.

    A global bound to numpy is bound to :data:`covercast.simulators._user_kernel.NUMPY_FOR_JIT`
    instead: numpy, but with a ``where`` that gives a float, not a 0-d array, for floats (under
    numba ``np.where`` on scalars allocates an array at each call; the value is the same)."""
    if fn in memo:
        return memo[fn]
    if not isinstance(fn, types.FunctionType):
        return fn                      # a numba dispatcher already, or a builtin
    from covercast.simulators._user_kernel import NUMPY_FOR_JIT

    g = dict(fn.__globals__)
    memo[fn] = None
    for name in fn.__code__.co_names:
        v = g.get(name)
        if isinstance(v, types.FunctionType) and v is not fn:
            g[name] = _jit_tree(v, njit, memo)
        elif v is np:
            g[name] = NUMPY_FOR_JIT
    new = types.FunctionType(fn.__code__, g, fn.__name__, fn.__defaults__, fn.__closure__)
    memo[fn] = out = njit(new)
    return out


_COMPILED: dict[tuple, Any] = {}


def _compiled(response: R.ResponseModel, layout: tuple) -> Any:
    """The compiled step function for a response model and coefficient layout (made once per
    process)."""
    key = (response, layout)
    run = _COMPILED.get(key)
    if run is None:
        from covercast.simulators import _user_kernel
        run = _COMPILED[key] = _user_kernel.make(response, _record_builder(layout), _jit_tree)
    return run
