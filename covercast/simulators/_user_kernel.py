"""The numba code of :mod:`covercast.simulators.user` (imported on first use, so that numba is
imported only when a single-user environment first steps). See that module for the model, the
random stream and the order of the draws; :func:`make` compiles a step function around one
:class:`~covercast.simulators.response.ResponseModel`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import types
from typing import Any

import numpy as np
from numba import njit
from numba import types as nbtypes
from numba.extending import overload

from covercast.simulators import response as R
from covercast.simulators.user import (
    F_CAP,
    F_DRIFT_SD,
    F_GLANCE,
    F_HALF_LIFE,
    F_INCREMENT,
    F_PULL,
    F_SLOT_H,
    F_WEEK0_H,
    I_ACT,
    I_CLOCK,
    I_COEF,
    I_COVER_TOPIC,
    I_FEAT,
    I_MAXK,
    I_NF,
    I_NT,
    I_QUAL,
    I_RATE,
    I_RELACT,
    I_RING,
    I_S_RING,
    I_SPD,
    I_SPW,
    I_STYLE_LEN,
    I_STYLES,
    I_WEEK0_SLOT,
    S_D7,
    S_D24,
    S_DWELL_MU,
    S_DWELL_SIGMA,
    S_ELAPSED,
    S_FAT,
    S_FAT_T,
    S_H7,
    S_H24,
    S_HEAD,
    S_INTERCEPT,
    S_LAST_OPEN,
    S_LAST_PUSH,
    S_MULT,
    S_NEXT_PID,
    S_NOW,
    S_O7,
    S_O24,
    S_OUT,
    S_P7,
    S_P24,
    S_PEND,
    S_PEND_C,
    S_PEND_T,
    S_PEND_TP,
    S_PROFILE,
    S_S24,
    S_SEG,
    S_SLOT,
    S_SUM,
    S_TOTAL,
    S_USER,
)


# ------------------------------------------------------------------ numpy for the response model
def scalar_where(cond, x, y):  # noqa: ANN001, ANN201 (numba: the same names as the impls)
    """``np.where(cond, x, y)``; under numba, for scalars, the scalar ``x if cond else y``."""
    return np.where(cond, x, y)


@overload(scalar_where)
def _scalar_where(cond, x, y):  # noqa: ANN001, ANN202 (numba compares the names)
    if all(isinstance(a, (nbtypes.Number, nbtypes.Boolean)) for a in (cond, x, y)):
        def impl(cond, x, y):  # noqa: ANN001, ANN202
            return x if cond else y
    else:
        def impl(cond, x, y):  # noqa: ANN001, ANN202
            return np.where(cond, x, y)
    return impl


#: part of every cache digest: changes when what the digest cannot see (scalar_where) does
_CACHE_TAG = " scalar_where 1"

#: numpy with :func:`scalar_where` as ``where``: the module the compiled response functions
#: see as ``np`` (:func:`covercast.simulators.user._jit_tree`).
NUMPY_FOR_JIT = types.ModuleType("numpy")
NUMPY_FOR_JIT.__dict__.update(np.__dict__)
NUMPY_FOR_JIT.where = scalar_where

# the summary: counts in N (the order of user.SUMMARY_KEYS), dwell and survey score sums in S
_PUSHED, _BLOCKED, _OPENED, _LIKES, _SHARES, _COMMENTS, _SURVEYS, _SESSIONS, _COVER = range(9)
_OPTED_OUT, _COLLAPSED, _SLOTS = range(9, 12)
_DWELL, _SAT = S_SUM, S_SUM + 1
_WEEK = 168

# ------------------------------------------------------------------ SplitMix64, counter-based
# G (the last four words of S, uint64): the keys of the session, drift and response streams,
# then the response stream's counter
_G_SESSIONS, _G_DRIFT, _G_RESPONSES, _G_COUNTER = range(4)
_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_ONE = np.uint64(1)
_SH30, _SH27, _SH31, _SH11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)
_TO_UNIT = 2.0 ** -53
_FAR = np.uint64(1 << 62)        # second half of the session stream: large means' extra draw


@njit(cache=True)
def unit_at(key: np.uint64, i: np.uint64) -> float:
    """The ``i``-th uniform in (0, 1) of the stream ``key``: ``mix(key + i * gamma)``."""
    z = key + i * _GAMMA
    z = (z ^ (z >> _SH30)) * _MIX1
    z = (z ^ (z >> _SH27)) * _MIX2
    z = z ^ (z >> _SH31)
    return (float(z >> _SH11) + 0.5) * _TO_UNIT


@njit(cache=True)
def normal_at(key: np.uint64, i: np.uint64) -> float:
    """A standard normal from uniforms ``2i`` and ``2i + 1`` (Box-Muller, cosine branch)."""
    r = math.sqrt(-2.0 * math.log(unit_at(key, i + i)))
    return r * math.cos(2.0 * math.pi * unit_at(key, i + i + _ONE))


@njit(cache=True)
def uniform(G: np.ndarray) -> float:
    """The response stream's next uniform."""
    G[_G_COUNTER] += _ONE
    return unit_at(G[_G_RESPONSES], G[_G_COUNTER])


@njit(cache=True)
def normal(G: np.ndarray) -> float:
    """The response stream's next standard normal (two uniforms)."""
    G[_G_COUNTER] += _ONE
    i = G[_G_COUNTER]
    G[_G_COUNTER] += _ONE
    r = math.sqrt(-2.0 * math.log(unit_at(G[_G_RESPONSES], i)))
    return r * math.cos(2.0 * math.pi * unit_at(G[_G_RESPONSES], i + _ONE))


@njit(cache=True)
def logistic(G: np.ndarray) -> float:
    """The response stream's next standard logistic (one uniform)."""
    u = uniform(G)
    return math.log(u / (1.0 - u))


@njit(cache=True)
def sessions(lam: float, G: np.ndarray, slot: int) -> int:
    """The organic sessions of slot ``slot``: Poisson(``lam``) by inversion of the session
    stream's uniform number ``slot`` (above a mean of 500, the rounded normal approximation
    with normal number ``2**62 + slot``)."""
    if lam <= 0.0:
        return 0
    i = np.uint64(slot)
    if lam > 500.0:
        z = normal_at(G[_G_SESSIONS], _FAR + i)
        return max(0, int(math.floor(lam + math.sqrt(lam) * z + 0.5)))
    u = unit_at(G[_G_SESSIONS], i)
    p = math.exp(-lam)
    cdf = p
    k = 0
    while u > cdf:
        k += 1
        p *= lam / k
        if p == 0.0 and k > lam:
            break
        cdf += p
    return k


# ------------------------------------------------------------------ time
@njit(cache=True)
def hour_of_week(F: np.ndarray, t: float) -> int:
    return int(math.floor(F[F_WEEK0_H] + t + 1e-9)) % _WEEK


@njit(cache=True)
def offset_in_slot(F: np.ndarray, T: np.ndarray, seg: int, t0: float, frac: float) -> float:
    """Time after the slot start ``t0`` at which a fraction ``frac`` of the slot's session
    intensity has passed (the segment's rate is constant within each hour of week)."""
    L = F[F_SLOT_H]
    w0 = F[F_WEEK0_H] + t0
    if math.floor(w0 + 1e-9) == math.floor(w0 + L - 1e-9):
        return frac * L
    act = T[I_ACT] + seg * _WEEK
    total = 0.0
    a = 0.0
    while a < L - 1e-12:
        h = math.floor(w0 + a + 1e-9)
        end = min(h + 1.0 - w0, L)
        total += F[act + int(h) % _WEEK] * (end - a)
        a = end
    target = frac * total
    a = 0.0
    while a < L - 1e-12:
        h = math.floor(w0 + a + 1e-9)
        end = min(h + 1.0 - w0, L)
        rate = F[act + int(h) % _WEEK]
        mass = rate * (end - a)
        if target <= mass and rate > 0.0:
            return a + target / rate
        target -= mass
        a = end
    return L


@njit(cache=True)
def window(S: np.ndarray, ring: int, r_len: int, head: int, oldest: int, sums: int, n: int,
           since: float) -> None:
    """One rolling window: add the newest slot record (number ``head``) to the sums
    ``S[sums:sums + n]`` (pushes, opens, dwell[, sessions]) and drop the records of slots that
    started before ``since``; ``S[oldest]`` is the number of the oldest record kept."""
    row = ring + (head % r_len) * 5
    for j in range(n):
        S[sums + j] += S[row + 1 + j]
    h = int(S[oldest])
    while h <= head and S[ring + (h % r_len) * 5] < since - 1e-9:
        r = ring + (h % r_len) * 5
        for j in range(n):
            S[sums + j] -= S[r + 1 + j]
        if S[sums + 1] == 0.0:              # no opens left: no dwell (no rounding residue)
            S[sums + 2] = 0.0
        h += 1
    S[oldest] = h


def compile_response(response: R.ResponseModel, jit_tree: Any) -> tuple[Any, ...]:
    """``response``'s functions compiled with numba (``jit_tree``), in the order of its
    fields (``open_probability``, ``seen_now_probability``, ``opt_out_probability``,
    ``dwell_seconds``, ``engagement_probabilities``, ``survey_probability``,
    ``satisfaction_score``), then :func:`~covercast.simulators.response.fatigue_at`."""
    memo: dict = {}
    return (*(jit_tree(getattr(response, f.name), njit, memo)
              for f in dataclasses.fields(response)), jit_tree(R.fatigue_at, njit, memo))


def make(response: R.ResponseModel, build_coef: Any, jit_tree: Any) -> Any:
    """The step function ``run(S, P, N, obs, style, n_slots)`` with ``response``'s
    functions compiled in (see :meth:`covercast.simulators.user.UserSimulator.step`)."""
    (open_probability, seen_now_probability, opt_out_probability, dwell_seconds,
     engagement_probabilities, survey_probability, satisfaction_score,
     fatigue_at) = compile_response(response, jit_tree)
    coefficients = njit(build_coef)

    @njit
    def try_open(S, N, G, F, T, C, cover, topic, t, delay):
        """A push is seen at ``t``, ``delay`` hours after delivery: the open, and after an
        open its dwell, engagement and survey. Returns (opened, dwell)."""
        fat = fatigue_at(S[S_FAT], S[S_FAT_T], t, F[F_HALF_LIFE])
        seg = int(S[S_SEG])
        n_f = T[I_NF]
        feat = T[I_FEAT] + cover * n_f
        match = 0.0
        for j in range(n_f):
            match += S[S_USER + j] * F[feat + j]
        aff = S[S_USER + n_f + topic]
        p = open_probability(S[S_INTERCEPT],
                             F[T[I_RELACT] + seg * _WEEK + hour_of_week(F, t)], match,
                             F[T[I_QUAL] + cover], aff, fat, delay, C[0])
        if uniform(G) >= p:
            return 0, 0.0
        rel = match + aff
        dwell = dwell_seconds(S[S_DWELL_MU], S[S_DWELL_SIGMA], rel, normal(G), C[2])
        p_like, p_share, p_comment = engagement_probabilities(rel, C[3])
        if uniform(G) < p_like:
            N[_LIKES] += 1
        if uniform(G) < p_share:
            N[_SHARES] += 1
        if uniform(G) < p_comment:
            N[_COMMENTS] += 1
        if uniform(G) < survey_probability(rel, dwell, fat, C[4]):
            N[_SURVEYS] += 1
            S[_SAT] += satisfaction_score(rel, dwell, fat, logistic(G), C[4])
        N[_OPENED] += 1
        S[_DWELL] += dwell
        S[S_LAST_OPEN] = t
        return 1, dwell

    @njit
    def one_slot(S, N, G, F, T, C, style):
        """One slot from now: sessions, the push (``style >= 0``), late opens, the windows,
        the observed profile, and the day's drift at a day's end."""
        L = F[F_SLOT_H]
        t0 = S[S_NOW]
        slot = int(S[S_SLOT])
        seg = int(S[S_SEG])
        mult = S[S_MULT]
        spw = T[I_SPW]
        sw = (T[I_WEEK0_SLOT] + slot) % spw
        k = sessions(F[T[I_RATE] + seg * spw + sw] * mult, G, slot)
        pushes = 0
        opens = 0
        dwell = 0.0
        if style >= 0:
            if S[S_OUT] != 0.0:
                N[_BLOCKED] += 1
            else:
                if S[S_PEND] >= 0.0:               # an unseen push collapses
                    N[_COLLAPSED] += 1
                    S[S_PEND] = -1.0
                n = T[T[I_STYLE_LEN] + style]
                cover = T[T[I_STYLES] + style * T[I_MAXK] + int(uniform(G) * n)]
                topic = T[T[I_COVER_TOPIC] + cover]
                pid = S[S_NEXT_PID]
                S[S_NEXT_PID] = pid + 1.0
                pushes = 1
                N[_PUSHED] += 1
                N[_COVER] = cover
                S[S_LAST_PUSH] = t0
                fat = fatigue_at(S[S_FAT], S[S_FAT_T], t0, F[F_HALF_LIFE]) + F[F_INCREMENT]
                S[S_FAT] = fat
                S[S_FAT_T] = t0
                if uniform(G) < opt_out_probability(fat, C[1]):
                    S[S_OUT] = 1.0
                    N[_OPTED_OUT] = 1
                else:
                    rate = F[T[I_ACT] + seg * _WEEK + hour_of_week(F, t0)] * mult
                    if uniform(G) < seen_now_probability(rate, F[F_GLANCE]):
                        o, d = try_open(S, N, G, F, T, C, cover, topic, t0, 0.0)
                        opens += o
                        dwell += d
                    else:
                        S[S_PEND] = pid
                        S[S_PEND_T] = t0
                        S[S_PEND_C] = cover
                        S[S_PEND_TP] = topic
        if S[S_PEND] >= 0.0 and k > 0:
            # the first of the slot's k sessions sees the waiting push
            frac = -math.expm1(math.log(uniform(G)) / k)
            t = t0 + offset_in_slot(F, T, seg, t0, frac)
            S[S_PEND] = -1.0
            o, d = try_open(S, N, G, F, T, C, int(S[S_PEND_C]), int(S[S_PEND_TP]), t,
                            t - S[S_PEND_T])
            opens += o
            dwell += d
        # the slot's books: sessions, observed profile, windows
        N[_SESSIONS] += k
        mow = int(round((F[F_WEEK0_H] + t0) * 60.0)) % (_WEEK * 60)
        if k:
            S[S_PROFILE + (mow // 60) % 24] += k
            S[S_TOTAL] += k
        S[S_ELAPSED] += L
        now = t0 + L
        S[S_NOW] = now
        S[S_SLOT] = slot + 1
        ring = T[I_S_RING]
        R_LEN = T[I_RING]
        head = int(S[S_HEAD])
        row = ring + (head % R_LEN) * 5
        S[row] = t0
        S[row + 1] = pushes
        S[row + 2] = opens
        S[row + 3] = dwell
        S[row + 4] = k
        S[S_HEAD] = head + 1
        window(S, ring, R_LEN, head, S_H24, S_P24, 4, now - 24.0)
        window(S, ring, R_LEN, head, S_H7, S_P7, 3, now - 168.0)
        # a day ended: one Ornstein-Uhlenbeck step of taste and topic affinity
        if (slot + 1) % T[I_SPD] == 0:
            m = T[I_NF] + T[I_NT]
            pull, sd = F[F_PULL], F[F_DRIFT_SD]
            first = np.uint64((slot + 1) // T[I_SPD] - 1) * np.uint64(m)
            for j in range(m):
                x = S[S_USER + j]
                x = x + pull * (S[S_USER + m + j] - x)
                if sd > 0.0:
                    x += sd * normal_at(G[_G_DRIFT], first + np.uint64(j))
                S[S_USER + j] = x

    @njit
    def observe(S, F, T, obs):
        """The observation now (the layout of covercast.envs.observation)."""
        now = S[S_NOW]
        sw = (T[I_WEEK0_SLOT] + int(S[S_SLOT])) % T[I_SPW]
        clock = T[I_CLOCK] + sw * 5
        for j in range(5):
            obs[j] = F[clock + j]
        cap = F[F_CAP]
        obs[5] = min(math.log1p(now - S[S_LAST_PUSH]), cap)
        obs[6] = min(math.log1p(now - S[S_LAST_OPEN]), cap)
        obs[7] = S[S_P24]
        obs[8] = S[S_O24]
        obs[9] = S[S_D24] / 60.0
        obs[10] = S[S_P7]
        obs[11] = S[S_O7]
        obs[12] = S[S_D7] / 60.0
        obs[13] = S[S_S24]
        tot = S[S_TOTAL]
        el = S[S_ELAPSED]
        hour = (int(round((F[F_WEEK0_H] + now) * 60.0)) % (_WEEK * 60)) // 60 % 24
        for h in range(24):
            obs[16 + h] = S[S_PROFILE + h] / tot if tot > 0.0 else 1.0 / 24.0
        obs[14] = obs[16 + hour]
        obs[15] = tot * 24.0 / el if el > 0.0 else 0.0

    @njit
    def run(S, P, N, obs, style, n_slots):
        n_i = int(P[0])
        T = P[1:1 + n_i].view(np.int64)
        F = P[1 + n_i:]
        G = S[S.size - 4:].view(np.uint64)
        C = coefficients(F[T[I_COEF]:])
        N[:] = 0
        S[_DWELL] = 0.0
        S[_SAT] = 0.0
        N[_COVER] = -1
        done = 0
        while done < n_slots:
            one_slot(S, N, G, F, T, C, style if done == 0 else -1)
            done += 1
            if N[_OPTED_OUT] != 0:
                break
        N[_SLOTS] = done
        observe(S, F, T, obs)

    cache_on_disk(run, code_digest([run], repr(build_coef.layout) + _CACHE_TAG))
    return run


# ------------------------------------------------------------------ on-disk cache
_CONSTANT = (bool, int, float, complex, str, bytes, tuple, type(None), np.generic)


def code_digest(functions: list[Any], extra: str = "") -> str | None:
    """A digest of the Python code compiled into one step function, or None where it cannot
    be told (then the function is not cached).

    It covers each function's module, name, byte code and constants, and the values numba
    freezes into the machine code: the numbers, strings, tuples and arrays it reads as
    globals, as module attributes or from its closure, and the functions it calls (numba
    dispatchers by their Python function), plus ``extra``. A closure holding anything else
    gives None.
    """
    h = hashlib.sha256(extra.encode())
    seen: set[int] = set()

    def feed_value(v: Any) -> bool:
        if isinstance(v, _CONSTANT):
            h.update(repr(v).encode())
        elif isinstance(v, np.ndarray):
            h.update(repr((v.dtype.str, v.shape)).encode() + v.tobytes())
        elif callable(getattr(v, "py_func", None)):
            return feed_function(v.py_func)
        elif isinstance(v, types.FunctionType):
            return feed_function(v)
        else:
            return False
        return True

    def feed_code(code: types.CodeType) -> None:
        h.update(code.co_code + repr(code.co_names).encode())
        for c in code.co_consts:
            if isinstance(c, types.CodeType):
                feed_code(c)
            else:
                h.update(repr(c).encode())

    def feed_function(fn: types.FunctionType) -> bool:
        if id(fn) in seen:
            return True
        seen.add(id(fn))
        h.update(f"{fn.__module__}.{fn.__qualname__}".encode())
        feed_code(fn.__code__)
        names = fn.__code__.co_names
        for name in names:
            v = fn.__globals__.get(name)
            if isinstance(v, types.ModuleType):
                for attr in names:
                    w = getattr(v, attr, None)
                    if isinstance(w, (*_CONSTANT, np.ndarray)):
                        h.update(f"{name}.{attr}".encode())
                        feed_value(w)
            elif isinstance(v, (*_CONSTANT, np.ndarray, types.FunctionType)) or \
                    callable(getattr(v, "py_func", None)):
                h.update(name.encode())
                if not feed_value(v):
                    return False
        return all(feed_value(c.cell_contents) for c in fn.__closure__ or ())

    return h.hexdigest() if all(feed_value(f) for f in functions) else None


def cache_on_disk(dispatcher: Any, digest: str | None) -> bool:
    """Give a step function numba's on-disk cache, indexed by ``digest``.

    numba's ``cache=True`` indexes a closure by a pickle of its closure, which holds the
    compiled response functions and with them a random id per process, so it would never hit
    again. This cache is numba's own (:class:`numba.core.caching.FunctionCache`: beside the
    source in ``__pycache__``, or in ``NUMBA_CACHE_DIR`` or the user's cache folder where
    that is read-only), indexed by ``digest`` (:func:`code_digest` of everything compiled in)
    instead. Returns False, and the function compiles in every process as before, where the
    digest is None or this numba has no such class.
    """
    if digest is None:
        return False
    try:
        from numba.core.caching import FunctionCache

        class DigestCache(FunctionCache):
            def _index_key(self, sig: Any, codegen: Any) -> tuple:
                return (sig, codegen.magic_tuple(), digest)

        dispatcher._cache = DigestCache(dispatcher.py_func)
    except (ImportError, AttributeError, TypeError, RuntimeError):
        return False
    return True
