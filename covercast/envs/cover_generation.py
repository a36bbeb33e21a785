"""``covercast/CoverGeneration-v0``: choose the conditioning of a live cover generator.

Each step is one push *campaign*: a cohort of users of one segment is pushed, at one of the
day's push hours, a content item of one topic, with a cover that a generator renders for the
style mixture the agent chooses. The population answers; the reward comes from the opens and
the dwell time of the cohort, with optional aesthetic and relevance terms.

Rendering is live and cached. The action is turned into style weights and *quantised* to a grid
on the simplex (weights that are multiples of ``1 / grid``), so nearby actions ask for the same
cover; the cover of each grid point is rendered on first request and kept in an LRU cache of
``cache_size`` covers, so identical requests cost a dictionary look-up (``cache_info()`` counts
hits and misses). Learned generators draw their latent noise from a fixed ``latent_seed``, so a
grid point always gives the same cover.

The population responds through the ordinary engine: the cover becomes a small
:class:`~covercast.covers.bank.CoverBank` (the one cover listed once under every style, so
that the engine's per-style tables are complete -- the push names the cover by index, so the
listing changes nothing), and a fresh cohort of the segment is simulated with
:class:`~covercast.simulators.population.Population` from the push until ``response_hours``
later (late opens from the notification tray count). Cohorts are fresh at every step: the
environment is a contextual problem over segments, topics and hours of the week (fatigue and
opt-outs act within a campaign's response window, not across steps).

No torch is imported unless a learned generator is used; ``generator="procedural"`` (pixel
blends of procedural covers, module :mod:`covercast.covers.procedural`) runs without it.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import pandas as pd
from gymnasium import spaces
from gymnasium.error import ResetNeeded

from covercast.covers.attributes import cover_attributes
from covercast.covers.bank import CoverBank
from covercast.envs.base import DEFAULT_START, horizon_spec, resolve_params
from covercast.envs.observation import clock_features
from covercast.envs.registration import DEFAULT_HORIZON_DAYS, check_horizon_days, horizon_pushes
from covercast.envs.rewards import DEFAULT_W_DWELL, DEFAULT_W_OPTOUT
from covercast.simulators.params import PopulationParams
from covercast.simulators.population import Population

__all__ = ["CoverGenerationEnv", "GenerationReward", "quantise_weights", "action_to_weights",
           "GENERATION_RESPONSE_KEYS"]

#: Keys of ``info`` after a step (cohort totals unless said otherwise).
GENERATION_RESPONSE_KEYS: tuple[str, ...] = (
    "cohort_size", "pushed", "opened", "dwell_s", "likes", "shares", "comments", "surveys",
    "satisfaction", "opted_out", "sessions", "segment", "topic", "hour", "weights", "quality",
    "relevance", "cover_key")

_LEARNED = ("vae-iat", "diffusion", "dcgan")
_FORK_GUARDED = False


def _one_torch_thread_in_child() -> None:
    """``os.register_at_fork`` hook: torch on one thread in a forked child (see
    :func:`_guard_torch_after_fork`)."""
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)


def _guard_torch_after_fork() -> None:
    """Make processes forked from this one run torch on one thread (registered once).

    torch runs its CPU ops on an OpenMP (libgomp) thread team. Once this process has used it
    (loading a learned generator does), a child made by ``os.fork`` -- the default start method
    of ``multiprocessing``, and so of ``gymnasium.vector.AsyncVectorEnv``, on Linux -- inherits
    the team's state but not its threads, and its first parallel torch op (building the
    generator in the worker) waits for them forever. On one thread torch runs every op inline,
    without the team, as ``torch.utils.data`` workers do. Spawned and forkserver children start
    afresh and are not affected.
    """
    global _FORK_GUARDED
    if not _FORK_GUARDED and hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_one_torch_thread_in_child)
        _FORK_GUARDED = True


def _weight(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(float(value)) or float(value) < 0:
        raise ValueError(f"`{name}` must be a finite number >= 0, got {value!r}.")
    return float(value)


@dataclass(frozen=True)
class GenerationReward:
    """``(opened + w_dwell * dwell_s / 60 - w_optout * opted_out) / cohort_size
    + w_aesthetic * quality + w_relevance * relevance``.

    Opens, dwell minutes and opt-outs are per user of the cohort; ``quality`` is the cover's
    aesthetic score in [0, 1] and ``relevance`` the cohort's mean taste match with the cover
    (the ``taste . features`` term of the open model).
    """

    w_dwell: float = DEFAULT_W_DWELL
    """Reward per minute of dwell per user."""
    w_optout: float = DEFAULT_W_OPTOUT
    """Penalty per opted-out user (divided by the cohort size)."""
    w_aesthetic: float = 0.0
    """Weight of the cover's quality (0: off)."""
    w_relevance: float = 0.0
    """Weight of the cover's relevance to the cohort (0: off)."""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            _weight(getattr(self, f.name), f.name)

    def __call__(self, r: Mapping[str, Any]) -> float:
        per_user = (r["opened"] + self.w_dwell * r["dwell_s"] / 60.0
                    - self.w_optout * r["opted_out"]) / r["cohort_size"]
        return float(per_user + self.w_aesthetic * r["quality"]
                     + self.w_relevance * r["relevance"])


def action_to_weights(action: np.ndarray, sharpness: float) -> np.ndarray:
    """Style weights from an action in ``[-1, 1]^K``: ``softmax(sharpness * action)``."""
    z = sharpness * np.asarray(action, dtype=np.float64)
    z = np.exp(z - z.max())
    return z / z.sum()


def quantise_weights(weights: np.ndarray, grid: int) -> tuple[int, ...]:
    """Round simplex weights to counts summing to ``grid`` (largest-remainder rounding).

    The counts divided by ``grid`` are the nearest point of the grid ``{c / grid}`` on the
    simplex in the sense of Hamilton's apportionment; ties go to the lower style index.
    """
    w = np.asarray(weights, dtype=np.float64)
    scaled = w * grid
    counts = np.floor(scaled).astype(np.int64)
    short = grid - int(counts.sum())
    if short > 0:
        order = np.lexsort((np.arange(len(w)), -(scaled - counts)))
        counts[order[:short]] += 1
    return tuple(int(c) for c in counts)


@dataclass
class _Cover:
    key: tuple
    image: np.ndarray
    features: np.ndarray
    quality: float
    bank: CoverBank


class _ProceduralRenderer:
    """Pixel blend of one procedural cover per style in the mixture (no torch).

    For a grid point and topic, each style with a positive weight renders one cover of that
    topic from the same seed (``SeedSequence([latent_seed, topic])``), and the covers are
    averaged in pixel space with the weights. Style probabilities are the weights; quality is
    the craft of the covers (the same draw for every style).
    """

    topic_dependent = True

    def __init__(self, styles: Sequence[str], topics: Sequence[str], size: int,
                 latent_seed: int) -> None:
        from covercast.covers.attributes import DEFAULT_STYLES, DEFAULT_TOPICS

        bad = [s for s in styles if s not in DEFAULT_STYLES] + \
            [t for t in topics if t not in DEFAULT_TOPICS]
        if bad:
            raise ValueError(f"The procedural generator cannot draw {bad}; it knows styles "
                             f"{list(DEFAULT_STYLES)} and topics {list(DEFAULT_TOPICS)}.")
        self.styles, self.topics = list(styles), list(topics)
        self.size, self.latent_seed = size, latent_seed

    def render(self, weights: np.ndarray, topic: int) -> tuple[np.ndarray, np.ndarray, float]:
        from covercast.covers.procedural import render_covers

        acc = np.zeros((self.size, self.size, 3))
        quality = 0.0
        for s, w in enumerate(weights):
            if w <= 0:
                continue
            rng = np.random.default_rng(np.random.SeedSequence([self.latent_seed, topic]))
            img, q = render_covers(self.styles[s], self.topics[topic], 1, size=self.size,
                                   rng=rng)
            acc += w * img[0]
            quality = float(q[0])
        return (acc + 0.5).clip(0, 255).astype(np.uint8), np.asarray(weights, np.float32), quality


class _LearnedRenderer:
    """A learned generator conditioned on style weights (and on the campaign's topic when the
    generator is topic-conditioned), labelled by the cover encoder."""

    def __init__(self, model: Any, encoder: Any, quality: str, latent_seed: int,
                 sample_kwargs: Mapping[str, Any], topics: Sequence[str]) -> None:
        self.model, self.encoder = model, encoder
        self.quality, self.latent_seed = quality, latent_seed
        self.sample_kwargs = dict(sample_kwargs)
        model_topics = list(getattr(model, "topics", None) or [])
        missing = [t for t in topics if t not in model_topics]
        if model_topics and missing:
            raise ValueError(f"The generator is conditioned on topics {model_topics}, which "
                             f"lack the population's {missing}; use a generator trained on "
                             "the population's topics.")
        #: the generator's topic name of each population topic (None: topics are ignored)
        self.topic_names = list(topics) if model_topics else None
        self.topic_dependent = self.topic_names is not None

    def render(self, weights: np.ndarray, topic: int) -> tuple[np.ndarray, np.ndarray, float]:
        import torch

        from covercast.generators.banks import cover_quality

        g = torch.Generator().manual_seed(self.latent_seed)
        extra = {} if self.topic_names is None else {"topic": self.topic_names[topic]}
        img = self.model.sample(np.asarray(weights, dtype=np.float64)[None], 1, generator=g,
                                **extra, **self.sample_kwargs)
        probs = self.encoder.style_probs(img)
        q, _ = cover_quality(img, self.encoder, self.quality, style_probs=probs)
        return img[0], probs[0], float(q[0])


class CoverGenerationEnv(gym.Env[np.ndarray, np.ndarray]):
    """Pick the style mixture of a generated cover for a campaign to one user segment.

    ## Action Space

    ``Box(-1, 1, (n_styles,), float32)``. The action ``a`` becomes style weights
    ``w = softmax(sharpness * a)`` (``sharpness = 4`` by default, so a pure style is within
    reach: ``a = +1`` on one style and ``-1`` elsewhere gives it weight
    ``e^8 / (e^8 + K - 1)``, 0.9993 for 5 styles), then ``w`` is quantised to the simplex grid
    of step ``1 / grid`` (:func:`quantise_weights`); ``info["weights"]`` holds the quantised
    mixture the cover was rendered for. Actions outside the box or not finite are refused.

    ## Observation Space

    ``Box(n_segments + n_topics + 5,)`` float32, the context of the coming campaign:

    =========================  ===================================================  ====  ====
    index                      meaning                                              min   max
    =========================  ===================================================  ====  ====
    ``0 .. S-1``               one-hot segment of the cohort (``params.segments``)    0     1
    ``S .. S+T-1``             one-hot topic of the pushed content                    0     1
    ``S+T``, ``S+T+1``         sin, cos of 2 pi hour / 24 (push hour, UTC)           -1     1
    ``S+T+2``, ``S+T+3``       sin, cos of 2 pi weekday / 7 (Monday = 0)             -1     1
    ``S+T+4``                  1 on Saturday and Sunday                               0     1
    =========================  ===================================================  ====  ====

    Segments are drawn with their population weights and topics uniformly, from
    ``self.np_random``; campaigns follow ``push_hours`` day after day from ``start``.

    ## Rewards

    ``reward_fn(info)``, by default :class:`GenerationReward`: ``(opened + w_dwell * dwell_s
    / 60 - w_optout * opted_out) / cohort_size + w_aesthetic * quality + w_relevance *
    relevance`` over the cohort's responses from the push until ``response_hours`` later
    (``w_dwell = 0.1``, ``w_optout = 5``, the aesthetic and relevance weights 0). ``quality``
    is the cover's aesthetic score (:mod:`covercast.generators.banks`: the encoder-estimated
    craft by default); ``relevance`` the cohort's mean ``taste . features(cover)``.

    ## Episode End

    * Termination: never (every campaign reaches a fresh cohort).
    * Truncation: after ``horizon_days * len(push_hours)`` campaigns (``horizon_days``, a whole
      number of days, default 14): 28 with the default two push hours. The environment
      truncates itself (the id has no registered ``TimeLimit``) and
      ``env.spec.max_episode_steps`` reports the number.

    ## Arguments

    ```python
    gym.make("covercast/CoverGeneration-v0", generator="vae-iat", checkpoint=None,
             encoder=None, params=None, cohort_size=64, grid=4, sharpness=4.0,
             push_hours=(8, 20), response_hours=24, quality="craft", reward_fn=None,
             w_dwell=None, w_optout=None, w_aesthetic=0.0, w_relevance=0.0, cache_size=512,
             latent_seed=0, sample_kwargs=None, device="cpu", start="2026-01-05T00:00:00Z",
             render_mode=None, horizon_days=14)
    ```

    * ``generator``: ``"vae-iat"`` (default: the committed checkpoint, fast on a CPU),
      ``"diffusion"``, ``"dcgan"``, ``"procedural"`` (no torch, no checkpoint: pixel blends of
      procedural covers, style probabilities = the mixture), or a loaded generator object
      (anything with ``sample(style_weights, n, generator=...)``, ``styles`` and ``kind``).
    * ``checkpoint``: the generator's ``save_pretrained`` folder (``None``: committed).
    * ``encoder``: the cover encoder (object or folder; ``None``: committed) that labels
      generated covers with style probabilities and quality (learned generators only).
    * ``params``: the population (``PopulationParams``, a JSON path or ``None``: default);
      or ``population``: a suite name such as ``"high-fatigue-v1"`` (exclusive with ``params``).
    * ``cohort_size``: users per campaign (1 to 10,000).
    * ``grid``: quantisation of the mixture (weights are multiples of ``1 / grid``; 1 to 64;
      ``C(grid + K - 1, K - 1)`` distinct covers, 70 for ``grid = 4`` and 5 styles).
    * ``sharpness``: the softmax's inverse temperature (> 0).
    * ``push_hours``: the campaign hours of each day (UTC, whole hours in [0, 24)).
    * ``horizon_days``: episode length in days (a whole number; ``len(push_hours)`` campaigns
      a day).
    * ``response_hours``: hours of responses counted after each push (1 to 168).
    * ``quality``: how generated covers are scored (``"craft"``, ``"confidence"``,
      ``"constant"``).
    * ``reward_fn`` or the weights of :class:`GenerationReward` (not both).
    * ``cache_size``: covers kept in the render cache (>= 1).
    * ``latent_seed``: seed of the generator's latent noise (and of procedural covers).
    * ``sample_kwargs``: options of the generator's ``sample``; for diffusion ``sampler``
      (``"ddim"`` or ``"dpmsolver++"``), ``num_inference_steps``, ``eta`` (DDIM) and
      ``guidance_scale``, each defaulting to the checkpoint's own (chosen on a validation
      split, ``sampling.json``). A topic-conditioned generator (the committed diffusion
      model) is asked for the campaign's topic as well as the style mixture, so its cover
      shows the topic's motif; VAE-IAT and DCGAN ignore the topic.
    * ``device``: where a learned generator runs (``"cpu"``, ``"cuda"``, ``"auto"``).
    * ``render_mode``: ``"ansi"`` (a text line) or ``"rgb_array"`` (the last cover).

    ## Speed

    A step simulates one cohort and renders its cover unless the cache holds it. The first
    step of a learned generator also loads torch, the checkpoint, the cover encoder and the
    quality model: about 10 s with VAE-IAT on the 2-core development CPU (under load from
    other jobs), about 18 s with ``"diffusion"``, about 0.1 s with ``"procedural"``. A new
    diffusion cover costs one ``sample`` call (20 guided DDIM steps of the small UNet): 3.8 s
    on that loaded CPU, and a step whose cover is cached about 10 ms. :meth:`prerender`
    renders every grid point (and topic, for a topic-conditioned generator) once -- 70
    VAE-IAT covers in about 3 s, 420 procedural covers in about 5 s; for diffusion, 420 covers
    one at a time (minutes) -- after which a step is a cache look-up plus the cohort
    simulation: median 32-38 ms (procedural, VAE-IAT; 64 users, 24 h of responses) on that
    loaded CPU.

    ## Version History

    * v0: initial version.
    """

    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 1}
    env_id = "covercast/CoverGeneration-v0"
    spec = horizon_spec()          # max_episode_steps = horizon_steps

    def __init__(self, generator: Any = "vae-iat", checkpoint: str | os.PathLike | None = None,
                 encoder: Any = None, params: PopulationParams | str | os.PathLike | None = None,
                 cohort_size: int = 64, grid: int = 4, sharpness: float = 4.0,
                 push_hours: Sequence[int] = (8, 20), response_hours: int = 24,
                 quality: str = "craft",
                 reward_fn: Callable[[Mapping[str, Any]], float] | None = None,
                 w_dwell: float | None = None, w_optout: float | None = None,
                 w_aesthetic: float | None = None, w_relevance: float | None = None,
                 cache_size: int = 512, latent_seed: int = 0,
                 sample_kwargs: Mapping[str, Any] | None = None, device: str = "cpu",
                 start: str = DEFAULT_START, render_mode: str | None = None,
                 population: str | os.PathLike | None = None,
                 horizon_days: float = DEFAULT_HORIZON_DAYS) -> None:
        self.params = resolve_params(params, population)
        self.cohort_size = self._int(cohort_size, "cohort_size", 1, 10_000)
        self.grid = self._int(grid, "grid", 1, 64)
        self.response_hours = self._int(response_hours, "response_hours", 1, 168)
        self.cache_size = self._int(cache_size, "cache_size", 1, 1_000_000)
        self.latent_seed = self._int(latent_seed, "latent_seed", 0, 2**63 - 1)
        if isinstance(sharpness, bool) or not isinstance(sharpness, (int, float)) or \
                not math.isfinite(sharpness) or sharpness <= 0:
            raise ValueError(f"`sharpness` must be a finite number > 0, got {sharpness!r}.")
        self.sharpness = float(sharpness)
        self.push_hours = self._hours(push_hours)
        self.horizon_days = check_horizon_days(horizon_days)
        #: campaigns after which an episode is truncated
        self.horizon_steps = horizon_pushes(self.horizon_days, len(self.push_hours), self.env_id)
        from covercast.generators.banks import QUALITY_METHODS

        if quality not in QUALITY_METHODS:
            raise ValueError(f"Unknown quality method {quality!r}; choose one of "
                             f"{list(QUALITY_METHODS)}.")
        weights = {"w_dwell": w_dwell, "w_optout": w_optout, "w_aesthetic": w_aesthetic,
                   "w_relevance": w_relevance}
        if reward_fn is not None:
            if not callable(reward_fn):
                raise ValueError(f"`reward_fn` must be a callable taking the info mapping, got "
                                 f"{type(reward_fn).__name__}.")
            given = {k: v for k, v in weights.items() if v is not None}
            if given:
                raise ValueError(f"Give either `reward_fn` or the default reward's weights "
                                 f"{given}, not both.")
            self.reward_fn = reward_fn
        else:
            self.reward_fn = GenerationReward(**{k: v for k, v in weights.items()
                                                 if v is not None})
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"`render_mode` must be None or one of "
                             f"{self.metadata['render_modes']}, got {render_mode!r}.")
        self.render_mode = render_mode
        self.start = self._parse_start(start)
        self.styles, self.topics = list(self.params.styles), list(self.params.topics)
        self.n_styles, self.n_topics = len(self.styles), len(self.topics)
        self.n_segments = len(self.params.segments)
        self._seg_p = self.params.segment_weights() / self.params.segment_weights().sum()
        self._seg_params = [dataclasses.replace(self.params, segments=[
            dataclasses.replace(s, weight=1.0)]) for s in self.params.segments]
        self._renderer = self._make_renderer(generator, checkpoint, encoder, quality,
                                             sample_kwargs, device)
        self.generator_name = generator if isinstance(generator, str) else \
            str(getattr(generator, "kind", type(generator).__name__))
        self._cache: OrderedDict[tuple, _Cover] = OrderedDict()
        self._hits = self._misses = 0

        self.action_space = spaces.Box(-1.0, 1.0, shape=(self.n_styles,), dtype=np.float32)
        n_obs = self.n_segments + self.n_topics + 5
        low = np.zeros(n_obs, dtype=np.float32)
        high = np.ones(n_obs, dtype=np.float32)
        low[self.n_segments + self.n_topics:][:4] = -1.0
        self.observation_space = spaces.Box(low, high, shape=(n_obs,), dtype=np.float32)
        self._step = 0
        self._started = False
        self._context: tuple[int, int] = (0, 0)
        self._last: dict[str, Any] | None = None
        self._last_image: np.ndarray | None = None
        self._last_reward = 0.0

    # ------------------------------------------------------------------ construction helpers
    @staticmethod
    def _int(value: Any, name: str, lo: int, hi: int) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or \
                not lo <= value <= hi:
            raise ValueError(f"`{name}` must be an int in [{lo}, {hi}], got {value!r}.")
        return int(value)

    @staticmethod
    def _parse_start(start: Any) -> pd.Timestamp:
        try:
            ts = pd.Timestamp(start)
        except (ValueError, TypeError) as e:
            raise ValueError(f"`start` must be a UTC time such as '2026-01-05T00:00:00Z', got "
                             f"{start!r}.") from e
        ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
        if ts != ts.floor("D"):
            raise ValueError(f"`start` must be a midnight (UTC), the origin of the push hours; "
                             f"got {start!r}.")
        return ts

    @staticmethod
    def _hours(push_hours: Any) -> tuple[int, ...]:
        if isinstance(push_hours, (str, bytes)) or not isinstance(push_hours, Sequence) or \
                not push_hours:
            raise ValueError(f"`push_hours` must be a non-empty sequence of whole hours, e.g. "
                             f"(8, 20); got {push_hours!r}.")
        hours = []
        for h in push_hours:
            if isinstance(h, bool) or not isinstance(h, (int, np.integer)) or not 0 <= h < 24:
                raise ValueError(f"`push_hours` must hold whole hours in [0, 24), got {h!r} in "
                                 f"{push_hours!r}.")
            hours.append(int(h))
        if len(set(hours)) != len(hours):
            raise ValueError(f"`push_hours` must be distinct, got {push_hours!r}.")
        return tuple(sorted(hours))

    def _make_renderer(self, generator: Any, checkpoint: Any, encoder: Any, quality: str,
                       sample_kwargs: Mapping[str, Any] | None, device: str) -> Any:
        _guard_torch_after_fork()        # before this process's first torch op
        if isinstance(generator, str):
            if generator == "procedural":
                if checkpoint is not None or encoder is not None:
                    raise ValueError("generator='procedural' takes no `checkpoint` or "
                                     "`encoder`; drop them or pick a learned generator.")
                if sample_kwargs:
                    raise ValueError("`sample_kwargs` apply to learned generators only.")
                return _ProceduralRenderer(self.styles, self.topics, 32, self.latent_seed)
            if generator not in _LEARNED:
                raise ValueError(f"Unknown generator {generator!r}; choose one of "
                                 f"{['procedural', *_LEARNED]} or pass a loaded generator.")
            from covercast.generators.banks import load_generator

            model = load_generator(generator, checkpoint, device=device)
        else:
            if checkpoint is not None:
                raise ValueError("`checkpoint` is for a generator given by name; a loaded "
                                 "generator object needs none.")
            if not callable(getattr(generator, "sample", None)) or \
                    not hasattr(generator, "styles"):
                raise ValueError(f"`generator` must be a name or a cover generator (with "
                                 f"`sample` and `styles`), got {type(generator).__name__}.")
            model = generator
        from covercast.generators.banks import load_encoder
        from covercast.generators.encoder import CoverEncoder

        enc = encoder if isinstance(encoder, CoverEncoder) else load_encoder(encoder,
                                                                             device=device)
        for what, names in (("generator", list(model.styles)), ("encoder", enc.styles)):
            if list(names) != self.styles:
                raise ValueError(f"The {what}'s styles {list(names)} differ from the "
                                 f"population's {self.styles}; use models trained on the "
                                 "population's styles.")
        if list(enc.topics) != self.topics:
            raise ValueError(f"The encoder's topics {enc.topics} differ from the population's "
                             f"{self.topics}.")
        if getattr(model, "config", None) is not None and model.config.channels != 3:
            raise ValueError("The generator makes grey images; covers must be RGB (train it on "
                             "covers).")
        if sample_kwargs and callable(getattr(model, "sampling_options", None)):
            # diffusion: unknown or bad options are refused here, before any cover is made
            model._check_sample_kwargs(**model.sampling_options(**dict(sample_kwargs)))
        model.eval()
        enc.eval()
        return _LearnedRenderer(model, enc, quality, self.latent_seed, sample_kwargs or {},
                                self.topics)

    # ------------------------------------------------------------------ covers
    def weights_for(self, action: Any) -> np.ndarray:
        """The quantised style weights an action asks for (after validating it)."""
        return np.asarray(quantise_weights(action_to_weights(self._check_action(action),
                                                             self.sharpness), self.grid),
                          dtype=np.float64) / self.grid

    def _check_action(self, action: Any) -> np.ndarray:
        a = np.asarray(action, dtype=np.float64) if not isinstance(action, np.ndarray) \
            else action.astype(np.float64)
        if a.shape != (self.n_styles,):
            raise ValueError(f"Invalid action of shape {a.shape} for {self.env_id}: expected "
                             f"({self.n_styles},), one value in [-1, 1] per style "
                             f"{self.styles}.")
        if not np.all(np.isfinite(a)) or np.any(np.abs(a) > 1.0 + 1e-6):
            raise ValueError(f"Invalid action {a.tolist()} for {self.env_id}: every value must "
                             "be finite and in [-1, 1] (clip it to the action space).")
        return a

    def cover(self, weights_key: tuple[int, ...], topic: int = 0) -> _Cover:
        """The cover of a quantised mixture (counts summing to ``grid``), rendered or cached."""
        key = (weights_key, topic) if self._renderer.topic_dependent else (weights_key,)
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            self._hits += 1
            return hit
        self._misses += 1
        w = np.asarray(weights_key, dtype=np.float64) / self.grid
        image, probs, quality = self._renderer.render(w, topic)
        feats = np.concatenate([cover_attributes(image)[0], probs]).astype(np.float32)
        k = self.n_styles
        bank = CoverBank(images=np.repeat(image[None], k, axis=0), style=np.arange(k),
                         topic=np.full(k, topic), quality=np.full(k, quality),
                         features=np.repeat(feats[None], k, axis=0), styles=self.styles,
                         topics=self.topics, generator=self.generator_name)
        entry = _Cover(key=key, image=image, features=feats, quality=quality, bank=bank)
        self._cache[key] = entry
        if len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return entry

    def grid_points(self) -> list[tuple[int, ...]]:
        """Every quantised mixture (counts summing to ``grid``), in lexicographic order."""
        from itertools import combinations

        k, g = self.n_styles, self.grid
        out = []
        for bars in combinations(range(g + k - 1), k - 1):     # stars and bars
            edges = (-1, *bars, g + k - 1)
            out.append(tuple(edges[i + 1] - edges[i] - 1 for i in range(k)))
        return sorted(out, reverse=True)

    def prerender(self, topics: Sequence[int] | None = None, *, progress: bool = False) -> int:
        """Render every grid point's cover (for each topic when the generator takes topics)
        into the cache, so that later steps only look covers up; returns the covers rendered.

        Each cover is rendered exactly as a step would render it (same latent seed), so a
        rollout does not depend on whether this was called. Raises ``ValueError`` when the
        cache cannot hold them all (raise ``cache_size``).
        """
        topic_ids = list(range(self.n_topics)) if topics is None else [
            self._int(t, "topic", 0, self.n_topics - 1) for t in topics]
        if not self._renderer.topic_dependent:
            topic_ids = topic_ids[:1]
        keys = [(w, t) for t in topic_ids for w in self.grid_points()]
        if len(keys) > self.cache_size:
            raise ValueError(f"Pre-rendering needs {len(keys)} covers but `cache_size` is "
                             f"{self.cache_size}; make the env with cache_size >= {len(keys)}.")
        from tqdm.auto import tqdm

        before = self._misses
        for w, t in tqdm(keys, desc="prerender covers", disable=not progress, leave=False):
            self.cover(w, t)
        return self._misses - before

    def cache_info(self) -> dict[str, int]:
        """Render-cache statistics: ``hits``, ``misses`` (renders), ``size``, ``max_size``."""
        return {"hits": self._hits, "misses": self._misses, "size": len(self._cache),
                "max_size": self.cache_size}

    # ------------------------------------------------------------------ gymnasium API
    def _timestamp(self, step: int) -> pd.Timestamp:
        day, k = divmod(step, len(self.push_hours))
        return self.start + pd.Timedelta(days=day, hours=self.push_hours[k])

    def _draw_context(self) -> None:
        seg = int(self.np_random.choice(self.n_segments, p=self._seg_p))
        topic = int(self.np_random.integers(self.n_topics))
        self._context = (seg, topic)

    def _observe(self) -> np.ndarray:
        seg, topic = self._context
        ts = self._timestamp(self._step)
        o = np.zeros(self.observation_space.shape, dtype=np.float32)
        o[seg] = 1.0
        o[self.n_segments + topic] = 1.0
        o[self.n_segments + self.n_topics:] = clock_features(ts.hour + ts.minute / 60.0,
                                                             float(ts.weekday()))
        return o

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start at the first campaign time with a new context; ``options`` is not used."""
        super().reset(seed=seed)
        if options:
            raise ValueError(f"`options` is not used by {self.env_id}; got {options!r}.")
        self._step = 0
        self._started = True
        self._last = None
        self._last_image = None
        self._last_reward = 0.0
        self._draw_context()
        return self._observe(), {"segment": self._context[0], "topic": self._context[1]}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if not self._started:
            raise ResetNeeded(f"Call reset() before step() on {self.env_id}.")
        a = self._check_action(action)
        key = quantise_weights(action_to_weights(a, self.sharpness), self.grid)
        seg, topic = self._context
        cover = self.cover(key, topic)
        ts = self._timestamp(self._step)
        pop = Population(self._seg_params[seg], self.cohort_size, bank=cover.bank,
                         seed=int(self.np_random.integers(0, 2**63 - 1)), start=ts,
                         slot_minutes=60)
        users = np.arange(self.cohort_size)
        first = pop.step(push=users, cover=0, topic=topic)
        outs = [first]
        if self.response_hours > 1:
            outs.append(pop.advance(self.response_hours - 1)[0])
        taste = pop.hidden_state()["taste"]
        info = self._responses(outs, seg, topic, ts, key, cover,
                               float(np.mean(taste @ cover.features.astype(np.float64))))
        reward = self.reward_fn(info)
        try:
            reward = float(reward)
        except (TypeError, ValueError) as e:
            raise ValueError(f"`reward_fn` must return a number, got {reward!r}.") from e
        if not math.isfinite(reward):
            raise ValueError(f"`reward_fn` returned {reward!r}; it must return a finite "
                             "number.")
        self._last, self._last_image, self._last_reward = info, cover.image, reward
        self._step += 1
        self._draw_context()
        return self._observe(), reward, False, self._step >= self.horizon_steps, info

    def _responses(self, outs: list[Any], seg: int, topic: int, ts: pd.Timestamp,
                   key: tuple[int, ...], cover: _Cover, relevance: float) -> dict[str, Any]:
        opened = sum(int(o.open_user.size) for o in outs)
        sat = np.concatenate([o.open_satisfaction for o in outs])
        surveyed = sat[sat > 0]
        info: dict[str, Any] = {
            "cohort_size": self.cohort_size,
            "pushed": sum(int(o.push_user.size) for o in outs),
            "opened": opened,
            "dwell_s": float(sum(float(o.open_dwell_s.sum()) for o in outs)),
            "likes": sum(int(np.count_nonzero(o.open_like)) for o in outs),
            "shares": sum(int(np.count_nonzero(o.open_share)) for o in outs),
            "comments": sum(int(np.count_nonzero(o.open_comment)) for o in outs),
            "surveys": int(surveyed.size),
            "opted_out": sum(int(o.opt_out_user.size) for o in outs),
            "sessions": sum(int(o.session_count.sum()) for o in outs),
            "segment": seg, "topic": topic, "hour": int(ts.hour),
            "weights": np.asarray(key, dtype=np.float64) / self.grid,
            "quality": float(cover.quality), "relevance": relevance,
            "cover_key": tuple(int(c) for c in key),
        }
        if surveyed.size:
            info["satisfaction"] = float(surveyed.mean())
        return info

    def render(self) -> str | np.ndarray | None:
        if self.render_mode == "rgb_array":
            if self._last_image is None:
                return np.zeros((32, 32, 3), dtype=np.uint8)
            return self._last_image.copy()
        if self.render_mode != "ansi":
            return None
        if self._last is None:
            return f"{self.env_id}: campaign 0, no cover yet"
        r = self._last
        mix = ", ".join(f"{s} {w:.2f}" for s, w in zip(self.styles, r["weights"], strict=True)
                        if w > 0)
        return (f"{self._timestamp(self._step - 1):%a %H:%M} segment="
                f"{self.params.segments[r['segment']].name} topic={self.topics[r['topic']]} "
                f"mix=[{mix}] opened={r['opened']}/{r['cohort_size']} "
                f"dwell={r['dwell_s']:.0f}s reward={self._last_reward:.3f}")
