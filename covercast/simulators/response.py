"""How a simulated user answers a push: the formulas of the user model, as pure functions.

Every function here is vectorised over users (numpy arrays or floats in -- not lists --, numpy
arrays out), has no state, and takes its random source as ``rng: np.random.Generator`` when it
draws. The functions of :class:`ResponseModel` (and the helpers they call) are also written so
that numba compiles them for floats: the one-user stepper of the single-user environments calls
the very same code. They are the single source of truth for the model specified in
:mod:`covercast.simulators.params`: the population engine (:mod:`covercast.simulators.population`) and the one-user stepper
(:mod:`covercast.simulators.user`) call them to simulate, and the fitter
(:mod:`covercast.simulators.fit`) calls them to compute likelihoods, so they can never
disagree.

The pieces, in the order a push meets them:

====================================  ============================================================
function                              formula
====================================  ============================================================
:func:`fatigue_at`                    ``F(t) = F0 * 2 ** (-(t - t0) / half_life_h)`` (lazy decay)
:func:`opt_out_probability`           ``1 - exp(-(base_hazard + fatigue_coef * F))``
:func:`seen_now_probability`          ``1 - exp(-rate * glance_hours)``
:func:`relative_activity_feature`     ``log(max(rate / mean_rate, 0.05))``
:func:`taste_match`                   ``taste . features(cover)`` (row-wise)
:func:`relevance`                     ``taste . features(cover) + topic_affinity[topic]``
:func:`open_logit`                    ``intercept + beta_activity * rel_activity
                                      + beta_taste * taste_match + beta_quality * (q - 0.5)
                                      + beta_topic * topic_affinity - beta_fatigue * F``
:func:`staleness_factor`              ``exp(-delay_h / stale_tau_h)``
:func:`open_probability`              ``sigmoid(open_logit) * staleness_factor``
:func:`dwell_log_mean`                ``dwell_mu + relevance_coef * relevance``
:func:`draw_dwell`                    ``exp(dwell_log_mean + dwell_sigma * N(0, 1))`` seconds
:func:`engagement_probabilities`      ``sigmoid(intercept + relevance_coef * relevance)`` each
:func:`satisfaction_latent_mean`      ``relevance_coef * relevance + dwell_coef * log(dwell/60)
                                      - fatigue_coef * F``
:func:`satisfaction_probabilities`    ordered logit over the four cutpoints, scores 1-5
:func:`drift_step`                    ``x + reversion * (mean - x) + sd * N(0, 1)`` (one day)
====================================  ============================================================
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from covercast.simulators.params import (
    DriftModel,
    DwellModel,
    EngagementModel,
    FatigueModel,
    OpenModel,
    OptOutModel,
    SatisfactionModel,
)

__all__ = [
    "DEFAULT_RESPONSE",
    "MIN_RELATIVE_ACTIVITY",
    "ResponseModel",
    "check_response",
    "sigmoid",
    "fatigue_at",
    "add_push_fatigue",
    "opt_out_probability",
    "seen_now_probability",
    "relative_activity_feature",
    "taste_match",
    "relevance",
    "open_logit",
    "staleness_factor",
    "open_probability",
    "dwell_log_mean",
    "dwell_seconds",
    "draw_dwell",
    "draw_session_dwell",
    "engagement_probabilities",
    "draw_engagement",
    "satisfaction_latent_mean",
    "satisfaction_probabilities",
    "survey_probability",
    "satisfaction_score",
    "draw_satisfaction",
    "drift_step",
    "activity_multiplier",
]

#: Floor of the activity ratio inside the log of :func:`relative_activity_feature`.
MIN_RELATIVE_ACTIVITY = 0.05



def sigmoid(x: np.ndarray | float) -> np.ndarray:
    """Numerically stable logistic function ``1 / (1 + exp(-x))``."""
    # exp of a non-positive number never overflows.
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


# ---------------------------------------------------------------------------------- fatigue
def fatigue_at(f: np.ndarray | float, t_f: np.ndarray | float, t: np.ndarray | float,
               half_life_h: float) -> np.ndarray:
    """Fatigue at time ``t`` of a user whose fatigue was ``f`` at time ``t_f`` (lazy decay).

    Parameters
    ----------
    f : array_like
        Fatigue value stored at its last update.
    t_f : array_like
        Time (hours) of that update. ``-inf`` is allowed where ``f == 0`` (never pushed).
    t : array_like
        Time (hours) to evaluate at; must be ``>= t_f`` (not checked, for speed).
    half_life_h : float
        :attr:`FatigueModel.half_life_h`.

    Returns
    -------
    numpy.ndarray
        ``f * 2 ** (-(t - t_f) / half_life_h)``; exactly 0 where ``f == 0``.
    """
    # Never-pushed users have f == 0 and t_f == -inf: 0 * 0 is 0, but guard inf - inf too.
    return np.where(f == 0.0, 0.0, f * np.exp2(-np.maximum(t - t_f, 0.0) / half_life_h))


def add_push_fatigue(f: np.ndarray | float, t_f: np.ndarray | float, t: np.ndarray | float,
                     fatigue: FatigueModel) -> np.ndarray:
    """Fatigue just after a push delivered at ``t``: decayed value plus ``fatigue.increment``."""
    return fatigue_at(f, t_f, t, fatigue.half_life_h) + fatigue.increment


def opt_out_probability(fatigue: np.ndarray | float, opt_out_model: OptOutModel) -> np.ndarray:
    """Probability that a delivered push makes the user opt out.

    ``1 - exp(-(base_hazard + fatigue_coef * fatigue))``, with ``fatigue`` counted *after* the
    push's own increment (see :func:`add_push_fatigue`).
    """
    return -np.expm1(-(opt_out_model.base_hazard + opt_out_model.fatigue_coef * fatigue))


# ---------------------------------------------------------------------------------- activity
def seen_now_probability(rate: np.ndarray | float, glance_hours: float) -> np.ndarray:
    """Probability that a push is seen the moment it is delivered.

    Parameters
    ----------
    rate : array_like
        The user's organic session rate (sessions per hour) at the delivery time: segment
        activity at that hour of week times the user's activity multiplier.
    glance_hours : float
        :attr:`OpenModel.glance_hours`.
    """
    return -np.expm1(-rate * glance_hours)


def relative_activity_feature(rate: np.ndarray | float, mean_rate: np.ndarray | float
                              ) -> np.ndarray:
    """``log(max(rate / mean_rate, 0.05))``: how active the user is now relative to usual.

    The user's activity multiplier cancels in the ratio, so segment rates may be passed.
    ``mean_rate`` must be positive (every segment's weekly mean rate is).
    """
    ratio = np.asarray(rate, dtype=np.float64) / np.asarray(mean_rate, dtype=np.float64)
    return np.log(np.maximum(ratio, MIN_RELATIVE_ACTIVITY))


# ---------------------------------------------------------------------------------- relevance
def taste_match(taste: np.ndarray, features: np.ndarray) -> np.ndarray:
    """Row-wise dot product ``taste[i] . features[i]`` of ``(n, d)`` arrays (or ``(d,)``)."""
    taste = np.asarray(taste, dtype=np.float64)
    features = np.asarray(features, dtype=np.float64)
    if taste.shape != features.shape:
        raise ValueError(f"`taste` and `features` must have the same shape, got {taste.shape} "
                         f"and {features.shape}; index the cover features per user first.")
    return np.einsum("...d,...d->...", taste, features)


def relevance(taste: np.ndarray, features: np.ndarray, topic_affinity: np.ndarray | float
              ) -> np.ndarray:
    """Relevance of a cover to a user: ``taste . features(cover) + topic_affinity[topic]``.

    It lengthens dwell, raises engagement and satisfaction (unweighted sum; the open logit
    weighs the two parts separately with ``beta_taste`` and ``beta_topic``).
    """
    return taste_match(taste, features) + np.asarray(topic_affinity, dtype=np.float64)


# ---------------------------------------------------------------------------------- open
def open_logit(intercept: np.ndarray | float, rel_activity: np.ndarray | float,
               match: np.ndarray | float, quality: np.ndarray | float,
               topic_affinity: np.ndarray | float, fatigue: np.ndarray | float,
               open_model: OpenModel) -> np.ndarray:
    """The open logit of a fresh push.

    Parameters
    ----------
    intercept : array_like
        :attr:`Segment.open_intercept` of each user's segment.
    rel_activity : array_like
        :func:`relative_activity_feature` at the time the push is seen.
    match : array_like
        :func:`taste_match` of the user's taste and the cover's features.
    quality : array_like
        Cover quality in [0, 1] (centred at 0.5 here).
    topic_affinity : array_like
        The user's affinity for the push's topic.
    fatigue : array_like
        Fatigue at the time the push is seen (after its own increment).
    open_model : OpenModel
        The coefficients.
    """
    m = open_model
    return (intercept + m.beta_activity * rel_activity + m.beta_taste * match
            + m.beta_quality * (quality - 0.5) + m.beta_topic * topic_affinity
            - m.beta_fatigue * fatigue)


def staleness_factor(delay_h: np.ndarray | float, stale_tau_h: float) -> np.ndarray:
    """``exp(-delay_h / stale_tau_h)``: how much a late-seen push's open probability shrinks."""
    return np.exp(-delay_h / stale_tau_h)


def open_probability(intercept: np.ndarray | float, rel_activity: np.ndarray | float,
                     match: np.ndarray | float, quality: np.ndarray | float,
                     topic_affinity: np.ndarray | float, fatigue: np.ndarray | float,
                     delay_h: np.ndarray | float, open_model: OpenModel) -> np.ndarray:
    """Probability that a push seen ``delay_h`` hours after delivery is opened.

    ``sigmoid(open_logit(...)) * exp(-delay_h / stale_tau_h)``; ``delay_h = 0`` for a push seen
    at once. Arguments are those of :func:`open_logit` plus ``delay_h``.
    """
    p = sigmoid(open_logit(intercept, rel_activity, match, quality, topic_affinity, fatigue,
                           open_model))
    return p * staleness_factor(delay_h, open_model.stale_tau_h)


# ---------------------------------------------------------------------------------- dwell
def dwell_log_mean(dwell_mu: np.ndarray | float, rel: np.ndarray | float,
                   dwell_model: DwellModel) -> np.ndarray:
    """Mean of log dwell seconds after an open: ``dwell_mu + relevance_coef * relevance``."""
    return dwell_mu + dwell_model.relevance_coef * rel


def dwell_seconds(dwell_mu: np.ndarray | float, dwell_sigma: np.ndarray | float,
                  rel: np.ndarray | float, z: np.ndarray | float, dwell_model: DwellModel
                  ) -> np.ndarray:
    """Dwell seconds of a pushed session with standard normal noise ``z``:
    ``exp(dwell_log_mean + dwell_sigma * z)`` (log-normal)."""
    return np.exp(dwell_log_mean(dwell_mu, rel, dwell_model) + dwell_sigma * z)


def draw_dwell(dwell_mu: np.ndarray | float, dwell_sigma: np.ndarray | float,
               rel: np.ndarray | float, dwell_model: DwellModel,
               rng: np.random.Generator) -> np.ndarray:
    """Dwell seconds of pushed sessions: :func:`dwell_seconds` with noise drawn from ``rng``
    (one draw per element of the broadcast inputs)."""
    shape = np.broadcast_shapes(np.shape(dwell_mu), np.shape(dwell_sigma), np.shape(rel))
    return dwell_seconds(dwell_mu, dwell_sigma, rel, rng.standard_normal(shape), dwell_model)


def draw_session_dwell(session_dwell_mu: np.ndarray | float, dwell_sigma: np.ndarray | float,
                       rng: np.random.Generator) -> np.ndarray:
    """Dwell seconds of organic sessions: log-normal(``session_dwell_mu``, ``dwell_sigma``)."""
    mu = np.asarray(session_dwell_mu, dtype=np.float64)
    sigma = np.asarray(dwell_sigma, dtype=np.float64)
    shape = np.broadcast_shapes(mu.shape, sigma.shape)
    return np.exp(mu + sigma * rng.standard_normal(shape))


# ---------------------------------------------------------------------------------- engagement
def engagement_probabilities(rel: np.ndarray | float, engagement_model: EngagementModel
                             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Probabilities of a like, a share and a comment after an open (independent logits).

    Returns
    -------
    (p_like, p_share, p_comment) : tuple of numpy.ndarray
        ``sigmoid(<event>_intercept + relevance_coef * relevance)`` each.
    """
    m = engagement_model
    r = m.relevance_coef * rel
    return (sigmoid(m.like_intercept + r), sigmoid(m.share_intercept + r),
            sigmoid(m.comment_intercept + r))


def draw_engagement(rel: np.ndarray | float, engagement_model: EngagementModel,
                    rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw (like, share, comment) booleans after opens of the given relevance."""
    p_like, p_share, p_comment = engagement_probabilities(rel, engagement_model)
    u = rng.random((3,) + p_like.shape)
    return u[0] < p_like, u[1] < p_share, u[2] < p_comment


# ---------------------------------------------------------------------------------- satisfaction
def satisfaction_latent_mean(rel: np.ndarray | float, dwell_s: np.ndarray | float,
                             fatigue: np.ndarray | float, model: SatisfactionModel) -> np.ndarray:
    """Mean of the latent satisfaction: ``relevance_coef * relevance
    + dwell_coef * log(dwell_s / 60) - fatigue_coef * fatigue``."""
    return (model.relevance_coef * rel + model.dwell_coef * np.log(dwell_s / 60.0)
            - model.fatigue_coef * fatigue)


def satisfaction_probabilities(rel: np.ndarray | float, dwell_s: np.ndarray | float,
                               fatigue: np.ndarray | float, model: SatisfactionModel
                               ) -> np.ndarray:
    """Probabilities of the survey scores 1-5 under the ordered logit, shape ``(..., 5)``.

    With latent ``eta + Logistic(0, 1)`` and score ``1 + #{cutpoints < latent}``,
    ``P(score <= k) = sigmoid(cutpoints[k-1] - eta)`` for k = 1..4.
    """
    eta = np.asarray(satisfaction_latent_mean(rel, dwell_s, fatigue, model))
    cuts = np.asarray(model.cutpoints, dtype=np.float64)
    cdf = sigmoid(cuts - eta[..., None])
    ones = np.ones(eta.shape + (1,))
    zeros = np.zeros(eta.shape + (1,))
    return np.diff(np.concatenate([zeros, cdf, ones], axis=-1), axis=-1)


def survey_probability(rel: np.ndarray | float, dwell_s: np.ndarray | float,
                       fatigue: np.ndarray | float, model: SatisfactionModel) -> np.ndarray:
    """Probability that an open is followed by a satisfaction survey: ``survey_rate`` (the
    same for every open; the arguments let a custom :class:`ResponseModel` depend on them)."""
    return model.survey_rate + 0.0 * rel


def satisfaction_score(rel: np.ndarray | float, dwell_s: np.ndarray | float,
                       fatigue: np.ndarray | float, noise: np.ndarray | float,
                       model: SatisfactionModel) -> np.ndarray:
    """The 1-5 survey score for standard logistic noise ``noise``: ``1 + #{cutpoints <
    satisfaction_latent_mean + noise}`` (the ordered logit of
    :func:`satisfaction_probabilities`)."""
    latent = satisfaction_latent_mean(rel, dwell_s, fatigue, model) + noise
    score = 1 + 0 * (latent > 0.0)
    for cut in model.cutpoints:
        score = score + (latent > cut)
    return score


def draw_satisfaction(rel: np.ndarray | float, dwell_s: np.ndarray | float,
                      fatigue: np.ndarray | float, model: SatisfactionModel,
                      rng: np.random.Generator) -> np.ndarray:
    """Draw 1-5 survey scores (int8) from the ordered logit (:func:`satisfaction_score`)."""
    shape = np.broadcast_shapes(np.shape(rel), np.shape(dwell_s), np.shape(fatigue))
    noise = rng.logistic(size=shape)
    return np.asarray(satisfaction_score(rel, dwell_s, fatigue, noise, model), dtype=np.int8)


# ---------------------------------------------------------------------------------- users
def drift_step(x: np.ndarray, mean: np.ndarray, drift: DriftModel, rng: np.random.Generator,
               days: float = 1.0) -> np.ndarray:
    """One Ornstein-Uhlenbeck step of taste (or topic affinity) over ``days`` days.

    ``x + (1 - (1 - r) ** days) * (mean - x) + sd * sqrt(days) * N(0, 1)`` with
    ``r = reversion_per_day`` and ``sd = sd_per_day``; for ``days = 1`` this is
    ``x + r * (mean - x) + sd * N(0, 1)``. Returns a new array.
    """
    if days < 0:
        raise ValueError(f"`days` must be >= 0, got {days!r}.")
    x = np.asarray(x, dtype=np.float64)
    pull = 1.0 - (1.0 - drift.reversion_per_day) ** days
    out = x + pull * (np.asarray(mean, dtype=np.float64) - x)
    if drift.sd_per_day > 0:
        out = out + drift.sd_per_day * np.sqrt(days) * rng.standard_normal(x.shape)
    return out


def activity_multiplier(shape: np.ndarray | float, rng: np.random.Generator,
                        size: int | tuple[int, ...] | None = None) -> np.ndarray:
    """Per-user activity multipliers, Gamma(k, scale 1/k): mean 1, variance 1/k."""
    k = np.asarray(shape, dtype=np.float64)
    if size is None and k.shape == (1,):
        # one user (every episode of a single-user environment): numpy's scalar call draws
        # the same number without the array call's argument checks
        k1 = float(k[0])
        if k1 <= 0:
            raise ValueError(f"Gamma shape must be > 0, got min {k1!r}.")
        return np.full(1, rng.gamma(k1, 1.0 / k1))
    if np.any(k <= 0):
        raise ValueError(f"Gamma shape must be > 0, got min {k.min()!r}.")
    return rng.gamma(k, 1.0 / k, size=size)


# ---------------------------------------------------------------------------------- the model
@dataclass(frozen=True)
class ResponseModel:
    """How a user answers a push, as the functions every engine calls.

    The population engine (:class:`~covercast.simulators.population.Population`, hence the
    population vector environment) calls these with arrays over the users concerned; the
    one-user stepper of the single-user environments
    (:class:`~covercast.simulators.user.UserSimulator`) compiles them with numba and calls
    them with floats. Each engine draws the noise (uniforms compared with the probabilities,
    the normal ``z`` of the dwell, the logistic noise of the survey score) from its own
    stream and passes it in, so a function here never draws.

    To change the model, replace any field with a function of the same signature, e.g.
    ``ResponseModel(open_probability=my_open_probability)``, and pass it as ``response=`` to
    :class:`~covercast.simulators.population.Population`, the single-user environments or the
    population vector environment. A replacement must work on numpy arrays (elementwise,
    vectorised over users) and compile in numba's nopython mode on floats: plain arithmetic,
    ``np.exp``/``np.log``/``np.where``-style ufuncs, and calls to other plain functions
    written the same way (they are compiled with it). The last argument is the part of
    :class:`~covercast.simulators.params.PopulationParams` it reads (a dataclass for numpy, a
    namedtuple with the same field names under numba).

    Fields (default: this module's function of the same name):

    * ``open_probability(intercept, rel_activity, match, quality, topic_affinity, fatigue,
      delay_h, open_model)``
    * ``seen_now_probability(rate, glance_hours)``
    * ``opt_out_probability(fatigue, opt_out_model)``
    * ``dwell_seconds(dwell_mu, dwell_sigma, rel, z, dwell_model)``
    * ``engagement_probabilities(rel, engagement_model) -> (p_like, p_share, p_comment)``
    * ``survey_probability(rel, dwell_s, fatigue, satisfaction_model)``
    * ``satisfaction_score(rel, dwell_s, fatigue, noise, satisfaction_model)`` (1-5)
    """

    open_probability: Callable = open_probability
    seen_now_probability: Callable = seen_now_probability
    opt_out_probability: Callable = opt_out_probability
    dwell_seconds: Callable = dwell_seconds
    engagement_probabilities: Callable = engagement_probabilities
    survey_probability: Callable = survey_probability
    satisfaction_score: Callable = satisfaction_score

    def __post_init__(self) -> None:
        for name in self.__dataclass_fields__:
            if not callable(getattr(self, name)):
                raise ValueError(f"ResponseModel.{name} must be a function, got "
                                 f"{getattr(self, name)!r}.")


#: The model of :mod:`covercast.simulators.params` (the functions of this module).
DEFAULT_RESPONSE = ResponseModel()


def check_response(response: ResponseModel | None) -> ResponseModel:
    """``response``, or :data:`DEFAULT_RESPONSE` for ``None``; a clear error otherwise."""
    if response is None:
        return DEFAULT_RESPONSE
    if not isinstance(response, ResponseModel):
        raise ValueError(f"`response` must be a covercast.simulators.response.ResponseModel, "
                         f"got {type(response).__name__}.")
    return response
