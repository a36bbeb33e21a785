"""An oracle that reads the simulator's hidden state: an upper reference, not a policy.

:class:`HiddenStateOracle` looks inside the simulated population -- each user's current
fatigue, taste, topic affinities, activity multiplier and segment -- which no platform can see.
It is **not deployable**; it exists to show how much a policy that knew the user could gain,
i.e. to put an upper reference beside the deployable agents in result tables (its name says so:
``"oracle (hidden state)"``).

It scores a push with the user model's own formulas (:mod:`covercast.simulators.response`),
nothing re-derived:

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

**Decision.** The style is the one with the highest expected reward now (the best for this
user's taste). The oracle pushes when (1) pushing now has a higher expected reward than pushing
at any of the next ``lookahead_h`` hours instead (computed with the fatigue decayed by then:
pushes go where the user is most active and fatigue has worn off), (2) that reward is positive
and the expected open probability of the best style is at least ``min_open_prob``, and (3) the
current fatigue is at most ``max_fatigue``.

Approximations (documented, deliberate): the tray's delay is counted at the middle of each
hour, a later push replacing an unseen one is ignored, and hourly rates are read at the hour of
week the push's slot starts in.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from covercast.agents.base import Agent, SeedLike, check_positive, check_style
from covercast.generators.attributes import DEFAULT_STYLES
from covercast.simulators import response as R
from covercast.simulators.params import HOURS_PER_WEEK

__all__ = ["HiddenStateOracle"]

_MAX_CHUNK_ELEMENTS = 2_000_000     # bounds the working memory for large populations


class HiddenStateOracle(Agent):
    """Upper reference: pushes at the best moment with the best style, *reading hidden state*.

    Not a deployable policy (see the module docstring): it reads the population's hidden
    fatigue, taste, topic affinity, activity and segment through the environment it is
    attached to.

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

    default_name = "oracle (hidden state)"

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
        if isinstance(lookahead_h, bool) or not isinstance(lookahead_h, (int, np.integer)) \
                or not 0 <= lookahead_h <= 23:
            raise ValueError(f"`lookahead_h` must be an integer in [0, 23], got {lookahead_h!r}: "
                             "a day or more ahead always holds the same hour with less fatigue, "
                             "so the oracle would keep waiting.")
        if isinstance(seen_horizon_h, bool) or not isinstance(seen_horizon_h, (int, np.integer)) \
                or not 1 <= seen_horizon_h <= HOURS_PER_WEEK:
            raise ValueError(f"`seen_horizon_h` must be an integer in [1, {HOURS_PER_WEEK}], got "
                             f"{seen_horizon_h!r}.")
        self.lookahead_h = int(lookahead_h)
        self.seen_horizon_h = int(seen_horizon_h)
        self.min_open_prob = check_positive(min_open_prob, "min_open_prob", allow_zero=True)
        if self.min_open_prob > 1:
            raise ValueError(f"`min_open_prob` must be in [0, 1], got {min_open_prob!r}.")
        self.max_fatigue = check_positive(max_fatigue, "max_fatigue", allow_zero=True,
                                          allow_inf=True)
        self._w_given = (w_dwell, w_optout)
        self.w_dwell = 0.1 if w_dwell is None else check_positive(w_dwell, "w_dwell",
                                                                  allow_zero=True)
        self.w_optout = 5.0 if w_optout is None else check_positive(w_optout, "w_optout",
                                                                    allow_zero=True)
        self.timing_style = None if timing_style is None else check_style(
            timing_style, self.n_styles, "timing_style")
        self._env = None
        self._population = population
        self._env_style_mix: np.ndarray | None = None
        self._table_cache: tuple[Any, dict[str, np.ndarray]] | None = None
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
        base = getattr(env, "unwrapped", env)
        if not hasattr(base, "population"):
            raise ValueError(f"{type(base).__name__} has no `population`; the oracle needs a "
                             "covercast environment (or pass `population=`).")
        self._env = base
        reward = getattr(base, "reward_fn", None)
        if self._w_given[0] is None and hasattr(reward, "w_dwell"):
            self.w_dwell = float(reward.w_dwell)
        if self._w_given[1] is None and hasattr(reward, "w_optout"):
            self.w_optout = float(reward.w_optout)
        self._env_style_mix = None
        if self.mode == "timing" and self.timing_style is None and hasattr(base, "style"):
            st = base.style
            names = list(getattr(base, "style_names", ()))
            mix = np.zeros(self.n_styles)
            if isinstance(st, str) and st == "random":
                mix[:] = 1.0 / self.n_styles
            elif isinstance(st, str) and st in names:
                mix[names.index(st)] = 1.0
            else:
                mix[check_style(st, self.n_styles, "env.style")] = 1.0
            self._env_style_mix = mix

    def population(self) -> Any:
        """The population read now (the attached environment's current one)."""
        if self._population is not None:
            return self._population
        if self._env is None:
            raise ValueError("The oracle is not attached to an environment: pass `env=` or "
                             "`population=`, call attach(env), or run it through "
                             "covercast.experiments.evaluate.")
        return self._env.population

    # ------------------------------------------------------------------ values
    def _tables(self, params: Any) -> dict[str, np.ndarray]:
        """Per-segment arrays of ``params`` (cached while the population keeps its params)."""
        cache = self._table_cache
        if cache is not None and cache[0] is params:
            return cache[1]
        act = params.activity_matrix()
        tables = {
            "act": act,
            "mean_rate": act.mean(axis=1),
            "intercept": np.array([s.open_intercept for s in params.segments]),
            "dwell_mu": np.array([s.dwell_mu for s in params.segments]),
            "dwell_sigma": np.array([s.dwell_sigma for s in params.segments]),
            "taste_mean": np.array([s.taste_mean for s in params.segments], dtype=np.float64),
            "topic_mean": np.array([s.topic_mean for s in params.segments], dtype=np.float64),
        }
        self._table_cache = (params, tables)
        return tables

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
        tab = self._tables(params)
        bank = pop.bank
        feats = np.asarray(bank.features, dtype=np.float64)            # (C, F)
        n_cov = feats.shape[0]
        cover_style = np.asarray(bank.style, dtype=np.int64)
        per_style = np.zeros((n_cov, self.n_styles))
        per_style[np.arange(n_cov), cover_style] = 1.0
        per_style /= np.maximum(per_style.sum(axis=0, keepdims=True), 1.0)   # cover mean
        covers = {"feats": feats, "quality": np.asarray(bank.quality, dtype=np.float64),
                  "topic": np.asarray(bank.topic, dtype=np.int64)}

        ts = pop.timestamp
        how0 = int(ts.day_of_week) * 24 + int(ts.hour)
        L = self.lookahead_h if self.layout.decides_timing else 0
        n_h = L + self.seen_horizon_h
        hours = (how0 + np.arange(n_h)) % HOURS_PER_WEEK
        seg_rate = tab["act"][:, hours]                                # (S_seg, n_h)
        seg_relact = R.relative_activity_feature(seg_rate, tab["mean_rate"][:, None])

        m_count = self.seen_horizon_h + 1
        chunk = max(1, _MAX_CHUNK_ELEMENTS // (max(L, 1) * n_cov * m_count))
        out = {"value_now": np.empty((n, self.n_styles)),
               "p_open_now": np.empty((n, self.n_styles)),
               "style": np.empty(n, dtype=np.int64), "value_later": np.empty((n, L)),
               "value": np.empty(n), "p_open": np.empty(n), "fatigue": hs["fatigue"]}
        for lo in range(0, n, chunk):
            sl = slice(lo, min(n, lo + chunk))
            seg = hs["segment"][sl]
            if self.knows_taste:
                taste, aff = hs["taste"][sl], hs["topic_affinity"][sl]
            else:                       # the segment's mean in place of the user's own
                taste, aff = tab["taste_mean"][seg], tab["topic_mean"][seg]
            user = {"fatigue": hs["fatigue"][sl], "taste": taste, "aff": aff,
                    "rate": seg_rate[seg] * hs["activity_multiplier"][sl, None],
                    "relact": seg_relact[seg], "intercept": tab["intercept"][seg],
                    "dwell_mu": tab["dwell_mu"][seg], "dwell_sigma": tab["dwell_sigma"][seg]}
            all_c = np.arange(n_cov)
            v0, p0 = self._cover_values(user, covers, all_c, np.zeros(1, np.int64), params)
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
                    vl, _ = self._cover_values(sub, covers, sel, np.arange(1, L + 1), params)
                    later[rows] = np.einsum("njc,nc->nj", vl, w[rows][:, sel])
                out["value_later"][sl] = later
        return out

    def _cover_values(self, user: dict[str, np.ndarray], covers: dict[str, np.ndarray],
                      sel: np.ndarray, j_idx: np.ndarray, params: Any
                      ) -> tuple[np.ndarray, np.ndarray]:
        """Expected reward and open probability ``(nr, len(j_idx), len(sel))`` of pushing
        cover ``sel[c]`` at ``j_idx[j]`` hours from now, with no push before."""
        om, fm = params.open, params.fatigue
        taste, aff, rate, relact = user["taste"], user["aff"], user["rate"], user["relact"]
        feats = covers["feats"][sel]
        nr, c = taste.shape[0], feats.shape[0]
        K = self.seen_horizon_h
        # ---- cover terms, (nr, C)
        taste_b = np.broadcast_to(taste[:, None, :], (nr, c, taste.shape[1]))
        feats_b = np.broadcast_to(feats[None, :, :], (nr, c, feats.shape[1]))
        match = R.taste_match(taste_b, feats_b)
        cover_aff = aff[:, covers["topic"][sel]]
        rel = R.relevance(taste_b, feats_b, cover_aff)
        mean_dwell_min = np.exp(R.dwell_log_mean(user["dwell_mu"][:, None], rel, params.dwell)
                                + 0.5 * user["dwell_sigma"][:, None] ** 2) / 60.0
        # ---- when the push is seen: at once, or at the first session of hour k: (nr, J, 1 + K)
        win = j_idx[:, None] + np.arange(K)[None, :]                   # (J, K)
        r_win = rate[:, win]                                           # (nr, J, K)
        seen_now = R.seen_now_probability(rate[:, j_idx], om.glance_hours)   # (nr, J)
        none_before = np.exp(-(np.cumsum(r_win, axis=2) - r_win))
        first_in_k = none_before * R.seen_now_probability(r_win, 1.0)
        weight = np.concatenate([seen_now[:, :, None],
                                 (1.0 - seen_now)[:, :, None] * first_in_k], axis=2)
        delay = np.concatenate([[0.0], np.arange(K) + 0.5])           # (1 + K,)
        relact_seen = np.concatenate([relact[:, j_idx][:, :, None], relact[:, win]], axis=2)
        f_push = R.add_push_fatigue(user["fatigue"][:, None], 0.0,
                                    j_idx[None, :].astype(np.float64), fm)    # (nr, J)
        f_seen = R.fatigue_at(f_push[:, :, None], 0.0, delay[None, None, :], fm.half_life_h)
        p_out = R.opt_out_probability(f_push, params.opt_out)         # (nr, J)
        # ---- open probability per (row, j, cover, seen-time), weighted over seen-times
        prob = R.open_probability(user["intercept"][:, None, None, None],
                                  relact_seen[:, :, None, :], match[:, None, :, None],
                                  covers["quality"][sel][None, None, :, None],
                                  cover_aff[:, None, :, None], f_seen[:, :, None, :],
                                  delay[None, None, None, :], om)
        p_cover = np.einsum("njcm,njm->njc", prob, weight)            # (nr, J, C)
        keep = (1.0 - p_out)[:, :, None]
        value = (keep * p_cover * (1.0 + self.w_dwell * mean_dwell_min[:, None, :])
                 - self.w_optout * p_out[:, :, None])
        return value, keep * p_cover

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
