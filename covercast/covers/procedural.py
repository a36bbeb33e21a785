"""Procedural covers: fast parametric cover images, no training, no torch.

A procedural cover is a background (the *style*: palette, texture, layout), a motif (the
*topic*: a simple shape drawn with anti-aliased numpy masks) and a latent *craft* value that
sets how well it is made. Everything is vectorised over a batch of covers, so the default bank
(120 covers of 32 px) is built in a few tens of milliseconds and the simulator can always fall
back on it.

Styles
------
=======  ===============================  ================================  ===================
style    palette                          background texture (probability)  motif layout
=======  ===============================  ================================  ===================
minimal  light neutral ground; motif in   flat (0.7), faint gradient (0.3)  small, centred,
         one saturated accent, charcoal                                     upright
         details
vivid    saturated hue ``h`` ground,      gradient (0.35), diagonal         large, off centre,
         motif in the complementary hue   stripes (0.35), halftone dots     tilted
         ``h + 1/2``                      (0.3)
pastel   light, desaturated hues          soft gradient (0.6), flat (0.2),  medium, near centre
                                          light halftone (0.2)
noir     near-black ground, near-white    flat (0.4), halftone (0.35),      medium-large,
         motif, a red or grey accent      gradient (0.25); strong vignette  centred
retro    warm muted cream / mustard /     horizontal bands (0.5), gradient  medium, low in the
         burnt orange; teal or brown      (0.3), halftone (0.2); film       frame
         motif                            grain, light vignette
=======  ===============================  ================================  ===================

Topics
------
==========  ================================================================================
topic       motif (main shape in the motif colour, details in the accent colour)
==========  ================================================================================
news        a front page: a headline block and four text lines of random length
sports      a ball with two curved seams and a straight one, randomly rotated
music       an equaliser: six bars of random height with accent caps, on a baseline
food        a plate with its rim and three pieces of food
travel      a landscape: two mountains on a ground band at the horizon, a sun behind
tech        a chip: a square package with pins on its four sides and an accent die
==========  ================================================================================

Craft and quality
-----------------
Each cover draws a craft value ``c ~ Beta(CRAFT_ALPHA, CRAFT_BETA)`` (mean 5/7); it is the
cover's ``quality``. Quality is a property of the pixels, not a label: with ``d = 1 - c``,

* the motif is misaligned by ``MISALIGN_MAX * d`` (image half-widths) in a random direction and
  tilted by up to ``TILT_MAX * d`` radians;
* colours are washed out towards a light grey by a factor ``WASH_MAX * d ** 1.5``;
* per-pixel colour noise of standard deviation ``NOISE_MAX * d ** 2`` is added.

A craft-1 cover is clean; a craft-0.3 cover is visibly noisy, faded and off-centre.

Determinism
-----------
:func:`render_covers` draws everything from the ``rng`` it is given, in a fixed order, and the
order does not depend on ``craft``: rendering with the same generator state and a different
``craft`` changes only the defects. :func:`procedural_bank` gives each (style, topic) pair its
own stream, ``SeedSequence(seed, spawn_key=(crc32(style), crc32(topic)))``, so a pair's covers
do not depend on which other styles or topics the bank has.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from covercast._io import atomic_write, check_int
from covercast.covers.attributes import DEFAULT_STYLES, DEFAULT_TOPICS
from covercast.covers.bank import CoverBank

#: Version of the procedural renderer, stored in each bank's ``meta``; bump it whenever the
#: pixels a given seed produces change.
PROCEDURAL_VERSION: int = 1

#: Beta(alpha, beta) distribution of the per-cover craft (= quality); mean 5/7, sd about 0.16.
CRAFT_ALPHA: float = 5.0
CRAFT_BETA: float = 2.0

#: Per-pixel noise sd at craft 0 (scales as (1 - craft) ** 2).
NOISE_MAX: float = 0.25
#: Fraction washed out towards light grey at craft 0 (scales as (1 - craft) ** 1.5).
WASH_MAX: float = 0.55
#: Motif offset at craft 0, in image half-widths (scales as 1 - craft).
MISALIGN_MAX: float = 0.45
#: Largest extra motif tilt at craft 0, in radians (scales as 1 - craft).
TILT_MAX: float = 0.5

#: Covers per (style, topic) of :func:`default_bank`: 5 x 6 x 4 = 120 covers of 32 px.
DEFAULT_BANK_PER_STYLE_TOPIC: int = 4

_WASH_GREY = 0.72
_TEXTURES = ("flat", "gradient", "stripes", "halftone")

Palette = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


# ---------------------------------------------------------------------- colour helpers
def _hsv(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Vectorised HSV -> RGB; ``h`` wraps modulo 1, ``s`` and ``v`` in [0, 1]; returns (n, 3)."""
    h = np.mod(np.asarray(h, dtype=np.float64), 1.0) * 6.0
    s = np.asarray(s, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    i = np.floor(h).astype(np.int64) % 6
    f = h - np.floor(h)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    table = np.stack([np.stack([v, t, p], -1), np.stack([q, v, p], -1),
                      np.stack([p, v, t], -1), np.stack([p, q, v], -1),
                      np.stack([t, p, v], -1), np.stack([v, p, q], -1)])   # (6, n, 3)
    return table[i, np.arange(len(i))].astype(np.float32)


def _grey(level: np.ndarray) -> np.ndarray:
    return np.repeat(np.asarray(level, dtype=np.float32)[:, None], 3, axis=1)


# ---------------------------------------------------------------------- palettes (per style)
def _palette_minimal(n: int, rng: np.random.Generator) -> Palette:
    tint, tint_s = rng.uniform(0, 1, n), rng.uniform(0.0, 0.05, n)
    light = rng.uniform(0.88, 0.97, n)
    bg1 = _hsv(tint, tint_s, light)
    bg2 = _hsv(tint, tint_s, light - rng.uniform(0.04, 0.09, n))
    motif = _hsv(rng.uniform(0, 1, n), rng.uniform(0.65, 0.9, n), rng.uniform(0.7, 0.9, n))
    accent = _hsv(rng.uniform(0, 1, n), rng.uniform(0.0, 0.08, n), rng.uniform(0.12, 0.28, n))
    return bg1, bg2, motif, accent


def _palette_vivid(n: int, rng: np.random.Generator) -> Palette:
    h = rng.uniform(0, 1, n)
    bg1 = _hsv(h, rng.uniform(0.8, 1.0, n), rng.uniform(0.85, 1.0, n))
    bg2 = _hsv(h + rng.uniform(0.06, 0.12, n), rng.uniform(0.8, 1.0, n), rng.uniform(0.7, 0.9, n))
    motif = _hsv(h + 0.5, rng.uniform(0.75, 1.0, n), rng.uniform(0.85, 1.0, n))
    side = rng.choice([-1.0, 1.0], size=n)
    accent = _hsv(h + 0.25 * side, rng.uniform(0.7, 0.95, n), np.ones(n))
    return bg1, bg2, motif, accent


def _palette_pastel(n: int, rng: np.random.Generator) -> Palette:
    h = rng.uniform(0, 1, n)
    bg1 = _hsv(h, rng.uniform(0.12, 0.25, n), rng.uniform(0.94, 1.0, n))
    bg2 = _hsv(h + rng.uniform(0.08, 0.2, n), rng.uniform(0.15, 0.3, n), rng.uniform(0.9, 0.98, n))
    motif = _hsv(h + rng.uniform(0.3, 0.45, n), rng.uniform(0.25, 0.4, n),
                 rng.uniform(0.82, 0.93, n))
    accent = _hsv(h + rng.uniform(0.55, 0.7, n), rng.uniform(0.3, 0.45, n),
                  rng.uniform(0.78, 0.9, n))
    return bg1, bg2, motif, accent


def _palette_noir(n: int, rng: np.random.Generator) -> Palette:
    bg1 = _grey(rng.uniform(0.03, 0.1, n))
    bg2 = _grey(rng.uniform(0.14, 0.24, n))
    motif = _grey(rng.uniform(0.85, 1.0, n))
    red = _hsv(rng.uniform(-0.02, 0.02, n), rng.uniform(0.75, 0.95, n), rng.uniform(0.7, 0.9, n))
    grey = _grey(rng.uniform(0.45, 0.6, n))
    accent = np.where((rng.uniform(0, 1, n) < 0.5)[:, None], red, grey)
    return bg1, bg2, motif, accent


def _palette_retro(n: int, rng: np.random.Generator) -> Palette:
    bg1 = _hsv(rng.uniform(0.08, 0.13, n), rng.uniform(0.3, 0.5, n), rng.uniform(0.78, 0.9, n))
    bg2 = _hsv(rng.uniform(0.02, 0.07, n), rng.uniform(0.5, 0.7, n), rng.uniform(0.7, 0.85, n))
    teal = _hsv(rng.uniform(0.45, 0.52, n), rng.uniform(0.35, 0.55, n), rng.uniform(0.35, 0.5, n))
    brown = _hsv(rng.uniform(0.03, 0.07, n), rng.uniform(0.55, 0.7, n), rng.uniform(0.3, 0.42, n))
    motif = np.where((rng.uniform(0, 1, n) < 0.5)[:, None], teal, brown)
    accent = _hsv(rng.uniform(0.0, 0.03, n), rng.uniform(0.55, 0.75, n), rng.uniform(0.65, 0.8, n))
    return bg1, bg2, motif, accent


@dataclass(frozen=True)
class _Style:
    """How one style draws: palette, background textures, layout and finish."""

    palette: Callable[[int, np.random.Generator], Palette]
    textures: dict[str, float]
    """Texture name -> probability (names from ``_TEXTURES``)."""
    scale: tuple[float, float]
    """Range of the motif's half-size, in image half-widths."""
    jitter: float
    """Largest offset of the motif centre from its anchor, per axis."""
    anchor_y: float
    """Vertical anchor of the motif (0 = centre, + = lower)."""
    tilt: float
    """Largest motif rotation, radians."""
    stripe_angle: tuple[float, float]
    """Range of the stripe direction (radians; pi/2 = horizontal bands)."""
    vignette: tuple[float, float]
    """Range of the vignette strength (0 = none)."""
    grain: float
    """Standard deviation of monochrome film grain (0 = none)."""


_STYLES: dict[str, _Style] = {
    "minimal": _Style(_palette_minimal, {"flat": 0.7, "gradient": 0.3}, (0.42, 0.55), 0.05,
                      0.0, 0.0, (0.0, np.pi), (0.0, 0.0), 0.0),
    "vivid": _Style(_palette_vivid, {"gradient": 0.35, "stripes": 0.35, "halftone": 0.3},
                    (0.75, 0.95), 0.2, 0.0, 0.35, (np.pi / 8, 3 * np.pi / 8), (0.0, 0.0), 0.0),
    "pastel": _Style(_palette_pastel, {"gradient": 0.6, "flat": 0.2, "halftone": 0.2},
                     (0.55, 0.7), 0.1, 0.0, 0.15, (0.0, np.pi), (0.0, 0.0), 0.0),
    "noir": _Style(_palette_noir, {"flat": 0.4, "halftone": 0.35, "gradient": 0.25},
                   (0.6, 0.8), 0.08, 0.0, 0.1, (0.0, np.pi), (0.35, 0.6), 0.0),
    "retro": _Style(_palette_retro, {"stripes": 0.5, "gradient": 0.3, "halftone": 0.2},
                    (0.6, 0.75), 0.08, 0.12, 0.1, (np.pi / 2 - 0.05, np.pi / 2 + 0.05),
                    (0.1, 0.25), 0.045),
}
assert tuple(_STYLES) == DEFAULT_STYLES


# ---------------------------------------------------------------------- geometry helpers
@lru_cache(maxsize=16)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in [-1, 1]: ``u`` of shape (1, 1, W), ``v`` of shape (1, H, 1)
    (v grows downwards)."""
    c = ((np.arange(size, dtype=np.float32) + 0.5) / size * 2 - 1).astype(np.float32)
    u, v = c[None, None, :], c[None, :, None]
    u.setflags(write=False)
    v.setflags(write=False)
    return u, v


class _Canvas:
    """Motif coordinates of a batch: rotated, centred, in units of the motif half-size.

    ``cover(d)`` turns a signed distance ``d`` (negative inside, same units) into an
    anti-aliased coverage in [0, 1].
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, sharpness: np.ndarray) -> None:
        self.x, self.y, self.k = x, y, sharpness

    def cover(self, d: np.ndarray) -> np.ndarray:
        return np.clip(0.5 - d * self.k, 0.0, 1.0)

    def rotated(self, angle: np.ndarray) -> _Canvas:
        """The same canvas with the motif turned by ``angle`` (radians, one per cover)."""
        a = _col(angle)
        cos, sin = np.cos(a), np.sin(a)
        return _Canvas(self.x * cos + self.y * sin, self.y * cos - self.x * sin, self.k)

    def disc(self, cx: Any, cy: Any, r: Any) -> np.ndarray:
        return self.cover(np.hypot(self.x - cx, self.y - cy) - r)

    def ring(self, cx: Any, cy: Any, r: Any, width: Any) -> np.ndarray:
        return self.cover(np.abs(np.hypot(self.x - cx, self.y - cy) - r) - width / 2)

    def box(self, cx: Any, cy: Any, hw: Any, hh: Any) -> np.ndarray:
        return self.cover(np.maximum(np.abs(self.x - cx) - hw, np.abs(self.y - cy) - hh))


def _col(a: np.ndarray) -> np.ndarray:
    """(n,) -> (n, 1, 1) for broadcasting against (n, H, W)."""
    return np.asarray(a, dtype=np.float32)[:, None, None]


# ---------------------------------------------------------------------- motifs (per topic)
def _motif_news(c: _Canvas, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    headline = c.box(0.0, -0.62, 0.85, 0.15)
    lengths = rng.uniform(0.45, 0.85, (4, n))
    main = np.zeros_like(headline)
    for i, y in enumerate((-0.22, 0.1, 0.42, 0.74)):
        hw = _col(lengths[i])
        main = np.maximum(main, c.box(-0.85 + hw, y, hw, 0.08))
    return main, headline


def _motif_sports(c: _Canvas, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    ball = c.disc(0.0, 0.0, 0.8)
    c = c.rotated(rng.uniform(0, np.pi, n))  # the seams turn freely
    seams = np.maximum(c.ring(-1.35, 0.0, 1.0, 0.1), c.ring(1.35, 0.0, 1.0, 0.1))
    seams = np.maximum(seams, c.box(0.0, 0.0, 0.05, 0.8))
    return ball, seams * ball


def _motif_music(c: _Canvas, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    heights = rng.uniform(0.35, 1.55, (6, n))
    base = 0.8
    main = c.box(0.0, base + 0.06, 0.85, 0.04)
    caps = np.zeros_like(main)
    for i in range(6):
        x = -0.75 + 0.3 * i
        h = _col(heights[i])
        main = np.maximum(main, c.box(x, base - h / 2, 0.1, h / 2))
        caps = np.maximum(caps, c.box(x, base - h + 0.07, 0.1, 0.07))
    return main, caps


def _motif_food(c: _Canvas, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    plate = c.disc(0.0, 0.0, 0.85) * (1.0 - c.ring(0.0, 0.0, 0.64, 0.07))
    angle = rng.uniform(0, 2 * np.pi, n)
    food = np.zeros_like(plate)
    for i in range(3):
        a = _col(angle + i * 2 * np.pi / 3)
        r = _col(rng.uniform(0.17, 0.25, n))
        food = np.maximum(food, c.disc(0.24 * np.cos(a), 0.24 * np.sin(a), r))
    return plate, food


def _motif_travel(c: _Canvas, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    base = 0.5
    peaks = rng.uniform(-0.75, -0.35, (2, n))
    land = c.cover(base - c.y)                                      # ground below the horizon
    for (px, hw), py in zip(((-0.3, 0.8), (0.45, 0.6)), peaks, strict=True):
        py = _col(py)
        slope = (base - py) / hw
        edge = (py + slope * np.abs(c.x - px) - c.y) / np.sqrt(1.0 + slope * slope)
        land = np.maximum(land, c.cover(np.maximum(edge, c.y - base - 0.2)))  # overlaps ground
    sun = c.disc(0.55, -0.75, 0.26) * (1.0 - land)
    return land, sun


def _motif_tech(c: _Canvas, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    chip = c.box(0.0, 0.0, 0.55, 0.55)
    for p in (-0.36, -0.12, 0.12, 0.36):
        chip = np.maximum(chip, c.box(p, 0.0, 0.045, 0.8))
        chip = np.maximum(chip, c.box(0.0, p, 0.8, 0.045))
    die = c.box(0.0, 0.0, 0.26, 0.26) * (1.0 - c.box(0.0, 0.0, 0.14, 0.14))
    return chip, die


_MOTIFS: dict[str, Callable[[_Canvas, int, np.random.Generator],
                            tuple[np.ndarray, np.ndarray]]] = {
    "news": _motif_news, "sports": _motif_sports, "music": _motif_music,
    "food": _motif_food, "travel": _motif_travel, "tech": _motif_tech,
}
assert tuple(_MOTIFS) == DEFAULT_TOPICS


# ---------------------------------------------------------------------- validation
def _check_size(size: Any) -> int:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 16 \
            or size % 8 != 0:
        raise ValueError(f"`size` must be an integer >= 16 divisible by 8 (e.g. 32 or 64), got "
                         f"{size!r}.")
    return int(size)


def _check_names(kind: str, given: Any, known: Sequence[str]) -> list[str]:
    if isinstance(given, str):
        raise ValueError(f"`{kind}s` must be a sequence of {kind} names, got the string "
                         f"{given!r}; write ({given!r},).")
    names = list(given)
    if not names:
        raise ValueError(f"`{kind}s` must name at least one {kind}; valid: {list(known)}.")
    for name in names:
        _check_name(kind, name, known)
    if len(set(names)) != len(names):
        raise ValueError(f"`{kind}s` must be distinct, got {names}.")
    return names


def _check_name(kind: str, name: Any, known: Sequence[str]) -> str:
    if not isinstance(name, str) or name not in known:
        raise ValueError(f"Unknown {kind} {name!r}; the procedural generator has {list(known)}.")
    return name


# ---------------------------------------------------------------------- rendering
def render_covers(style: str, topic: str, n: int, *, size: int = 32,
                  rng: np.random.Generator,
                  craft: np.ndarray | Sequence[float] | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Render ``n`` procedural covers of one style and topic.

    Parameters
    ----------
    style : str
        One of :data:`~covercast.covers.attributes.DEFAULT_STYLES`.
    topic : str
        One of :data:`~covercast.covers.attributes.DEFAULT_TOPICS`.
    n : int
        Number of covers (>= 0).
    size : int, default 32
        Side in pixels: an integer >= 16 divisible by 8.
    rng : numpy.random.Generator
        Source of every random draw.
    craft : array-like of shape (n,), optional
        Craft (= quality) of each cover in [0, 1]. By default drawn from
        ``Beta(CRAFT_ALPHA, CRAFT_BETA)``. The draw is made in either case, so the same ``rng``
        state with another ``craft`` gives the same covers with other defects.

    Returns
    -------
    images : numpy.ndarray
        uint8 ``(n, size, size, 3)``.
    quality : numpy.ndarray
        float64 ``(n,)`` in [0, 1]: the craft of each cover.

    Raises
    ------
    ValueError
        On an unknown style or topic, a bad ``size`` or ``n``, a ``craft`` of the wrong shape or
        outside [0, 1], or an ``rng`` that is not a :class:`numpy.random.Generator`.
    """
    spec = _STYLES[_check_name("style", style, DEFAULT_STYLES)]
    motif_fn = _MOTIFS[_check_name("topic", topic, DEFAULT_TOPICS)]
    size = _check_size(size)
    n = check_int(n, "n", 0)
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"`rng` must be a numpy.random.Generator, got {type(rng).__name__}; "
                         "pass np.random.default_rng(seed).")
    quality = rng.beta(CRAFT_ALPHA, CRAFT_BETA, n)
    if craft is not None:
        given = np.asarray(craft, dtype=np.float64)
        if given.shape != (n,):
            raise ValueError(f"`craft` must hold {n} finite values in [0, 1] (one per cover), "
                             f"got shape {given.shape}.")
        bad = ~(np.isfinite(given) & (given >= 0) & (given <= 1))
        if bad.any():
            where = np.flatnonzero(bad)[:5]
            raise ValueError(f"`craft` must hold {n} finite values in [0, 1], got "
                             f"{given[where].tolist()} at index {where.tolist()}.")
        quality = given.copy()
    if n == 0:
        return np.zeros((0, size, size, 3), dtype=np.uint8), quality
    defect = _col(1.0 - quality)
    u, v = _grid(size)
    px = 2.0 / size

    # background: two colours mixed by a texture
    bg1, bg2, motif_rgb, accent = spec.palette(n, rng)
    names = list(spec.textures)
    kind = rng.choice(len(names), size=n, p=np.array(list(spec.textures.values())))
    angle = _col(rng.uniform(*spec.stripe_angle, n))
    period = _col(rng.uniform(0.25, 0.45, n))
    dot_period = _col(rng.uniform(0.18, 0.28, n))
    ramp_angle = _col(rng.uniform(0, 2 * np.pi, n))
    along = (u * np.cos(ramp_angle) + v * np.sin(ramp_angle)) / np.sqrt(2.0) * 0.5 + 0.5
    mix = np.zeros((n, size, size), dtype=np.float32)
    for k, name in enumerate(names):
        sel = kind == k
        if not sel.any() or name == "flat":
            continue
        if name == "gradient":
            t = along[sel]
        elif name == "stripes":
            a, p = angle[sel], period[sel]
            phase = (u * np.cos(a) + v * np.sin(a)) / p
            t = np.clip(0.5 - (np.abs(phase - np.floor(phase) - 0.5) - 0.25) * p / px, 0, 1)
        else:  # halftone: dots on a grid, growing along the ramp
            p = dot_period[sel]
            fu = (u + 1) / p
            fv = (v + 1) / p
            dist = np.hypot(fu - np.floor(fu) - 0.5, fv - np.floor(fv) - 0.5) * p
            radius = p * (0.12 + 0.4 * along[sel])
            t = np.clip(0.5 - (dist - radius) / px, 0, 1)
        mix[sel] = t
    img = bg1[:, None, None, :] + mix[..., None] * (bg2 - bg1)[:, None, None, :]

    # layout: motif centre, size and rotation, with the low-craft misalignment
    scale = _col(rng.uniform(*spec.scale, n))
    cx = _col(rng.uniform(-spec.jitter, spec.jitter, n))
    cy = _col(spec.anchor_y + rng.uniform(-spec.jitter, spec.jitter, n))
    rot = _col(rng.uniform(-spec.tilt, spec.tilt, n))
    off_dir = _col(rng.uniform(0, 2 * np.pi, n))
    tilt_sign = _col(rng.choice([-1.0, 1.0], size=n))
    cx = cx + MISALIGN_MAX * defect * np.cos(off_dir)
    cy = cy + MISALIGN_MAX * defect * np.sin(off_dir)
    rot = rot + TILT_MAX * defect * tilt_sign
    du, dv = u - cx, v - cy
    cos, sin = np.cos(rot), np.sin(rot)
    canvas = _Canvas((du * cos + dv * sin) / scale, (dv * cos - du * sin) / scale, scale / px)
    main, detail = motif_fn(canvas, n, rng)
    img = img + main[..., None] * (motif_rgb[:, None, None, :] - img)
    img = img + detail[..., None] * (accent[:, None, None, :] - img)

    # finish: vignette and grain (style), then the craft defects
    vignette = _col(rng.uniform(*spec.vignette, n))
    img = img * (1.0 - vignette * (u * u + v * v) / 2.0)[..., None]
    grain = rng.standard_normal((n, size, size, 1), dtype=np.float32)
    noise = rng.standard_normal((n, size, size, 3), dtype=np.float32)
    img = img + spec.grain * grain
    wash = WASH_MAX * defect ** 1.5
    img = img + wash[..., None] * (_WASH_GREY - img)
    img = img + (NOISE_MAX * defect ** 2)[..., None] * noise
    images = (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return images, quality


def _pair_seed(seed: int, style: str, topic: str) -> np.random.SeedSequence:
    return np.random.SeedSequence(seed, spawn_key=(zlib.crc32(style.encode()),
                                                   zlib.crc32(topic.encode())))


def procedural_bank(per_style_topic: int = 8, *, size: int = 32, seed: int = 0,
                    styles: Sequence[str] = DEFAULT_STYLES,
                    topics: Sequence[str] = DEFAULT_TOPICS,
                    progress: bool = False) -> CoverBank:
    """A cover bank of procedural covers: ``per_style_topic`` covers for each style x topic.

    Parameters
    ----------
    per_style_topic : int, default 8
        Covers per (style, topic) pair (>= 1).
    size : int, default 32
        Side in pixels: an integer >= 16 divisible by 8.
    seed : int, default 0
        Non-negative seed; each (style, topic) pair gets its own stream (module docstring).
    styles, topics : sequence of str
        Subsets of :data:`~covercast.covers.attributes.DEFAULT_STYLES` and
        :data:`~covercast.covers.attributes.DEFAULT_TOPICS`, in the order the bank indexes
        them.
    progress : bool, default False
        Show a tqdm progress bar over the pairs.

    Returns
    -------
    CoverBank
        Covers ordered by style, then topic; one-hot style probabilities, ``quality`` = craft,
        ``generator="procedural"`` and the arguments (plus :data:`PROCEDURAL_VERSION`) in
        ``meta``.

    Raises
    ------
    ValueError
        On an unknown, repeated or empty list of styles/topics, a bad size, count or seed.
    """
    per_style_topic = check_int(per_style_topic, "per_style_topic")
    size = _check_size(size)
    seed = check_int(seed, "seed", 0)
    styles = _check_names("style", styles, DEFAULT_STYLES)
    topics = _check_names("topic", topics, DEFAULT_TOPICS)
    pairs = [(s, t) for s in styles for t in topics]
    images, quality = [], []
    for s, t in tqdm(pairs, desc="procedural covers", unit="pair", disable=not progress):
        rng = np.random.default_rng(_pair_seed(seed, s, t))
        im, q = render_covers(s, t, per_style_topic, size=size, rng=rng)
        images.append(im)
        quality.append(q)
    style_idx = np.repeat(np.arange(len(styles)), len(topics) * per_style_topic)
    topic_idx = np.tile(np.repeat(np.arange(len(topics)), per_style_topic), len(styles))
    meta = {"per_style_topic": per_style_topic, "size": size, "seed": seed,
            "styles": list(styles), "topics": list(topics),
            "craft_beta": [CRAFT_ALPHA, CRAFT_BETA], "procedural_version": PROCEDURAL_VERSION}
    return CoverBank.from_images(np.concatenate(images), style_idx, topic_idx, list(styles),
                                 list(topics), quality=np.concatenate(quality),
                                 generator="procedural", meta=meta)


@lru_cache(maxsize=1)
def _cached_default_bank() -> CoverBank:
    return procedural_bank(DEFAULT_BANK_PER_STYLE_TOPIC, size=32, seed=0)


def default_bank() -> CoverBank:
    """The default cover bank: 4 procedural covers per style x topic at 32 px, seed 0.

    Built once per process (about 50 ms) and cached; each call returns an independent copy, so
    changing one bank never changes another.
    """
    return _cached_default_bank().copy()


# ---------------------------------------------------------------------- contact sheet
def _bank_mosaic(bank: CoverBank, per_cell: int) -> tuple[np.ndarray, list[str], list[str]]:
    h = bank.image_size
    w = bank.images.shape[2]
    cells = np.full((bank.n_styles, len(bank.topics), h, per_cell * w, 3), 255, dtype=np.uint8)
    for i in range(bank.n_styles):
        for j in range(len(bank.topics)):
            idx = bank.indices(style=i, topic=j)[:per_cell]
            for k, cover in enumerate(idx):
                cells[i, j, :, k * w:(k + 1) * w] = bank.images[cover]
    return cells, list(bank.styles), list(bank.topics)


def save_grid(bank_or_images: CoverBank | np.ndarray, path: str | os.PathLike, *,
              per_cell: int = 2, ncols: int | None = None, scale: int = 3,
              gap: int = 2, title: str | None = None, dpi: int = 100) -> Path:
    """Write a PNG contact sheet of covers, atomically (temporary file, then rename).

    Parameters
    ----------
    bank_or_images : CoverBank or numpy.ndarray
        A bank: rows are its styles, columns its topics, each cell the first ``per_cell``
        covers of that pair side by side (blank where the bank has fewer). Or uint8 images:
        ``(rows, cols, H, W, 3)`` laid out as given, or ``(n, H, W, 3)`` laid out row by row in
        ``ncols`` columns (default ``ceil(sqrt(n))``).
    path : str or os.PathLike
        Output file; must end in ``.png``. Parent folders are created.
    per_cell : int, default 2
        Covers per cell for a bank.
    ncols : int, optional
        Columns for an ``(n, H, W, 3)`` array.
    scale : int, default 3
        Each cover pixel becomes ``scale x scale`` pixels (nearest neighbour).
    gap : int, default 2
        White gap between cells, in cover pixels.
    title : str, optional
        Figure title.
    dpi : int, default 100
        Resolution of the labels.

    Returns
    -------
    pathlib.Path
        The written file.

    Raises
    ------
    ValueError
        On a path not ending in ``.png``, images that are not uint8 ``(..., H, W, 3)``, or
        non-positive ``per_cell``, ``ncols``, ``scale``, ``dpi`` or a negative ``gap``.
    """
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"`path` must end in .png, got {path.name!r}.")
    per_cell = check_int(per_cell, "per_cell")
    scale = check_int(scale, "scale")
    gap = check_int(gap, "gap", 0)
    dpi = check_int(dpi, "dpi")
    row_labels: list[str] | None = None
    col_labels: list[str] | None = None
    if isinstance(bank_or_images, CoverBank):
        cells, row_labels, col_labels = _bank_mosaic(bank_or_images, per_cell)
    else:
        arr = np.asarray(bank_or_images)
        if arr.dtype != np.uint8 or arr.ndim not in (4, 5) or arr.shape[-1] != 3 \
                or arr.shape[0] == 0:
            raise ValueError(f"`bank_or_images` must be a CoverBank or uint8 images of shape "
                             f"(n, H, W, 3) or (rows, cols, H, W, 3), got {arr.dtype} "
                             f"{arr.shape}.")
        if arr.ndim == 5:
            cells = arr
        else:
            n = arr.shape[0]
            cols = int(np.ceil(np.sqrt(n))) if ncols is None else check_int(ncols, "ncols")
            rows = -(-n // cols)
            cells = np.full((rows * cols, *arr.shape[1:]), 255, dtype=np.uint8)
            cells[:n] = arr
            cells = cells.reshape(rows, cols, *arr.shape[1:])
    rows, cols, h, w, _ = cells.shape
    sheet = np.full((rows * (h + gap) + gap, cols * (w + gap) + gap, 3), 255, dtype=np.uint8)
    for i in range(rows):
        for j in range(cols):
            y0, x0 = gap + i * (h + gap), gap + j * (w + gap)
            sheet[y0:y0 + h, x0:x0 + w] = cells[i, j]
    sheet = np.repeat(np.repeat(sheet, scale, axis=0), scale, axis=1)

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    left = 0.8 if row_labels else 0.05
    top = 0.45 if col_labels else 0.05
    top += 0.35 if title else 0.0
    img_w, img_h = sheet.shape[1] / dpi, sheet.shape[0] / dpi
    fig_w, fig_h = img_w + left + 0.05, img_h + top + 0.05
    fig = Figure(figsize=(fig_w, fig_h), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((left / fig_w, 0.05 / fig_h, img_w / fig_w, img_h / fig_h))
    ax.imshow(sheet, interpolation="nearest")
    ax.set_frame_on(False)
    if row_labels:  # imshow puts pixel centres at integers: a cell's middle is below
        ax.set_yticks([(gap + i * (h + gap) + h / 2) * scale - 0.5 for i in range(rows)],
                      row_labels)
    else:
        ax.set_yticks([])
    if col_labels:
        ax.set_xticks([(gap + j * (w + gap) + w / 2) * scale - 0.5 for j in range(cols)],
                      col_labels)
        ax.xaxis.tick_top()
    else:
        ax.set_xticks([])
    ax.tick_params(length=0)
    if title:
        fig.suptitle(title, y=1.0 - 0.12 / fig_h, va="top")
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi), suffix=".png")
    return path
