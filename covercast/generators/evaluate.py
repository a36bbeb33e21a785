r"""Generation metrics: distances between generated and real covers in an encoder's features.

.. important::
   Every distance here is computed in the penultimate features of a **cover encoder trained by
   this project** (:mod:`covercast.generators.encoder`; for MNIST, the same architecture
   trained on MNIST-5k). They are **not Inception-FID numbers**: no Inception weights exist
   offline, and a distance in another feature space has another scale. They rank generators
   against each other on covercast data; they cannot be compared with published FIDs.

Metrics (numpy, on feature arrays ``(n, d)``)
---------------------------------------------
* :func:`frechet_distance` -- the Frechet distance between Gaussians fitted to two feature
  sets, :math:`\lVert\mu_1-\mu_2\rVert^2 + \operatorname{tr}(\Sigma_1+\Sigma_2-
  2(\Sigma_1\Sigma_2)^{1/2})` (the formula of FID, Heusel et al. 2017, in our feature space).
  The trace of the matrix square root is computed from the eigenvalues of the symmetric
  :math:`\Sigma_1^{1/2}\Sigma_2\Sigma_1^{1/2}`, which is exact and stable. Equal to
  torchmetrics' ``FrechetInceptionDistance(feature=encoder.feature_extractor())`` (tested).
* :func:`kernel_distance` -- KID (Binkowski et al. 2018): the unbiased MMD^2 with the cubic
  polynomial kernel :math:`k(x, y) = (x^\top y / d + 1)^3`, averaged over random subsets
  (drawn from an explicit ``rng``, so it is reproducible); mean and standard deviation.
* :func:`precision_recall` -- improved precision and recall (Kynkaanniemi et al. 2019): the
  share of generated samples inside the k-NN balls of the real ones, and vice versa.
* :func:`style_accuracy` -- the "semantic accuracy" of seed 000: the share of covers generated
  for style ``s`` that the cover encoder classifies as ``s``.
* :func:`mode_collapse` -- seed 000's "mode collapse rate", made precise: every cover is
  assigned to a *mode*, its style (by the encoder) x its topic (by the encoder's topic head);
  a mode is *collapsed* when the generator puts less than ``min_share`` (default 10 %) of the
  mass that held-out real covers put there (real covers are classified by the same encoder, so
  its errors cancel). The rate is the share of collapsed modes among the modes real covers
  occupy. The share of modes with no sample at all is reported beside it.

The generator report built on them (``covercast generators evaluate``) is
:mod:`covercast.experiments.generator_report`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from covercast._io import check_int

__all__ = ["NOT_INCEPTION_NOTE", "gaussian_stats", "frechet_distance", "kernel_distance",
           "precision_recall", "style_accuracy", "mode_collapse"]

NOT_INCEPTION_NOTE = (
    "These are NOT Inception-FID numbers. Frechet distance and KID are computed in the "
    "penultimate features of a small CNN trained by this project (the cover encoder; for "
    "MNIST the same architecture trained on MNIST-5k), because no Inception weights exist "
    "offline. Their scale depends on that feature space: compare models within a table, "
    "never with published FID/KID values.")

# =================================================================================== metrics
def _features(x: Any, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] < 2 or a.shape[1] < 1:
        raise ValueError(f"`{name}` must be a feature matrix (n >= 2 samples, d >= 1 features), "
                         f"got shape {a.shape}.")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"`{name}` contains NaN or inf.")
    return a


def _pair(a: Any, b: Any) -> tuple[np.ndarray, np.ndarray]:
    fa, fb = _features(a, "real"), _features(b, "fake")
    if fa.shape[1] != fb.shape[1]:
        raise ValueError(f"The two feature sets have {fa.shape[1]} and {fb.shape[1]} features; "
                         "compute both with the same encoder.")
    return fa, fb


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(d,)`` and covariance ``(d, d)`` (unbiased, ``n - 1``) of a feature matrix."""
    f = _features(features, "features")
    return f.mean(axis=0), np.atleast_2d(np.cov(f, rowvar=False))


def _sqrt_psd(m: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((m + m.T) / 2.0)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance(real: np.ndarray, fake: np.ndarray) -> float:
    """Frechet distance between Gaussian fits of two feature sets (module docstring).

    Parameters
    ----------
    real, fake
        Feature matrices ``(n, d)`` and ``(m, d)`` (n, m >= 2), e.g. from
        :meth:`CoverEncoder.features`.

    Returns
    -------
    float
        >= 0; 0 when the two sets have the same mean and covariance.
    """
    fa, fb = _pair(real, fake)
    mu1, s1 = gaussian_stats(fa)
    mu2, s2 = gaussian_stats(fb)
    r1 = _sqrt_psd(s1)
    eig = np.linalg.eigvalsh(r1 @ s2 @ r1)
    tr_sqrt = float(np.sum(np.sqrt(np.clip(eig, 0.0, None))))
    d = float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2.0 * tr_sqrt)
    return max(d, 0.0)


def _mmd2_unbiased(x: np.ndarray, y: np.ndarray, degree: int, coef: float) -> float:
    d = x.shape[1]
    kxx = (x @ x.T / d + coef) ** degree
    kyy = (y @ y.T / d + coef) ** degree
    kxy = (x @ y.T / d + coef) ** degree
    m, n = len(x), len(y)
    sxx = (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
    syy = (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
    return float(sxx + syy - 2.0 * kxy.mean())


def kernel_distance(real: np.ndarray, fake: np.ndarray, *, rng: np.random.Generator,
                    subsets: int = 50, subset_size: int | None = None, degree: int = 3,
                    coef: float = 1.0) -> tuple[float, float]:
    """KID: mean and standard deviation over subsets of the unbiased polynomial-kernel MMD^2.

    Parameters
    ----------
    real, fake
        Feature matrices ``(n, d)``, ``(m, d)``.
    rng
        Draws the subsets (without replacement within a subset).
    subsets
        Number of subsets (>= 1).
    subset_size
        Samples per subset from each set, drawn without replacement (default: 1,000, KID's
        usual size, or half the smaller set when that is less, so that the subsets differ and
        the standard deviation means something; maximum ``min(n, m)``; >= 2).
    degree, coef
        The kernel ``(x . y / d + coef) ** degree`` (KID's defaults: 3 and 1).
    """
    fa, fb = _pair(real, fake)
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"`rng` must be a numpy.random.Generator, got {type(rng).__name__}.")
    check_int(subsets, "subsets")
    limit = min(len(fa), len(fb))
    size = min(1000, max(2, limit // 2)) if subset_size is None else int(subset_size)
    if not 2 <= size <= limit:
        raise ValueError(f"`subset_size` must lie in [2, {limit}] (the smaller set), got "
                         f"{subset_size!r}.")
    vals = np.array([_mmd2_unbiased(fa[rng.choice(len(fa), size, replace=False)],
                                    fb[rng.choice(len(fb), size, replace=False)], degree, coef)
                     for _ in range(int(subsets))])
    return float(vals.mean()), float(vals.std())


def _kth_nn_radius(x: np.ndarray, k: int) -> np.ndarray:
    sq = np.sum(x * x, axis=1)
    d2 = np.clip(sq[:, None] + sq[None, :] - 2.0 * x @ x.T, 0.0, None)
    np.fill_diagonal(d2, np.inf)
    return np.sqrt(np.partition(d2, k - 1, axis=1)[:, k - 1])


def _coverage(ref: np.ndarray, radius: np.ndarray, query: np.ndarray) -> float:
    d2 = np.clip(np.sum(query ** 2, 1)[:, None] + np.sum(ref ** 2, 1)[None, :]
                 - 2.0 * query @ ref.T, 0.0, None)
    return float(np.mean(np.any(np.sqrt(d2) <= radius[None, :], axis=1)))


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019) with ``k``-NN balls.

    Precision: share of ``fake`` inside the union of the real samples' balls (radius: distance
    to their ``k``-th nearest real neighbour); recall: share of ``real`` inside the fake
    samples' balls. Both in [0, 1].
    """
    fa, fb = _pair(real, fake)
    check_int(k, "k", 1, min(len(fa), len(fb)) - 1)
    return (_coverage(fa, _kth_nn_radius(fa, k), fb), _coverage(fb, _kth_nn_radius(fb, k), fa))


def style_accuracy(style_probs: np.ndarray, requested: np.ndarray) -> float:
    """Share of covers whose most likely style (by the encoder) is the style requested."""
    p = np.asarray(style_probs)
    r = np.asarray(requested)
    if p.ndim != 2 or r.shape != (len(p),):
        raise ValueError(f"`style_probs` must be (n, n_styles) and `requested` (n,), got "
                         f"{p.shape} and {r.shape}.")
    return float(np.mean(p.argmax(axis=1) == r))


def mode_collapse(style: np.ndarray, topic: np.ndarray, ref_style: np.ndarray,
                  ref_topic: np.ndarray, n_styles: int, n_topics: int, *,
                  min_share: float = 0.1) -> dict[str, Any]:
    """Collapsed style x topic modes of generated covers, against real ones (module docstring).

    Parameters
    ----------
    style, topic
        Mode of every generated cover (encoder style and topic indices).
    ref_style, ref_topic
        Mode of every held-out real cover (same encoder).
    n_styles, n_topics
        Number of styles and topics.
    min_share
        A mode is collapsed when its generated frequency is below ``min_share`` times its real
        frequency (in (0, 1]).

    Returns
    -------
    dict
        ``rate`` (share of the real-occupied modes that are collapsed), ``empty_rate`` (share
        with no generated sample), ``modes`` (real-occupied modes), ``collapsed`` (their
        number) and ``counts`` (generated counts, ``(n_styles, n_topics)``).
    """
    if not 0 < min_share <= 1:
        raise ValueError(f"`min_share` must lie in (0, 1], got {min_share!r}.")

    def counts(s: np.ndarray, t: np.ndarray) -> np.ndarray:
        s, t = np.asarray(s, dtype=np.int64), np.asarray(t, dtype=np.int64)
        if s.shape != t.shape or s.ndim != 1 or s.size == 0:
            raise ValueError(f"Style and topic labels must be two equal-length 1-d arrays, got "
                             f"{s.shape} and {t.shape}.")
        if s.min() < 0 or s.max() >= n_styles or t.min() < 0 or t.max() >= n_topics:
            raise ValueError("Style/topic labels out of range for "
                             f"{n_styles} styles x {n_topics} topics.")
        return np.bincount(s * n_topics + t, minlength=n_styles * n_topics).reshape(
            n_styles, n_topics).astype(np.float64)

    gen, ref = counts(style, topic), counts(ref_style, ref_topic)
    occupied = ref > 0
    gen_f, ref_f = gen / gen.sum(), ref / ref.sum()
    collapsed = occupied & (gen_f < min_share * ref_f)
    n_modes = int(occupied.sum())
    return {"rate": float(collapsed.sum() / n_modes), "modes": n_modes,
            "collapsed": int(collapsed.sum()),
            "empty_rate": float((occupied & (gen == 0)).sum() / n_modes),
            "counts": gen.astype(np.int64)}
