"""Oracles that read the simulator's hidden state: upper references, not policies.

Two oracles look inside the simulated population -- each user's current fatigue, taste, topic
affinities, activity multiplier, segment and the push waiting in the tray -- which no platform
can see. Neither is **deployable**; they put upper references beside the deployable agents in
result tables (their names say so):

* :class:`LookaheadOracle` (here; ``HiddenStateOracle`` is its old name, kept as an alias): a
  **heuristic** with a one-step lookahead and a hand-tuned horizon (``"lookahead oracle
  (heuristic, hidden state)"``). Learned policies can beat it, so it is not an upper bound.
* :class:`~covercast.agents.planning.PlanningOracle`: finite-horizon dynamic programming over
  each user's fatigue, the benchmark's upper reference.

Both score a push with :class:`PushValueModel`, i.e. with the user model's own formulas
(:mod:`covercast.simulators.response`), nothing re-derived:

* the push is seen at once with :func:`~covercast.simulators.response.seen_now_probability`,
  else at the user's first organic session in each of the next ``seen_horizon_h`` hours
  (Poisson sessions at the user's true hourly rate), with
  :func:`~covercast.simulators.response.staleness_factor` for the delay;
* each cover ``c`` of a style is opened with
  :func:`~covercast.simulators.response.open_probability` -- intercept of the user's segment,
  :func:`~covercast.simulators.response.relative_activity_feature` at the time it is seen, the
  :func:`~covercast.simulators.response.taste_match` of the user's taste and the cover, the
  cover's quality and topic affinity, and the fatigue then
  (:func:`~covercast.simulators.response.add_push_fatigue`, decayed by
  :func:`~covercast.simulators.response.fatigue_at`); covers of a style are averaged, as the
  environment draws one uniformly;
* the expected reward of the push is
  ``(1 - p_out) * E[open * (1 + w_dwell * dwell_minutes)] - w_optout * p_out`` with
  ``p_out`` from :func:`~covercast.simulators.response.opt_out_probability` and the mean of the
  log-normal dwell (:func:`~covercast.simulators.response.dwell_log_mean`).

**The lookahead oracle's decision.** The style is the one with the highest expected reward now
(the best for this user's taste). It pushes when (1) pushing now has a higher expected reward
than pushing at any of the next ``lookahead_h`` hours instead (computed with the fatigue decayed
by then: pushes go where the user is most active and fatigue has worn off), (2) that reward is
positive and the expected open probability of the best style is at least ``min_open_prob``, and
(3) the current fatigue is at most ``max_fatigue``. It ignores what a push costs later (the
fatigue it leaves, the opt-out that ends all later rewards) beyond that one comparison.

Approximations (documented, deliberate): the tray's delay is counted at the middle of each
hour, a later push replacing an unseen one is ignored, and hourly rates are read at the hour of
week the push's slot starts in.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from covercast._io import check_int
from covercast.agents.base import Agent, SeedLike, check_positive, check_style
from covercast.covers.attributes import DEFAULT_STYLES
from covercast.simulators import response as R
from covercast.simulators.params import HOURS_PER_WEEK

__all__ = ["PushValueModel", "LookaheadOracle", "HiddenStateOracle"]

_MAX_CHUNK_ELEMENTS = 2_000_000     # bounds the working memory for large populations


class PushValueModel:
    """The expected reward of a push from the hidden state: the formulas both oracles share.

    Built once per population parameters, cover bank and reward weights; every method is
    vectorised over users (rows). A push is scored in three steps: :meth:`user_terms` (what
    does not depend on time or fatigue: each cover's open logit without the activity and
    fatigue terms, each cover's reward per open), :meth:`seen_terms` (when the push is seen:
    at once, or at the first organic session of each later hour, with the staleness factor)
    and :meth:`logit_shift` (the activity and fatigue terms of the open logit at the time it is
    seen); :meth:`cover_values` combines them exactly, cover by cover, and
    :meth:`mixture_table` tabulates the cover-averaged reward per open as a function of the
    logit shift (what the planning oracle interpolates).

    Parameters
    ----------
    params : PopulationParams
        The user model.
    bank : CoverBank
        The covers pushes are drawn from.
    w_dwell, w_optout : float
        Reward per dwell minute and per opt-out.
    seen_horizon_h : int
        Hours over which a push waiting in the tray is followed.
    """

    def __init__(self, params: Any, bank: Any, *, w_dwell: float, w_optout: float,
                 seen_horizon_h: int) -> None:
        self.params = params
        self.bank = bank
        self.w_dwell = float(w_dwell)
        self.w_optout = float(w_optout)
        self.seen_horizon_h = int(seen_horizon_h)
        act = params.activity_matrix()
        self.act = act                                                  # (S_seg, 168)
        self.mean_rate = act.mean(axis=1)
        self.relact = R.relative_activity_feature(act, self.mean_rate[:, None])
        self.intercept = np.array([s.open_intercept for s in params.segments])
        self.dwell_mu = np.array([s.dwell_mu for s in params.segments])
        self.dwell_sigma = np.array([s.dwell_sigma for s in params.segments])
        self.taste_mean = np.array([s.taste_mean for s in params.segments], dtype=np.float64)
        self.topic_mean = np.array([s.topic_mean for s in params.segments], dtype=np.float64)
        self.feats = np.asarray(bank.features, dtype=np.float64)       # (C, F)
        self.quality = np.asarray(bank.quality, dtype=np.float64)
        self.topic = np.asarray(bank.topic, dtype=np.int64)
        self.cover_style = np.asarray(bank.style, dtype=np.int64)
        n_cov, n_sty = self.feats.shape[0], len(params.styles)
        per_style = np.zeros((n_cov, n_sty))
        per_style[np.arange(n_cov), self.cover_style] = 1.0
        self.per_style = per_style / np.maximum(per_style.sum(axis=0, keepdims=True), 1.0)

    @property
    def n_covers(self) -> int:
        return self.feats.shape[0]

    # ------------------------------------------------------------------ pieces
    def user_terms(self, hs: dict[str, np.ndarray], rows: Any = slice(None), *,
                   hours: np.ndarray | None = None, knows_taste: bool = True,
                   sel: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """What a push's value needs of users ``rows`` of the hidden state ``hs``.

        Parameters
        ----------
        hs : dict
            :meth:`~covercast.simulators.population.Population.hidden_state`.
        rows : index, optional
            The users (default: all).
        hours : (H,) int array, optional
            Hours of week whose rates are wanted (default: the whole week, 0-167).
        knows_taste : bool
            False: the segment's mean taste and topic affinity in place of the user's own.
        sel : (C',) int array, optional
            The covers (default: all of the bank's).

        Returns
        -------
        dict
            ``base`` ``(n, C')``: each cover's open logit without the activity and fatigue
            terms (:func:`~covercast.simulators.response.open_logit` with both 0); ``gain``
            ``(n, C')``: the expected reward of an open, ``1 + w_dwell * mean dwell minutes``;
            ``rate`` ``(n, H)``: organic sessions per hour at ``hours``; ``relact``
            ``(n, H)``: the relative-activity feature there; ``fatigue`` ``(n,)``: now.
        """
        om = self.params.open
        seg = hs["segment"][rows]
        if knows_taste:
            taste, aff = hs["taste"][rows], hs["topic_affinity"][rows]
        else:                       # the segment's mean in place of the user's own
            taste, aff = self.taste_mean[seg], self.topic_mean[seg]
        sel = np.arange(self.n_covers) if sel is None else np.asarray(sel, dtype=np.int64)
        feats = self.feats[sel]
        nr, c = taste.shape[0], feats.shape[0]
        taste_b = np.broadcast_to(taste[:, None, :], (nr, c, taste.shape[1]))
        feats_b = np.broadcast_to(feats[None, :, :], (nr, c, feats.shape[1]))
        match = R.taste_match(taste_b, feats_b)
        cover_aff = aff[:, self.topic[sel]]
        base = R.open_logit(self.intercept[seg][:, None], 0.0, match,
                            self.quality[sel][None, :], cover_aff, 0.0, om)
        rel = R.relevance(taste_b, feats_b, cover_aff)
        mean_dwell_min = np.exp(R.dwell_log_mean(self.dwell_mu[seg][:, None], rel,
                                                 self.params.dwell)
                                + 0.5 * self.dwell_sigma[seg][:, None] ** 2) / 60.0
        hours = np.arange(HOURS_PER_WEEK) if hours is None else np.asarray(hours)
        return {"base": base, "gain": 1.0 + self.w_dwell * mean_dwell_min,
                "rate": self.act[seg][:, hours] * hs["activity_multiplier"][rows, None],
                "relact": self.relact[seg][:, hours], "fatigue": hs["fatigue"][rows]}

    def seen_terms(self, rate: np.ndarray, relact: np.ndarray, j_idx: np.ndarray, *,
                   limit: np.ndarray | int | None = None, seen_now: bool = True,
                   age_h: np.ndarray | float = 0.0, n_hours: int | None = None,
                   stale: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """When a push delivered at column ``j_idx[j]`` of ``rate`` is seen.

        Parameters
        ----------
        rate, relact : (n, H) arrays
            Hourly session rates and relative-activity features (:meth:`user_terms`), column
            ``h`` being the ``h``-th hour from some origin; ``H`` must cover
            ``max(j_idx) + seen_horizon_h``.
        j_idx : (J,) int array
            The push hours (columns).
        limit : int or array broadcastable to (n, J), optional
            Only the first ``limit`` hours of the tray count (those before the episode ends);
            default: all ``seen_horizon_h``.
        seen_now : bool
            False for a push already waiting in the tray (it cannot be seen "at once" again).
        age_h : float or (n,) array
            Hours the push has waited already (added to its delay: staleness).
        n_hours : int, optional
            Follow the tray over this many hours (default ``seen_horizon_h``).
        stale : bool
            False: leave the staleness factor out of ``weight`` (the probabilities alone).

        Returns
        -------
        (weight, relact_seen, delay)
            ``weight`` ``(n, J, 1 + K)``: probability of being seen at once (index 0) or at the
            first session of hour ``k`` (index ``1 + k``), times the staleness factor of that
            delay (``K = n_hours``); ``relact_seen`` ``(n, J, 1 + K)``: the relative-activity feature then;
            ``delay`` ``(1 + K,)``: hours after the push (the middle of each hour).
        """
        om = self.params.open
        K = self.seen_horizon_h if n_hours is None else int(n_hours)
        win = j_idx[:, None] + np.arange(K)[None, :]                   # (J, K)
        r_win = rate[:, win]                                           # (n, J, K)
        if seen_now:
            now = R.seen_now_probability(rate[:, j_idx], om.glance_hours)   # (n, J)
        else:
            now = np.zeros(r_win.shape[:2])
        none_before = np.exp(-(np.cumsum(r_win, axis=2) - r_win))
        first_in_k = none_before * R.seen_now_probability(r_win, 1.0)
        weight = np.concatenate([now[:, :, None], (1.0 - now)[:, :, None] * first_in_k],
                                axis=2)
        delay = np.concatenate([[0.0], np.arange(K) + 0.5])           # (1 + K,)
        if stale:
            age = np.asarray(age_h, dtype=np.float64)
            weight = weight * R.staleness_factor(
                delay + (age[:, None, None] if age.ndim else age), om.stale_tau_h)
        if limit is not None:
            lim = np.broadcast_to(np.asarray(limit), weight.shape[:2])
            weight = np.where(np.arange(1 + K) <= lim[:, :, None], weight, 0.0)
        relact_seen = np.concatenate([relact[:, j_idx][:, :, None], relact[:, win]], axis=2)
        return weight, relact_seen, delay

    def logit_shift(self, relact_seen: np.ndarray, fatigue_seen: np.ndarray) -> np.ndarray:
        """The open logit's activity and fatigue terms
        (:func:`~covercast.simulators.response.open_logit` with everything else 0)."""
        return R.open_logit(0.0, relact_seen, 0.0, 0.5, 0.0, fatigue_seen, self.params.open)

    def push_reward(self, open_gain: np.ndarray, p_out: np.ndarray) -> np.ndarray:
        """``(1 - p_out) * open_gain - w_optout * p_out``: the expected reward of a push whose
        expected reward given delivery without opt-out is ``open_gain``."""
        return (1.0 - p_out) * open_gain - self.w_optout * p_out

    # ------------------------------------------------------------------ combined
    def cover_values(self, user: dict[str, np.ndarray], sel: np.ndarray, j_idx: np.ndarray,
                     fatigue: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Expected reward and open probability ``(n, J, len(sel))`` of pushing cover
        ``sel[c]`` at column ``j_idx[j]`` of ``user["rate"]``, with no push before, exactly.

        ``user`` is :meth:`user_terms` (all covers); ``fatigue`` ``(n,)`` is the fatigue at
        column 0 (default ``user["fatigue"]``).
        """
        fm = self.params.fatigue
        f0 = user["fatigue"] if fatigue is None else fatigue
        weight, relact_seen, delay = self.seen_terms(user["rate"], user["relact"], j_idx)
        f_push = R.add_push_fatigue(f0[:, None], 0.0, j_idx[None, :].astype(np.float64),
                                    fm)                               # (n, J)
        f_seen = R.fatigue_at(f_push[:, :, None], 0.0, delay[None, None, :], fm.half_life_h)
        p_out = R.opt_out_probability(f_push, self.params.opt_out)   # (n, J)
        shift = self.logit_shift(relact_seen, f_seen)                 # (n, J, M)
        prob = R.sigmoid(user["base"][:, None, sel, None] + shift[:, :, None, :])
        p_cover = np.einsum("njcm,njm->njc", prob, weight)            # (n, J, C)
        value = self.push_reward(p_cover * user["gain"][:, None, sel], p_out[:, :, None])
        return value, (1.0 - p_out)[:, :, None] * p_cover

    def mixture_table(self, user: dict[str, np.ndarray], cover_w: np.ndarray,
                      x_grid: np.ndarray) -> np.ndarray:
        """``G[i, s, x] = sum_c cover_w[s, c] * sigmoid(base[i, c] + x) * gain[i, c]``: the
        expected reward per seen push of cover mixture ``s`` at logit shift ``x``
        (``(n, S', X)``; ``cover_w`` ``(S', C)``, rows summing to 1)."""
        base, gain = user["base"], user["gain"]
        n, c = base.shape
        out = np.empty((n, cover_w.shape[0], x_grid.size))
        chunk = max(1, _MAX_CHUNK_ELEMENTS // max(1, c * x_grid.size))
        for lo in range(0, n, chunk):
            sl = slice(lo, min(n, lo + chunk))
            p = R.sigmoid(base[sl, :, None] + x_grid[None, None, :])   # (nr, C, X)
            out[sl] = np.einsum("ncx,nc,sc->nsx", p, gain[sl], cover_w)
        return out


class LookaheadOracle(Agent):
    """A heuristic that *reads hidden state*: pushes at the hour that beats the next few, with
    the best style.

    Not a deployable policy (see the module docstring): it reads the population's hidden
    fatigue, taste, topic affinity, activity and segment through the environment it is
    attached to. It is a heuristic, not an upper bound: its one-step lookahead ignores what a
    push costs later, and learned policies can beat it; the benchmark's upper reference is
    :class:`~covercast.agents.planning.PlanningOracle`. ``HiddenStateOracle`` is the same
    class under its old name.

    Parameters
    ----------
    mode : {"schedule", "timing", "style"}
        The action layout. In ``timing`` (PushTiming-v0) the style is the environment's (its
        ``style`` argument; ``"random"`` is averaged over styles) unless ``timing_style`` is
        given; in ``style`` (CoverStyle-v0) only the style is chosen.
    n_styles, seed, name :
        See :class:`~covercast.agents.base.Agent` (the oracle draws nothing at random).
    env : gymnasium.Env or VectorEnv, optional
        The environment whose population the oracle reads (``env.unwrapped.population``);
        :meth:`attach` sets it too (``evaluate`` calls it). Row ``i`` of a batched observation
        is user ``i`` of the population.
    population : Population, optional
        Read this population directly instead of an environment's.
    lookahead_h : int
        Hours ahead that pushing now is compared with, 0-23 (default 12; 0: push whenever the
        other conditions hold). Measured on the default population (40 users, 14 days):
        3 h over-pushes (48 pushes, 27 % opt-outs), 9-18 h do best (returns 6-7), 23 h waits
        for tomorrow's lower fatigue and pushes rarely (9 pushes, return 3).
    seen_horizon_h : int
        Hours over which a push waiting in the tray is followed, 1-168 (default 24).
    min_open_prob : float
        Do not push below this expected open probability, in [0, 1] (default 0).
    max_fatigue : float
        Do not push while fatigue exceeds this, >= 0 (default ``inf``).
    w_dwell, w_optout : float, optional
        Reward weights (per dwell minute, per opt-out). Default: those of the environment's
        :class:`~covercast.envs.rewards.OpenDwellReward`, else its defaults (0.1 and 5).
    timing_style : int, optional
        The style pushes get in the ``timing`` layout (default: read from the environment).
    knows_taste : bool
        True (default): read each user's own taste and topic affinity. False: use the mean
        taste and topic affinity of the user's segment instead -- a weaker reference that
        still knows the segment, the fatigue and the activity, but not what this user likes
        (named ``"oracle (no taste)"``). It separates what the hidden taste is worth from
        what knowing *when* is worth: a deployable policy only learns a user's taste from
        the few pushes they open.
    """

    default_name = "lookahead oracle (heuristic, hidden state)"

    def __init__(self, mode: str = "schedule", n_styles: int = len(DEFAULT_STYLES), *,
                 env: Any = None, population: Any = None, lookahead_h: int = 12,
                 seen_horizon_h: int = 24, min_open_prob: float = 0.0,
                 max_fatigue: float = math.inf, w_dwell: float | None = None,
                 w_optout: float | None = None, timing_style: int | None = None,
                 knows_taste: bool = True, seed: SeedLike = None,
                 name: str | None = None) -> None:
        if not isinstance(knows_taste, (bool, np.bool_)):
            raise ValueError(f"`knows_taste` must be a bool, got {knows_taste!r}.")
        self.knows_taste = bool(knows_taste)
        if name is None and not self.knows_taste:
            name = "oracle (no taste)"
        super().__init__(mode, n_styles, seed=seed, name=name)
        # (a day or more ahead always holds the same hour with less fatigue: the oracle
        # would keep waiting)
        self.lookahead_h = check_int(lookahead_h, "lookahead_h", 0, 23)
        self.seen_horizon_h = check_seen_horizon(seen_horizon_h)
        self.min_open_prob = check_positive(min_open_prob, "min_open_prob", allow_zero=True)
        if self.min_open_prob > 1:
            raise ValueError(f"`min_open_prob` must be in [0, 1], got {min_open_prob!r}.")
        self.max_fatigue = check_positive(max_fatigue, "max_fatigue", allow_zero=True,
                                          allow_inf=True)
        init_reward_and_style(self, w_dwell, w_optout, timing_style)
        self._env = None
        self._population = population
        self._env_style_mix: np.ndarray | None = None
        self._model_cache: tuple[tuple, PushValueModel] | None = None
        if env is not None:
            self.attach(env)

    def config(self) -> dict[str, Any]:
        return super().config() | {
            "reads_hidden_state": True, "lookahead_h": self.lookahead_h,
            "seen_horizon_h": self.seen_horizon_h, "min_open_prob": self.min_open_prob,
            "max_fatigue": None if math.isinf(self.max_fatigue) else self.max_fatigue,
            "w_dwell": self.w_dwell, "w_optout": self.w_optout,
            "timing_style": self.timing_style, "knows_taste": self.knows_taste}

    # ------------------------------------------------------------------ wiring
    def attach(self, env: Any) -> None:
        """Read the population of ``env`` from now on (and its reward weights / push style)."""
        self._env = attach_base(self, env)
        self._env_style_mix = env_style_mix(self, self._env)

    def population(self) -> Any:
        """The population read now (the attached environment's current one)."""
        if self._population is not None:
            return self._population
        if self._env is None:
            raise ValueError("The oracle is not attached to an environment: pass `env=` or "
                             "`population=`, call attach(env), or run it through "
                             "covercast.agents.evaluate.")
        return self._env.population

    def value_model(self, pop: Any = None) -> PushValueModel:
        """The :class:`PushValueModel` of the population read now (cached while the population
        keeps its parameters, bank and the oracle its weights)."""
        pop = self.population() if pop is None else pop
        key = (id(pop.params), id(pop.bank), self.w_dwell, self.w_optout, self.seen_horizon_h)
        cache = self._model_cache
        if cache is None or cache[0] != key or cache[1].params is not pop.params \
                or cache[1].bank is not pop.bank:
            model = PushValueModel(pop.params, pop.bank, w_dwell=self.w_dwell,
                                   w_optout=self.w_optout, seen_horizon_h=self.seen_horizon_h)
            self._model_cache = cache = (key, model)
        return cache[1]

    # ------------------------------------------------------------------ values
    def push_values(self, n_rows: int | None = None) -> dict[str, np.ndarray]:
        """Expected reward of pushing now, and of pushing the chosen style later instead.

        Returns
        -------
        dict
            ``value_now`` and ``p_open_now``: ``(N, n_styles)`` expected reward and open
            probability of a push of each style now; ``style``: ``(N,)`` the style chosen (the
            best now; in the ``timing`` layout, the environment's); ``value_later``:
            ``(N, lookahead_h)`` expected reward of pushing that style ``j = 1 ..
            lookahead_h`` hours from now instead (fatigue decayed by then, no push in between;
            empty in the ``style`` layout, where the time is not the agent's); ``value``,
            ``p_open``: ``(N,)`` those of the chosen style now; ``fatigue``: ``(N,)`` now.
        """
        pop = self.population()
        n = pop.n_users
        if n_rows is not None and n_rows != n:
            raise ValueError(f"The observation has {n_rows} row(s) but the oracle's population "
                             f"has {n} user(s); row i must be user i.")
        params = pop.params
        if len(params.styles) != self.n_styles:
            raise ValueError(f"The population has {len(params.styles)} styles but the oracle "
                             f"was built for {self.n_styles}.")
        mix = None
        if self.mode == "timing":
            mix = (np.eye(self.n_styles)[self.timing_style] if self.timing_style is not None
                   else self._env_style_mix)
            if mix is None:
                raise ValueError("In the 'timing' layout the oracle needs the style pushes get: "
                                 "attach it to a PushTiming-v0 env or pass `timing_style`.")
        hs = pop.hidden_state()
        model = self.value_model(pop)
        per_style = model.per_style
        n_cov = model.n_covers

        ts = pop.timestamp
        how0 = int(ts.day_of_week) * 24 + int(ts.hour)
        L = self.lookahead_h if self.layout.decides_timing else 0
        n_h = L + self.seen_horizon_h
        hours = (how0 + np.arange(n_h)) % HOURS_PER_WEEK

        m_count = self.seen_horizon_h + 1
        chunk = max(1, _MAX_CHUNK_ELEMENTS // (max(L, 1) * n_cov * m_count))
        out = {"value_now": np.empty((n, self.n_styles)),
               "p_open_now": np.empty((n, self.n_styles)),
               "style": np.empty(n, dtype=np.int64), "value_later": np.empty((n, L)),
               "value": np.empty(n), "p_open": np.empty(n), "fatigue": hs["fatigue"]}
        for lo in range(0, n, chunk):
            sl = slice(lo, min(n, lo + chunk))
            user = model.user_terms(hs, sl, hours=hours, knows_taste=self.knows_taste)
            all_c = np.arange(n_cov)
            v0, p0 = model.cover_values(user, all_c, np.zeros(1, np.int64))
            v_now = v0[:, 0] @ per_style                               # (nr, S)
            p_now = p0[:, 0] @ per_style
            if mix is None:
                style = np.argmax(v_now, axis=1)
                w = per_style[:, style].T                              # (nr, C) cover weights
            else:
                style = np.full(v_now.shape[0], int(np.argmax(mix)), dtype=np.int64)
                w = np.broadcast_to(per_style @ mix, (v_now.shape[0], n_cov))
            out["value_now"][sl], out["p_open_now"][sl], out["style"][sl] = v_now, p_now, style
            out["value"][sl] = (v0[:, 0] * w).sum(axis=1)
            out["p_open"][sl] = (p0[:, 0] * w).sum(axis=1)
            if L:
                later = np.empty((v_now.shape[0], L))
                # rows grouped by chosen style: each group needs only that style's covers
                for s_ in np.unique(style) if mix is None else [None]:
                    rows = np.arange(v_now.shape[0]) if s_ is None else np.flatnonzero(
                        style == s_)
                    sel = np.flatnonzero(w[rows].any(axis=0))          # covers that matter
                    sub = {k: v[rows] for k, v in user.items()}
                    vl, _ = model.cover_values(sub, sel, np.arange(1, L + 1))
                    later[rows] = np.einsum("njc,nc->nj", vl, w[rows][:, sel])
                out["value_later"][sl] = later
        return out

    # ------------------------------------------------------------------ decisions
    def _plan(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        v = self.push_values(x.shape[0])
        later = v["value_later"]
        best_later = later.max(axis=1) if later.shape[1] else np.full(x.shape[0], -np.inf)
        push = ((v["value"] >= best_later) & (v["value"] > 0)
                & (v["p_open"] >= self.min_open_prob) & (v["fatigue"] <= self.max_fatigue))
        return push, v["style"]

    def _decide(self, x, state, episode_start, deterministic):
        push, style = self._plan(x)
        return push, style, state

    def _distribution(self, x, state):
        push, style = self._plan(x)
        probs = np.zeros((x.shape[0], self.n_styles))
        probs[np.arange(x.shape[0]), style] = 1.0
        return push.astype(np.float64), probs


#: The lookahead oracle's name before the planning oracle existed (the same class).
HiddenStateOracle = LookaheadOracle


# ---------------------------------------------------------------------- helpers of both oracles
def check_seen_horizon(seen_horizon_h: Any) -> int:
    """``seen_horizon_h`` must be an integer in [1, 168]; returns it as an int."""
    return check_int(seen_horizon_h, "seen_horizon_h", 1, HOURS_PER_WEEK)


def init_reward_and_style(agent: Any, w_dwell: float | None, w_optout: float | None,
                          timing_style: int | None) -> None:
    """Set an oracle's reward weights (``None``: the default reward's, 0.1 and 5, until
    :func:`attach_base` reads the env's) and its ``timing_style`` (checked)."""
    agent._w_given = (w_dwell, w_optout)
    agent.w_dwell = 0.1 if w_dwell is None else check_positive(w_dwell, "w_dwell",
                                                               allow_zero=True)
    agent.w_optout = 5.0 if w_optout is None else check_positive(w_optout, "w_optout",
                                                                 allow_zero=True)
    agent.timing_style = None if timing_style is None else check_style(
        timing_style, agent.n_styles, "timing_style")


def attach_base(agent: Any, env: Any) -> Any:
    """The unwrapped covercast env of ``env`` (with a ``population``); sets ``agent.w_dwell``
    and ``agent.w_optout`` from its reward unless given (``agent._w_given``)."""
    base = getattr(env, "unwrapped", env)
    if not hasattr(base, "population"):
        raise ValueError(f"{type(base).__name__} has no `population`; the oracle needs a "
                         "covercast environment (or pass `population=`).")
    reward = getattr(base, "reward_fn", None)
    if agent._w_given[0] is None and hasattr(reward, "w_dwell"):
        agent.w_dwell = float(reward.w_dwell)
    if agent._w_given[1] is None and hasattr(reward, "w_optout"):
        agent.w_optout = float(reward.w_optout)
    return base


def env_style_mix(agent: Any, base: Any) -> np.ndarray | None:
    """In the ``timing`` layout, the style distribution of the env's pushes (``None`` when the
    agent's ``timing_style`` is given, or in the other layouts)."""
    if not (agent.mode == "timing" and agent.timing_style is None and hasattr(base, "style")):
        return None
    st = base.style
    names = list(getattr(base, "style_names", ()))
    mix = np.zeros(agent.n_styles)
    if isinstance(st, str) and st == "random":
        mix[:] = 1.0 / agent.n_styles
    elif isinstance(st, str) and st in names:
        mix[names.index(st)] = 1.0
    else:
        mix[check_style(st, agent.n_styles, "env.style")] = 1.0
    return mix
