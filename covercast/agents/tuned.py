"""A strong static control: push hours and a cover style chosen by grid search on training users.

:class:`~covercast.agents.baselines.StaticScheduler` at 08:00/20:00 with style 0 is the seed
paper's control, and a weak one: a fixed schedule chosen on other users does much better. A
fair control for a scheduling benchmark is the best *static* schedule at the same push volume:
the same hours every day and one style for everybody, so it reads no hidden state and no
per-user data and is as deployable as the untuned one, but with its hours and style tuned on
simulated *training* users of the population. This module finds it.

* :func:`evaluate_static_schedules` -- many ``(hours, style)`` schedules in one or a few runs of
  the population vector environment (:class:`~covercast.envs.vector.PopulationVectorEnv`):
  user ``i`` gets the schedule it is assigned to, users are assigned at random in equal
  numbers, and each schedule's means come with standard errors;
* :func:`tune_static_schedule` -- the search over schedules at a given number of pushes a day
  (below), returning a :class:`TuneResult` with the best schedule and the table of every
  candidate evaluated (the landscape);
* :class:`TunedStaticScheduler` -- a :class:`~covercast.agents.baselines.StaticScheduler` that
  remembers how it was tuned, built with :meth:`TunedStaticScheduler.tune` or from a saved
  result (:meth:`TunedStaticScheduler.to_dict` / :meth:`~TunedStaticScheduler.from_dict`).

**What is measured.** Each schedule's users run one episode of ``horizon_days`` days, exactly
as :func:`covercast.agents.evaluate.evaluate_vector` counts them: the episode each row
starts at reset (a user who opts out is replaced, and the replacement is not counted). A
single schedule evaluated on ``n_users`` users with an integer ``seed`` gives the very users and
numbers ``evaluate_vector(StaticScheduler(hours, style), n_users, seed)`` gives. The table has
per user and episode ``return`` (the environment's reward: by default ``opens + 0.1 *
dwell_min - 5 * opted_out``) and ``opens`` with their standard errors, and per user-day of the
horizon ``opens_per_day``, ``dwell_min_per_day`` (minutes in pushed sessions) and
``pushes_per_day`` (delivered: below the schedule's volume by the pushes opted-out users no
longer get), ``ctr`` (opens / pushes) and ``opt_out_rate``.

**No common random numbers.** The population vector environment draws all its users from one
random stream, so two blocks of one run cannot be given the same users, and steering the
engine's private arrays to copy users is not an option. Regressing returns on the users' hidden
pre-treatment attributes (segment, activity multiplier, style taste) removes only about 6 % of
the variance on the default population (most of it is the users' own Bernoulli opens, dwell
times and opt-outs), so it is not worth it either. Instead every candidate gets ``n_users``
independent users and the table reports standard errors; the finalists are re-measured on
fresh users.

**The search** (``pushes_per_day = k``; ``A`` = the hours the slot grid reaches, all 24 with
slots of an hour or less):

* ``search="coordinate"`` (default). (1) *start*: the evenly spaced hour sets (``k`` hours
  ``24 / k`` apart, every rotation) with every style; (2) *hours*: at the best style so far,
  every set of ``k`` hours when there are at most ``max_enumerate`` of them (all 276 pairs for
  two a day, all 24 hours for one), otherwise a local search from the best set: each pass
  evaluates the set and every set that moves one of its hours to an unused hour
  (``k * (24 - k)`` neighbours) and moves to the best, for at most ``max_passes`` passes or
  until the set itself is best; (3) *style*: every style at those hours. Steps 2-3 repeat while
  the style changes (at most ``max_rounds`` rounds): the hours are then the best at the chosen
  style, and the style the best at the chosen hours.
* ``search="joint"``: every set of ``k`` hours with every style, in one stage (for ``k <= 2``
  or any case of at most ``max_joint`` candidates).
* Both end with a *final* stage: the ``n_final`` best distinct candidates (by their mean over
  all earlier stages, pooled by users) are evaluated again on ``final_users`` fresh users
  each, and the best there is chosen; a *score* stage then measures the chosen schedule once
  more on ``final_users`` fresh users, and that is its reported score and standard error, free
  of the selection (picking the best of hundreds of noisy candidates, or of the
  ``n_final`` finalists, inflates the score they were picked on).

Run times and a check of the coordinate search against the joint search are in
``docs/results/notes/tuned.md``.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from covercast._io import check_int, check_number
from covercast.agents.base import (
    SeedLike,
    as_seed_sequence,
    check_style,
    hour_of_day,
    on_the_hour,
)
from covercast.agents.baselines import StaticScheduler, _check_hours
from covercast.covers.attributes import DEFAULT_STYLES
from covercast.simulators.params import PopulationParams

__all__ = [
    "OBJECTIVES",
    "SEARCHES",
    "SCHEDULE_COLUMNS",
    "TuneResult",
    "TunedStaticScheduler",
    "evaluate_static_schedules",
    "reachable_hours",
    "tune_static_schedule",
]

#: What the search maximises: the mean episode return per user (the environment's reward), or
#: the mean number of opens per user.
OBJECTIVES: tuple[str, ...] = ("return", "opens")

#: The search strategies of :func:`tune_static_schedule` (see the module docstring).
SEARCHES: tuple[str, ...] = ("coordinate", "joint")

#: Columns of :func:`evaluate_static_schedules`' table, in order.
SCHEDULE_COLUMNS: tuple[str, ...] = (
    "hours", "style", "style_name", "users", "return", "return_se", "opens", "opens_se",
    "opens_per_day", "dwell_min_per_day", "pushes_per_day", "ctr", "opt_out_rate")

#: Columns :func:`tune_static_schedule` adds in front (``stage``, ``round``) and behind.
_TUNE_FRONT = ("stage", "round")
_TUNE_BACK = ("score", "score_se", "chosen")

#: ``env_kwargs`` that the tuner sets itself (or that would couple the candidates).
_RESERVED_ENV_KWARGS = {
    "params": "pass the population as `params`",
    "horizon_days": "pass `horizon_days`",
    "history_days": "pass `history_days`",
    "max_episode_steps": "pass `horizon_days`",
    "daily_budget": ("a population-wide daily budget would make the candidates, which share one "
                     "population, take pushes from each other"),
    "copy": "the tuner reads observations in place",
}

_DEFAULT_MAX_USERS_PER_RUN = 100_000
_TO_DICT_FORMAT = "covercast.TunedStaticScheduler"
_TO_DICT_VERSION = 1


# ================================================================================ helpers
def _child(ss: np.random.SeedSequence, *keys: int) -> np.random.SeedSequence:
    """The SeedSequence ``ss.spawn`` would give at ``keys``, without touching ``ss``."""
    return np.random.SeedSequence(ss.entropy, spawn_key=(*ss.spawn_key, *keys),
                                  pool_size=ss.pool_size)


def _check_env_kwargs(env_kwargs: Mapping[str, Any] | None) -> dict[str, Any]:
    if env_kwargs is None:
        return {}
    if not isinstance(env_kwargs, Mapping):
        raise ValueError(f"`env_kwargs` must be a mapping of PopulationVectorEnv arguments, got "
                         f"{type(env_kwargs).__name__}.")
    for key, why in _RESERVED_ENV_KWARGS.items():
        if key in env_kwargs:
            raise ValueError(f"`env_kwargs` must not hold {key!r}: {why}.")
    return dict(env_kwargs)


def reachable_hours(slot_minutes: int = 60, start: Any = None) -> tuple[int, ...]:
    """The hours of the day a slot starts at exactly (``hh:00``) on the slot grid.

    A static schedule pushes in the slot starting on one of its hours, so only these hours can
    be used: all 24 with slots of an hour or less that divide 60 minutes, the even hours with
    120-minute slots, and so on. ``start`` is the environment's start time (default Monday
    2026-01-05 00:00 UTC).
    """
    from covercast.envs.base import DEFAULT_START, check_slot_minutes

    m = check_slot_minutes(slot_minutes)
    ts = pd.Timestamp(DEFAULT_START if start is None else start)
    offset = ts.hour * 60 + ts.minute
    return tuple(h for h in range(24) if (h * 60 - offset) % m == 0)


def _style_index(style: Any, styles: Sequence[str]) -> int:
    if isinstance(style, str):
        if style not in styles:
            raise ValueError(f"Unknown style {style!r}; the population's styles are "
                             f"{list(styles)}.")
        return list(styles).index(style)
    return check_style(style, len(styles))


def _check_schedules(schedules: Any, styles: Sequence[str], allowed: Sequence[int]
                     ) -> list[tuple[tuple[int, ...], int]]:
    try:
        items = list(schedules)
    except TypeError as e:
        raise ValueError(f"`schedules` must be a sequence of (hours, style) pairs, got "
                         f"{type(schedules).__name__}.") from e
    if not items:
        raise ValueError("`schedules` is empty; give at least one (hours, style) pair.")
    out = []
    ok = set(allowed)
    for item in items:
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise ValueError(f"Each schedule must be an (hours, style) pair, got {item!r}.")
        hours = _check_hours(item[0])
        bad = [h for h in hours if h not in ok]
        if bad:
            raise ValueError(f"Hours {bad} of schedule {item!r} do not start a slot of the "
                             f"environment's slot grid (the reachable hours are "
                             f"{list(allowed)}).")
        out.append((hours, _style_index(item[1], styles)))
    return out


def _env_seed(ss: np.random.SeedSequence) -> int:
    """The environment seed :func:`~covercast.agents.evaluate.evaluate_vector` uses for a
    fresh ``ss`` (the first word of its first child)."""
    return int(_child(ss, 0).generate_state(1, dtype=np.uint32)[0])


def _run_block(params: PopulationParams, hour_table: np.ndarray, styles: np.ndarray,
               assign: np.ndarray, env_seed: int, horizon_days: float, history_days: float,
               env_kwargs: dict[str, Any], progress: bool, desc: str) -> dict[str, np.ndarray]:
    """One vector-env run: row ``i`` follows schedule ``assign[i]`` (``hour_table`` ``(C, 24)``
    bool, ``styles`` ``(C,)``). Per-row totals of the first episode of each row."""
    from tqdm.auto import tqdm

    from covercast.envs.registration import make_vec

    n = assign.size
    kw = dict(env_kwargs)
    if history_days:
        kw["history_days"] = history_days
    env = make_vec(n, params=params, horizon_days=horizon_days, copy=False, **kw)
    base = env.unwrapped
    steps = int(base.max_episode_steps)
    # the action of every row at every hour of the day
    actions = np.where(hour_table[assign].T, (styles[assign] + 1)[None, :], 0).astype(np.int64)
    idle = np.zeros(n, dtype=np.int64)
    tot = {k: np.zeros(n) for k in ("ret", "opens", "dwell_s", "pushes")}
    opted = np.zeros(n, dtype=bool)
    first = np.ones(n, dtype=bool)
    try:
        obs, _ = env.reset(seed=env_seed)
        for _ in tqdm(range(steps), disable=not progress, desc=desc, unit="slot", leave=False):
            if not first.any():
                break
            h = hour_of_day(np.asarray(obs[:1], dtype=np.float64))      # one clock for all
            a = actions[int(np.rint(h[0])) % 24] if on_the_hour(h)[0] else idle
            obs, reward, terminated, truncated, info = env.step(a)
            m = first
            tot["ret"][m] += np.asarray(reward, dtype=np.float64)[m]
            tot["opens"][m] += np.asarray(info["opened"], dtype=np.float64)[m]
            tot["dwell_s"][m] += np.asarray(info["dwell_s"], dtype=np.float64)[m]
            tot["pushes"][m] += np.asarray(info["pushed"], dtype=np.float64)[m]
            opted |= m & np.asarray(info["opted_out"], dtype=bool)
            first &= ~(np.asarray(terminated) | np.asarray(truncated))
    finally:
        env.close()
    tot["opted"] = opted.astype(np.float64)
    return tot


def _summarise(hours: tuple[int, ...], style: int, style_name: str, rows: dict[str, np.ndarray],
               horizon_days: float) -> dict[str, Any]:
    n = rows["ret"].size

    def se(x: np.ndarray) -> float:
        return float(np.std(x, ddof=1) / math.sqrt(n)) if n > 1 else math.nan

    pushes = float(rows["pushes"].sum())
    return {
        "hours": hours, "style": style, "style_name": style_name, "users": n,
        "return": float(rows["ret"].mean()), "return_se": se(rows["ret"]),
        "opens": float(rows["opens"].mean()), "opens_se": se(rows["opens"]),
        "opens_per_day": float(rows["opens"].mean() / horizon_days),
        "dwell_min_per_day": float(rows["dwell_s"].mean() / 60.0 / horizon_days),
        "pushes_per_day": float(rows["pushes"].mean() / horizon_days),
        "ctr": float(rows["opens"].sum() / pushes) if pushes else math.nan,
        "opt_out_rate": float(rows["opted"].mean()),
    }


def evaluate_static_schedules(schedules: Sequence[tuple[Sequence[int] | int, int | str]],
                              params: PopulationParams | str | os.PathLike | None = None, *,
                              n_users: int = 500, seed: SeedLike = 0,
                              horizon_days: float = 14.0, history_days: float = 0.0,
                              env_kwargs: Mapping[str, Any] | None = None,
                              max_users_per_run: int = _DEFAULT_MAX_USERS_PER_RUN,
                              progress: bool = False, desc: str = "schedules") -> pd.DataFrame:
    """Evaluate static schedules, ``n_users`` users each, in as few vector-env runs as fit.

    Parameters
    ----------
    schedules : sequence of (hours, style)
        ``hours``: distinct hours of the day (or one hour) the slot grid reaches
        (:func:`reachable_hours`); ``style``: a style index or name of the population.
    params : PopulationParams, path or None
        The population (``None``: :func:`~covercast.simulators.params.default_params`).
    n_users : int
        Users per schedule, >= 2 (for standard errors).
    seed : int or SeedSequence
        Seed of the whole evaluation (same seed, same table). With one schedule, one run and an
        integer seed, the users and numbers are those of
        ``evaluate_vector(StaticScheduler(hours, style), n_users, seed)``.
    horizon_days : float
        Length of every user's episode (default 14 days, the benchmark's).
    history_days : float
        Days of organic sessions seen before the episode (the environments' ``history_days``).
        It fills the observation only, so it does not change what a static schedule gets.
    env_kwargs : mapping, optional
        Further :class:`~covercast.envs.vector.PopulationVectorEnv` arguments (``slot_minutes``,
        ``start``, ``w_dwell``, ``w_optout``, ``reward_fn``, ``bank``); not ``params``,
        ``horizon_days``, ``history_days`` (arguments here) or ``daily_budget``.
    max_users_per_run : int
        Users per vector-env run (memory): schedules are split into runs of at most this many
        users (a schedule's users always share a run).
    progress : bool
        A tqdm bar over the slots of each run.
    desc : str
        Label of the progress bars.

    Returns
    -------
    pandas.DataFrame
        One row per schedule, in the given order, columns :data:`SCHEDULE_COLUMNS`.
    """
    from covercast.envs.base import check_history_days, resolve_params

    params = resolve_params(params)
    kw = _check_env_kwargs(env_kwargs)
    allowed = reachable_hours(kw.get("slot_minutes", 60), kw.get("start"))
    cands = _check_schedules(schedules, params.styles, allowed)
    n_users = check_int(n_users, "n_users", 2)
    horizon_days = check_number(horizon_days, "horizon_days", lo=0, lo_open=True)
    history_days = check_history_days(history_days)
    max_users_per_run = check_int(max_users_per_run, "max_users_per_run", 2)
    root = as_seed_sequence(seed)
    per_run = max(1, max_users_per_run // n_users)
    chunks = [cands[i:i + per_run] for i in range(0, len(cands), per_run)]
    rows: list[dict[str, Any]] = []
    for j, chunk in enumerate(chunks):
        ss = root if len(chunks) == 1 else _child(root, 1, j)
        c = len(chunk)
        hour_table = np.zeros((c, 24), dtype=bool)
        for i, (hours, _) in enumerate(chunk):
            hour_table[i, list(hours)] = True
        styles = np.array([s for _, s in chunk], dtype=np.int64)
        assign = np.repeat(np.arange(c), n_users)
        if c > 1:       # users are i.i.d. by row; a random assignment costs nothing and is safe
            assign = np.random.default_rng(_child(ss, 2)).permutation(assign)
        label = desc if len(chunks) == 1 else f"{desc} ({j + 1}/{len(chunks)})"
        tot = _run_block(params, hour_table, styles, assign, _env_seed(ss), horizon_days,
                         history_days, kw, progress, label)
        order = np.argsort(assign, kind="stable")
        bounds = np.searchsorted(assign[order], np.arange(c + 1))
        for i, (hours, style) in enumerate(chunk):
            idx = order[bounds[i]:bounds[i + 1]]
            rows.append(_summarise(hours, style, params.styles[style],
                                   {k: v[idx] for k, v in tot.items()}, horizon_days))
    df = pd.DataFrame(rows, columns=list(SCHEDULE_COLUMNS))
    df["users"] = df["users"].astype(np.int64)
    df["style"] = df["style"].astype(np.int64)
    return df


# ================================================================================ the search
def _spread_sets(allowed: Sequence[int], k: int) -> list[tuple[int, ...]]:
    """Evenly spaced sets of ``k`` reachable hours, every rotation (deduplicated, in order)."""
    m = len(allowed)
    seen: dict[tuple[int, ...], None] = {}
    for o in range(m):
        s = tuple(sorted({allowed[(o + int(round(j * m / k))) % m] for j in range(k)}))
        if len(s) == k:
            seen.setdefault(s, None)
    return list(seen)


def _neighbours(hours: tuple[int, ...], allowed: Sequence[int]) -> list[tuple[int, ...]]:
    """Every set that moves one hour of ``hours`` to a reachable hour not in it."""
    free = [a for a in allowed if a not in hours]
    out: dict[tuple[int, ...], None] = {}
    for h in hours:
        rest = [x for x in hours if x != h]
        for a in free:
            out.setdefault(tuple(sorted(rest + [a])), None)
    return list(out)


@dataclass
class TuneResult:
    """What :func:`tune_static_schedule` found, and how.

    Attributes
    ----------
    hours : tuple of int
        The chosen push hours (UTC), sorted.
    style : int
        The chosen style index; ``style_name`` its name.
    score, score_se : float
        The objective of the chosen schedule and its standard error, measured on fresh users
        after the choice (the ``score`` stage; the ``final`` stage with one finalist).
    table : pandas.DataFrame
        Every candidate evaluation, one row per candidate and stage: ``stage`` (``start``,
        ``hours``, ``style``, ``joint``, ``final`` or ``score``), ``round``, the columns of
        :func:`evaluate_static_schedules`, ``score`` and ``score_se`` (the objective and its
        standard error) and ``chosen`` (True on the chosen schedule's ``final`` and ``score``
        rows).
    info : dict
        JSON-able settings and facts of the search (:meth:`tuning_info`).
    """

    hours: tuple[int, ...]
    style: int
    style_name: str
    score: float
    score_se: float
    objective: str
    pushes_per_day: int
    table: pd.DataFrame = field(repr=False)
    info: dict[str, Any] = field(default_factory=dict, repr=False)

    def tuning_info(self) -> dict[str, Any]:
        """The JSON-able record of the tuning (the table left out): the schedule, its score,
        the population's name, users, seed, objective, search, horizon, time taken, ..."""
        return dict(self.info)

    def landscape(self, stage: str | None = None) -> pd.DataFrame:
        """Each distinct candidate once, with its objective pooled over the stages (a
        users-weighted mean; ``stage`` limits it to one stage), best first."""
        t = self.table if stage is None else self.table[self.table["stage"] == stage]
        if t.empty:
            raise ValueError(f"No rows of stage {stage!r}; the stages are "
                             f"{sorted(self.table['stage'].unique())}.")
        return _pool(t).sort_values("score", ascending=False, kind="stable").reset_index(
            drop=True)

    def summary(self) -> str:
        """One line: the schedule, its score and how it was found."""
        hrs = "/".join(f"{h:02d}:00" for h in self.hours)
        return (f"{hrs} style {self.style} ({self.style_name}): {self.objective} "
                f"{self.score:.3f} +- {self.score_se:.3f} ({self.info.get('candidates', '?')} "
                f"candidates, {self.info.get('user_episodes', '?')} user-episodes, "
                f"{self.info.get('elapsed_s', math.nan):.1f} s)")


_POOL_MEANS = ("return", "opens", "opens_per_day", "dwell_min_per_day", "pushes_per_day",
               "opt_out_rate", "score")


def _pool(t: pd.DataFrame) -> pd.DataFrame:
    """One row per (hours, style): users-weighted means, standard errors combined."""
    rows = []
    for (hours, style), g in t.groupby(["hours", "style"], sort=False):
        w = g["users"].to_numpy(dtype=np.float64)
        r: dict[str, Any] = {"hours": hours, "style": int(style),
                             "style_name": g["style_name"].iloc[0], "users": int(w.sum())}
        for c in _POOL_MEANS:
            r[c] = float(np.average(g[c].to_numpy(dtype=np.float64), weights=w))
        for c in ("score_se", "return_se", "opens_se"):
            r[c] = float(math.sqrt(np.sum((w / w.sum()) ** 2 * g[c].to_numpy() ** 2)))
        r["ctr"] = (r["opens_per_day"] / r["pushes_per_day"] if r["pushes_per_day"] > 0
                    else math.nan)
        rows.append(r)
    return pd.DataFrame(rows)


def _seed_record(ss: np.random.SeedSequence) -> dict[str, Any]:
    rec: dict[str, Any] = {"seed": int(ss.entropy) if not isinstance(ss.entropy, Sequence)
                           else [int(e) for e in ss.entropy]}
    if ss.spawn_key:
        rec["spawn_key"] = [int(k) for k in ss.spawn_key]
    return rec


def _jsonable_kwargs(kw: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in kw.items():
        try:
            json.dumps(v)
            out[k] = v
        except TypeError:
            out[k] = repr(v)
    return out


def tune_static_schedule(params: PopulationParams | str | os.PathLike | None = None, *,
                         pushes_per_day: int = 2, n_users: int = 500, seed: SeedLike = 0,
                         horizon_days: float = 14.0, history_days: float = 0.0,
                         objective: str = "return", env_kwargs: Mapping[str, Any] | None = None,
                         progress: bool = False, search: str = "coordinate",
                         styles: Sequence[int | str] | None = None, n_final: int = 8,
                         final_users: int | None = None, max_rounds: int = 3,
                         max_passes: int = 4, max_enumerate: int = 300,
                         max_joint: int = 5000,
                         max_users_per_run: int = _DEFAULT_MAX_USERS_PER_RUN) -> TuneResult:
    """The best static schedule (push hours, one style) on training users of ``params``.

    Candidates are ``(hours, style)``: ``pushes_per_day`` distinct hours of the day, the same
    every day, and one style for every push and user. Each is scored on ``n_users`` simulated
    users of ``params`` over one ``horizon_days`` episode (:func:`evaluate_static_schedules`:
    many candidates per vector-env run); the search is described in the module docstring.

    Parameters
    ----------
    params : PopulationParams, path or None
        The training population (``None``: :func:`~covercast.simulators.params.default_params`).
    pushes_per_day : int
        The push volume, 1-24 (at most the number of reachable hours): comparisons with
        other policies are at matched volume.
    n_users : int
        Users per candidate in each search stage, >= 2. The standard error of a candidate's
        mean return is about ``sd / sqrt(n_users)``; on the default population the per-user
        standard deviation of a 14-day return is about 2, so 500 users give about 0.1.
    seed : int or SeedSequence
        Seed of the whole search (``np.random.SeedSequence``): same seed, same table and result.
    horizon_days, history_days, env_kwargs :
        The episodes, as in :func:`evaluate_static_schedules` (``env_kwargs`` may set
        ``slot_minutes``, ``start``, the reward's ``w_dwell`` / ``w_optout`` or ``reward_fn``).
    objective : {"return", "opens"}
        Maximise the mean episode return per user (the environment's reward: opens + 0.1 *
        dwell minutes - 5 * opted out, by default) or the mean opens per user.
    progress : bool
        tqdm bars over the slots of each run.
    search : {"coordinate", "joint"}
        Hours and style in turn (default), or every combination at once (at most
        ``max_joint`` candidates).
    styles : sequence of int or str, optional
        The styles to search (indices or names; default all of the population's).
    n_final : int
        Finalists re-evaluated on fresh users, >= 1.
    final_users : int, optional
        Users per finalist, and for the chosen schedule's score (default ``4 * n_users``).
    max_rounds : int
        Hours/style rounds of the coordinate search, >= 1.
    max_passes : int
        Local-search passes of an hours stage that cannot enumerate, >= 1.
    max_enumerate : int
        An hours stage enumerates every set of ``pushes_per_day`` hours when there are at most
        this many (276 pairs for two pushes a day); otherwise it searches locally.
    max_joint : int
        The most candidates ``search="joint"`` accepts.
    max_users_per_run : int
        Users per vector-env run (memory).

    Returns
    -------
    TuneResult
        The chosen schedule, its final score, and the table of every candidate evaluated.

    Raises
    ------
    ValueError
        For an argument out of range: ``pushes_per_day`` 0 or above 24 (or above the reachable
        hours), an unknown ``objective`` or ``search``, ``styles`` empty or not the
        population's, too many joint candidates, ...
    """
    from covercast.envs.base import check_history_days, resolve_params

    t_start = time.perf_counter()
    params = resolve_params(params)
    if objective not in OBJECTIVES:
        raise ValueError(f"`objective` must be one of {list(OBJECTIVES)}, got {objective!r}.")
    if search not in SEARCHES:
        raise ValueError(f"`search` must be one of {list(SEARCHES)}, got {search!r}.")
    k = check_int(pushes_per_day, "pushes_per_day", 1, 24)
    kw = _check_env_kwargs(env_kwargs)
    allowed = reachable_hours(kw.get("slot_minutes", 60), kw.get("start"))
    if k > len(allowed):
        raise ValueError(f"`pushes_per_day` = {k} is more than the {len(allowed)} hours the "
                         f"{kw.get('slot_minutes', 60)}-minute slot grid reaches "
                         f"({list(allowed)}).")
    n_users = check_int(n_users, "n_users", 2)
    final_users = 4 * n_users if final_users is None else check_int(final_users,
                                                                     "final_users", 2)
    n_final = check_int(n_final, "n_final", 1)
    max_rounds = check_int(max_rounds, "max_rounds", 1)
    max_passes = check_int(max_passes, "max_passes", 1)
    max_enumerate = check_int(max_enumerate, "max_enumerate", 1)
    max_joint = check_int(max_joint, "max_joint", 1)
    horizon_days = check_number(horizon_days, "horizon_days", lo=0, lo_open=True)
    history_days = check_history_days(history_days)
    if styles is None:
        style_set = list(range(len(params.styles)))
    else:
        if isinstance(styles, (str, int, np.integer)):
            styles = [styles]
        style_set = [_style_index(s, params.styles) for s in styles]
        if not style_set:
            raise ValueError("`styles` is empty; give at least one style (or None for all).")
        if len(set(style_set)) != len(style_set):
            raise ValueError(f"`styles` must be distinct, got {list(styles)}.")
    root = as_seed_sequence(seed)
    score_col, se_col = ("return", "return_se") if objective == "return" else ("opens",
                                                                                "opens_se")
    frames: list[pd.DataFrame] = []
    n_eval = [0]

    def run(stage: str, rnd: int, cands: list[tuple[tuple[int, ...], int]], users: int
            ) -> pd.DataFrame:
        df = evaluate_static_schedules(
            cands, params, n_users=users, seed=_child(root, n_eval[0]),
            horizon_days=horizon_days, history_days=history_days, env_kwargs=kw,
            max_users_per_run=max_users_per_run, progress=progress,
            desc=f"tuning: {stage}" + (f" (round {rnd})" if rnd else ""))
        n_eval[0] += 1
        df.insert(0, "round", rnd)
        df.insert(0, "stage", stage)
        df["score"] = df[score_col]
        df["score_se"] = df[se_col]
        df["chosen"] = False
        frames.append(df)
        return df

    def best(df: pd.DataFrame) -> tuple[tuple[int, ...], int]:
        r = df.loc[df["score"].idxmax()]      # first of equals: deterministic
        return tuple(r["hours"]), int(r["style"])

    n_sets = math.comb(len(allowed), k)
    if search == "joint":
        n_joint = n_sets * len(style_set)
        if n_joint > max_joint:
            raise ValueError(f"`search='joint'` would evaluate {n_joint} candidates "
                             f"({n_sets} hour sets x {len(style_set)} styles), more than "
                             f"`max_joint` = {max_joint}; use search='coordinate' or fewer "
                             "styles.")
        run("joint", 0, [(h, s) for h in itertools.combinations(allowed, k)
                         for s in style_set], n_users)
    else:
        hours, style = best(run("start", 0, [(h, s) for h in _spread_sets(allowed, k)
                                             for s in style_set], n_users))
        for rnd in range(1, max_rounds + 1):
            tuned_at = style
            if n_sets <= max_enumerate:
                hours, _ = best(run("hours", rnd, [(h, style) for h in
                                                   itertools.combinations(allowed, k)], n_users))
            else:
                for _ in range(max_passes):
                    df = run("hours", rnd, [(hours, style)] + [
                        (h, style) for h in _neighbours(hours, allowed)], n_users)
                    nxt, _ = best(df)
                    if nxt == hours:
                        break
                    hours = nxt
            if len(style_set) > 1:
                _, style = best(run("style", rnd, [(hours, s) for s in style_set], n_users))
            if style == tuned_at:
                break
    pooled = _pool(pd.concat(frames, ignore_index=True))
    pooled = pooled.sort_values("score", ascending=False, kind="stable")
    finalists = [(tuple(h), int(s)) for h, s in zip(pooled["hours"].head(n_final),
                                                     pooled["style"].head(n_final),
                                                     strict=True)]
    fin = run("final", 0, finalists, final_users)
    i_best = int(fin["score"].idxmax())
    fin.loc[i_best, "chosen"] = True
    row = fin.loc[i_best]
    if len(finalists) > 1:      # the pick's score, free of the pick: fresh users again
        chk = run("score", 0, [(tuple(row["hours"]), int(row["style"]))], final_users)
        chk["chosen"] = True
        row = chk.iloc[0]
    table = pd.concat(frames, ignore_index=True)
    table = table[list(_TUNE_FRONT) + list(SCHEDULE_COLUMNS) + list(_TUNE_BACK)]
    elapsed = time.perf_counter() - t_start
    hours_best, style_best = tuple(int(h) for h in row["hours"]), int(row["style"])
    info: dict[str, Any] = {
        "hours": list(hours_best), "style": style_best,
        "style_name": params.styles[style_best], "pushes_per_day": k,
        "objective": objective, "score": float(row["score"]),
        "score_se": float(row["score_se"]), "return": float(row["return"]),
        "opens_per_day": float(row["opens_per_day"]),
        "pushes_per_day_delivered": float(row["pushes_per_day"]),
        "opt_out_rate": float(row["opt_out_rate"]), "ctr": float(row["ctr"]),
        "population": params.name, "n_styles": len(params.styles),
        "styles_searched": [int(s) for s in style_set], "n_users": n_users,
        "final_users": final_users, "n_final": n_final, **_seed_record(root),
        "search": search, "horizon_days": horizon_days, "history_days": history_days,
        "env_kwargs": _jsonable_kwargs(kw), "candidates": int(len(_pool(table))),
        "evaluations": int(len(table)), "user_episodes": int(table["users"].sum()),
        "elapsed_s": round(elapsed, 3),
    }
    return TuneResult(hours=hours_best, style=style_best, style_name=params.styles[style_best],
                      score=float(row["score"]), score_se=float(row["score_se"]),
                      objective=objective, pushes_per_day=k, table=table, info=info)


# ================================================================================ the agent
class TunedStaticScheduler(StaticScheduler):
    """A static schedule whose hours and style were tuned on training users.

    It pushes exactly like :class:`~covercast.agents.baselines.StaticScheduler` (the same hours
    every day, one style, nothing read but the clock), and remembers how the schedule was
    found: ``tuning`` holds the record of :func:`tune_static_schedule`
    (:meth:`TuneResult.tuning_info`: population name, users, seed, objective, score, search,
    ...). Build it with :meth:`tune`, or from a saved record with the constructor or
    :meth:`from_dict`.

    Parameters
    ----------
    mode, seed, name :
        See :class:`~covercast.agents.base.Agent` (default name ``"static (tuned)"``).
    n_styles : int, optional
        Number of cover styles (default: the tuning record's, else 5).
    hours : sequence of int
        The push hours (UTC), distinct, 0-23.
    style : int
        The style of every push.
    tuning : TuneResult or mapping, optional
        How the schedule was tuned: a :class:`TuneResult` (kept as :attr:`result`, its table
        included) or its :meth:`~TuneResult.tuning_info` record. Its hours, style and number of
        styles must be the agent's.

    Examples
    --------
    >>> agent = TunedStaticScheduler.tune(pushes_per_day=2, seed=0)       # doctest: +SKIP
    >>> agent.config()["tuning"]["score"]                                  # doctest: +SKIP
    >>> json.dump(agent.to_dict(), open("tuned.json", "w"))               # doctest: +SKIP
    """

    default_name = "static (tuned)"

    def __init__(self, mode: str = "schedule", n_styles: int | None = None, *,
                 hours: Sequence[int], style: int, tuning: TuneResult | Mapping[str, Any]
                 | None = None, seed: SeedLike = None, name: str | None = None) -> None:
        result = tuning if isinstance(tuning, TuneResult) else None
        if result is not None:
            record = result.tuning_info()
        elif tuning is None:
            record = {}
        elif isinstance(tuning, Mapping):
            try:
                record = json.loads(json.dumps(dict(tuning)))
            except (TypeError, ValueError) as e:
                raise ValueError(f"`tuning` must be JSON-able (a TuneResult's tuning_info()), "
                                 f"got {e}.") from e
        else:
            raise ValueError(f"`tuning` must be a TuneResult, its tuning_info() mapping or None, "
                             f"got {type(tuning).__name__}.")
        rec_styles = record.get("n_styles")
        if n_styles is None:
            n_styles = int(rec_styles) if rec_styles is not None else len(DEFAULT_STYLES)
        elif rec_styles is not None and int(rec_styles) != n_styles:
            raise ValueError(f"`n_styles` = {n_styles} but the schedule was tuned on a population "
                             f"with {rec_styles} styles.")
        super().__init__(mode, n_styles, hours=hours, style=style, seed=seed, name=name)
        if "hours" in record and tuple(sorted(record["hours"])) != self.hours:
            raise ValueError(f"`hours` {list(self.hours)} differ from the tuned hours "
                             f"{record['hours']} of `tuning`.")
        if "style" in record and int(record["style"]) != self.style:
            raise ValueError(f"`style` {self.style} differs from the tuned style "
                             f"{record['style']} of `tuning`.")
        self.tuning: dict[str, Any] = record
        self.result: TuneResult | None = result

    @classmethod
    def tune(cls, params: PopulationParams | str | os.PathLike | None = None,
             pushes_per_day: int = 2, *, mode: str = "schedule", name: str | None = None,
             **kwargs: Any) -> TunedStaticScheduler:
        """Run :func:`tune_static_schedule` (``kwargs`` are its arguments) and build the agent.

        The :class:`TuneResult`, its table included, is kept as :attr:`result`.
        """
        from covercast.envs.base import resolve_params

        params = resolve_params(params)
        result = tune_static_schedule(params, pushes_per_day=pushes_per_day, **kwargs)
        return cls(mode, len(params.styles), hours=result.hours, style=result.style,
                   tuning=result, name=name)

    @property
    def pushes_per_day(self) -> int:
        """Pushes a day (the number of hours)."""
        return len(self.hours)

    def config(self) -> dict[str, Any]:
        return super().config() | {"pushes_per_day": self.pushes_per_day,
                                   "tuning": dict(self.tuning)}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able description (:meth:`from_dict` rebuilds the agent; the tuning table is
        not included: save ``agent.result.table`` beside it if wanted)."""
        return {"format": _TO_DICT_FORMAT, "version": _TO_DICT_VERSION, "name": self.name,
                "mode": self.mode, "n_styles": self.n_styles, "hours": list(self.hours),
                "style": self.style, "tuning": dict(self.tuning)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TunedStaticScheduler:
        """The agent of :meth:`to_dict`."""
        if not isinstance(d, Mapping):
            raise ValueError(f"Expected the dict of TunedStaticScheduler.to_dict(), got "
                             f"{type(d).__name__}.")
        if d.get("format") != _TO_DICT_FORMAT:
            raise ValueError(f"Not a TunedStaticScheduler description (format "
                             f"{d.get('format')!r}, expected {_TO_DICT_FORMAT!r}).")
        if d.get("version") != _TO_DICT_VERSION:
            raise ValueError(f"TunedStaticScheduler description version {d.get('version')!r}; "
                             f"this covercast reads version {_TO_DICT_VERSION}.")
        missing = [key for key in ("hours", "style") if key not in d]
        if missing:
            raise ValueError(f"The TunedStaticScheduler description has no {missing}.")
        return cls(d.get("mode", "schedule"), d.get("n_styles"), hours=d["hours"],
                   style=d["style"], tuning=d.get("tuning") or None, name=d.get("name"))

