"""The cover attribute space users respond to.

Every cover image, whichever generator made it, is summarised by a small interpretable vector:
five image statistics (:data:`ATTRIBUTE_NAMES`) followed by its style probabilities (one per
style of the bank). User taste vectors live in that space, so a taste keeps its meaning across
generators. Only numpy is needed here.

The five attributes
-------------------
Pixel values are read as ``R, G, B`` in [0, 1] (uint8 / 255) and the luma is Rec. 601,
``Y = 0.299 R + 0.587 G + 0.114 B``. :func:`raw_cover_attributes` returns the statistics below
in these units; :func:`cover_attributes` returns them standardised,
``(raw - ATTRIBUTE_CENTER) / ATTRIBUTE_SCALE``.

==========  ==========================================================  ==================
name        formula (per image)                                         range before
                                                                        scaling
==========  ==========================================================  ==================
brightness  mean of ``Y`` over the pixels                               [0, 1]
saturation  mean of the HSV saturation ``(max - min) / max`` of         [0, 1]
            ``(R, G, B)`` per pixel (0 where ``max = 0``)
warmth      ``mean(R) - mean(B)``                                       [-1, 1]
contrast    standard deviation of ``Y`` over the pixels (population     [0, 0.5]
            sd, ``ddof=0``)
complexity  mean gradient magnitude of ``Y`` on the 32 x 32 analysis    [0, sqrt(2)]
            grid: ``mean(sqrt(dx^2 + dy^2))`` with forward differences
            ``dx = Y[i, j+1] - Y[i, j]``, ``dy = Y[i+1, j] - Y[i, j]``
            over the 31 x 31 pixels that have both
==========  ==========================================================  ==================

Brightness, saturation, warmth and contrast are computed at the image's own resolution (the
first three and the mean of the fourth hardly depend on it). Complexity counts edges per pixel,
which does depend on resolution, so it is measured after resampling the luma to a fixed
:data:`ANALYSIS_SIZE` x :data:`ANALYSIS_SIZE` grid by exact area averaging (each output cell is
the overlap-weighted mean of the input pixels it covers; the identity at 32 px). A hard edge
then scores the same whether the cover is 16, 32 or 64 px wide; pixel-level noise and patterns
finer than 1/32 of the image are averaged away, as for a viewer looking at a thumbnail. A
one-pixel black-and-white checkerboard at 32 px has complexity ``sqrt(2)``, the maximum.

Standardisation
---------------
:data:`ATTRIBUTE_CENTER` and :data:`ATTRIBUTE_SCALE` are fixed constants: the mean and the
standard deviation of each raw attribute over a large bank drawn from the default procedural
generator (the same distribution as :func:`covercast.covers.procedural.procedural_bank`
with its defaults, 64 covers per style and topic instead of 8, for stable estimates). Over
procedural covers each standardised attribute therefore has mean about 0 and sd about 1; covers
of other generators keep the same units, so a taste weight means the same thing for all of
them. They are written down here, not recomputed at import, so that a change to the procedural
generator never silently moves every user's taste; re-derive them with::

    python -c "from covercast.covers.procedural import procedural_bank as b; \\
    from covercast.covers.attributes import raw_cover_attributes as r; \\
    a = r(b(per_style_topic=64, seed=0).images); \\
    print(a.mean(0).round(4).tolist(), a.std(0).round(4).tolist())"
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

#: Image statistics, in this order, each standardised so that procedural covers have roughly
#: zero mean and unit spread (see :func:`cover_attributes` for the exact definitions).
ATTRIBUTE_NAMES: tuple[str, ...] = ("brightness", "saturation", "warmth", "contrast", "complexity")

#: The styles of the default (procedural) cover bank.
DEFAULT_STYLES: tuple[str, ...] = ("minimal", "vivid", "pastel", "noir", "retro")

#: The content topics of the default population and cover bank.
DEFAULT_TOPICS: tuple[str, ...] = ("news", "sports", "music", "food", "travel", "tech")

#: Side of the grid the luma is area-resampled to before measuring complexity.
ANALYSIS_SIZE: int = 32

#: Mean of each raw attribute (order of :data:`ATTRIBUTE_NAMES`) over the default procedural
#: generator; subtracted by :func:`cover_attributes`. See the module docstring to re-derive.
ATTRIBUTE_CENTER: np.ndarray = np.array([0.6005, 0.3553, 0.0552, 0.1384, 0.0863],
                                        dtype=np.float64)

#: Standard deviation of each raw attribute over the default procedural generator; divides the
#: centred attributes in :func:`cover_attributes`.
ATTRIBUTE_SCALE: np.ndarray = np.array([0.2091, 0.2467, 0.1661, 0.0751, 0.0423],
                                       dtype=np.float64)
ATTRIBUTE_CENTER.setflags(write=False)
ATTRIBUTE_SCALE.setflags(write=False)

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_CHUNK = 2048  # images per vectorised block: bounds the float32 working memory


def feature_names(styles: tuple[str, ...] | list[str]) -> list[str]:
    """Names of the full cover feature vector: the attributes, then ``style:<name>`` per style."""
    return list(ATTRIBUTE_NAMES) + [f"style:{s}" for s in styles]


def _as_image_batch(images: np.ndarray) -> np.ndarray:
    """Check ``images`` and return it as a uint8 ``(n, H, W, 3)`` array (no copy)."""
    if not isinstance(images, np.ndarray):
        raise ValueError(f"`images` must be a numpy uint8 array of shape (n, H, W, 3) or "
                         f"(H, W, 3), got {type(images).__name__}; wrap it with np.asarray.")
    if images.dtype != np.uint8:
        raise ValueError(f"`images` must have dtype uint8 (values 0-255), got {images.dtype}; "
                         "convert floats in [0, 1] with "
                         "`(np.clip(x, 0, 1) * 255).round().astype(np.uint8)`.")
    if images.ndim == 3:
        images = images[None]
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"`images` must have shape (n, H, W, 3) or (H, W, 3) with RGB last, got "
                         f"{images.shape}; drop an alpha channel with images[..., :3] and move "
                         "channels last with np.moveaxis.")
    if images.shape[1] < 1 or images.shape[2] < 1:
        raise ValueError(f"`images` must be at least 1 x 1 pixels, got {images.shape}.")
    return images


@lru_cache(maxsize=32)
def _area_matrix(n_in: int, n_out: int) -> np.ndarray:
    """``(n_out, n_in)`` exact area-averaging weights from ``n_in`` to ``n_out`` cells.

    Row ``i`` holds the overlap of each input cell ``[j/n_in, (j+1)/n_in)`` with output cell
    ``[i/n_out, (i+1)/n_out)``, divided by the output cell's width, so each row sums to 1.
    """
    edges_in = np.arange(n_in + 1) / n_in
    edges_out = np.arange(n_out + 1) / n_out
    lo = np.maximum(edges_out[:-1, None], edges_in[None, :-1])
    hi = np.minimum(edges_out[1:, None], edges_in[None, 1:])
    w = (np.clip(hi - lo, 0.0, None) * n_out).astype(np.float32)
    w.setflags(write=False)
    return w


def _raw_block(block: np.ndarray) -> np.ndarray:
    """Raw attributes of one uint8 ``(m, H, W, 3)`` block, float64 ``(m, 5)``."""
    m, h, w, _ = block.shape
    x = block.astype(np.float32) * np.float32(1.0 / 255.0)
    y = x @ _LUMA                                                     # (m, H, W)
    out = np.empty((m, 5), dtype=np.float64)
    out[:, 0] = y.mean(axis=(1, 2), dtype=np.float64)
    mx = block.max(axis=-1).astype(np.float32)
    mn = block.min(axis=-1).astype(np.float32)
    sat = np.divide(mx - mn, mx, out=np.zeros_like(mx), where=mx > 0)
    out[:, 1] = sat.mean(axis=(1, 2), dtype=np.float64)
    chan = x.mean(axis=(1, 2), dtype=np.float64)                      # (m, 3)
    out[:, 2] = chan[:, 0] - chan[:, 2]
    out[:, 3] = y.std(axis=(1, 2), dtype=np.float64)
    if (h, w) != (ANALYSIS_SIZE, ANALYSIS_SIZE):
        ah = _area_matrix(h, ANALYSIS_SIZE)
        aw = _area_matrix(w, ANALYSIS_SIZE)
        y = ah @ y @ aw.T                                             # (m, 32, 32)
    dx = np.diff(y, axis=2)[:, :-1, :]
    dy = np.diff(y, axis=1)[:, :, :-1]
    out[:, 4] = np.sqrt(dx * dx + dy * dy).mean(axis=(1, 2), dtype=np.float64)
    return out


def raw_cover_attributes(images: np.ndarray) -> np.ndarray:
    """The five attributes of each image in their natural units (see the module docstring).

    Parameters
    ----------
    images : numpy.ndarray
        uint8 RGB images, shape ``(n, H, W, 3)``, or a single image ``(H, W, 3)``.

    Returns
    -------
    numpy.ndarray
        float64 ``(n, 5)`` (``(1, 5)`` for a single image): brightness, saturation, warmth,
        contrast, complexity, unscaled.

    Raises
    ------
    ValueError
        If ``images`` is not a uint8 array of one of those shapes.
    """
    images = _as_image_batch(images)
    n = images.shape[0]
    out = np.empty((n, len(ATTRIBUTE_NAMES)), dtype=np.float64)
    for start in range(0, n, _CHUNK):
        out[start:start + _CHUNK] = _raw_block(images[start:start + _CHUNK])
    return out


def standardize_attributes(raw: np.ndarray) -> np.ndarray:
    """Map raw attributes (``(..., 5)``, as from :func:`raw_cover_attributes`) to the
    standardised space: ``(raw - ATTRIBUTE_CENTER) / ATTRIBUTE_SCALE``, as float32."""
    raw = np.asarray(raw, dtype=np.float64)
    if raw.shape[-1:] != (len(ATTRIBUTE_NAMES),):
        raise ValueError(f"`raw` must end with an axis of {len(ATTRIBUTE_NAMES)} attributes "
                         f"{ATTRIBUTE_NAMES}, got shape {raw.shape}.")
    return ((raw - ATTRIBUTE_CENTER) / ATTRIBUTE_SCALE).astype(np.float32)


def cover_attributes(images: np.ndarray) -> np.ndarray:
    """The standardised attribute vector of each cover image.

    The five statistics of :data:`ATTRIBUTE_NAMES` (defined in the module docstring), each
    centred and scaled with the fixed constants :data:`ATTRIBUTE_CENTER` and
    :data:`ATTRIBUTE_SCALE`, so that over the default procedural covers every attribute has
    mean about 0 and standard deviation about 1. Vectorised: tens of thousands of 32 x 32
    covers per second on one core.

    Parameters
    ----------
    images : numpy.ndarray
        uint8 RGB images, shape ``(n, H, W, 3)``, or a single image ``(H, W, 3)``.

    Returns
    -------
    numpy.ndarray
        float32 ``(n, 5)``; a single image gives ``(1, 5)``; ``n = 0`` gives ``(0, 5)``.

    Raises
    ------
    ValueError
        If ``images`` is not uint8, or not of shape ``(n, H, W, 3)`` / ``(H, W, 3)``.

    Examples
    --------
    >>> import numpy as np
    >>> white = np.full((32, 32, 3), 255, dtype=np.uint8)
    >>> cover_attributes(white).shape
    (1, 5)
    """
    return standardize_attributes(raw_cover_attributes(images))
