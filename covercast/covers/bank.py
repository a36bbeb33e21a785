"""CoverBank: a set of cover images with the features users respond to.

A bank holds, for each cover: the uint8 RGB image, its style and topic (indices into the bank's
``styles`` / ``topics``), a quality score in [0, 1] and its feature vector -- the five image
attributes of :func:`covercast.covers.attributes.cover_attributes` followed by its style
probabilities. Banks are saved and loaded as ``.npz`` (no pickles). Only numpy is needed.
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from covercast._io import atomic_write
from covercast.covers.attributes import ATTRIBUTE_NAMES

BANK_FORMAT_VERSION = 1
_ARRAYS = ("images", "style", "topic", "quality", "features")


@dataclass
class CoverBank:
    """Cover images with their style, topic, quality and feature vectors.

    Build one with :func:`covercast.covers.procedural.procedural_bank` (the default),
    :meth:`from_images` (any generator) or :meth:`load`.
    """

    images: np.ndarray
    """uint8 array ``(n, H, W, 3)``."""
    style: np.ndarray
    """int array ``(n,)``: index into :attr:`styles` of the style the cover was made for."""
    topic: np.ndarray
    """int array ``(n,)``: index into :attr:`topics`."""
    quality: np.ndarray
    """float array ``(n,)`` in [0, 1]."""
    features: np.ndarray
    """float32 array ``(n, 5 + n_styles)``: attributes, then style probabilities."""
    styles: list[str]
    topics: list[str]
    generator: str = "procedural"
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.images = np.asarray(self.images)
        self.style = _as_labels(self.style, "style")
        self.topic = _as_labels(self.topic, "topic")
        self.quality = np.asarray(self.quality, dtype=np.float64)
        self.features = np.asarray(self.features, dtype=np.float32)
        self.styles = list(self.styles)
        self.topics = list(self.topics)
        self.validate()

    # ------------------------------------------------------------------ checks
    def validate(self) -> None:
        n = len(self.images)
        if self.images.dtype != np.uint8 or self.images.ndim != 4 or self.images.shape[-1] != 3:
            raise ValueError(f"`images` must be uint8 of shape (n, H, W, 3), got "
                             f"{self.images.dtype} {self.images.shape}.")
        if n == 0:
            raise ValueError("A CoverBank needs at least one cover, got 0.")
        for name in ("style", "topic", "quality"):
            a = getattr(self, name)
            if a.shape != (n,):
                raise ValueError(f"`{name}` must have shape ({n},), got {a.shape}.")
        nf = len(ATTRIBUTE_NAMES) + len(self.styles)
        if self.features.shape != (n, nf):
            raise ValueError(f"`features` must have shape ({n}, {nf}) = (covers, "
                             f"{len(ATTRIBUTE_NAMES)} attributes + {len(self.styles)} styles), "
                             f"got {self.features.shape}.")
        if not np.all(np.isfinite(self.features)):
            raise ValueError("`features` contains NaN or inf.")
        for name, names in (("style", self.styles), ("topic", self.topics)):
            if len(set(names)) != len(names) or not all(isinstance(x, str) and x for x in names):
                raise ValueError(f"`{name}s` must be distinct non-empty names, got {names}.")
            a = getattr(self, name)
            if a.min() < 0 or a.max() >= len(names):
                raise ValueError(f"`{name}` indices must lie in [0, {len(names) - 1}], got "
                                 f"[{a.min()}, {a.max()}].")
        if not (np.all(self.quality >= 0) and np.all(self.quality <= 1)):
            raise ValueError(f"`quality` must lie in [0, 1], got [{self.quality.min():.3g}, "
                             f"{self.quality.max():.3g}].")

    # ------------------------------------------------------------------ views
    def copy(self) -> CoverBank:
        """An independent copy (arrays and ``meta`` copied): changing one never changes the
        other."""
        import copy as _copy

        return CoverBank(images=self.images.copy(), style=self.style.copy(),
                         topic=self.topic.copy(), quality=self.quality.copy(),
                         features=self.features.copy(), styles=list(self.styles),
                         topics=list(self.topics), generator=self.generator,
                         meta=_copy.deepcopy(self.meta))

    def __len__(self) -> int:
        return len(self.images)

    @property
    def image_size(self) -> int:
        return int(self.images.shape[1])

    @property
    def n_styles(self) -> int:
        return len(self.styles)

    @property
    def attributes(self) -> np.ndarray:
        """The five image attributes of every cover, ``(n, 5)``."""
        return self.features[:, : len(ATTRIBUTE_NAMES)]

    @property
    def style_probs(self) -> np.ndarray:
        """Style probabilities of every cover, ``(n, n_styles)``."""
        return self.features[:, len(ATTRIBUTE_NAMES):]

    def style_index(self, style: str | int) -> int:
        """Index of a style given by name or index; unknown styles raise ``ValueError``."""
        if isinstance(style, (int, np.integer)):
            if not 0 <= int(style) < self.n_styles:
                raise ValueError(f"Style index {style} out of range [0, {self.n_styles - 1}].")
            return int(style)
        if style not in self.styles:
            raise ValueError(f"Unknown style {style!r}; this bank has {self.styles}.")
        return self.styles.index(style)

    def indices(self, style: str | int | None = None, topic: str | int | None = None) -> np.ndarray:
        """Indices of the covers of a style and/or topic (``None`` = any)."""
        mask = np.ones(len(self), dtype=bool)
        if style is not None:
            mask &= self.style == self.style_index(style)
        if topic is not None:
            if isinstance(topic, str):
                if topic not in self.topics:
                    raise ValueError(f"Unknown topic {topic!r}; this bank has {self.topics}.")
                topic = self.topics.index(topic)
            mask &= self.topic == int(topic)
        return np.flatnonzero(mask)

    def style_table(self) -> tuple[np.ndarray, np.ndarray]:
        """Cover indices per style for fast vectorised sampling.

        Returns ``(table, counts)``: ``table`` is ``(n_styles, max_covers)`` (each row padded by
        cycling) and ``counts[s]`` the number of covers of style ``s``, so that
        ``table[s, rng.integers(counts[s])]`` draws a cover of style ``s`` uniformly.
        """
        groups = [np.flatnonzero(self.style == s) for s in range(self.n_styles)]
        counts = np.array([len(g) for g in groups], dtype=np.int64)
        if np.any(counts == 0):
            missing = [self.styles[i] for i in np.flatnonzero(counts == 0)]
            raise ValueError(f"The bank has no cover of style(s) {missing}.")
        width = int(counts.max())
        table = np.stack([np.resize(g, width) for g in groups])
        return table, counts

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_images(cls, images: np.ndarray, style: np.ndarray, topic: np.ndarray,
                    styles: list[str], topics: list[str], quality: np.ndarray | None = None,
                    style_probs: np.ndarray | None = None, generator: str = "custom",
                    meta: dict[str, Any] | None = None) -> CoverBank:
        """A bank from raw images: attributes are computed here.

        ``style_probs`` defaults to one-hot of ``style`` (right for procedural covers; pass a
        trained classifier's probabilities for generated ones); ``quality`` defaults to 1.
        """
        from covercast.covers.attributes import cover_attributes

        images = np.asarray(images)
        n = len(images)
        style = np.asarray(style, dtype=np.int64)
        if style_probs is None:
            style_probs = np.eye(len(styles), dtype=np.float32)[style]
        style_probs = np.asarray(style_probs, dtype=np.float32)
        if style_probs.shape != (n, len(styles)):
            raise ValueError(f"`style_probs` must have shape ({n}, {len(styles)}), got "
                             f"{style_probs.shape}.")
        feats = np.concatenate([cover_attributes(images), style_probs], axis=1)
        q = np.ones(n) if quality is None else np.asarray(quality, dtype=np.float64)
        return cls(images=images, style=style, topic=np.asarray(topic), quality=q,
                   features=feats, styles=styles, topics=topics, generator=generator,
                   meta=dict(meta or {}))

    # ------------------------------------------------------------------ I/O
    def save(self, path: str | os.PathLike) -> Path:
        """Save as ``.npz`` atomically; returns the path."""
        path = Path(path)
        if path.suffix != ".npz":
            raise ValueError(f"A CoverBank is saved as .npz, got {path.name!r}.")
        try:
            header = json.dumps({"format_version": BANK_FORMAT_VERSION, "styles": self.styles,
                                 "topics": self.topics, "generator": self.generator,
                                 "meta": self.meta})
        except TypeError as e:
            raise ValueError(f"The bank's `meta` must hold JSON values (str, int, float, "
                             f"lists, dicts) only: {e}.") from e
        arrays = {k: getattr(self, k) for k in _ARRAYS}
        atomic_write(path, lambda tmp: np.savez_compressed(tmp, header=np.array(header),
                                                           **arrays))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> CoverBank:
        """Load a bank written by :meth:`save`; a corrupt or foreign file raises ``ValueError``."""
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"No cover bank at {path}; build one with "
                                    "`covercast bank build --generator procedural --out bank.npz`.")
        fix = "rebuild it with `covercast bank build` (or `procedural_bank(...).save(path)`)"
        try:
            z = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
            raise ValueError(f"{path} is not a readable cover bank ({type(e).__name__}); {fix}.") \
                from e
        if not isinstance(z, np.lib.npyio.NpzFile):
            raise ValueError(f"{path} holds a single array, not a cover bank (.npz archive); "
                             f"{fix}.")
        try:
            with z:
                missing = [k for k in ("header", *_ARRAYS) if k not in z.files]
                if missing:
                    raise ValueError(f"{path} is not a covercast cover bank: it lacks {missing}; "
                                     f"{fix}.")
                header = json.loads(str(z["header"]))
                arrays = {k: z[k] for k in _ARRAYS}
        except (zipfile.BadZipFile, OSError, EOFError, json.JSONDecodeError, ValueError) as e:
            if isinstance(e, ValueError) and str(path) in str(e):
                raise
            raise ValueError(f"{path} is not a readable cover bank ({type(e).__name__}: {e}); "
                             f"{fix}.") from e
        if not isinstance(header, dict) or not {"styles", "topics"} <= set(header):
            raise ValueError(f"{path} has a malformed bank header (it needs an object with "
                             f"`styles` and `topics`); {fix}.")
        if header.get("format_version") != BANK_FORMAT_VERSION:
            raise ValueError(f"{path} has bank format {header.get('format_version')!r}; this "
                             f"covercast reads {BANK_FORMAT_VERSION}. Rebuild the bank.")
        return cls(styles=header["styles"], topics=header["topics"],
                   generator=header.get("generator", "unknown"), meta=header.get("meta", {}),
                   **arrays)


def _as_labels(a: np.ndarray, name: str) -> np.ndarray:
    """Integer labels; floats are accepted only when they hold whole numbers."""
    a = np.asarray(a)
    if a.dtype.kind in "iu":
        return a.astype(np.int64)
    if a.dtype.kind == "f" and np.all(np.isfinite(a)) and np.all(a == np.round(a)):
        return a.astype(np.int64)
    raise ValueError(f"`{name}` must hold integer indices, got dtype {a.dtype}.")
