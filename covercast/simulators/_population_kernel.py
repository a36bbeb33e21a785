"""The numba code of :class:`covercast.simulators.population.Population`'s compiled slot path
(imported on first use, so that numba is imported only when a population first pushes).

A slot whose pushes all come at its start (what :meth:`Population.step` does, hence the
population vector environment) needs no event ordering inside the slot: every push is
delivered at the slot's start, before any organic session of the slot, and the pushes still in
the tray at the slot's end are seen at their user's first session of the slot. That slot is
two passes over users here instead of the numpy code over arrays of users:

* :func:`make`'s ``deliver`` (a push batch at the slot's start): blocked (opted out), the
  tray's unseen push collapses, fatigue, the opt-out draw, then seen at once (and maybe opened)
  or left in the tray;
* its ``see_pending`` (the slot's end): each active user with a push in the tray sees it at
  the first session of the slot (after the push), drawn as the minimum of the slot's ``k``
  session times (the engine's order statistics), and may open it.

The engine rules and the responses are the numpy path's (the same
:class:`~covercast.simulators.response.ResponseModel` functions, compiled with numba as the
one-user stepper compiles them); the draws come from the same numpy ``Generator`` streams
(``responses``, ``session_times``) through numba's support for ``numpy.random.Generator``, one
user at a time: the same distributions, in another order than the numpy path.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import njit

from covercast.simulators import response as R
from covercast.simulators._user_kernel import (
    _CACHE_TAG,
    cache_on_disk,
    code_digest,
    compile_response,
)
from covercast.simulators.params import HOURS_PER_WEEK

_WEEK = HOURS_PER_WEEK

# what deliver() reports per pushed user (Population._deliver_compiled reads it)
BLOCKED, OPTED_OUT, PENDING, SEEN = 0, 1, 2, 3


@njit(cache=True)
def _hour_of_week(week0_h: float, t: float) -> int:
    return int(math.floor(week0_h + t + 1e-9)) % _WEEK


@njit(cache=True)
def session_counts(rate: np.ndarray, segment: np.ndarray, multiplier: np.ndarray, rng: Any,
                   act: np.ndarray, counts: np.ndarray) -> int:
    """Every user's organic sessions in the slot: Poisson(``rate[segment] * multiplier``),
    drawn user by user from ``rng``; the users with sessions and their counts go to ``act``
    and ``counts`` (in user order). Returns how many."""
    n_act = 0
    for i in range(segment.size):
        lam = rate[segment[i]] * multiplier[i]
        k = rng.poisson(lam) if lam > 0.0 else 0
        if k:
            act[n_act] = i
            counts[n_act] = k
            n_act += 1
    return n_act


@njit(cache=True)
def covers_of_styles(style: np.ndarray, table: np.ndarray, counts: np.ndarray, rng: Any,
                     out: np.ndarray) -> None:
    """A cover drawn uniformly among each push's style's covers (row ``style[i]`` of
    ``table`` holds ``counts[style[i]]`` of them)."""
    for i in range(style.size):
        s = style[i]
        out[i] = table[s, rng.integers(0, counts[s])]


def make(response: R.ResponseModel, build_coef: Any, jit_tree: Any) -> tuple[Any, Any]:
    """``(deliver, see_pending)`` with ``response``'s functions compiled in.

    ``st`` is the tuple of the population's state arrays ``(opted_out, pend_id, pend_time,
    pend_cover, pend_topic, last_push, last_open, fatigue, fatigue_t, segment, multiplier,
    taste, topic_aff)`` (updated in place) and ``tb`` the tables ``(seg_act, rel_act,
    features, quality, intercept, dwell_mu, dwell_sigma)``; ``sc`` the scalars ``(week0_h,
    half_life_h, increment, glance_hours)``; ``coef`` the response model's parameters
    (:func:`covercast.simulators.user._coefficients`); ``o`` the open buffers ``(index,
    push id, time, delay, dwell, like, share, comment, satisfaction)`` of which the first
    ``m`` rows are written (``m`` returned).
    """
    (open_probability, seen_now_probability, opt_out_probability, dwell_seconds,
     engagement_probabilities, survey_probability, satisfaction_score,
     fatigue_at) = compile_response(response, jit_tree)
    coefficients = njit(build_coef)

    @njit(inline="always")
    def try_open(st, tb, sc, C, rng, u, pid, cover, topic, t, delay, o, m, idx):
        """User ``u`` sees a push at ``t``: the open draw, and after an open its dwell,
        engagement and survey, written to row ``m`` of ``o``. Returns the rows written."""
        (_, _, _, _, _, _, last_open, fatigue, fatigue_t, segment, _, taste, topic_aff) = st
        seg_act, rel_act, features, quality, intercept, dwell_mu, dwell_sigma = tb
        o_idx, o_pid, o_t, o_delay, o_dwell, o_like, o_share, o_comment, o_sat = o
        seg = segment[u]
        fat = fatigue_at(fatigue[u], fatigue_t[u], t, sc[1])
        match = 0.0
        for j in range(features.shape[1]):
            match += taste[u, j] * features[cover, j]
        aff = topic_aff[u, topic]
        p = open_probability(intercept[seg], rel_act[seg, _hour_of_week(sc[0], t)], match,
                             quality[cover], aff, fat, delay, C[0])
        if not rng.random() < p:
            return 0
        rel = match + aff
        dwell = dwell_seconds(dwell_mu[seg], dwell_sigma[seg], rel, rng.standard_normal(),
                              C[2])
        p_like, p_share, p_comment = engagement_probabilities(rel, C[3])
        o_like[m] = rng.random() < p_like
        o_share[m] = rng.random() < p_share
        o_comment[m] = rng.random() < p_comment
        o_sat[m] = 0
        if rng.random() < survey_probability(rel, dwell, fat, C[4]):
            o_sat[m] = satisfaction_score(rel, dwell, fat, rng.logistic(), C[4])
        o_idx[m] = idx
        o_pid[m] = pid
        o_t[m] = t
        o_delay[m] = delay
        o_dwell[m] = dwell
        if t > last_open[u]:
            last_open[u] = t
        return 1

    @njit
    def deliver(st, tb, sc, coef, rng, users, cover, topic, pid, t, status, collapsed, o):
        """A push batch at the slot's start ``t``: ``status`` per pushed user, the collapsed
        push ids (their count is returned first), the opens at once in ``o`` (index into
        the batch; their count returned second)."""
        (opted_out, pend_id, pend_time, pend_cover, pend_topic, last_push, _, fatigue,
         fatigue_t, segment, multiplier, _, _) = st
        seg_act = tb[0]
        C = coefficients(coef)
        how = _hour_of_week(sc[0], t)
        n_coll = 0
        m = 0
        for i in range(users.size):
            u = users[i]
            if opted_out[u]:
                status[i] = BLOCKED
                continue
            if pend_id[u] >= 0:       # no session of this slot has come yet: it collapses
                collapsed[n_coll] = pend_id[u]
                n_coll += 1
                pend_id[u] = -1
            last_push[u] = t
            fat = fatigue_at(fatigue[u], fatigue_t[u], t, sc[1]) + sc[2]
            fatigue[u] = fat
            fatigue_t[u] = t
            if rng.random() < opt_out_probability(fat, C[1]):
                opted_out[u] = True
                status[i] = OPTED_OUT
                continue
            rate = seg_act[segment[u], how] * multiplier[u]
            if rng.random() < seen_now_probability(rate, sc[3]):
                status[i] = SEEN
                m += try_open(st, tb, sc, C, rng, u, pid[i], cover[i], topic[i], t, 0.0, o, m,
                              i)
            else:
                status[i] = PENDING
                pend_id[u] = pid[i]
                pend_time[u] = t
                pend_cover[u] = cover[i]
                pend_topic[u] = topic[i]
        return n_coll, m

    @njit
    def see_pending(st, tb, sc, coef, rng, act, counts, drawn_j, drawn_last, slot_start,
                    slot_h, t_knots, c_knots, o, d_idx, d_frac):
        """The slot's end: active users (``act``, with ``counts`` sessions) with a push in the
        tray see it at their first session of the slot after it (``c_knots``' row of the
        user's segment maps the fraction of the slot's session intensity to the time after
        the slot's start, ``t_knots``; no knots: uniform); ``o``'s index is into ``act``.
        The session times drawn are left as the engine keeps them (``drawn_j`` drawn so far,
        the last at fraction ``drawn_last``) and listed in ``d_idx`` (into ``act``) and
        ``d_frac``, for the event log. Returns (opens, session times drawn)."""
        (_, pend_id, pend_time, pend_cover, pend_topic, _, _, _, _, segment, _, _, _) = st
        C = coefficients(coef)
        m = 0
        n_d = 0
        for i in range(act.size):
            u = act[i]
            if pend_id[u] < 0:
                continue
            k = counts[i]
            thr = -1.0 if pend_time[u] < slot_start else 0.0
            last = 0.0
            j = 0
            while j < k:
                # the next order statistic of the remaining k - j uniforms on [last, 1]
                v = 1.0 - rng.random()
                last = last + (1.0 - last) * (-math.expm1(math.log(v) / (k - j)))
                j += 1
                d_idx[n_d] = i
                d_frac[n_d] = last
                n_d += 1
                if last > thr:
                    break
            drawn_j[i] = j
            drawn_last[i] = last
            if not last > thr:
                continue
            if t_knots.size:
                off = np.interp(last, c_knots[segment[u]], t_knots)
            else:
                off = last * slot_h
            t = slot_start + off
            pid = pend_id[u]
            pend_id[u] = -1
            m += try_open(st, tb, sc, C, rng, u, pid, pend_cover[u], pend_topic[u], t,
                          t - pend_time[u], o, m, i)
        return m, n_d

    extra = repr(build_coef.layout) + _CACHE_TAG
    cache_on_disk(deliver, code_digest([deliver], extra))
    cache_on_disk(see_pending, code_digest([see_pending], extra))
    return deliver, see_pending
